//! The streaming server, with real HTTP/2 clients on 127.0.0.1.

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use weft_controller::crd::WasmPlugin;
use weft_controller::select::DEFAULT_ROOT_NAMESPACE;
use weft_controller::server::{Hub, StatusReport, serve};
use weft_controller::snapshot::{Engine, PluginChange};

fn plugin(ns: &str, name: &str, spec: serde_json::Value) -> PluginChange {
    let mut spec = spec;
    spec["url"] = serde_json::json!(format!("oci://r/{name}:1"));
    let mut p = WasmPlugin::new(name, serde_json::from_value(spec).unwrap());
    p.metadata.namespace = Some(ns.to_owned());
    p.metadata.generation = Some(3);
    PluginChange::Upsert(Box::new(p))
}

async fn start() -> (Arc<Hub>, SocketAddr) {
    let hub = Hub::new(Engine::new(DEFAULT_ROOT_NAMESPACE));
    hub.apply(vec![plugin(
        "shop",
        "auth",
        serde_json::json!({"phase": "AUTHZ", "selector": {"matchLabels": {"app": "gw"}}}),
    )]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, hub.clone()));
    (hub, addr)
}

type ReqBody =
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

async fn h2(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<ReqBody> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// A proxy's stream: lines to send, lines received.
struct Proxy {
    status: http::StatusCode,
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    body: Incoming,
    buf: BytesMut,
}

impl Proxy {
    async fn connect(addr: SocketAddr, first_line: &str) -> Proxy {
        let mut send = h2(addr).await;
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        tx.send(Bytes::from(format!("{first_line}\n"))).unwrap();
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            let b = rx.recv().await?;
            Some((Ok(Frame::data(b)), rx))
        });
        let body: ReqBody = StreamBody::new(Box::pin(frames));
        let req = http::Request::post(format!("http://{addr}/v1/stream"))
            .body(body)
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        Proxy {
            status: resp.status(),
            tx: Some(tx),
            body: resp.into_body(),
            buf: BytesMut::new(),
        }
    }

    async fn node(addr: SocketAddr, name: &str, app: &str) -> Proxy {
        let node = serde_json::json!({"name": name, "namespace": "shop", "labels": {"app": app}});
        let p = Proxy::connect(addr, &node.to_string()).await;
        assert_eq!(p.status, http::StatusCode::OK);
        p
    }

    fn send(&self, v: serde_json::Value) {
        self.tx
            .as_ref()
            .unwrap()
            .send(Bytes::from(format!("{v}\n")))
            .unwrap();
    }

    /// The next line, as JSON; None at the end of the stream.
    async fn next(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l = self.buf.split_to(i + 1);
                return Some(serde_json::from_slice(&l[..i]).unwrap());
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("no line within 10 s")?;
            if let Ok(d) = frame.unwrap().into_data() {
                self.buf.extend_from_slice(&d);
            }
        }
    }

    async fn rest_text(self) -> String {
        let b = self.body.collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }
}

fn names(snapshot: &serde_json::Value) -> Vec<&str> {
    snapshot["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

async fn get(addr: SocketAddr, path: &str) -> (http::StatusCode, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{addr}{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn status(addr: SocketAddr) -> StatusReport {
    let (code, body) = get(addr, "/status").await;
    assert_eq!(code, http::StatusCode::OK);
    serde_json::from_str(&body).unwrap()
}

/// Polls /status until `done` holds (reports are applied asynchronously);
/// at most 200 tries, 10 ms apart.
async fn status_until(addr: SocketAddr, done: impl Fn(&StatusReport) -> bool) -> StatusReport {
    for _ in 0..200 {
        let s = status(addr).await;
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "status never reached the expected state: {:#?}",
        status(addr).await
    );
}

#[tokio::test]
async fn full_snapshot_at_connect_then_only_changes_that_concern_the_proxy() {
    let (hub, addr) = start().await;
    let mut p = Proxy::node(addr, "gw-1", "gw").await;
    let first = p.next().await.unwrap();
    assert_eq!(names(&first), ["shop.auth"]);
    assert_eq!(first["plugins"][0]["url"], "oci://r/auth:1");
    assert_eq!(first["plugins"][0]["phase"], "AUTHZ");

    // a plugin for other workloads: no push to this proxy
    let changed = hub.apply(vec![plugin(
        "shop",
        "other",
        serde_json::json!({"selector": {"matchLabels": {"app": "api"}}}),
    )]);
    assert!(changed.is_empty(), "{changed:?}");
    // a plugin for it: pushed, in chain order (AUTHN before AUTHZ)
    hub.apply(vec![plugin(
        "shop",
        "login",
        serde_json::json!({"phase": "AUTHN", "selector": {"matchLabels": {"app": "gw"}}}),
    )]);
    let second = p.next().await.unwrap();
    assert_eq!(names(&second), ["shop.login", "shop.auth"]);
    assert_ne!(second["version"], first["version"]);

    // a root-namespace plugin with no selector applies too
    hub.apply(vec![plugin(
        DEFAULT_ROOT_NAMESPACE,
        "stats",
        serde_json::json!({"phase": "STATS"}),
    )]);
    let third = p.next().await.unwrap();
    assert_eq!(
        names(&third),
        ["shop.login", "shop.auth", "weft-system.stats"]
    );

    // a delete
    hub.apply(vec![PluginChange::Delete(
        weft_controller::select::PluginKey {
            namespace: "shop".into(),
            name: "login".into(),
        },
    )]);
    assert_eq!(
        names(&p.next().await.unwrap()),
        ["shop.auth", "weft-system.stats"]
    );

    let (code, metrics) = get(addr, "/metrics").await;
    assert_eq!(code, http::StatusCode::OK);
    assert!(metrics.contains("weft_controller_proxies 1"), "{metrics}");
    assert!(
        metrics.contains("weft_controller_pushes_total 4"),
        "{metrics}"
    );
    assert!(metrics.contains("weft_controller_plugins 3"), "{metrics}");
}

#[tokio::test]
async fn acks_and_nacks_make_the_status() {
    let (_hub, addr) = start().await;
    let mut a = Proxy::node(addr, "gw-a", "gw").await;
    let mut b = Proxy::node(addr, "gw-b", "gw").await;
    let _api = Proxy::node(addr, "api", "api").await;
    let va = a.next().await.unwrap()["version"].clone();
    let vb = b.next().await.unwrap()["version"].clone();

    let s = status(addr).await;
    let auth = &s.plugins["shop/auth"];
    assert_eq!(
        (auth.proxies_total, auth.proxies_loaded, auth.proxies_failed),
        (2, 0, 0)
    );
    assert_eq!(auth.conditions[0].type_, "Accepted");
    assert_eq!(auth.conditions[0].status, "True");
    assert_eq!(auth.conditions[1].reason, "Pending");
    assert_eq!(auth.observed_generation, Some(3));

    a.send(serde_json::json!({"version": va, "errors": {}}));
    b.send(serde_json::json!({"version": vb, "errors": {"shop.auth": "module trapped in on_configure"}}));
    let s = status_until(addr, |s| {
        s.plugins["shop/auth"].proxies_failed == 1 && s.plugins["shop/auth"].proxies_loaded == 1
    })
    .await;
    let auth = &s.plugins["shop/auth"];
    assert_eq!(auth.ready.as_deref(), Some("1/2"));
    assert_eq!(auth.conditions[1].status, "False");
    assert_eq!(auth.conditions[1].reason, "LoadFailed");
    assert_eq!(auth.last_errors.len(), 1);
    assert_eq!(auth.last_errors[0].proxy, "shop/gw-b");
    assert_eq!(
        auth.last_errors[0].message,
        "module trapped in on_configure"
    );

    // a report about an older version does not count
    b.send(serde_json::json!({"version": "stale", "errors": {}}));
    let s = status_until(addr, |s| s.plugins["shop/auth"].proxies_failed == 0).await;
    assert_eq!(s.plugins["shop/auth"].proxies_loaded, 1);
    b.send(serde_json::json!({"version": vb}));
    let s = status_until(addr, |s| s.plugins["shop/auth"].proxies_loaded == 2).await;
    let auth = &s.plugins["shop/auth"];
    assert_eq!(auth.conditions[1].status, "True");
    assert_eq!(auth.ready.as_deref(), Some("2/2"));
    assert_eq!(s.proxies, ["shop/api", "shop/gw-a", "shop/gw-b"]);

    // a proxy that ends its report stream stays connected and pushed to
    drop(a.tx.take());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(status(addr).await.proxies.len(), 3);
    // a proxy that goes away is forgotten
    drop(a);
    let s = status_until(addr, |s| s.proxies.len() == 2).await;
    assert_eq!(s.plugins["shop/auth"].proxies_total, 1);
}

#[tokio::test]
async fn a_reconnecting_proxy_replaces_its_old_stream() {
    let (_hub, addr) = start().await;
    let mut old = Proxy::node(addr, "gw-1", "gw").await;
    let v = old.next().await.unwrap();
    let mut new = Proxy::node(addr, "gw-1", "gw").await;
    assert_eq!(new.next().await.unwrap(), v);
    assert_eq!(old.next().await, None, "the old stream ends");
    // the old stream's end does not remove the new connection
    drop(old);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(status(addr).await.proxies, ["shop/gw-1"]);
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_reason() {
    let (_hub, addr) = start().await;
    let p = Proxy::connect(addr, "{\"name\": 5}").await;
    assert_eq!(p.status, http::StatusCode::BAD_REQUEST);
    assert!(
        p.rest_text()
            .await
            .starts_with("first line: not a node identity: invalid type")
    );
    let p = Proxy::connect(addr, "{\"name\": \"\", \"namespace\": \"shop\"}").await;
    assert_eq!(p.status, http::StatusCode::BAD_REQUEST);
    assert!(p.rest_text().await.contains("must not be empty"));
    let (code, body) = get(addr, "/nope").await;
    assert_eq!(code, http::StatusCode::NOT_FOUND);
    assert_eq!(body, "/nope: not found\n");
    let (code, _) = get(addr, "/v1/stream").await;
    assert_eq!(code, http::StatusCode::METHOD_NOT_ALLOWED);
}
