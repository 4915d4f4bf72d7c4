//! The router, fault and mirror filters through the real binary.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weft_tests::client::{get, post};
use weft_tests::upstream::{Server, echo, serve};
use weft_tests::weft::{Weft, free_port};

fn wasm(package: &str) -> String {
    weft_tests::build_filter(package).display().to_string()
}

/// Waits (bounded) until `server` has seen at least `n` requests.
fn wait_for_requests(server: &Server, n: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if server.request_count() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server.request_count() >= n
}

#[test]
fn router_splits_by_weight_and_ranks_exact_over_prefix() {
    let (v1, v2, admin_up) = (echo("v1"), echo("v2"), echo("admin"));
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}" }}
clusters:
  - {{ name: v1, endpoints: ["{}"] }}
  - {{ name: v2, endpoints: ["{}"] }}
  - {{ name: admin, endpoints: ["{}"] }}
plugins:
  - name: router
    url: file://{}
    pluginConfig:
      rules:
        - name: canary
          matches: [ {{ path: {{ type: PathPrefix, value: / }} }} ]
          backendRefs: [ {{ name: v1, weight: 80 }}, {{ name: v2, weight: 20 }} ]
        - name: pinned
          matches: [ {{ path: {{ type: Exact, value: /shop/cart }} }} ]
          backendRefs: [ {{ name: v2 }} ]
        - name: admin
          matches: [ {{ path: {{ type: PathPrefix, value: /shop }}, headers: [ {{ name: x-role, value: admin }} ] }} ]
          backendRefs: [ {{ name: admin }} ]
"#,
        v1.addr,
        v2.addr,
        admin_up.addr,
        wasm("weft-filter-router")
    );
    let _weft = Weft::start(&config);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    // Canary: 80/20 over a bounded number of requests. With n = 600 and
    // p = 0.2 the standard deviation of v2's share is 1.6 points; the
    // tolerance of ±6 points is almost four of them.
    let n = 600;
    let mut to_v2 = 0;
    for _ in 0..n {
        let r = get(&url("/catalog"), &[]);
        assert_eq!(r.status, 200);
        match r.header("x-upstream") {
            Some("v2") => to_v2 += 1,
            Some("v1") => {}
            other => panic!("unexpected upstream {other:?}"),
        }
    }
    let share = to_v2 as f64 / n as f64;
    assert!(
        (0.14..=0.26).contains(&share),
        "v2 got {share:.3} of requests, expected 0.20 ± 0.06"
    );

    // Precedence: Exact beats any prefix; a longer prefix with a header
    // match beats the catch-all.
    for _ in 0..20 {
        assert_eq!(
            get(&url("/shop/cart"), &[("x-role", "admin")]).header("x-upstream"),
            Some("v2")
        );
    }
    assert_eq!(
        get(&url("/shop/items"), &[("x-role", "admin")]).header("x-upstream"),
        Some("admin")
    );
}

#[test]
fn router_rewrites_redirects_answers_directly_and_404s() {
    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
access_log: {{ path: "{{dir}}/access.log" }}
listeners:
  - {{ name: public, address: "127.0.0.1:{port}" }}
clusters:
  - {{ name: up, endpoints: ["{}"] }}
plugins:
  - name: router
    url: file://{}
    pluginConfig:
      hostnames: [ "*.example.com", shop.test ]
      rules:
        - name: api
          matches: [ {{ path: {{ type: PathPrefix, value: /api }} }} ]
          backendRefs: [ {{ name: up }} ]
          filters:
            - type: URLRewrite
              urlRewrite:
                hostname: api.internal
                path: {{ type: ReplacePrefixMatch, replacePrefixMatch: /v2 }}
        - name: moved
          matches: [ {{ path: {{ type: Exact, value: /old }} }} ]
          filters:
            - type: RequestRedirect
              requestRedirect: {{ scheme: https, path: {{ type: ReplaceFullPath, replaceFullPath: /new }}, statusCode: 301 }}
        - name: health
          matches: [ {{ path: {{ type: Exact, value: /healthz }} }} ]
          directResponse: {{ status: 200, body: "router ok\n" }}
"#,
        up.addr,
        wasm("weft-filter-router")
    );
    let weft = Weft::start(&config);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let host = [("host", "www.example.com")];

    let r = get(&url("/api/users?id=7"), &host);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-seen-path"), Some("/v2/users?id=7"));
    let seen = up.seen();
    let last = seen.last().expect("upstream saw the request");
    assert_eq!(
        last.headers.get("host").and_then(|v| v.to_str().ok()),
        Some("api.internal")
    );

    let r = get(&url("/old?x=1"), &[("host", "shop.test")]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://shop.test/new?x=1"));

    let r = get(&url("/healthz"), &host);
    assert_eq!((r.status, r.text().as_str()), (200, "router ok\n"));

    let r = get(&url("/nothing"), &host);
    assert_eq!((r.status, r.text().as_str()), (404, "no matching route\n"));

    let r = get(&url("/api/users"), &[("host", "example.com")]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "no route for this host\n"),
        "a wildcard does not match the bare domain"
    );

    // The access log carries the route name the router chose.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = std::fs::read_to_string(weft.dir.path().join("access.log")).unwrap_or_default();
        if lines.lines().any(|l| l.contains("\"route\":\"api\"")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no access-log line with route api: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn router_retry_policy_and_timeout_reach_the_proxy() {
    // Fails every other request with 503.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let flaky = serve(move |_| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        let status = if n.is_multiple_of(2) { 503 } else { 200 };
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(format!("attempt {n}\n"))))
            .expect("response")
    });
    let slow = serve(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        Response::new(Full::new(Bytes::from_static(b"late\n")))
    });
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}" }}
clusters:
  - {{ name: flaky, endpoints: ["{}"] }}
  - {{ name: slow, endpoints: ["{}"] }}
plugins:
  - name: router
    url: file://{}
    pluginConfig:
      rules:
        - matches: [ {{ path: {{ type: PathPrefix, value: /retry }} }} ]
          backendRefs: [ {{ name: flaky }} ]
          retry: {{ attempts: 3, retryOn: [ retriable-status-codes ], codes: [ 503 ] }}
        - matches: [ {{ path: {{ type: PathPrefix, value: /once }} }} ]
          backendRefs: [ {{ name: flaky }} ]
        - matches: [ {{ path: {{ type: PathPrefix, value: /slow }} }} ]
          backendRefs: [ {{ name: slow }} ]
          timeouts: {{ request: 300ms }}
"#,
        flaky.addr,
        slow.addr,
        wasm("weft-filter-router")
    );
    let _weft = Weft::start(&config);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    // With the retry policy, the 503 is retried and the client sees 200;
    // the body is replayed.
    for _ in 0..5 {
        let before = calls.load(Ordering::SeqCst);
        let r = post(&url("/retry"), &[], "payload");
        assert_eq!(r.status, 200, "{}", r.text());
        let tries = calls.load(Ordering::SeqCst) - before;
        assert!((1..=2).contains(&tries), "{tries} tries");
    }
    assert!(
        flaky.seen().iter().all(|s| s.body == "payload"),
        "every attempt carried the body"
    );

    // Without it, a 503 goes straight back to the client.
    let statuses: Vec<u16> = (0..4).map(|_| get(&url("/once"), &[]).status).collect();
    assert!(statuses.contains(&503), "{statuses:?}");

    let started = Instant::now();
    let r = get(&url("/slow"), &[]);
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered before the route's timeout"
    );
}

#[test]
fn fault_delays_and_aborts_by_match_and_percentage() {
    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{}"] }}
plugins:
  - name: fault
    url: file://{}
    pluginConfig:
      rules:
        - match: {{ headers: [ {{ name: x-chaos, value: delay }} ] }}
          delay: {{ fixedDelay: 400ms }}
        - match: {{ path: {{ type: PathPrefix, value: /abort }} }}
          abort: {{ httpStatus: 503 }}
        - match: {{ path: {{ type: PathPrefix, value: /half }} }}
          abort: {{ httpStatus: 418, percentage: {{ value: 50 }} }}
"#,
        up.addr,
        wasm("weft-filter-fault")
    );
    let _weft = Weft::start(&config);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    let started = Instant::now();
    let r = get(&url("/x"), &[("x-chaos", "delay")]);
    let delayed = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-weft-fault"), Some("delay"));
    assert!(
        delayed >= Duration::from_millis(400),
        "delayed only {delayed:?}"
    );

    // A delayed request never holds the others: a plain request completes
    // while several delayed ones are in flight.
    let delayed_threads: Vec<_> = (0..3)
        .map(|_| {
            let u = url("/y");
            std::thread::spawn(move || get(&u, &[("x-chaos", "delay")]).status)
        })
        .collect();
    let r = get(&url("/plain"), &[]);
    assert_eq!((r.status, r.header("x-weft-fault")), (200, None));
    for t in delayed_threads {
        assert_eq!(t.join().expect("delayed request"), 200);
    }

    let r = get(&url("/abort/now"), &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-weft-fault"), Some("abort"));
    assert_eq!(r.text(), "fault filter abort\n");
    let upstream_before = up.request_count();

    // 50% over 400 requests: standard deviation 2.5 points, tolerance 10.
    let n = 400;
    let aborted = (0..n)
        .filter(|_| get(&url("/half"), &[]).status == 418)
        .count();
    let share = aborted as f64 / n as f64;
    assert!(
        (0.40..=0.60).contains(&share),
        "aborted {share:.3}, expected 0.50 ± 0.10"
    );
    assert_eq!(
        up.request_count() - upstream_before,
        n - aborted,
        "aborted requests never reach the upstream"
    );
}

#[test]
fn mirror_copies_requests_without_touching_the_primary() {
    let primary = echo("primary");
    let shadow = echo("shadow");
    let slow_shadow = serve(|_| {
        std::thread::sleep(Duration::from_secs(3));
        Response::builder()
            .status(500)
            .body(Full::new(Bytes::from_static(b"slow mirror\n")))
            .expect("response")
    });
    // A port nothing listens on.
    let dead = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: primary }}
clusters:
  - {{ name: primary, endpoints: ["{}"] }}
  - {{ name: shadow, endpoints: ["{}"] }}
  - {{ name: slow, endpoints: ["{}"] }}
  - {{ name: dead, endpoints: ["{dead}"], connect_timeout: 200ms }}
plugins:
  - name: mirror
    url: file://{}
    pluginConfig:
      mirrors:
        - match: {{ path: {{ type: PathPrefix, value: /copy }} }}
          backendRef: {{ name: shadow }}
        - match: {{ path: {{ type: PathPrefix, value: /down }} }}
          backendRef: {{ name: dead }}
        - match: {{ path: {{ type: PathPrefix, value: /slow }} }}
          backendRef: {{ name: slow }}
"#,
        primary.addr,
        shadow.addr,
        slow_shadow.addr,
        wasm("weft-filter-mirror")
    );
    let _weft = Weft::start(&config);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    let r = post(
        &url("/copy/orders"),
        &[("host", "shop.test:8080"), ("x-order", "42")],
        "order body",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("primary"));
    assert_eq!(r.text(), "order body");
    assert!(
        wait_for_requests(&shadow, 1, Duration::from_secs(5)),
        "the mirror never saw the copy"
    );
    let copy = shadow.seen().remove(0);
    assert_eq!(copy.method, "POST");
    assert_eq!(copy.uri, "/copy/orders");
    assert_eq!(copy.body, "order body");
    let header = |name: &str| copy.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("host"), Some("shop.test-shadow:8080"));
    assert_eq!(header("x-order"), Some("42"));
    assert_eq!(header("x-weft-mirror"), Some("1"));
    let primary_seen = primary.seen();
    assert_eq!(
        primary_seen[0]
            .headers
            .get("host")
            .and_then(|v| v.to_str().ok()),
        Some("shop.test:8080"),
        "the primary request is unchanged"
    );

    // A mirror that is down changes nothing for the client.
    for _ in 0..3 {
        let r = post(&url("/down/x"), &[], "b");
        assert_eq!((r.status, r.text().as_str()), (200, "b"));
    }

    // Nor does a slow one that answers 500: the primary does not wait for
    // it (the mirror holds its answer for 3 s).
    let started = Instant::now();
    let r = get(&url("/slow/x"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("primary"));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the primary waited for the mirror: {:?}",
        started.elapsed()
    );
    assert!(wait_for_requests(&slow_shadow, 1, Duration::from_secs(5)));
}
