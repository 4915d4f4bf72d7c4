//! The harness itself, driven with weft's probe test filter
//! (tests/filters/probe), which exercises every ABI group on request.

use serde_json::json;
use weft_filter_test::{
    CallResponse, ConnectionInfo, Harness, HarnessError, LogLevel, MetricValue, Outcome, TlsInfo,
    build_workspace_filter,
};

fn probe() -> Result<std::path::PathBuf, HarnessError> {
    build_workspace_filter("weft-test-probe")
}

#[test]
fn a_held_http_call_pauses_the_stream_until_the_test_answers() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?)
        .name("probe-held-call")
        .config(json!({"call_cluster": "auth"}))
        .cluster("auth")
        .start()?;

    let mut s = h.stream();
    assert_eq!(
        s.request_headers_end(&[("x-probe", "call")])?,
        Outcome::Paused
    );
    let pending = h.pending_calls();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let call = &pending[0];
    assert_eq!(call.cluster, "auth");
    assert_eq!(call.header(":path"), Some("/auth"));
    assert_eq!(call.header("x-from"), Some("probe"));
    assert_eq!(call.timeout, std::time::Duration::from_secs(2));
    // Another phase cannot start while this one is in flight.
    assert!(matches!(
        s.response_headers_end(&[]),
        Err(HarnessError::InFlight { .. })
    ));
    h.answer(
        call.id,
        CallResponse::new(200)
            .header("x-auth", "allow")
            .body("token-1"),
    )?;
    assert!(matches!(
        h.answer(call.id, CallResponse::new(200)),
        Err(HarnessError::UnknownCall(_))
    ));
    assert_eq!(s.resume()?, Outcome::Continue);
    assert_eq!(s.header("x-auth-result").as_deref(), Some("allowed"));
    assert_eq!(s.header("x-auth-body").as_deref(), Some("token-1"));
    assert!(h.pending_calls().is_empty());
    assert!(matches!(s.resume(), Err(HarnessError::NothingToResume)));
    s.finish();

    // A failed call reaches the filter as an empty answer: it denies.
    let mut s = h.stream();
    assert_eq!(
        s.request_headers_end(&[("x-probe", "call")])?,
        Outcome::Paused
    );
    let id = h.pending_calls()[0].id;
    h.answer(id, CallResponse::failed("connection refused"))?;
    let out = s.resume()?;
    let reply = out.reply().expect("a denial");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("x-denied-by"), Some("probe"));
    assert_eq!(h.http_calls().len(), 2);
    Ok(())
}

#[test]
fn a_handler_answers_calls_and_undeclared_clusters_are_refused() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?)
        .config(json!({"call_cluster": "auth"}))
        .cluster("auth")
        .on_http_call(|call| {
            let verdict = if call.header("x-from") == Some("probe") {
                "allow"
            } else {
                "deny"
            };
            CallResponse::new(200).header("x-auth", verdict)
        })
        .start()?;
    let mut s = h.stream();
    assert_eq!(
        s.request_headers_end(&[("x-probe", "call")])?,
        Outcome::Continue
    );
    assert_eq!(s.header("x-auth-result").as_deref(), Some("allowed"));
    s.finish();

    let h = Harness::load(probe()?)
        .config(json!({"call_cluster": "nowhere"}))
        .cluster("auth")
        .start()?;
    let mut s = h.stream();
    let out = s.request_headers_end(&[("x-probe", "call")])?;
    let reply = out.reply().expect("the probe answers 500");
    assert_eq!(reply.status, 500);
    assert!(reply.body_text().contains("BadArgument"), "{reply:?}");
    assert!(h.http_calls().is_empty());
    Ok(())
}

#[test]
fn logs_and_metrics_are_readable() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?)
        .name("probe-logs-metrics")
        .vm_config("0123456789")
        .start()?;
    assert!(
        h.logged("probe vm started (10 bytes of vm config)"),
        "{:?}",
        h.logs()
    );
    let mut s = h.stream();
    assert_eq!(
        s.request_headers_end(&[("x-probe", "metrics")])?,
        Outcome::Continue
    );
    assert_eq!(s.header("x-requests-metric").as_deref(), Some("1"));
    s.finish();
    assert_eq!(h.metric("probe_requests"), Some(MetricValue::Counter(1)));
    assert_eq!(h.metric("probe_logs"), Some(MetricValue::Counter(1)));
    assert_eq!(h.metric("probe_gauge"), Some(MetricValue::Gauge(42)));
    match h.metric("probe_sizes") {
        Some(MetricValue::Histogram { buckets, sum }) => {
            assert_eq!(sum, 7);
            assert_eq!(buckets.iter().sum::<u64>(), 1);
        }
        other => panic!("expected a histogram, got {other:?}"),
    }
    assert_eq!(h.metric("no_such_metric"), None);
    let on_log = h
        .logs()
        .into_iter()
        .find(|l| l.message.starts_with("on_log for context"))
        .expect("on_log ran at finish");
    assert_eq!(on_log.level, LogLevel::Info);
    Ok(())
}

#[test]
fn a_refused_configuration_is_a_start_error() -> Result<(), HarnessError> {
    let err = Harness::load(probe()?)
        .config(json!({"reject": true}))
        .start()
        .err()
        .expect("refused");
    assert!(matches!(err, HarnessError::Start(_)), "{err:?}");
    let err = Harness::load("/nonexistent/filter.wasm")
        .start()
        .err()
        .expect("no file");
    assert!(
        err.to_string().contains("/nonexistent/filter.wasm"),
        "{err}"
    );
    Ok(())
}

#[test]
fn connection_facts_reach_the_filter_as_properties() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?).start()?;
    let mut s = h.stream();
    s.set_connection(ConnectionInfo {
        id: 7,
        source: Some("10.1.2.3:5555".parse().expect("address")),
        destination: None,
        tls: Some(TlsInfo {
            version: "TLSv1_3".into(),
            mtls: true,
            peer_uri_sans: vec!["spiffe://weft/ns/a/sa/b".into()],
            ..Default::default()
        }),
    })?;
    assert_eq!(
        s.request_headers_end(&[(":path", "/p?q=1"), ("x-probe", "props")])?,
        Outcome::Continue
    );
    assert_eq!(s.header("x-prop-source").as_deref(), Some("10.1.2.3:5555"));
    assert_eq!(
        s.header("x-prop-peer").as_deref(),
        Some("spiffe://weft/ns/a/sa/b")
    );
    assert_eq!(s.header("x-prop-path").as_deref(), Some("/p?q=1"));
    assert_eq!(s.header("x-prop-id").as_deref(), Some("test-1"));
    // The probe writes weft.route.name through set_property.
    assert_eq!(
        s.property("weft.route.name").as_deref(),
        Some("probe-route")
    );
    Ok(())
}

#[test]
fn a_buffering_filter_holds_body_chunks_until_the_end() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?).start()?;
    let mut s = h.stream();
    assert_eq!(
        s.request_headers_end(&[("x-probe", "response-body")])?,
        Outcome::Continue
    );
    assert_eq!(
        s.response_headers(&[(":status", "200")])?,
        Outcome::Continue
    );
    assert_eq!(s.response_body("ab", false)?, Outcome::Buffered);
    assert!(s.forwarded_response_body().is_empty());
    assert_eq!(s.response_body("cd", true)?, Outcome::Continue);
    assert_eq!(s.forwarded_response_body(), b"probe:abcd");
    Ok(())
}

#[test]
fn a_stream_paused_for_a_tick_resumes_by_itself() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?)
        .config(json!({"tick_ms": 20}))
        .start()?;
    let mut s = h.stream();
    assert_eq!(
        s.request_headers_end(&[("x-probe", "tick")])?,
        Outcome::Continue
    );
    assert_eq!(s.header("x-probe-ticked").as_deref(), Some("yes"));
    Ok(())
}

#[test]
fn ticks_can_be_fired_by_hand() -> Result<(), HarnessError> {
    // An hour-long period: only the ticks the test fires happen.
    let h = Harness::load(probe()?)
        .name("probe-ticks")
        .config(json!({"tick_ms": 3_600_000}))
        .start()?;
    for _ in 0..3 {
        h.tick()?;
    }
    assert_eq!(h.metric("probe_ticks"), Some(MetricValue::Counter(3)));
    Ok(())
}

#[test]
fn bad_test_input_is_an_error_naming_it() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?).start()?;
    let mut s = h.stream();
    match s.request_headers_end(&[("bad header", "v")]) {
        Err(HarnessError::BadHeader { name, .. }) => assert_eq!(name, "bad header"),
        other => panic!("expected a BadHeader error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn calls_held_for_an_earlier_stream_do_not_pause_a_later_one() -> Result<(), HarnessError> {
    let h = Harness::load(probe()?)
        .config(json!({"call_cluster": "auth", "tick_ms": 20}))
        .start()?;
    let mut first = h.stream();
    assert_eq!(
        first.request_headers_end(&[("x-probe", "call")])?,
        Outcome::Paused
    );
    first.finish();
    assert_eq!(h.pending_calls().len(), 1, "the call is still unanswered");
    // This stream waits for a tick, not for the call: it resumes by itself.
    let mut second = h.stream();
    assert_eq!(
        second.request_headers_end(&[("x-probe", "tick")])?,
        Outcome::Continue
    );
    assert_eq!(second.header("x-probe-ticked").as_deref(), Some("yes"));
    Ok(())
}
