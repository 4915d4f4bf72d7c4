//! A filter built with standard Go (`GOOS=wasip1 -buildmode=c-shared`,
//! `go:wasmexport`) loads and runs in the host.

mod common;

use common::*;
use serde_json::json;
use weft_wasm_host::{FilterChain, Flow, Plugin};

#[test]
fn a_standard_go_reactor_filter_runs() {
    let wasm = std::fs::read(weft_tests::build_go_filter("tests/filters/go-probe"))
        .expect("go filter built");
    run(async move {
        let fake = Fake::allow();
        let p = Plugin::load(
            &runtime(),
            &wasm,
            options("go-probe", json!({"header_value": "from-go"})),
        )
        .expect("loads");
        let chain = FilterChain::new(vec![start(p.clone(), &fake).await.expect("starts")]);
        let mut s = chain
            .start(request("/go/path", &[("x-go-path", "spoofed")]))
            .await;
        assert!(matches!(s.request_headers(true).await, Flow::Continue));
        assert_eq!(header(s.data(), "x-go-probe").as_deref(), Some("from-go"));
        assert_eq!(header(s.data(), "x-go-path").as_deref(), Some("/go/path"));
        s.data_mut().response_headers.set_pseudo(":status", "200");
        assert!(matches!(s.response_headers(true).await, Flow::Continue));
        assert_eq!(
            s.data()
                .response_headers
                .get(b"x-go-probe-response")
                .as_deref(),
            Some(&b"ok"[..])
        );
        s.finish().await;

        let mut s = chain.start(request("/", &[("x-go-deny", "1")])).await;
        match s.request_headers(true).await {
            Flow::LocalReply(r) => {
                assert_eq!(r.status, 403);
                assert_eq!(&r.body[..], b"denied by go-probe\n");
                assert_eq!(r.details, "go-probe-denied");
            }
            other => panic!("expected 403, got {other:?}"),
        }
        s.finish().await;
        let metric = runtime()
            .shared()
            .metrics
            .snapshot()
            .into_iter()
            .find(|m| m.plugin == "go-probe" && m.name == "go_probe_requests")
            .expect("metric defined");
        assert_eq!(
            metric.get().unwrap(),
            1,
            "counted on the allowed request only"
        );
        assert!(
            p.info
                .log_sink
                .lines()
                .iter()
                .any(|(_, l)| l.contains("go-probe vm started"))
        );
    });
}
