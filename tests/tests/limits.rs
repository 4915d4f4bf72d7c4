//! Downstream limits, circuit breakers, health checks and reload under
//! load, through the real binary.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weft_tests::client::get;
use weft_tests::upstream::{self, echo};
use weft_tests::weft::{Weft, free_port};

fn simple(
    port: u16,
    upstream: std::net::SocketAddr,
    listener_extra: &str,
    cluster_extra: &str,
) -> String {
    format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 2
listeners:
  - name: public
    address: 127.0.0.1:{port}
    default_cluster: up
    {listener_extra}
clusters:
  - name: up
    endpoints: ["{upstream}"]
    {cluster_extra}
"#
    )
}

#[test]
fn oversized_request_headers_get_431() {
    let up = echo("up");
    let port = free_port();
    let _weft = Weft::start(&simple(
        port,
        up.addr,
        "limits: { max_request_headers_size: 8KiB }",
        "",
    ));
    let big = "v".repeat(16 * 1024);
    let r = weft_tests::client::send(
        "GET",
        &format!("http://127.0.0.1:{port}/"),
        &[("x-big", &big)],
        bytes::Bytes::new(),
        false,
    );
    match r {
        Ok(r) => assert_eq!(r.status, 431),
        Err(e) => panic!("expected a 431 answer, got {e}"),
    }
    assert_eq!(up.request_count(), 0);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/"), &[]).status, 200);
}

#[test]
fn a_slow_header_sender_is_cut_off() {
    let up = echo("up");
    let port = free_port();
    let _weft = Weft::start(&simple(
        port,
        up.addr,
        "limits: { request_header_timeout: 300ms }",
        "",
    ));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The server answers 408 and/or closes; either way the read ends.
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "connection held for {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(up.request_count(), 0);
}

#[test]
fn the_connection_limit_refuses_extra_connections() {
    let up = echo("up");
    let port = free_port();
    let _weft = Weft::start(
        &simple(port, up.addr, "limits: { max_connections: 1 }", "")
            .replace("workers: 2", "workers: 1"),
    );
    let mut first = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // A second connection while the first is open is closed at once.
    let mut second = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = second.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = Vec::new();
    let _ = second.read_to_end(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    drop(first);
}

#[test]
fn the_circuit_breaker_answers_503_overloaded() {
    let slow = upstream::serve(|_| {
        std::thread::sleep(Duration::from_millis(600));
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
            b"slow",
        )))
    });
    let port = free_port();
    let _weft = Weft::start(&simple(
        port,
        slow.addr,
        "",
        "circuit_breakers: { max_requests: 1 }",
    ));
    let url = format!("http://127.0.0.1:{port}/");
    let first = {
        let url = url.clone();
        std::thread::spawn(move || get(&url, &[]))
    };
    std::thread::sleep(Duration::from_millis(200));
    let second = get(&url, &[]);
    assert_eq!(second.status, 503, "{}", second.text());
    assert_eq!(second.header("x-weft-overloaded"), Some("true"));
    assert_eq!(first.join().unwrap().status, 200);
}

#[test]
fn health_checks_take_a_failing_endpoint_out() {
    let good = echo("good");
    let bad = upstream::serve(|seen| {
        let status = if seen.uri == "/healthz" { 500 } else { 200 };
        http::Response::builder()
            .status(status)
            .header("x-upstream", "bad")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    });
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - name: up
    endpoints: ["{}", "{}"]
    health_check: {{ path: /healthz, interval: 100ms, timeout: 1s, unhealthy_threshold: 1, healthy_threshold: 1 }}
"#,
        good.addr, bad.addr
    );
    let weft = Weft::start(&config);
    let url = format!("http://127.0.0.1:{port}/");
    // Within a bounded time, every request goes to the good endpoint.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut streak = 0;
    while streak < 10 && Instant::now() < deadline {
        let r = get(&url, &[]);
        streak = if r.header("x-upstream") == Some("good") {
            streak + 1
        } else {
            0
        };
    }
    assert_eq!(streak, 10, "the failing endpoint kept receiving traffic");
    let metrics = get(&weft.admin_url("/metrics"), &[]).text();
    assert!(metrics.contains("weft_endpoint_healthy"), "{metrics}");
}

#[test]
fn reload_under_load_fails_no_request() {
    let up = echo("up");
    let port = free_port();
    let probe = weft_tests::build_filter("weft-test-probe");
    let config = simple(port, up.addr, "", "")
        + &format!(
            "plugins:\n  - {{ name: probe, url: \"file://{}\", pluginConfig: {{ greeting: v0 }} }}\n",
            probe.display()
        );
    let weft = Weft::start(&config);
    let url = format!("http://127.0.0.1:{port}/");
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (url, stop, failures, done) =
                (url.clone(), stop.clone(), failures.clone(), done.clone());
            std::thread::spawn(move || {
                // Bounded: at most 5000 requests or until told to stop.
                for _ in 0..5000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match weft_tests::client::send("GET", &url, &[], bytes::Bytes::new(), false) {
                        Ok(r) if r.status == 200 => {}
                        _ => {
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for round in 1..=3 {
        std::thread::sleep(Duration::from_millis(300));
        let text = std::fs::read_to_string(&weft.config).unwrap();
        std::fs::write(
            &weft.config,
            text.replace(
                &format!("greeting: v{}", round - 1),
                &format!("greeting: v{round}"),
            ),
        )
        .unwrap();
        weft.signal("HUP");
    }
    // Wait until the last generation serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&url, &[]).header("x-seen-x-probe-seen") != Some("v3") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().unwrap();
    }
    assert_eq!(get(&url, &[]).header("x-seen-x-probe-seen"), Some("v3"));
    assert!(done.load(Ordering::SeqCst) > 50, "the load ran");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed during reloads"
    );
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let up = echo("up");
    let port = free_port();
    let _weft = Weft::start(&simple(
        port,
        up.addr,
        "limits: { idle_timeout: 300ms }",
        "",
    ));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the idle connection stayed open {waited:?}"
    );
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    let slow = upstream::serve(|_| {
        std::thread::sleep(Duration::from_millis(700));
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
            b"finished",
        )))
    });
    let port = free_port();
    let mut weft = Weft::start(&simple(port, slow.addr, "", ""));
    let url = format!("http://127.0.0.1:{port}/");
    let in_flight = std::thread::spawn(move || get(&url, &[]));
    std::thread::sleep(Duration::from_millis(200));
    weft.signal("TERM");
    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "finished");
    let status = weft.wait_exit(Duration::from_secs(15)).expect("weft exits");
    assert!(status.success(), "{status}");
    // No new connections after the drain.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
