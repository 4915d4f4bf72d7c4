//! weft's built-in filters tested from the outside: each is built for
//! wasm32-wasip1, loaded into the real host through the harness, and
//! driven stream by stream.

use serde_json::json;
use std::time::{Duration, Instant};
use weft_filter_test::{
    CallResponse, Harness, HarnessError, Outcome, build_workspace_filter, weft_props,
};

fn filter(package: &str) -> Result<std::path::PathBuf, HarnessError> {
    build_workspace_filter(package)
}

#[test]
fn router_weighted_choice_writes_the_cluster_and_policy() -> Result<(), HarnessError> {
    let h = Harness::load(filter("weft-filter-router")?)
        .config(json!({
            "rules": [{
                "name": "api",
                "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                "backendRefs": [{"name": "blue", "weight": 1}, {"name": "green", "weight": 1}],
                "timeouts": {"request": "2s"},
                "retry": {"attempts": 3, "perTryTimeout": "500ms", "retryOn": ["5xx"], "codes": [503]}
            }, {
                "name": "only-a",
                "matches": [{"path": {"type": "PathPrefix", "value": "/a"}}],
                "backendRefs": [{"name": "a", "weight": 5}, {"name": "never", "weight": 0}]
            }]
        }))
        .start()?;

    let mut s = h.stream();
    assert_eq!(
        s.request_headers_end(&[(":path", "/a/1")])?,
        Outcome::Continue
    );
    assert_eq!(s.property(weft_props::CLUSTER).as_deref(), Some("a"));
    assert_eq!(
        s.property(weft_props::ROUTE_NAME).as_deref(),
        Some("only-a")
    );
    assert_eq!(s.property(weft_props::TIMEOUT_MS), None);
    s.finish();

    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200 {
        let mut s = h.stream();
        let path = format!("/api/items/{i}");
        assert_eq!(
            s.request_headers_end(&[(":path", &path)])?,
            Outcome::Continue
        );
        let cluster = s
            .property(weft_props::CLUSTER)
            .expect("a cluster is chosen");
        assert!(cluster == "blue" || cluster == "green", "{cluster}");
        seen.insert(cluster);
        assert_eq!(s.property(weft_props::ROUTE_NAME).as_deref(), Some("api"));
        assert_eq!(s.property(weft_props::TIMEOUT_MS).as_deref(), Some("2000"));
        assert_eq!(s.property(weft_props::RETRY_ATTEMPTS).as_deref(), Some("3"));
        assert_eq!(
            s.property(weft_props::RETRY_PER_TRY_TIMEOUT_MS).as_deref(),
            Some("500")
        );
        let on = s.property(weft_props::RETRY_ON).unwrap_or_default();
        assert!(on.split(',').any(|c| c == "5xx"), "{on}");
        assert!(on.split(',').any(|c| c == "retriable-status-codes"), "{on}");
        assert_eq!(s.property(weft_props::RETRY_CODES).as_deref(), Some("503"));
    }
    // 200 fair draws all landing on one side has probability 2^-199.
    assert_eq!(seen.len(), 2, "both weighted backends are chosen: {seen:?}");
    Ok(())
}

#[test]
fn router_answers_404_without_a_route() -> Result<(), HarnessError> {
    let h = Harness::load(filter("weft-filter-router")?)
        .config(json!({
            "rules": [{
                "matches": [{"path": {"type": "Exact", "value": "/only"}}],
                "backendRefs": [{"name": "a"}]
            }]
        }))
        .start()?;
    let mut s = h.stream();
    let out = s.request_headers_end(&[(":path", "/elsewhere")])?;
    let reply = out.reply().expect("a local reply");
    assert_eq!(reply.status, 404);
    assert!(reply.body_text().contains("no matching route"), "{reply:?}");
    assert_eq!(s.property(weft_props::CLUSTER), None);
    Ok(())
}

#[test]
fn router_redirects() -> Result<(), HarnessError> {
    let h = Harness::load(filter("weft-filter-router")?)
        .config(json!({
            "rules": [{
                "matches": [{"path": {"type": "Exact", "value": "/old"}}],
                "filters": [{
                    "type": "RequestRedirect",
                    "requestRedirect": {
                        "scheme": "https",
                        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"},
                        "statusCode": 301
                    }
                }]
            }]
        }))
        .start()?;
    let mut s = h.stream();
    let out = s.request_headers_end(&[(":path", "/old?q=1"), (":authority", "shop.test")])?;
    let reply = out.reply().expect("a redirect");
    assert_eq!(reply.status, 301);
    assert_eq!(reply.header("location"), Some("https://shop.test/new?q=1"));
    Ok(())
}

#[test]
fn router_refuses_a_bad_config_naming_the_field() -> Result<(), HarnessError> {
    let err = Harness::load(filter("weft-filter-router")?)
        .name("router-bad-config")
        .config(json!({"rules": [{"backendRefs": [{"name": "a", "weight": "heavy"}]}]}))
        .start()
        .err()
        .expect("the configuration is refused");
    let text = err.to_string();
    assert!(matches!(err, HarnessError::Start(_)), "{err:?}");
    assert!(text.contains("proxy_on_configure returned false"), "{text}");
    // The router's complaint names the field path.
    assert!(text.contains("rules[0].backendRefs[0].weight"), "{text}");
    Ok(())
}

#[test]
fn header_rewrite_sets_adds_and_removes() -> Result<(), HarnessError> {
    let h = Harness::load(filter("weft-filter-header-rewrite")?)
        .config(json!({
            "rules": [{
                "match": {"path": {"type": "PathPrefix", "value": "/api"}},
                "requestHeaderModifier": {
                    "set": [{"name": "x-env", "value": "prod"}],
                    "add": [{"name": "x-tag", "value": "two"}],
                    "remove": ["x-debug"]
                },
                "responseHeaderModifier": {
                    "set": [{"name": "x-served-by", "value": "weft"}],
                    "remove": ["server"]
                }
            }]
        }))
        .start()?;
    let mut s = h.stream();
    let out = s.request_headers_end(&[
        (":path", "/api/v1"),
        ("x-env", "dev"),
        ("x-tag", "one"),
        ("x-debug", "1"),
        ("x-keep", "yes"),
    ])?;
    assert_eq!(out, Outcome::Continue);
    assert_eq!(s.header("x-env").as_deref(), Some("prod"));
    assert_eq!(s.header("x-tag").as_deref(), Some("one,two"));
    assert_eq!(s.header("x-debug"), None);
    assert_eq!(s.header("x-keep").as_deref(), Some("yes"));
    let out = s.response_headers_end(&[(":status", "200"), ("server", "upstream")])?;
    assert_eq!(out, Outcome::Continue);
    assert_eq!(s.response_header("x-served-by").as_deref(), Some("weft"));
    assert_eq!(s.response_header("server"), None);
    s.finish();

    // A request the rule does not match is left alone.
    let mut s = h.stream();
    s.request_headers_end(&[(":path", "/web"), ("x-debug", "1")])?;
    assert_eq!(s.header("x-debug").as_deref(), Some("1"));
    assert_eq!(s.header("x-env"), None);
    Ok(())
}

#[test]
fn fault_abort_is_a_local_reply() -> Result<(), HarnessError> {
    let h = Harness::load(filter("weft-filter-fault")?)
        .config(json!({
            "rules": [{
                "match": {"path": {"type": "PathPrefix", "value": "/ratings"}},
                "abort": {"httpStatus": 503}
            }]
        }))
        .start()?;
    let mut s = h.stream();
    let out = s.request_headers_end(&[(":path", "/ratings/1")])?;
    let reply = out.reply().expect("an abort");
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-weft-fault"), Some("abort"));
    assert_eq!(reply.body_text(), "fault filter abort\n");
    s.finish();

    let mut s = h.stream();
    assert_eq!(
        s.request_headers_end(&[(":path", "/other")])?,
        Outcome::Continue
    );
    Ok(())
}

#[test]
fn fault_delay_holds_the_request_until_a_tick_resumes_it() -> Result<(), HarnessError> {
    let h = Harness::load(filter("weft-filter-fault")?)
        .config(json!({"rules": [{"delay": {"fixedDelay": "150ms"}}]}))
        .start()?;
    let mut s = h.stream();
    let started = Instant::now();
    // The request is paused at its headers; the root context's tick
    // resumes it once the delay is over.
    assert_eq!(
        s.request_headers_end(&[(":path", "/slow")])?,
        Outcome::Continue
    );
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "resumed after {:?}",
        started.elapsed()
    );
    assert_eq!(
        s.response_headers_end(&[(":status", "200")])?,
        Outcome::Continue
    );
    assert_eq!(s.response_header("x-weft-fault").as_deref(), Some("delay"));
    Ok(())
}

#[test]
fn mirror_sends_a_shadow_copy_and_leaves_the_primary_alone() -> Result<(), HarnessError> {
    let h = Harness::load(filter("weft-filter-mirror")?)
        .config(json!({"mirrors": [{"backendRef": {"name": "shadow"}}]}))
        .cluster("shadow")
        .on_http_call(|_| CallResponse::new(200).body("ignored"))
        .start()?;
    let mut s = h.stream();
    let out = s.request_headers_end(&[
        (":method", "POST"),
        (":path", "/api/orders?x=1"),
        (":authority", "example.com:8080"),
        ("x-user", "ada"),
    ])?;
    assert_eq!(out, Outcome::Continue);
    // The primary is unchanged.
    assert_eq!(s.header(":authority").as_deref(), Some("example.com:8080"));
    assert_eq!(s.header("x-weft-mirror"), None);
    assert_eq!(s.property(weft_props::CLUSTER), None);
    s.finish();

    let calls = h.http_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let copy = &calls[0];
    assert_eq!(copy.cluster, "shadow");
    assert_eq!(copy.header(":authority"), Some("example.com-shadow:8080"));
    assert_eq!(copy.header(":path"), Some("/api/orders?x=1"));
    assert_eq!(copy.header(":method"), Some("POST"));
    assert_eq!(copy.header("x-user"), Some("ada"));
    assert_eq!(copy.header("x-weft-mirror"), Some("1"));
    Ok(())
}
