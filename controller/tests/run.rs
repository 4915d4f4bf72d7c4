//! The `weft-controller` binary: `crd`, and `run --from-dir` end to end
//! (a real process, a watched directory, an HTTP/2 client on 127.0.0.1).

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_weft-controller");

#[test]
fn crd_prints_the_checked_in_crd() {
    let out = Command::new(BIN).arg("crd").output().unwrap();
    assert!(out.status.success());
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/k8s/crd.yaml"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), file);
}

struct Controller {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the controller on an ephemeral port; its address comes from its
/// "serving" log line (at most 100 lines read).
fn start(dir: &Path) -> Controller {
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "50ms",
            "--debounce-quiet",
            "20ms",
            "--from-dir",
        ])
        .arg(dir)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut log = Vec::new();
    for _ in 0..100 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("listen=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            // keep draining the log so the child never blocks on a full pipe
            std::thread::spawn(move || for _ in lines {});
            return Controller { child, addr };
        }
        log.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no serving line; log: {log:#?}");
}

fn manifest(name: &str, priority: i32, app: &str) -> String {
    format!(
        "apiVersion: extensions.weft.dev/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  url: oci://r/{name}:1\n  priority: {priority}\n  selector:\n    matchLabels:\n      app: {app}\n"
    )
}

fn write(dir: &Path, file: &str, text: &str, tick: u64) {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000 + tick);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[tokio::test]
async fn run_from_dir_streams_snapshots_and_follows_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        "a.yaml",
        &[manifest("auth", 5, "gw"), manifest("api-only", 0, "api")].join("---\n"),
        1,
    );
    write(
        dir,
        "bad.yaml",
        "apiVersion: extensions.weft.dev/v1alpha1\nkind: WasmPlugin\nmetadata: {name: broken, namespace: shop}\nspec: {url: oci://x, phase: LATE}\n",
        1,
    );
    let c = start(dir);

    let tcp = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    // the node line is the whole request body here (no reports)
    let node = "{\"name\": \"gw-1\", \"namespace\": \"shop\", \"labels\": {\"app\": \"gw\"}}\n";
    let req = http::Request::post(format!("http://{}/v1/stream", c.addr))
        .body(Full::new(Bytes::from(node)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut next = async || -> serde_json::Value {
        loop {
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let l = buf.split_to(i + 1);
                return serde_json::from_slice(&l[..i]).unwrap();
            }
            let f = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("no snapshot in 10 s");
            buf.extend_from_slice(&f.unwrap().unwrap().into_data().unwrap());
        }
    };
    let first = next().await;
    assert_eq!(first["plugins"][0]["name"], "shop.auth");
    assert_eq!(first["plugins"].as_array().unwrap().len(), 1);

    // an edit is picked up, debounced and pushed
    write(
        dir,
        "a.yaml",
        &[manifest("auth", 5, "gw"), manifest("log", 9, "gw")].join("---\n"),
        2,
    );
    let second = next().await;
    let names: Vec<&str> = second["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop.log", "shop.auth"]);

    // the bad document is reported by file and index in /status
    let tcp = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/status", c.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let err = status["source_errors"][0].as_str().unwrap();
    assert!(
        err.contains("bad.yaml: document 0: shop/broken: spec.phase: unknown variant `LATE`"),
        "{err}"
    );
    assert_eq!(
        status["plugins"]["shop/broken"]["conditions"][0]["status"],
        "False"
    );
    assert_eq!(status["plugins"]["shop/auth"]["proxiesTotal"], 1);
}
