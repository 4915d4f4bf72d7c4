//! Upstream clusters end to end: load-balancing policies, outlier
//! ejection, HTTP/2 and TLS/mTLS to the upstream.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::collections::HashMap;
use std::time::Duration;
use weft_tests::client::get;
use weft_tests::tls::Pki;
use weft_tests::upstream::{Server, echo, serve, serve_tls};
use weft_tests::weft::{Weft, free_port};

/// One listener whose default cluster is `cluster` (YAML of one cluster).
fn start(cluster: &str) -> (Weft, u16) {
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {cluster}
"#
    );
    (Weft::start(&config), port)
}

/// Which upstream (`x-upstream`) answered each of `n` requests.
fn tally(port: u16, n: usize, headers: &[(&str, &str)]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let r = get(&format!("http://127.0.0.1:{port}/"), headers);
        assert_eq!(r.status, 200, "{}", r.text());
        *seen
            .entry(r.header("x-upstream").unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    seen
}

#[test]
fn round_robin_follows_endpoint_weights() {
    let (a, b) = (echo("a"), echo("b"));
    let (_weft, port) = start(&format!(
        r#"{{ name: up, lb_policy: round_robin, endpoints: ["{}", {{ address: "{}", weight: 3 }}] }}"#,
        a.addr, b.addr
    ));
    // Smooth weighted round robin is exact over whole cycles of 4.
    let seen = tally(port, 200, &[]);
    assert_eq!(seen.get("a"), Some(&50), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&150), "{seen:?}");
}

#[test]
fn random_spreads_over_the_endpoints() {
    let (a, b) = (echo("a"), echo("b"));
    let (_weft, port) = start(&format!(
        r#"{{ name: up, lb_policy: random, endpoints: ["{}", "{}"] }}"#,
        a.addr, b.addr
    ));
    // n = 400, p = 0.5: the standard deviation of a's share is 2.5 points;
    // the tolerance is 4 of them.
    let seen = tally(port, 400, &[]);
    let share = *seen.get("a").unwrap_or(&0) as f64 / 400.0;
    assert!((0.40..=0.60).contains(&share), "{seen:?}");
}

#[test]
fn ring_hash_keeps_a_key_on_one_endpoint() {
    let (a, b) = (echo("a"), echo("b"));
    let (_weft, port) = start(&format!(
        r#"{{ name: up, lb_policy: ring_hash, hash_header: x-user, endpoints: ["{}", "{}"] }}"#,
        a.addr, b.addr
    ));
    let mut used = HashMap::new();
    for user in 0..40 {
        let user = format!("user-{user}");
        let seen = tally(port, 5, &[("x-user", &user)]);
        assert_eq!(seen.len(), 1, "{user} moved between endpoints: {seen:?}");
        for k in seen.keys() {
            *used.entry(k.clone()).or_insert(0) += 1;
        }
    }
    assert_eq!(
        used.len(),
        2,
        "40 keys all hashed to one endpoint: {used:?}"
    );
}

#[test]
fn least_request_avoids_the_busy_endpoint() {
    // `slow` holds every request for three seconds; `fast` answers at once.
    let slow = serve(|_| {
        std::thread::sleep(Duration::from_secs(3));
        Response::builder()
            .header("x-upstream", "slow")
            .body(Full::new(Bytes::new()))
            .expect("response")
    });
    let fast = echo("fast");
    let (_weft, port) = start(&format!(
        r#"{{ name: up, lb_policy: least_request, endpoints: ["{}", "{}"] }}"#,
        slow.addr, fast.addr
    ));
    // Requests 100 ms apart: once `slow` holds one, it is always the
    // busier of the two, so (with two endpoints, both are the "two
    // choices") everything else goes to `fast`.
    let threads: Vec<_> = (0..10)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 100 }));
            std::thread::spawn(move || {
                let r = get(&format!("http://127.0.0.1:{port}/"), &[]);
                r.header("x-upstream").unwrap_or("?").to_owned()
            })
        })
        .collect();
    let answers: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().expect("request"))
        .collect();
    let to_slow = answers.iter().filter(|a| *a == "slow").count();
    assert!(to_slow <= 2, "{answers:?}");
    assert_eq!(
        to_slow + answers.iter().filter(|a| *a == "fast").count(),
        10
    );
}

#[test]
fn outlier_detection_ejects_an_endpoint_that_keeps_failing() {
    let bad = serve(|_| {
        Response::builder()
            .status(500)
            .header("x-upstream", "bad")
            .body(Full::new(Bytes::from_static(b"broken\n")))
            .expect("response")
    });
    let good = echo("good");
    let (weft, port) = start(&format!(
        r#"{{ name: up, lb_policy: round_robin, endpoints: ["{}", "{}"], outlier_detection: {{ consecutive_5xx: 3, base_ejection_time: 30s }} }}"#,
        bad.addr, good.addr
    ));
    let statuses: Vec<u16> = (0..30)
        .map(|_| get(&format!("http://127.0.0.1:{port}/"), &[]).status)
        .collect();
    assert_eq!(
        bad.request_count(),
        3,
        "the bad endpoint is ejected after its third 5xx in a row"
    );
    assert!(
        statuses[10..].iter().all(|s| *s == 200),
        "after the ejection only the good endpoint answers: {statuses:?}"
    );
    let metrics = get(&weft.admin_url("/metrics"), &[]).text();
    let ejections = metrics
        .lines()
        .find(|l| l.starts_with("weft_cluster_ejections_total{cluster=\"up\"}"))
        .unwrap_or_else(|| panic!("no ejection counter in\n{metrics}"));
    assert!(ejections.ends_with(" 1"), "{ejections}");
}

#[test]
fn http2_upstreams_speak_h2() {
    let up = echo("h2");
    let (_weft, port) = start(&format!(
        r#"{{ name: up, protocol: http2, endpoints: ["{}"] }}"#,
        up.addr
    ));
    for _ in 0..3 {
        assert_eq!(get(&format!("http://127.0.0.1:{port}/x"), &[]).status, 200);
    }
    let seen = up.seen();
    assert!(seen.iter().all(|s| s.version == http::Version::HTTP_2));
    assert_eq!(
        up.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "h2 requests share one connection"
    );
}

fn tls_upstream(pki: &Pki, name: &str) -> Server {
    let (cert, key) = pki.issue_server_cert(name, &[name]);
    serve_tls(&cert, &key, Some((&pki.ca, true)), |seen| {
        Response::builder()
            .header("x-upstream", "tls")
            .header("x-client-cert", if seen.client_cert { "yes" } else { "no" })
            .body(Full::new(Bytes::new()))
            .expect("response")
    })
}

#[test]
fn upstream_mtls_verifies_the_server_name_and_presents_a_client_certificate() {
    let pki = Pki::new();
    let up = tls_upstream(&pki, "upstream.internal");
    let tls = |sni: &str, protocol: &str| {
        format!(
            r#"{{ name: up, protocol: {protocol}, endpoints: ["{}"], tls: {{ ca: "{}", sni: {sni}, cert: "{}", key: "{}" }} }}"#,
            up.addr,
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        )
    };

    let (weft, port) = start(&tls("upstream.internal", "http1"));
    let r = get(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-client-cert"), Some("yes"));
    drop(weft);

    let (weft, port) = start(&tls("upstream.internal", "http2"));
    let r = get(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        up.seen()
            .last()
            .is_some_and(|s| s.version == http::Version::HTTP_2),
        "h2 by ALPN"
    );
    drop(weft);

    // A server name the certificate does not carry: the handshake fails
    // and the request gets a 503, never the upstream's answer.
    let before = up.request_count();
    let (_weft, port) = start(&tls("other.internal", "http1"));
    let r = get(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(up.request_count(), before);
}
