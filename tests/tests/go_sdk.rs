//! The Go SDK (`sdk/go`) end to end: the example filter in
//! `examples/go-filter`, built with standard Go for `wasip1`, runs in the
//! real `weft` binary and every ABI group it uses is checked from outside —
//! headers and properties as the upstream saw them, the rewritten body, a
//! local reply, an HTTP call's answer, ticks, the CAS counter and the queue
//! (through the filter's `/go/stats` reply), metrics on the admin listener
//! and log lines on weft's stderr. The SDK's and the example's Go unit tests
//! (`go test`, natively, on the SDK's in-memory host) run here too.

use bytes::Bytes;
use http_body_util::Full;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use weft_tests::client::{Reply, get, post};
use weft_tests::upstream::{Server, echo, serve};
use weft_tests::weft::{Weft, free_port};

/// Builds the example once for all tests of this file.
fn go_filter() -> &'static PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| weft_tests::build_go_filter("examples/go-filter"))
}

/// The callout cluster: answers with a token derived from the request.
fn callout() -> Server {
    serve(|seen| {
        hyper::Response::builder()
            .status(200)
            .header("x-token", format!("token-for-{}", seen.uri))
            .body(Full::new(Bytes::from_static(b"callout-body\n")))
            .expect("response")
    })
}

struct Setup {
    weft: Weft,
    port: u16,
    up: Server,
    callout: Server,
}

impl Setup {
    fn start() -> Setup {
        let up = echo("up");
        let callout = callout();
        let port = free_port();
        let config = format!(
            r#"
admin: {{ address: "{{admin}}" }}
workers: 2
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{}"] }}
  - {{ name: tokens, endpoints: ["{}"] }}
plugins:
  - name: go
    url: file://{}
    pluginConfig: {{ cluster: tokens, tick_ms: 20 }}
"#,
            up.addr,
            callout.addr,
            go_filter().display()
        );
        let weft = Weft::start(&config);
        Setup {
            weft,
            port,
            up,
            callout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn stats(&self) -> serde_json::Value {
        let r = get(&self.url("/go/stats"), &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("/go/stats is not JSON ({e}): {:?}", r.text()))
    }

    fn metrics(&self) -> String {
        get(&self.weft.admin_url("/metrics"), &[]).text()
    }
}

/// The value of one sample line of the Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.header(name)
        .unwrap_or_else(|| panic!("response has no {name}: {:?}", r.headers))
}

#[test]
fn go_filter_adds_headers_echoes_properties_and_rewrites_the_body() {
    let s = Setup::start();
    let r = post(
        &s.url("/some/path?q=1"),
        &[("x-go-source", "spoofed")],
        "hello go",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Response body buffered to its end and rewritten.
    assert_eq!(r.text(), "[go-filter] HELLO GO");
    // The request.path property, echoed back.
    assert_eq!(header(&r, "x-go-path"), "/some/path?q=1");

    let seen = s.up.seen();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    assert_eq!(h.get("x-go-filter").map(|v| v.as_bytes()), Some(&b"on"[..]));
    // The source.address property replaced the client's value.
    let source = h
        .get_all("x-go-source")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect::<Vec<_>>();
    assert_eq!(source.len(), 1, "{source:?}");
    let addr: SocketAddr = source[0]
        .parse()
        .unwrap_or_else(|e| panic!("x-go-source {:?} is not an address: {e}", source[0]));
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_ne!(addr.port(), s.port, "the client's port, not the listener's");
    // The request body went upstream untouched.
    assert_eq!(&seen[0].body[..], b"hello go");

    // Large bodies, again and again: memory handed to the host must stay
    // intact while the Go garbage collector runs.
    for round in 0..5u8 {
        let letter = b'a' + round;
        let body = vec![letter; 256 * 1024];
        let r = post(&s.url("/big"), &[], body);
        assert_eq!(r.status, 200);
        let mut want = b"[go-filter] ".to_vec();
        want.extend(std::iter::repeat_n(letter.to_ascii_uppercase(), 256 * 1024));
        assert!(
            r.body[..] == want[..],
            "round {round}: a rewritten body of {} bytes differs",
            r.body.len()
        );
    }
}

#[test]
fn go_filter_local_reply_never_reaches_the_upstream() {
    let s = Setup::start();
    let r = get(&s.url("/go/deny"), &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "denied by go-filter\n");
    assert_eq!(header(&r, "x-denied-by"), "go-filter");
    assert_eq!(s.up.request_count(), 0);
    // Other paths still go through.
    assert_eq!(get(&s.url("/go/allowed"), &[]).status, 200);
    assert_eq!(s.up.request_count(), 1);
}

#[test]
fn go_filter_http_call_answer_resumes_the_request() {
    let s = Setup::start();
    let r = get(&s.url("/go/call/abc"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let called = s.callout.seen();
    assert_eq!(called.len(), 1, "one call to the tokens cluster");
    assert_eq!(called[0].method, "GET");
    assert_eq!(called[0].uri, "/token");
    let seen = s.up.seen();
    assert_eq!(seen.len(), 1, "the paused request was resumed");
    let h = &seen[0].headers;
    let get_h = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(get_h("x-go-token").as_deref(), Some("token-for-/token"));
    assert_eq!(get_h("x-go-callout-status").as_deref(), Some("200"));
    assert_eq!(get_h("x-go-callout-body").as_deref(), Some("callout-body"));
    assert_eq!(seen[0].uri, "/go/call/abc");
}

#[test]
fn go_filter_shared_data_queue_ticks_metrics_and_logs() {
    let s = Setup::start();
    const N: u64 = 6;
    // Fresh connections, so requests spread over both workers' VMs.
    let mut counts = Vec::new();
    for i in 1..=N {
        let r = get(&s.url(&format!("/q/{i}")), &[]);
        assert_eq!(r.status, 200);
        counts.push(
            header(&r, "x-go-request-count")
                .parse::<u64>()
                .expect("a number"),
        );
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=N).collect::<Vec<_>>(),
        "the CAS counter counts every request once"
    );

    // Queue items are dequeued by the VM that registered the queue, and
    // ticks run in the background: wait (boundedly) for both.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let stats = s.stats();
        let done = stats["dequeued"].as_u64() == Some(N) && stats["ticks"].as_u64() >= Some(3);
        if done || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stats["requests"].as_u64(), Some(N), "{stats}");
    assert_eq!(stats["dequeued"].as_u64(), Some(N), "{stats}");
    let ticks = stats["ticks"].as_u64().expect("ticks");
    assert!(ticks >= 3, "{stats}");
    // Ticks keep coming.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.stats()["ticks"].as_u64().expect("ticks") <= ticks {
        assert!(Instant::now() < deadline, "ticks stopped at {ticks}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let m = s.metrics();
    assert_eq!(
        sample(&m, r#"weft_filter_go_filter_requests{plugin="go"}"#),
        Some(N as f64),
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"weft_filter_go_filter_last_path_length{plugin="go"}"#),
        Some(format!("/q/{N}").len() as f64),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"weft_filter_go_filter_response_bytes_count{plugin="go"}"#
        ),
        Some(N as f64),
        "{m}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = s.weft.stderr_text();
        let logged = err.contains("go-filter: vm started")
            && err.contains("go-filter: configured (cluster \"tokens\", tick every 20 ms)")
            && (1..=N).all(|i| err.contains(&format!("go-filter: request /q/{i} #")));
        if logged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log lines missing from weft's stderr:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `go test ./...` in a module of the repository, offline, with the
/// toolchain `scripts/ensure-go.sh` finds; returns the combined output.
fn go_test(module: &Path) -> String {
    let root = weft_tests::workspace_root();
    let out = Command::new("bash")
        .arg(root.join("scripts/ensure-go.sh"))
        .output()
        .expect("run scripts/ensure-go.sh");
    assert!(
        out.status.success(),
        "ensure-go.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let go = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let target = weft_tests::target_dir();
    let out = Command::new(&go)
        .args(["test", "-count=1", "-v", "./..."])
        .current_dir(module)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOENV", "off")
        .env("GOCACHE", target.join("go-cache"))
        .env("GOPATH", target.join("go-path"))
        .env("CGO_ENABLED", "0")
        .env_remove("GOOS")
        .env_remove("GOARCH")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {go} test: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "go test in {} failed:\n{text}",
        module.display()
    );
    text
}

#[test]
fn go_sdk_and_example_unit_tests_pass_natively() {
    let root = weft_tests::workspace_root();
    let sdk = go_test(&root.join("sdk/go"));
    for package in [
        "weft.dev/sdk/go/internal/codec",
        "weft.dev/sdk/go/internal/hostcall",
        "weft.dev/sdk/go/proxytest",
        "weft.dev/sdk/go/proxywasm",
        "weft.dev/sdk/go/proxywasm/types",
    ] {
        assert!(
            sdk.lines()
                .any(|l| l.starts_with("ok") && l.contains(package)),
            "{package} did not pass:\n{sdk}"
        );
    }
    assert!(!sdk.contains("--- FAIL"), "{sdk}");
    let example = go_test(&root.join("examples/go-filter"));
    assert!(
        example.contains("--- PASS: TestCalloutAnswerResumesTheRequest"),
        "{example}"
    );
}
