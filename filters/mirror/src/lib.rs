//! `mirror`: Gateway API `RequestMirror` as a proxy-wasm filter — a copy
//! of each matching request goes to another cluster, fire and forget.
//! Every mirror whose optional `match` (a Gateway API `HTTPRouteMatch`)
//! holds and whose sample draw passes gets its own copy.
//!
//! ```yaml
//! pluginConfig:
//!   mirrors:
//!     - match: { path: { type: PathPrefix, value: /api } }
//!       backendRef: { name: api-shadow }                         # a cluster
//!       percent: 10                                             # 0–100, default 100
//!     - backendRef: { name: audit }
//!       fraction: { numerator: 1, denominator: 1000 }           # denominator defaults to 100
//!   maxBodyBytes: 65536     # default; at most 16 MiB
//!   timeout: 5s             # of each mirrored request; default 5s
//! ```
//!
//! - `percent` and `fraction` are mutually exclusive; `denominator` > 0,
//!   `numerator` ≤ `denominator`. Mirrors are sampled independently.
//! - The copy (`dispatch_http_call`) carries every request header as it
//!   reached this filter, pseudo headers included, with `-shadow` appended
//!   to the host part of `:authority` (and of a `host` header) as Istio
//!   does — `example.com:8080` → `example.com-shadow:8080` — and
//!   `x-weft-mirror: 1`. A request without `:authority` gets
//!   `<cluster>-shadow`.
//! - A request without a body is mirrored at its headers; one with a body
//!   is copied chunk by chunk as it passes and mirrored at its end (with its
//!   trailers, if it has any). A body longer than `maxBodyBytes` (by its
//!   `content-length`, or as it turns out) is **not mirrored at all** — a
//!   truncated copy would be a different request — and the skip is logged.
//!   So is a skip when the VM already holds 16 MiB of bodies for mirrors
//!   (all streams together), so mirroring can never run the VM out of
//!   memory, and one for a header value that is not UTF-8 (proxy-wasm's
//!   `dispatch_http_call` takes text).
//! - Fire and forget: the primary request is never paused or changed
//!   (every callback returns `Continue`), and the mirror's answer, latency
//!   or failure never reaches it. The copy is dispatched from the root
//!   context, so it is not tied to the primary's lifetime and its answer is
//!   dropped. A failed dispatch (say, an unknown cluster) and a skipped
//!   mirror are logged at warn level — the first time and then every
//!   1000th time, with the count, so a misconfiguration cannot flood the
//!   log.

pub mod config;
pub mod request;
pub mod sample;

#[cfg(target_arch = "wasm32")]
mod filter {
    use crate::config::{BUFFER_BUDGET, Config};
    use crate::request::{BodyCopy, Budget, Skip, declared_too_long, mirror_headers};
    use crate::sample::Rng;
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::UNIX_EPOCH;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
            Box::new(Root {
                id,
                config: Rc::new(Config::default()),
                shared: Rc::new(RefCell::new(Shared {
                    rng: Rng::new(0),
                    budget: Budget::new(BUFFER_BUDGET),
                    failures: 0,
                    skips: 0,
                })),
            })
        });
    }}

    /// What the root context and the HTTP contexts share (one VM is one
    /// thread).
    struct Shared {
        rng: Rng,
        budget: Budget,
        failures: u64,
        skips: u64,
    }

    /// Logs at warn the first and every 1000th time.
    fn warn_sometimes(count: &mut u64, msg: impl FnOnce() -> String) {
        *count += 1;
        if *count % 1000 == 1 {
            let n = *count;
            hostcalls::log(LogLevel::Warn, &format!("mirror: {} ({n} so far)", msg())).ok();
        }
    }

    struct Root {
        id: u32,
        config: Rc<Config>,
        shared: Rc<RefCell<Shared>>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            let raw = self.get_plugin_configuration().unwrap_or_default();
            match Config::parse(&raw) {
                Ok(c) => {
                    self.config = Rc::new(c);
                    let now = hostcalls::get_current_time()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos() as u64);
                    self.shared.borrow_mut().rng = Rng::new(now ^ (u64::from(self.id) << 32));
                    true
                }
                Err(e) => {
                    hostcalls::log(
                        LogLevel::Error,
                        &format!("mirror: invalid pluginConfig: {e}"),
                    )
                    .ok();
                    false
                }
            }
        }

        fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Stream {
                id,
                root: self.id,
                config: self.config.clone(),
                shared: self.shared.clone(),
                pending: None,
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    /// A request whose body is being copied.
    struct Pending {
        targets: Vec<usize>,
        headers: Vec<(String, Vec<u8>)>,
        body: BodyCopy,
    }

    struct Stream {
        id: u32,
        root: u32,
        config: Rc<Config>,
        shared: Rc<RefCell<Shared>>,
        pending: Option<Pending>,
    }

    impl Context for Stream {}

    impl Drop for Stream {
        fn drop(&mut self) {
            if let Some(mut p) = self.pending.take()
                && let Ok(mut shared) = self.shared.try_borrow_mut()
            {
                p.body.release(&mut shared.budget);
            }
        }
    }

    struct View<'a>(&'a Stream, String, String);

    impl weft_filter_match::Request for View<'_> {
        fn method(&self) -> &str {
            &self.1
        }
        fn path(&self) -> &str {
            &self.2
        }
        fn header(&self, name: &str) -> Option<String> {
            self.0
                .get_http_request_header_bytes(name)
                .and_then(|v| String::from_utf8(v).ok())
        }
    }

    impl Stream {
        fn skip(&self, why: impl FnOnce() -> String) {
            let mut shared = self.shared.borrow_mut();
            warn_sometimes(&mut shared.skips, || {
                format!("request not mirrored: {}", why())
            });
        }

        fn dispatch(
            &self,
            targets: &[usize],
            headers: &[(String, Vec<u8>)],
            body: &[u8],
            trailers: &[(String, Vec<u8>)],
        ) {
            let mut trailer_text = Vec::with_capacity(trailers.len());
            for (k, v) in trailers {
                match std::str::from_utf8(v) {
                    Ok(v) => trailer_text.push((k.as_str(), v)),
                    Err(_) => {
                        return self.skip(|| format!("trailer {k} is not UTF-8"));
                    }
                }
            }
            let body = (!body.is_empty()).then_some(body);
            for &i in targets {
                let m = &self.config.mirrors[i];
                let headers = match mirror_headers(headers, &m.cluster) {
                    Ok(h) => h,
                    Err(name) => {
                        return self.skip(|| format!("header {name} is not UTF-8"));
                    }
                };
                let refs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                // From the root context: the copy outlives the primary
                // and its answer goes nowhere.
                hostcalls::set_effective_context(self.root).ok();
                let sent = hostcalls::dispatch_http_call(
                    &m.cluster,
                    refs,
                    body,
                    trailer_text.clone(),
                    self.config.timeout,
                );
                hostcalls::set_effective_context(self.id).ok();
                if let Err(status) = sent {
                    let mut shared = self.shared.borrow_mut();
                    warn_sometimes(&mut shared.failures, || {
                        format!(
                            "dispatching a copy to cluster {:?} failed: {status:?}",
                            m.cluster
                        )
                    });
                }
            }
        }

        fn finish(&mut self, trailers: &[(String, Vec<u8>)]) {
            if let Some(mut p) = self.pending.take() {
                self.dispatch(&p.targets, &p.headers, &p.body.bytes, trailers);
                p.body.release(&mut self.shared.borrow_mut().budget);
            }
        }
    }

    impl HttpContext for Stream {
        fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
            if self.config.mirrors.is_empty() {
                return Action::Continue;
            }
            let text = |name: &str| {
                self.get_http_request_header_bytes(name)
                    .and_then(|v| String::from_utf8(v).ok())
                    .unwrap_or_default()
            };
            let view = View(self, text(":method"), text(":path"));
            let shared = self.shared.clone();
            let targets = self
                .config
                .select(&view, || shared.borrow_mut().rng.next_u64());
            if targets.is_empty() {
                return Action::Continue;
            }
            let headers = self.get_http_request_headers_bytes();
            if end_of_stream {
                self.dispatch(&targets, &headers, &[], &[]);
                return Action::Continue;
            }
            let max = self.config.max_body_bytes;
            let length = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.as_slice());
            if declared_too_long(length, max) {
                self.skip(|| format!("its body is longer than maxBodyBytes ({max})"));
                return Action::Continue;
            }
            self.pending = Some(Pending {
                targets,
                headers,
                body: BodyCopy::default(),
            });
            Action::Continue
        }

        fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
            if self.pending.is_none() {
                return Action::Continue;
            }
            if size > 0 {
                let chunk = self.get_http_request_body(0, size).unwrap_or_default();
                let max = self.config.max_body_bytes;
                let pushed = match self.pending.as_mut() {
                    Some(p) => {
                        let budget = &mut self.shared.borrow_mut().budget;
                        p.body.push(&chunk, max, budget).inspect_err(|_| {
                            p.body.release(budget);
                        })
                    }
                    None => Ok(()),
                };
                if let Err(why) = pushed {
                    self.pending = None;
                    self.skip(|| match why {
                        Skip::TooLong => format!("its body is longer than maxBodyBytes ({max})"),
                        Skip::Budget => format!(
                            "the VM already buffers {BUFFER_BUDGET} bytes of bodies for mirrors"
                        ),
                    });
                    return Action::Continue;
                }
            }
            if end_of_stream {
                self.finish(&[]);
            }
            Action::Continue
        }

        fn on_http_request_trailers(&mut self, _n: usize) -> Action {
            if self.pending.is_some() {
                let trailers = self.get_http_request_trailers_bytes();
                self.finish(&trailers);
            }
            Action::Continue
        }
    }
}
