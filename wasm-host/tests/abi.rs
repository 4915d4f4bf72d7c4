//! The proxy-wasm ABI, group by group, driven through a fake proxy with a
//! filter built from the upstream `proxy-wasm` crate.

mod common;

use bytes::Bytes;
use common::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use weft_wasm_host::{BodyFlow, FailStrategy, FilterChain, Flow, PluginStats, VmError};

fn expect_continue(flow: Flow) {
    match flow {
        Flow::Continue => {}
        other => panic!("expected Continue, got {other:?}"),
    }
}

#[test]
fn header_maps_get_add_replace_remove_set_all() {
    run(async {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![
            start(plugin(options("probe", json!({"greeting": "hi"}))), &fake)
                .await
                .unwrap(),
        ]);
        let req = request(
            "/a?b=c",
            &[
                ("x-probe", "headers"),
                ("x-remove-me", "1"),
                ("x-drop-by-set", "1"),
                ("x-new-path", "/rewritten"),
            ],
        );
        let mut s = chain.start(req).await;
        expect_continue(s.request_headers(true).await);
        let d = s.data();
        assert_eq!(header(d, "x-probe-seen").as_deref(), Some("hi"));
        assert_eq!(header(d, "x-multi").as_deref(), Some("1,2"));
        assert_eq!(header(d, "x-remove-me"), None);
        assert_eq!(header(d, "x-drop-by-set"), None);
        assert_eq!(d.request_headers.pseudo_str(":path"), Some("/rewritten"));
        // 4 pseudo + x-probe, x-remove-me, x-drop-by-set, x-new-path, x-probe-seen
        assert_eq!(header(d, "x-header-count").as_deref(), Some("9"));
        s.finish().await;
    });
}

#[test]
fn properties_have_envoy_names_and_encodings() {
    run(async {
        let fake = Fake::allow();
        let mut opts = options("probe-props", json!({}));
        opts.root_id = "root-7".into();
        opts.node.name = "edge-1".into();
        let chain = FilterChain::new(vec![start(plugin(opts), &fake).await.unwrap()]);
        let mut req = request("/p/q?x=1", &[("x-probe", "props"), ("user-agent", "ua/1")]);
        req.connection = std::sync::Arc::new(weft_wasm_host::ConnectionInfo {
            id: 9,
            source: Some("127.0.0.9:4242".parse().unwrap()),
            destination: Some("127.0.0.1:80".parse().unwrap()),
            tls: Some(weft_wasm_host::TlsInfo {
                version: "TLSv1_3".into(),
                mtls: true,
                peer_uri_sans: vec!["spiffe://weft/ns/default/sa/client".into()],
                ..Default::default()
            }),
        });
        let mut s = chain.start(req).await;
        expect_continue(s.request_headers(true).await);
        let d = s.data();
        let h = |n: &str| header(d, n).unwrap_or_else(|| panic!("missing {n}"));
        assert_eq!(h("x-prop-path"), "/p/q?x=1");
        assert_eq!(h("x-prop-url-path"), "/p/q");
        assert_eq!(h("x-prop-method"), "GET");
        assert_eq!(h("x-prop-host"), "example.test");
        assert_eq!(h("x-prop-source"), "127.0.0.9:4242");
        assert_eq!(h("x-prop-source-port"), "4242");
        assert_eq!(h("x-prop-plugin"), "probe-props");
        assert_eq!(h("x-prop-root-id"), "root-7");
        assert_eq!(h("x-prop-node"), "edge-1");
        assert_eq!(h("x-prop-id"), "req-1");
        assert_eq!(h("x-prop-ua"), "ua/1");
        assert_eq!(h("x-prop-mtls"), "Some([1])");
        assert_eq!(h("x-prop-peer"), "spiffe://weft/ns/default/sa/client");
        assert_eq!(h("x-prop-roundtrip"), "probe-route");
        assert_eq!(h("x-prop-missing"), "none");
        assert_eq!(d.property_str("weft.route.name"), Some("probe-route"));
        s.finish().await;
    });
}

#[test]
fn weft_cluster_property_reaches_the_proxy() {
    run(async {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![
            start(plugin(options("probe", json!({}))), &fake)
                .await
                .unwrap(),
        ]);
        let mut s = chain
            .start(request("/", &[("x-probe-cluster", "canary")]))
            .await;
        expect_continue(s.request_headers(true).await);
        assert_eq!(
            s.data().property_str(weft_wasm_host::weft_props::CLUSTER),
            Some("canary")
        );
        s.finish().await;
    });
}

#[test]
fn local_replies_in_request_and_response_phases() {
    run(async {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![
            start(plugin(options("probe", json!({}))), &fake)
                .await
                .unwrap(),
        ]);
        let mut s = chain.start(request("/", &[("x-probe", "local")])).await;
        match s.request_headers(true).await {
            Flow::LocalReply(r) => {
                assert_eq!(r.status, 418);
                assert_eq!(r.body, Bytes::from_static(b"short and stout\n"));
                assert!(r.headers.iter().any(|(k, v)| k == "x-local" && v == "yes"));
            }
            other => panic!("expected a local reply, got {other:?}"),
        }
        s.finish().await;

        let mut s = chain
            .start(request("/", &[("x-probe", "response-local")]))
            .await;
        expect_continue(s.request_headers(true).await);
        s.data_mut().response_headers.set_pseudo(":status", "200");
        match s.response_headers(true).await {
            Flow::LocalReply(r) => assert_eq!(r.status, 502),
            other => panic!("expected a local reply, got {other:?}"),
        }
        s.finish().await;
    });
}

#[test]
fn http_call_pauses_then_resumes_or_denies() {
    run(async {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![
            start(
                plugin(options("probe", json!({"call_cluster": "auth"}))),
                &fake,
            )
            .await
            .unwrap(),
        ]);
        let mut s = chain.start(request("/", &[("x-probe", "call")])).await;
        expect_continue(s.request_headers(true).await);
        assert_eq!(
            header(s.data(), "x-auth-result").as_deref(),
            Some("allowed")
        );
        assert_eq!(header(s.data(), "x-auth-body").as_deref(), Some("ok-body"));
        s.finish().await;
        let calls = fake.calls.borrow().clone();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].cluster, "auth");
        assert_eq!(calls[0].headers.pseudo_str(":path"), Some("/auth"));
        assert_eq!(calls[0].timeout, std::time::Duration::from_secs(2));

        let deny = Fake::new(|_| Err("connection refused".into()));
        let chain = FilterChain::new(vec![
            start(
                plugin(options("probe", json!({"call_cluster": "auth"}))),
                &deny,
            )
            .await
            .unwrap(),
        ]);
        let mut s = chain.start(request("/", &[("x-probe", "call")])).await;
        match s.request_headers(true).await {
            Flow::LocalReply(r) => assert_eq!(r.status, 403),
            other => panic!("expected 403, got {other:?}"),
        }
        s.finish().await;

        let chain = FilterChain::new(vec![
            start(
                plugin(options("probe", json!({"call_cluster": "nowhere"}))),
                &fake,
            )
            .await
            .unwrap(),
        ]);
        let mut s = chain.start(request("/", &[("x-probe", "call")])).await;
        match s.request_headers(true).await {
            Flow::LocalReply(r) => {
                assert_eq!(r.status, 500);
                assert_eq!(r.body, Bytes::from_static(b"dispatch failed: BadArgument"));
            }
            other => panic!("expected 500, got {other:?}"),
        }
        s.finish().await;
    });
}

#[test]
fn tick_resumes_a_paused_stream() {
    run(async {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![
            start(plugin(options("probe", json!({"tick_ms": 10}))), &fake)
                .await
                .unwrap(),
        ]);
        let mut s = chain.start(request("/", &[("x-probe", "tick")])).await;
        expect_continue(s.request_headers(true).await);
        assert_eq!(header(s.data(), "x-probe-ticked").as_deref(), Some("yes"));
        s.finish().await;
    });
}

#[test]
fn body_is_buffered_until_end_of_stream_then_rewritten() {
    run(async {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![
            start(plugin(options("probe", json!({}))), &fake)
                .await
                .unwrap(),
        ]);
        let mut s = chain.start(request("/", &[("x-probe", "body")])).await;
        expect_continue(s.request_headers(false).await);
        assert!(matches!(
            s.request_body(Bytes::from_static(b"ab"), false, 1 << 20)
                .await,
            BodyFlow::Hold
        ));
        match s
            .request_body(Bytes::from_static(b"cd"), true, 1 << 20)
            .await
        {
            BodyFlow::Forward(b) => assert_eq!(b, Bytes::from_static(b"ABCD")),
            other => panic!("expected the rewritten body, got {other:?}"),
        }
        s.finish().await;

        // Response body rewrite.
        let mut s = chain
            .start(request("/", &[("x-probe", "response-body")]))
            .await;
        expect_continue(s.request_headers(true).await);
        s.data_mut().response_headers.set_pseudo(":status", "200");
        expect_continue(s.response_headers(false).await);
        assert!(matches!(
            s.response_body(Bytes::from_static(b"x"), false, 1 << 20)
                .await,
            BodyFlow::Hold
        ));
        match s
            .response_body(Bytes::from_static(b"y"), true, 1 << 20)
            .await
        {
            BodyFlow::Forward(b) => assert_eq!(b, Bytes::from_static(b"probe:xy")),
            other => panic!("expected the rewritten body, got {other:?}"),
        }
        assert_eq!(
            s.data()
                .response_headers
                .get(b"x-probe-saw-status")
                .as_deref(),
            Some(&b"200"[..])
        );
        s.finish().await;

        // Over the buffer limit: 413 for requests.
        let mut s = chain.start(request("/", &[("x-probe", "body")])).await;
        expect_continue(s.request_headers(false).await);
        assert!(matches!(
            s.request_body(Bytes::from_static(b"abc"), false, 4).await,
            BodyFlow::Hold
        ));
        match s.request_body(Bytes::from_static(b"de"), false, 4).await {
            BodyFlow::LocalReply(r) => assert_eq!(r.status, 413),
            other => panic!("expected 413, got {other:?}"),
        }
        s.finish().await;
    });
}

#[test]
fn shared_data_cas_holds_under_contention_from_two_workers() {
    let plugin = plugin(options("probe-shared", json!({})));
    let per_worker = 150;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                run(async move {
                    let fake = Fake::allow();
                    let chain = FilterChain::new(vec![start(plugin, &fake).await.unwrap()]);
                    let mut seen = Vec::new();
                    for _ in 0..per_worker {
                        let mut s = chain.start(request("/", &[("x-probe", "shared")])).await;
                        expect_continue(s.request_headers(true).await);
                        seen.push(
                            header(s.data(), "x-shared-value")
                                .unwrap()
                                .parse::<u64>()
                                .unwrap(),
                        );
                        s.finish().await;
                        tokio::task::yield_now().await;
                    }
                    seen
                })
            })
        })
        .collect();
    let mut all: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    all.sort_unstable();
    let expected: Vec<u64> = (1..=2 * per_worker as u64).collect();
    assert_eq!(all, expected, "every increment is seen exactly once");
}

#[test]
fn queues_cross_plugins_and_wake_the_owner() {
    run(async {
        let fake = Fake::allow();
        let mut owner = options("queue-owner", json!({"queue": "jobs"}));
        owner.vm_id = "owner-vm".into();
        let owner = plugin(owner);
        let sender = plugin(options(
            "queue-sender",
            json!({"enqueue_to": {"vm_id": "owner-vm", "queue": "jobs"}}),
        ));
        let _owner_instance = start(owner.clone(), &fake).await.unwrap();
        let chain = FilterChain::new(vec![start(sender, &fake).await.unwrap()]);
        let mut s = chain
            .start(request(
                "/",
                &[("x-probe", "enqueue"), ("x-item", "hello-queue")],
            ))
            .await;
        expect_continue(s.request_headers(true).await);
        assert_eq!(header(s.data(), "x-enqueued").as_deref(), Some("yes"));
        s.finish().await;
        for _ in 0..100 {
            if owner
                .info
                .log_sink
                .lines()
                .iter()
                .any(|(_, l)| l == "queue item: hello-queue")
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "owner never saw the item: {:?}",
            owner.info.log_sink.lines()
        );
    });
}

#[test]
fn metrics_on_log_and_logging() {
    run(async {
        let fake = Fake::allow();
        let p = plugin(options("probe-metrics", json!({})));
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        for _ in 0..3 {
            let mut s = chain.start(request("/", &[])).await;
            expect_continue(s.request_headers(true).await);
            s.finish().await;
        }
        let mut s = chain.start(request("/", &[("x-probe", "metrics")])).await;
        expect_continue(s.request_headers(true).await);
        assert_eq!(header(s.data(), "x-requests-metric").as_deref(), Some("4"));
        s.finish().await;
        let snapshot = runtime().shared().metrics.snapshot();
        let get = |name: &str| {
            snapshot
                .iter()
                .find(|m| m.plugin == "probe-metrics" && m.name == name)
                .unwrap_or_else(|| panic!("{name}"))
                .clone()
        };
        assert_eq!(get("probe_requests").get().unwrap(), 4);
        assert_eq!(
            get("probe_logs").get().unwrap(),
            4,
            "on_log once per stream"
        );
        assert_eq!(get("probe_gauge").get().unwrap(), 42);
        let (buckets, sum) = get("probe_sizes").histogram();
        assert_eq!((buckets.iter().sum::<u64>(), sum), (1, 7));
        let lines = p.info.log_sink.lines();
        assert!(
            lines
                .iter()
                .any(|(lvl, l)| *lvl == 2 && l.starts_with("probe vm started"))
        );
        assert_eq!(
            lines
                .iter()
                .filter(|(_, l)| l.starts_with("on_log for context"))
                .count(),
            4
        );
    });
}

#[test]
fn on_configure_false_refuses_the_plugin() {
    run(async {
        let fake = Fake::allow();
        let p = plugin(options("probe-reject", json!({"reject": true})));
        match start(p.clone(), &fake).await {
            Err(e @ VmError::ConfigureRefused { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "plugin probe-reject: proxy_on_configure returned false (plugin configuration rejected): \
                     probe config: reject is true"
                );
                assert!(
                    p.info
                        .log_sink
                        .lines()
                        .iter()
                        .any(|(_, l)| l.contains("reject is true"))
                );
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("plugin should be refused"),
        }
        let p = plugin(options("probe-badjson", json!("not an object")));
        assert!(matches!(
            start(p, &fake).await,
            Err(VmError::ConfigureRefused { .. })
        ));
    });
}

#[test]
fn foreign_functions_time_and_wasi() {
    run(async {
        let fake = Fake::allow();
        let mut opts = options("probe-wasi", json!({}));
        opts.env = vec![("MODE".into(), "strict".into())];
        let p = plugin(opts);
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        for (mode, header_name, want) in [
            ("foreign", "x-foreign", "notfound"),
            ("env", "x-env-mode", "strict"),
            ("env", "x-fs", "no"),
        ] {
            let mut s = chain.start(request("/", &[("x-probe", mode)])).await;
            expect_continue(s.request_headers(true).await);
            assert_eq!(
                header(s.data(), header_name).as_deref(),
                Some(want),
                "{mode}"
            );
            s.finish().await;
        }
        let mut s = chain.start(request("/", &[("x-probe", "time")])).await;
        expect_continue(s.request_headers(true).await);
        let secs: u64 = header(s.data(), "x-time").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(secs.abs_diff(now) <= 5);
        s.finish().await;
        let mut s = chain.start(request("/", &[("x-probe", "stdout")])).await;
        expect_continue(s.request_headers(true).await);
        s.finish().await;
        let lines = p.info.log_sink.lines();
        assert!(
            lines.iter().any(|(_, l)| l == "hello from stdout"),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|(_, l)| l == "hello from stderr"),
            "{lines:?}"
        );
    });
}

#[test]
fn a_trap_fails_closed_and_the_vm_is_replaced() {
    run(async {
        let fake = Fake::allow();
        let p = plugin(options("probe-panic", json!({})));
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        let mut s = chain.start(request("/", &[("x-probe", "panic")])).await;
        match s.request_headers(true).await {
            Flow::LocalReply(r) => {
                assert_eq!(r.status, 503);
                assert_eq!(
                    r.body,
                    Bytes::from_static(b"plugin probe-panic is unavailable\n")
                );
            }
            other => panic!("expected 503, got {other:?}"),
        }
        s.finish().await;
        assert_eq!(PluginStats::get(&p.stats.traps), 1);
        // The next stream runs on a fresh VM.
        let mut s = chain.start(request("/", &[])).await;
        expect_continue(s.request_headers(true).await);
        assert_eq!(header(s.data(), "x-probe-seen").as_deref(), Some(""));
        s.finish().await;
        assert_eq!(PluginStats::get(&p.stats.restarts), 1);
        assert_eq!(PluginStats::get(&p.stats.vms_started), 2);
    });
}

#[test]
fn an_endless_callback_hits_the_deadline_and_fails_open() {
    run(async {
        let fake = Fake::allow();
        let mut opts = options("probe-loop", json!({}));
        opts.fail_strategy = FailStrategy::FailOpen;
        opts.callback_timeout = std::time::Duration::from_millis(50);
        let p = plugin(opts);
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        let started = std::time::Instant::now();
        let mut s = chain.start(request("/", &[("x-probe", "loop")])).await;
        expect_continue(s.request_headers(true).await);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        s.finish().await;
        assert_eq!(PluginStats::get(&p.stats.deadline_hits), 1);
        assert_eq!(PluginStats::get(&p.stats.fail_opened), 1);
    });
}

#[test]
fn memory_growth_past_the_cap_is_contained() {
    run(async {
        let fake = Fake::allow();
        let mut opts = options("probe-grow", json!({}));
        opts.memory_limit = 16 << 20;
        let p = plugin(opts);
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        let mut s = chain.start(request("/", &[("x-probe", "grow")])).await;
        match s.request_headers(true).await {
            Flow::LocalReply(r) => assert_eq!(r.status, 503),
            other => panic!("expected 503, got {other:?}"),
        }
        s.finish().await;
        assert_eq!(PluginStats::get(&p.stats.memory_limit_hits), 1);
    });
}

#[test]
fn close_stream_resets() {
    run(async {
        let fake = Fake::allow();
        let chain = FilterChain::new(vec![
            start(plugin(options("probe", json!({}))), &fake)
                .await
                .unwrap(),
        ]);
        let mut s = chain.start(request("/", &[("x-probe", "close")])).await;
        assert!(matches!(s.request_headers(true).await, Flow::Reset));
        s.finish().await;
    });
}

#[test]
fn stream_dropped_while_paused_is_cleaned_up() {
    run(async {
        let fake = Fake::allow();
        let p = plugin(options("probe-drop", json!({})));
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.unwrap()]);
        let mut s = chain.start(request("/", &[("x-probe", "tick")])).await;
        // Never resumed (no tick configured): give up after a moment.
        let r = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            s.request_headers(true),
        )
        .await;
        assert!(r.is_err());
        drop(s);
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let lines = p.info.log_sink.lines();
        assert_eq!(
            lines
                .iter()
                .filter(|(_, l)| l.starts_with("on_log for context"))
                .count(),
            1,
            "{lines:?}"
        );
        let _ = Ordering::SeqCst;
    });
}

#[test]
fn compiled_code_is_cached_on_disk_and_reused_after_a_restart() {
    let dir = weft_tests::weft::TempDir::new("compiled-cache");
    let options = || weft_wasm_host::RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let first = weft_wasm_host::Runtime::new(options()).unwrap();
    let m = first.load("probe", &probe()).unwrap();
    assert!(!m.from_cache);
    let hex = m.digest.strip_prefix("sha256:").unwrap().to_owned();
    let cached: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with(format!("{hex}.cwasm")))
        .collect();
    assert_eq!(cached.len(), 1, "one compiled artifact keyed by digest");
    // A new runtime (a restart) loads it instead of compiling.
    let second = weft_wasm_host::Runtime::new(options()).unwrap();
    let m2 = second.load("probe", &probe()).unwrap();
    assert!(m2.from_cache);
    run(async {
        let fake = Fake::allow();
        let p = weft_wasm_host::Plugin::new(m2, options_for("probe-cached"));
        let chain = FilterChain::new(vec![start(p, &fake).await.unwrap()]);
        let mut s = chain.start(request("/", &[])).await;
        expect_continue(s.request_headers(true).await);
        s.finish().await;
    });
}

fn options_for(name: &str) -> weft_wasm_host::PluginOptions {
    options(name, json!({}))
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
