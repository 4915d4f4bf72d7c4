//! End to end through the real `weft` binary: real upstream servers and
//! real clients on loopback.

use std::time::Duration;
use weft_tests::client::{self, get, post};
use weft_tests::upstream::{self, echo};
use weft_tests::weft::{TempDir, Weft, free_port, weft_cmd};

fn probe_path() -> String {
    weft_tests::build_filter("weft-test-probe")
        .display()
        .to_string()
}

struct Setup {
    weft: Weft,
    base: String,
    a: upstream::Server,
    b: upstream::Server,
}

fn setup(plugins: &str, extra_listener: &str) -> Setup {
    let a = echo("a");
    let b = echo("b");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 2
node: {{ name: edge-test, namespace: default, labels: {{ app: edge }} }}
access_log: {{ path: "{{dir}}/access.log" }}
listeners:
  - name: public
    address: 127.0.0.1:{port}
    {extra_listener}
clusters:
  - name: a
    endpoints: ["{a}"]
  - name: b
    endpoints: ["{b}"]
plugins:
{plugins}
"#,
        a = a.addr,
        b = b.addr,
    );
    let weft = Weft::start(&config);
    Setup {
        weft,
        base: format!("http://127.0.0.1:{port}"),
        a,
        b,
    }
}

fn probe_plugin(greeting: &str) -> String {
    format!(
        r#"  - name: probe
    url: file://{}
    phase: AUTHN
    failStrategy: FAIL_CLOSE
    pluginConfig: {{ greeting: {greeting}, call_cluster: b }}
    vmConfig: {{ env: [ {{ name: MODE, value: strict }} ] }}
"#,
        probe_path()
    )
}

#[test]
fn forwards_to_the_default_cluster_with_bodies_both_ways() {
    let s = setup("  []", "default_cluster: a");
    let r = post(
        &format!("{}/echo?x=1", s.base),
        &[("content-type", "text/plain")],
        "hello upstream",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-upstream"), Some("a"));
    assert_eq!(r.text(), "hello upstream");
    assert_eq!(r.header("x-seen-path"), Some("/echo?x=1"));
    let seen = s.a.seen();
    let last = seen.last().expect("upstream saw the request");
    assert_eq!(last.method, "POST");
    assert!(
        last.headers.get("x-request-id").is_some(),
        "x-request-id is generated"
    );
    assert_eq!(
        last.headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
        Some("127.0.0.1")
    );
    assert_eq!(
        last.headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok()),
        Some("http")
    );
    assert_eq!(s.b.request_count(), 0);
}

#[test]
fn hop_by_hop_headers_are_removed_and_request_ids_kept() {
    let s = setup("  []", "default_cluster: a");
    let r = get(
        &format!("{}/", s.base),
        &[
            ("connection", "keep-alive, x-private"),
            ("x-private", "secret"),
            ("x-request-id", "given-id"),
            ("x-forwarded-for", "10.0.0.1"),
        ],
    );
    assert_eq!(r.status, 200);
    let seen = s.a.seen();
    let last = seen.last().unwrap();
    assert!(
        last.headers.get("x-private").is_none(),
        "headers named by Connection are dropped"
    );
    assert_eq!(last.headers.get("x-request-id").unwrap(), "given-id");
    assert_eq!(
        last.headers.get("x-forwarded-for").unwrap(),
        "10.0.0.1, 127.0.0.1"
    );
}

#[test]
fn no_route_is_a_404() {
    let s = setup("  []", "");
    let r = get(&format!("{}/", s.base), &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "no route\n");
}

#[test]
fn a_filter_edits_routes_and_replies() {
    let s = setup(&probe_plugin("hello"), "default_cluster: a");
    // The filter's header edit reaches the upstream; its response header comes back.
    let r = get(&format!("{}/", s.base), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-x-probe-seen"), Some("hello"));
    assert_eq!(r.header("x-probe-response"), Some("hello"));
    // The filter chooses the cluster through weft.cluster.
    let r = get(&format!("{}/", s.base), &[("x-probe-cluster", "b")]);
    assert_eq!(r.header("x-upstream"), Some("b"));
    // A local reply never reaches an upstream.
    let before = s.a.request_count();
    let r = get(&format!("{}/", s.base), &[("x-probe", "local")]);
    assert_eq!(r.status, 418);
    assert_eq!(r.header("x-local"), Some("yes"));
    assert_eq!(r.text(), "short and stout\n");
    assert_eq!(s.a.request_count(), before);
    // vmConfig env reaches WASI.
    let r = get(&format!("{}/", s.base), &[("x-probe", "env")]);
    assert_eq!(r.status, 200);
    // Body rewrite through the filter.
    let r = post(
        &format!("{}/", s.base),
        &[("x-probe", "body")],
        "make me loud",
    );
    assert_eq!(r.text(), "MAKE ME LOUD");
    // An HTTP call from the filter goes through the proxy's cluster "b",
    // which answers without x-auth: allow, so the filter denies.
    let r = get(&format!("{}/", s.base), &[("x-probe", "call")]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        s.b.seen()
            .iter()
            .any(|r| r.uri == "/auth" && r.headers.get("x-from").is_some())
    );
}

#[test]
fn h2c_prior_knowledge_works() {
    let s = setup(&probe_plugin("h2"), "default_cluster: a");
    let r = client::send(
        "GET",
        &format!("{}/h2", s.base),
        &[],
        bytes::Bytes::new(),
        true,
    )
    .expect("h2c request");
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.header("x-seen-x-probe-seen"), Some("h2"));
}

#[test]
fn a_crashing_filter_fails_closed_and_recovers() {
    let s = setup(&probe_plugin("crash"), "default_cluster: a");
    let r = get(&format!("{}/", s.base), &[("x-probe", "panic")]);
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "plugin probe is unavailable\n");
    for _ in 0..4 {
        assert_eq!(get(&format!("{}/", s.base), &[]).status, 200);
    }
    let metrics = get(&s.weft.admin_url("/metrics"), &[]).text();
    assert!(
        metrics.contains("weft_plugin_traps_total{plugin=\"probe\"} 1"),
        "{metrics}"
    );
}

#[test]
fn timeouts_and_retries_come_from_weft_properties() {
    let slow = upstream::serve(|_| {
        std::thread::sleep(Duration::from_millis(400));
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
            b"slow",
        )))
    });
    let flaky_count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fc = flaky_count.clone();
    let flaky = upstream::serve(move |seen| {
        let n = fc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let status = if n == 0 { 503 } else { 200 };
        http::Response::builder()
            .status(status)
            .body(http_body_util::Full::new(seen.body.clone()))
            .unwrap()
    });
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}" }}
clusters:
  - {{ name: slow, endpoints: ["{}"] }}
  - {{ name: flaky, endpoints: ["{}"] }}
plugins:
  - {{ name: probe, url: "file://{}" }}
"#,
        slow.addr,
        flaky.addr,
        probe_path()
    );
    let _weft = Weft::start(&config);
    let base = format!("http://127.0.0.1:{port}");
    let r = get(
        &format!("{base}/"),
        &[("x-probe-cluster", "slow"), ("x-probe-timeout-ms", "100")],
    );
    assert_eq!(r.status, 504, "{}", r.text());
    // 503 then 200: retried, and the POST body is replayed.
    let r = post(
        &format!("{base}/"),
        &[
            ("x-probe-cluster", "flaky"),
            ("x-probe-retry-attempts", "3"),
            ("x-probe-retry-on", "5xx"),
        ],
        "replay me",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "replay me");
    assert_eq!(flaky_count.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(flaky.seen().iter().all(|s| &s.body[..] == b"replay me"));
}

#[test]
fn admin_endpoints_and_access_log() {
    let s = setup(&probe_plugin("admin"), "default_cluster: a");
    assert_eq!(
        get(&format!("{}/logged", s.base), &[("x-probe-route", "r1")]).status,
        200
    );
    assert_eq!(get(&s.weft.admin_url("/healthz"), &[]).status, 200);
    assert_eq!(get(&s.weft.admin_url("/ready"), &[]).status, 200);
    let metrics = get(&s.weft.admin_url("/metrics"), &[]).text();
    assert!(
        metrics.contains("weft_listener_requests_total{listener=\"public\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weft_filter_probe_requests{plugin=\"probe\"}"),
        "{metrics}"
    );
    let dump: serde_json::Value =
        serde_json::from_str(&get(&s.weft.admin_url("/config_dump"), &[]).text()).unwrap();
    assert_eq!(dump["listeners"][0]["name"], "public");
    let plugins: serde_json::Value =
        serde_json::from_str(&get(&s.weft.admin_url("/plugins"), &[]).text()).unwrap();
    assert_eq!(plugins["plugins"][0]["name"], "probe");
    assert!(
        plugins["plugins"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // The access log line (written asynchronously).
    let log_path = s.weft.dir.path().join("access.log");
    let mut line = None;
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&log_path)
            && let Some(l) = text.lines().find(|l| l.contains("/logged"))
        {
            line = Some(l.to_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let line: serde_json::Value = serde_json::from_str(&line.expect("access log line")).unwrap();
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["upstream_cluster"], "a");
    assert_eq!(line["route"], "r1");
    assert_eq!(line["listener"], "public");
    assert!(line["request_id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[test]
fn validate_reports_bad_configs_and_plugins() {
    let dir = TempDir::new("validate");
    let bad = dir.write("bad.yaml", "listeners:\n  - name: x\n    address: nope\n");
    let (code, _, err) = weft_cmd(&["validate", "--config", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("bad.yaml") && err.contains("listeners[0].address"),
        "{err}"
    );
    let refused = dir.write(
        "refused.yaml",
        format!(
            "listeners: []\nplugins:\n  - name: picky\n    url: file://{}\n    pluginConfig: {{ reject: true }}\n",
            probe_path()
        ),
    );
    let (code, _, err) = weft_cmd(&["validate", "--config", refused.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("plugin picky") && err.contains("proxy_on_configure returned false"),
        "{err}"
    );
    let (code, out, _) = weft_cmd(&["schema"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"listeners\""));
}

#[test]
fn reload_swaps_plugins_and_refuses_bad_configs() {
    let s = setup(&probe_plugin("one"), "default_cluster: a");
    let url = format!("{}/", s.base);
    assert_eq!(get(&url, &[]).header("x-seen-x-probe-seen"), Some("one"));
    let text = std::fs::read_to_string(&s.weft.config).unwrap();
    // A bad plugin config: refused, the old one keeps serving.
    std::fs::write(
        &s.weft.config,
        text.replace("greeting: one", "greeting: two, reject: true"),
    )
    .unwrap();
    s.weft.signal("HUP");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(&url, &[]).header("x-seen-x-probe-seen"), Some("one"));
    let plugins: serde_json::Value =
        serde_json::from_str(&get(&s.weft.admin_url("/plugins"), &[]).text()).unwrap();
    assert!(
        plugins["last_reload_error"]
            .as_str()
            .unwrap_or("")
            .contains("proxy_on_configure returned false")
    );
    // A good one: swapped in.
    std::fs::write(
        &s.weft.config,
        text.replace("greeting: one", "greeting: two"),
    )
    .unwrap();
    s.weft.signal("HUP");
    let mut seen = None;
    for _ in 0..100 {
        seen = get(&url, &[])
            .header("x-seen-x-probe-seen")
            .map(str::to_owned);
        if seen.as_deref() == Some("two") {
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(seen.as_deref(), Some("two"));
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut s = setup("  []", "default_cluster: a");
    assert_eq!(get(&format!("{}/", s.base), &[]).status, 200);
    s.weft.signal("TERM");
    let status = s
        .weft
        .wait_exit(Duration::from_secs(15))
        .expect("weft exits");
    assert!(status.success(), "{status}");
}

#[test]
fn large_bodies_stream_through() {
    let s = setup("  []", "default_cluster: a");
    let body = vec![b'x'; 8 << 20];
    let r = post(&format!("{}/big", s.base), &[], body.clone());
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
}

#[test]
fn editing_the_file_reloads_without_a_signal() {
    let s = setup(&probe_plugin("before"), "default_cluster: a");
    let url = format!("{}/", s.base);
    assert_eq!(get(&url, &[]).header("x-seen-x-probe-seen"), Some("before"));
    let text = std::fs::read_to_string(&s.weft.config).unwrap();
    // mtime granularity: make sure the change is visible as a new mtime.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &s.weft.config,
        text.replace("greeting: before", "greeting: after"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        seen = get(&url, &[])
            .header("x-seen-x-probe-seen")
            .map(str::to_owned);
        if seen.as_deref() == Some("after") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen.as_deref(), Some("after"));
    let metrics = get(&s.weft.admin_url("/metrics"), &[]).text();
    assert!(
        metrics.contains("weft_config_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
}

#[test]
fn only_small_bodies_of_known_length_are_replayed() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let failing = upstream::serve(move |_| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        http::Response::builder()
            .status(503)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    });
    let port = free_port();
    let config = format!(
        "admin: {{ address: \"{{admin}}\" }}\nworkers: 1\nlisteners:\n  - {{ name: public, address: \"127.0.0.1:{port}\" }}\nclusters:\n  - {{ name: failing, endpoints: [\"{}\"] }}\nplugins:\n  - {{ name: probe, url: \"file://{}\" }}\n",
        failing.addr,
        probe_path()
    );
    let _weft = Weft::start(&config);
    let base = format!("http://127.0.0.1:{port}/");
    let retry = [
        ("x-probe-cluster", "failing"),
        ("x-probe-retry-attempts", "3"),
        ("x-probe-retry-on", "5xx"),
    ];
    assert_eq!(post(&base, &retry, vec![b'x'; 1000]).status, 503);
    assert_eq!(
        calls.swap(0, std::sync::atomic::Ordering::SeqCst),
        3,
        "a small body is replayed"
    );
    assert_eq!(post(&base, &retry, vec![b'x'; 200 * 1024]).status, 503);
    assert_eq!(
        calls.swap(0, std::sync::atomic::Ordering::SeqCst),
        1,
        "a large body gets one attempt"
    );
}
