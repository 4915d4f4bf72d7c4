//! `weft-test-probe`: a filter for weft's own tests, built with the
//! upstream `proxy-wasm` crate. The request header `x-probe` selects what
//! it does, so one module exercises every ABI group; `pluginConfig`
//! (`{"greeting": "...", "reject": false, "tick_ms": 0, "call_cluster": "...",
//! "queue": "...", "enqueue_to": {"vm_id": "...", "queue": "..."}}`) sets
//! it up.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Config {
    greeting: String,
    reject: bool,
    tick_ms: u64,
    call_cluster: String,
    queue: String,
    enqueue_to: Option<QueueRef>,
    buffer_body: bool,
}

#[derive(Deserialize, Clone)]
struct QueueRef {
    vm_id: String,
    queue: String,
}

thread_local! {
    /// Streams paused until the next tick.
    static WAITING: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { ticks: 0, config: Rc::new(Config::default()), requests: 0, logs: 0, queue_id: None })
    });
}}

struct Root {
    ticks: u32,
    config: Rc<Config>,
    requests: u32,
    logs: u32,
    queue_id: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let vm_config = self.get_vm_configuration().unwrap_or_default();
        proxy_wasm::hostcalls::log(
            LogLevel::Info,
            &format!("probe vm started ({} bytes of vm config)", vm_config.len()),
        )
        .ok();
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let config: Config = if raw.is_empty() {
            Config::default()
        } else {
            match serde_json::from_slice(&raw) {
                Ok(c) => c,
                Err(e) => {
                    proxy_wasm::hostcalls::log(LogLevel::Error, &format!("bad probe config: {e}"))
                        .ok();
                    return false;
                }
            }
        };
        if config.reject {
            proxy_wasm::hostcalls::log(LogLevel::Error, "probe config: reject is true").ok();
            return false;
        }
        self.requests = proxy_wasm::hostcalls::define_metric(MetricType::Counter, "probe_requests")
            .unwrap_or(0);
        self.logs =
            proxy_wasm::hostcalls::define_metric(MetricType::Counter, "probe_logs").unwrap_or(0);
        proxy_wasm::hostcalls::define_metric(MetricType::Gauge, "probe_gauge").ok();
        self.ticks =
            proxy_wasm::hostcalls::define_metric(MetricType::Counter, "probe_ticks").unwrap_or(0);
        proxy_wasm::hostcalls::define_metric(MetricType::Histogram, "probe_sizes").ok();
        if config.tick_ms > 0 {
            self.set_tick_period(Duration::from_millis(config.tick_ms));
        }
        if !config.queue.is_empty() {
            self.queue_id = Some(self.register_shared_queue(&config.queue));
        }
        self.config = Rc::new(config);
        true
    }

    fn on_tick(&mut self) {
        proxy_wasm::hostcalls::increment_metric(self.ticks, 1).ok();
        let waiting: Vec<u32> = WAITING.with(|w| w.borrow_mut().drain(..).collect());
        for id in waiting {
            if proxy_wasm::hostcalls::set_effective_context(id).is_ok() {
                proxy_wasm::hostcalls::set_map_value(
                    proxy_wasm::types::MapType::HttpRequestHeaders,
                    "x-probe-ticked",
                    Some("yes"),
                )
                .ok();
                proxy_wasm::hostcalls::resume_http_request().ok();
            }
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(item)) = self.dequeue_shared_queue(queue_id) {
            let text = String::from_utf8_lossy(&item).into_owned();
            proxy_wasm::hostcalls::log(LogLevel::Info, &format!("queue item: {text}")).ok();
            self.set_shared_data("last_queue_item", Some(text.as_bytes()), None)
                .ok();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            id: context_id,
            config: self.config.clone(),
            mode: String::new(),
            requests: self.requests,
            logs: self.logs,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    id: u32,
    config: Rc<Config>,
    mode: String,
    requests: u32,
    logs: u32,
}

fn text(v: Option<Vec<u8>>) -> String {
    v.map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn int(v: Option<Vec<u8>>) -> String {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(|b| i64::from_le_bytes(b).to_string())
        .unwrap_or_default()
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let verdict = self
            .get_http_call_response_header("x-auth")
            .unwrap_or_default();
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        if verdict == "allow" {
            self.set_http_request_header("x-auth-result", Some("allowed"));
            self.set_http_request_header("x-auth-body", Some(&String::from_utf8_lossy(&body)));
            self.resume_http_request();
        } else {
            self.send_http_response(
                403,
                vec![("x-denied-by", "probe")],
                Some(b"denied by probe\n"),
            );
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        proxy_wasm::hostcalls::increment_metric(self.requests, 1).ok();
        self.mode = self.get_http_request_header("x-probe").unwrap_or_default();
        self.set_http_request_header("x-probe-seen", Some(&self.config.greeting));
        // Let tests steer the proxy through the weft.* properties.
        for (header, path) in [
            ("x-probe-cluster", vec!["weft", "cluster"]),
            ("x-probe-timeout-ms", vec!["weft", "timeout_ms"]),
            ("x-probe-retry-attempts", vec!["weft", "retry", "attempts"]),
            ("x-probe-retry-on", vec!["weft", "retry", "on"]),
            ("x-probe-retry-codes", vec!["weft", "retry", "codes"]),
            (
                "x-probe-per-try-timeout-ms",
                vec!["weft", "retry", "per_try_timeout_ms"],
            ),
            ("x-probe-route", vec!["weft", "route", "name"]),
        ] {
            if let Some(value) = self.get_http_request_header(header) {
                self.set_property(path, Some(value.as_bytes()));
            }
        }
        match self.mode.as_str() {
            "props" => {
                let pairs = [
                    (
                        "x-prop-path",
                        text(self.get_property(vec!["request", "path"])),
                    ),
                    (
                        "x-prop-url-path",
                        text(self.get_property(vec!["request", "url_path"])),
                    ),
                    (
                        "x-prop-method",
                        text(self.get_property(vec!["request", "method"])),
                    ),
                    (
                        "x-prop-host",
                        text(self.get_property(vec!["request", "host"])),
                    ),
                    (
                        "x-prop-source",
                        text(self.get_property(vec!["source", "address"])),
                    ),
                    (
                        "x-prop-source-port",
                        int(self.get_property(vec!["source", "port"])),
                    ),
                    (
                        "x-prop-plugin",
                        text(self.get_property(vec!["plugin_name"])),
                    ),
                    (
                        "x-prop-root-id",
                        text(self.get_property(vec!["plugin_root_id"])),
                    ),
                    ("x-prop-node", text(self.get_property(vec!["node", "name"]))),
                    ("x-prop-id", text(self.get_property(vec!["request", "id"]))),
                    (
                        "x-prop-ua",
                        text(self.get_property(vec!["request", "headers", "user-agent"])),
                    ),
                    (
                        "x-prop-mtls",
                        format!("{:?}", self.get_property(vec!["connection", "mtls"])),
                    ),
                    (
                        "x-prop-peer",
                        text(self.get_property(vec!["connection", "uri_san_peer_certificate"])),
                    ),
                ];
                for (k, v) in pairs {
                    self.set_http_request_header(k, Some(&v));
                }
                self.set_property(vec!["weft", "route", "name"], Some(b"probe-route"));
                let back = text(self.get_property(vec!["weft", "route", "name"]));
                self.set_http_request_header("x-prop-roundtrip", Some(&back));
                if self.get_property(vec!["no", "such", "thing"]).is_none() {
                    self.set_http_request_header("x-prop-missing", Some("none"));
                }
                Action::Continue
            }
            "headers" => {
                let all = self.get_http_request_headers();
                self.set_http_request_header("x-header-count", Some(&all.len().to_string()));
                self.add_http_request_header("x-multi", "1");
                self.add_http_request_header("x-multi", "2");
                self.remove_http_request_header("x-remove-me");
                let mut rebuilt = self.get_http_request_headers();
                rebuilt.retain(|(k, _)| k != "x-drop-by-set");
                let refs: Vec<(&str, &str)> = rebuilt
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                self.set_http_request_headers(refs);
                if let Some(p) = self.get_http_request_header("x-new-path") {
                    self.set_http_request_header(":path", Some(&p));
                }
                Action::Continue
            }
            "local" => {
                self.send_http_response(418, vec![("x-local", "yes")], Some(b"short and stout\n"));
                Action::Pause
            }
            "call" => {
                let cluster = self.config.call_cluster.clone();
                match self.dispatch_http_call(
                    &cluster,
                    vec![
                        (":method", "GET"),
                        (":path", "/auth"),
                        (":authority", "auth.local"),
                        ("x-from", "probe"),
                    ],
                    None,
                    vec![],
                    Duration::from_secs(2),
                ) {
                    Ok(_) => Action::Pause,
                    Err(status) => {
                        let msg = format!("dispatch failed: {status:?}");
                        self.send_http_response(500, vec![], Some(msg.as_bytes()));
                        Action::Pause
                    }
                }
            }
            "tick" => {
                WAITING.with(|w| w.borrow_mut().push(self.id));
                Action::Pause
            }
            "shared" => {
                let next = loop {
                    let (value, cas) = self.get_shared_data("counter");
                    let n: u64 = value
                        .and_then(|v| String::from_utf8(v).ok())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    match self.set_shared_data("counter", Some((n + 1).to_string().as_bytes()), cas)
                    {
                        Ok(()) => break n + 1,
                        Err(Status::CasMismatch) => continue,
                        Err(_) => break 0,
                    }
                };
                self.set_http_request_header("x-shared-value", Some(&next.to_string()));
                Action::Continue
            }
            "enqueue" => {
                if let Some(target) = &self.config.enqueue_to {
                    let item = self.get_http_request_header("x-item").unwrap_or_default();
                    match self.resolve_shared_queue(&target.vm_id, &target.queue) {
                        Some(id) => {
                            self.enqueue_shared_queue(id, Some(item.as_bytes())).ok();
                            self.set_http_request_header("x-enqueued", Some("yes"));
                        }
                        None => self.set_http_request_header("x-enqueued", Some("no-queue")),
                    }
                }
                Action::Continue
            }
            "metrics" => {
                let gauge = proxy_wasm::hostcalls::define_metric(MetricType::Gauge, "probe_gauge")
                    .unwrap_or(0);
                proxy_wasm::hostcalls::record_metric(gauge, 42).ok();
                let hist =
                    proxy_wasm::hostcalls::define_metric(MetricType::Histogram, "probe_sizes")
                        .unwrap_or(0);
                proxy_wasm::hostcalls::record_metric(hist, 7).ok();
                let value = proxy_wasm::hostcalls::get_metric(self.requests).unwrap_or(0);
                self.set_http_request_header("x-requests-metric", Some(&value.to_string()));
                Action::Continue
            }
            "foreign" => {
                let r = self.call_foreign_function("no_such_function", None);
                let v = match r {
                    Err(Status::NotFound) => "notfound".to_string(),
                    other => format!("{other:?}"),
                };
                self.set_http_request_header("x-foreign", Some(&v));
                Action::Continue
            }
            "stdout" => {
                println!("hello from stdout");
                eprintln!("hello from stderr");
                Action::Continue
            }
            "env" => {
                let mode = std::env::var("MODE").unwrap_or_else(|_| "unset".into());
                self.set_http_request_header("x-env-mode", Some(&mode));
                let home = std::fs::read_dir("/").is_ok();
                self.set_http_request_header("x-fs", Some(if home { "yes" } else { "no" }));
                Action::Continue
            }
            "time" => {
                let now = self.get_current_time();
                let secs = now
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                self.set_http_request_header("x-time", Some(&secs.to_string()));
                Action::Continue
            }
            "panic" => panic!("probe was asked to panic"),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "grow" => {
                let v: Vec<u8> = vec![1u8; 200 << 20];
                self.set_http_request_header("x-grown", Some(&v.len().to_string()));
                Action::Continue
            }
            "close" => {
                proxy_wasm::hostcalls::reset_http_request().ok();
                Action::Pause
            }
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        if self.mode != "body" && !self.config.buffer_body {
            return Action::Continue;
        }
        if !eos {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        let upper = body.to_ascii_uppercase();
        self.set_http_request_body(0, size, &upper);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        self.set_http_response_header("x-probe-response", Some(&self.config.greeting));
        let status = self.get_http_response_header(":status").unwrap_or_default();
        self.set_http_response_header("x-probe-saw-status", Some(&status));
        if self.mode == "response-local" {
            self.send_http_response(502, vec![], Some(b"replaced by probe\n"));
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        if self.mode != "response-body" {
            return Action::Continue;
        }
        if !eos {
            return Action::Pause;
        }
        let body = self.get_http_response_body(0, size).unwrap_or_default();
        let mut rewritten = b"probe:".to_vec();
        rewritten.extend_from_slice(&body);
        self.set_http_response_body(0, size, &rewritten);
        Action::Continue
    }

    fn on_log(&mut self) {
        proxy_wasm::hostcalls::increment_metric(self.logs, 1).ok();
        proxy_wasm::hostcalls::log(LogLevel::Info, &format!("on_log for context {}", self.id)).ok();
    }
}
