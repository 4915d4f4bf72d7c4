//! The Kubernetes mode against kube's own mock layer: a `kube::Client`
//! over `tower_test::mock::pair()` whose other end plays the API server
//! (list responses, watch streams fed event by event, status PATCHes
//! recorded), with the real streaming server on 127.0.0.1 and a real
//! HTTP/2 proxy stream.

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use weft_controller::debounce::DebounceConfig;
use weft_controller::kubernetes::{KubeOptions, start};
use weft_controller::select::DEFAULT_ROOT_NAMESPACE;
use weft_controller::server::{Hub, serve};
use weft_controller::snapshot::Engine;

const WAIT: Duration = Duration::from_secs(10);

type MockBody = UnsyncBoxBody<Bytes, Infallible>;

/// A request the controller made.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    content_type: String,
    body: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    WasmPlugins,
    Pods,
    Services,
}

impl Kind {
    fn of(path: &str) -> Option<Kind> {
        match path {
            "/apis/extensions.weft.dev/v1alpha1/wasmplugins" => Some(Kind::WasmPlugins),
            "/api/v1/pods" => Some(Kind::Pods),
            "/api/v1/services" => Some(Kind::Services),
            _ => None,
        }
    }
}

/// The mock API server's end: watch event senders and the requests seen.
struct ApiServer {
    events: BTreeMap<Kind, mpsc::UnboundedSender<Value>>,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// The PATCHes returned by `next_patch` so far.
    patches: Vec<Seen>,
}

impl ApiServer {
    /// Sends a watch event (`ADDED`, `MODIFIED`, `DELETED`).
    fn event(&self, kind: Kind, type_: &str, object: Value) {
        self.events[&kind]
            .send(json!({"type": type_, "object": object}))
            .unwrap();
    }

    /// The next request the controller made, waiting at most [`WAIT`].
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("no request from the controller within 10 s")
            .expect("the mock API server stopped")
    }

    /// The next PATCH, skipping other requests (at most 50 of them).
    async fn next_patch(&mut self) -> Seen {
        for _ in 0..50 {
            let s = self.next().await;
            if s.method == "PATCH" {
                self.patches.push(s.clone());
                return s;
            }
        }
        panic!("no PATCH among the next 50 requests");
    }
}

fn list(kind: Kind, items: Vec<Value>) -> Value {
    let (api_version, k) = match kind {
        Kind::WasmPlugins => ("extensions.weft.dev/v1alpha1", "WasmPluginList"),
        Kind::Pods => ("v1", "PodList"),
        Kind::Services => ("v1", "ServiceList"),
    };
    json!({"apiVersion": api_version, "kind": k, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn full(v: &Value) -> MockBody {
    Full::new(Bytes::from(v.to_string())).boxed_unsync()
}

/// Starts a mock API server whose lists hold `lists`; returns the client
/// and the server's end.
fn mock_api(lists: BTreeMap<Kind, Vec<Value>>) -> (kube::Client, ApiServer) {
    let (service, mut handle) =
        tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<MockBody>>();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let mut events = BTreeMap::new();
    let mut streams = BTreeMap::new();
    for kind in [Kind::WasmPlugins, Kind::Pods, Kind::Services] {
        let (tx, rx) = mpsc::unbounded_channel::<Value>();
        events.insert(kind, tx);
        streams.insert(kind, rx);
    }
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body_json = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let _ = seen_tx.send(Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                content_type,
                body: body_json,
            });
            let path = parts.uri.path();
            let query = parts.uri.query().unwrap_or("");
            let resp = if parts.method == http::Method::PATCH {
                // /apis/…/namespaces/NS/wasmplugins/NAME/status
                let seg: Vec<&str> = path.split('/').collect();
                let (ns, name) = (seg[5], seg[7]);
                full(&json!({
                    "apiVersion": "extensions.weft.dev/v1alpha1",
                    "kind": "WasmPlugin",
                    "metadata": {"namespace": ns, "name": name, "resourceVersion": "99"},
                    "spec": {"url": "oci://r/p:1"},
                }))
            } else {
                let kind = Kind::of(path).unwrap_or_else(|| panic!("unexpected path {path}"));
                if query.contains("watch=true") {
                    match streams.remove(&kind) {
                        Some(rx) => {
                            let lines = futures_util::stream::unfold(rx, |mut rx| async move {
                                let v = rx.recv().await?;
                                Some((Ok(Frame::data(Bytes::from(format!("{v}\n")))), rx))
                            });
                            StreamBody::new(lines).boxed_unsync()
                        }
                        // a second watch of a kind: an open, silent stream
                        None => StreamBody::new(futures_util::stream::pending::<
                            Result<Frame<Bytes>, Infallible>,
                        >())
                        .boxed_unsync(),
                    }
                } else {
                    full(&list(kind, lists.get(&kind).cloned().unwrap_or_default()))
                }
            };
            send.send_response(http::Response::new(resp));
        }
    });
    (
        kube::Client::new(service, "default"),
        ApiServer {
            events,
            seen,
            patches: Vec::new(),
        },
    )
}

fn wasmplugin(ns: &str, name: &str, rv: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "extensions.weft.dev/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"namespace": ns, "name": name, "resourceVersion": rv, "generation": 1},
        "spec": spec,
    })
}

fn pod(ns: &str, name: &str, rv: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": ns, "name": name, "resourceVersion": rv, "labels": labels},
        "spec": {"serviceAccountName": "weft-gateway", "containers": [{"name": "weft", "image": "weft"}]},
        "status": {"phase": "Running", "podIP": "10.1.2.3"},
    })
}

fn service(ns: &str, name: &str, rv: &str, selector: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": ns, "name": name, "resourceVersion": rv},
        "spec": {"selector": selector},
    })
}

/// The controller on the mock: Kubernetes source started and synced,
/// streaming server on 127.0.0.1.
async fn controller(lists: BTreeMap<Kind, Vec<Value>>) -> (Arc<Hub>, SocketAddr, ApiServer) {
    controller_with(lists, None).await
}

async fn controller_with(
    lists: BTreeMap<Kind, Vec<Value>>,
    pod_selector: Option<&str>,
) -> (Arc<Hub>, SocketAddr, ApiServer) {
    let (client, api) = mock_api(lists);
    let hub = Hub::new(Engine::new(DEFAULT_ROOT_NAMESPACE));
    let synced = start(
        client,
        hub.clone(),
        KubeOptions {
            pod_selector: pod_selector.map(str::to_owned),
            debounce: DebounceConfig {
                quiet: Duration::from_millis(10),
                max: Duration::from_millis(100),
            },
            status_quiet: Duration::from_millis(20),
            status_retry: Duration::from_millis(200),
        },
    );
    tokio::time::timeout(WAIT, synced)
        .await
        .expect("not synced within 10 s")
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, hub.clone()));
    (hub, addr, api)
}

type ReqBody =
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// A proxy's stream: lines to send, lines received.
struct Proxy {
    tx: mpsc::UnboundedSender<Bytes>,
    body: Incoming,
    buf: BytesMut,
}

impl Proxy {
    /// Connects as `namespace/name` with the given `node` labels.
    async fn connect(addr: SocketAddr, ns: &str, name: &str, labels: Value) -> Proxy {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let node = json!({"name": name, "namespace": ns, "labels": labels});
        tx.send(Bytes::from(format!("{node}\n"))).unwrap();
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            let b = rx.recv().await?;
            Some((Ok(Frame::data(b)), rx))
        });
        let body: ReqBody = StreamBody::new(Box::pin(frames));
        let req = http::Request::post(format!("http://{addr}/v1/stream"))
            .body(body)
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        Proxy {
            tx,
            body: resp.into_body(),
            buf: BytesMut::new(),
        }
    }

    fn send(&self, v: Value) {
        self.tx.send(Bytes::from(format!("{v}\n"))).unwrap();
    }

    /// The next snapshot, waiting at most [`WAIT`].
    async fn next(&mut self) -> Value {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l = self.buf.split_to(i + 1);
                return serde_json::from_slice(&l[..i]).unwrap();
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("no snapshot within 10 s")
                .expect("stream ended");
            if let Ok(d) = frame.unwrap().into_data() {
                self.buf.extend_from_slice(&d);
            }
        }
    }
}

fn names(snapshot: &Value) -> Vec<&str> {
    snapshot["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

fn lists(entries: Vec<(Kind, Vec<Value>)>) -> BTreeMap<Kind, Vec<Value>> {
    entries.into_iter().collect()
}

#[tokio::test]
async fn lists_then_watches_every_kind_in_all_namespaces() {
    let (_hub, _addr, mut api) = controller(BTreeMap::new()).await;
    let mut reqs = Vec::new();
    for _ in 0..6 {
        let s = api.next().await;
        assert_eq!(s.method, "GET", "{s:?}");
        reqs.push(s.uri);
    }
    reqs.sort();
    assert_eq!(
        reqs,
        [
            "/api/v1/pods?&limit=500",
            "/api/v1/pods?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=1",
            "/api/v1/services?&limit=500",
            "/api/v1/services?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=1",
            "/apis/extensions.weft.dev/v1alpha1/wasmplugins?&limit=500",
            "/apis/extensions.weft.dev/v1alpha1/wasmplugins?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=1",
        ]
    );
}

#[tokio::test]
async fn a_pod_selector_narrows_the_pod_watch_only() {
    let (_hub, _addr, mut api) =
        controller_with(BTreeMap::new(), Some("weft.dev/proxy=true")).await;
    let mut pods = Vec::new();
    for _ in 0..6 {
        let s = api.next().await;
        if s.uri.starts_with("/api/v1/pods") {
            pods.push(s.uri);
        } else {
            assert!(!s.uri.contains("labelSelector"), "{}", s.uri);
        }
    }
    pods.sort();
    assert_eq!(
        pods,
        [
            "/api/v1/pods?&labelSelector=weft.dev%2Fproxy%3Dtrue&limit=500",
            "/api/v1/pods?&watch=true&timeoutSeconds=290&labelSelector=weft.dev%2Fproxy%3Dtrue&allowWatchBookmarks=true&resourceVersion=1",
        ]
    );
}

#[tokio::test]
async fn listed_objects_are_served_at_connect_and_watch_events_follow() {
    let (_hub, addr, api) = controller(lists(vec![
        (
            Kind::WasmPlugins,
            vec![wasmplugin(
                "shop",
                "by-label",
                "2",
                json!({"url": "oci://r/by-label:1", "selector": {"matchLabels": {"app": "gw"}}}),
            )],
        ),
        (
            Kind::Pods,
            vec![pod(
                "shop",
                "gw-1",
                "3",
                json!({"app": "gw", "gateway.networking.k8s.io/gateway-name": "edge"}),
            )],
        ),
        (
            Kind::Services,
            vec![service("shop", "web", "4", json!({"app": "gw"}))],
        ),
    ]))
    .await;
    // The proxy's node block has no labels: the Pod's labels select it.
    let mut proxy = Proxy::connect(addr, "shop", "gw-1", json!({})).await;
    assert_eq!(names(&proxy.next().await), ["shop.by-label"]);

    // A plugin on the pod's Service, one on its Gateway, one elsewhere.
    api.event(
        Kind::WasmPlugins,
        "ADDED",
        wasmplugin(
            "shop",
            "on-service",
            "5",
            json!({"url": "oci://r/s:1", "phase": "AUTHZ", "targetRefs": [{"kind": "Service", "name": "web"}]}),
        ),
    );
    assert_eq!(
        names(&proxy.next().await),
        ["shop.on-service", "shop.by-label"]
    );
    api.event(
        Kind::WasmPlugins,
        "ADDED",
        wasmplugin(
            "shop",
            "on-gateway",
            "6",
            json!({"url": "oci://r/g:1", "phase": "AUTHN", "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "edge"}]}),
        ),
    );
    api.event(
        Kind::WasmPlugins,
        "ADDED",
        wasmplugin("bank", "elsewhere", "7", json!({"url": "oci://r/e:1"})),
    );
    assert_eq!(
        names(&proxy.next().await),
        ["shop.on-gateway", "shop.on-service", "shop.by-label"]
    );

    // The Service stops selecting the pod: its plugin goes.
    api.event(
        Kind::Services,
        "MODIFIED",
        service("shop", "web", "8", json!({"app": "other"})),
    );
    assert_eq!(
        names(&proxy.next().await),
        ["shop.on-gateway", "shop.by-label"]
    );

    // A plugin deleted is removed.
    api.event(
        Kind::WasmPlugins,
        "DELETED",
        wasmplugin("shop", "on-gateway", "9", json!({"url": "oci://r/g:1"})),
    );
    assert_eq!(names(&proxy.next().await), ["shop.by-label"]);

    // The pod's labels change: the label-selected plugin goes.
    api.event(
        Kind::Pods,
        "MODIFIED",
        pod("shop", "gw-1", "10", json!({"app": "api"})),
    );
    assert!(names(&proxy.next().await).is_empty());
    api.event(
        Kind::Pods,
        "MODIFIED",
        pod("shop", "gw-1", "11", json!({"app": "gw"})),
    );
    assert_eq!(names(&proxy.next().await), ["shop.by-label"]);

    // Reconnecting (still without labels) keeps the pod's workload.
    drop(proxy);
    let mut proxy = Proxy::connect(addr, "shop", "gw-1", json!({})).await;
    assert_eq!(names(&proxy.next().await), ["shop.by-label"]);

    // The pod is deleted while its proxy is still connected: the proxy's
    // own node block (no labels) is its workload again.
    api.event(
        Kind::Pods,
        "DELETED",
        pod("shop", "gw-1", "12", json!({"app": "gw"})),
    );
    assert!(names(&proxy.next().await).is_empty());
    drop(proxy);
}

#[tokio::test]
async fn acks_and_nacks_become_status_patches() {
    let (_hub, addr, mut api) = controller(lists(vec![
        (
            Kind::WasmPlugins,
            vec![
                wasmplugin("shop", "auth", "2", json!({"url": "oci://r/auth:1"})),
                // runs on no proxy: its status never changes after the first write
                wasmplugin("bank", "other", "3", json!({"url": "oci://r/other:1"})),
            ],
        ),
        (
            Kind::Pods,
            vec![pod("shop", "gw-1", "3", json!({"app": "gw"}))],
        ),
    ]))
    .await;
    let mut proxy = Proxy::connect(addr, "shop", "gw-1", json!({})).await;
    let snap = proxy.next().await;
    assert_eq!(names(&snap), ["shop.auth"]);

    // A NACK naming the plugin: one PATCH on its status subresource.
    proxy.send(json!({"version": snap["version"], "errors": {"shop.auth": "boom: bad module"}}));
    // earlier PATCHes may show no proxy, or one without a report yet
    let mut patch = api.next_patch().await;
    for _ in 0..10 {
        if patch.uri.contains("/shop/wasmplugins/auth/")
            && patch.body["status"]["proxiesFailed"] == 1
        {
            break;
        }
        patch = api.next_patch().await;
    }
    assert_eq!(
        patch.uri,
        "/apis/extensions.weft.dev/v1alpha1/namespaces/shop/wasmplugins/auth/status?"
    );
    assert_eq!(patch.content_type, "application/merge-patch+json");
    let status = &patch.body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["proxiesTotal"], 1);
    assert_eq!(status["proxiesFailed"], 1);
    assert_eq!(status["ready"], "0/1");
    assert_eq!(status["lastErrors"][0]["proxy"], "shop/gw-1");
    assert_eq!(status["lastErrors"][0]["message"], "boom: bad module");
    let ready = &status["conditions"][1];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "LoadFailed");
    let t = ready["lastTransitionTime"].as_str().unwrap();
    assert!(t.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{t}");
    assert_eq!(status["conditions"][0]["type"], "Accepted");
    assert_eq!(status["conditions"][0]["status"], "True");

    // An ACK: Ready, and lastErrors is removed (null in the merge patch).
    proxy.send(json!({"version": snap["version"]}));
    let patch = api.next_patch().await;
    let status = &patch.body["status"];
    assert_eq!(status["proxiesLoaded"], 1);
    assert_eq!(status["proxiesFailed"], 0);
    assert!(status.as_object().unwrap().contains_key("lastErrors"));
    assert_eq!(status["lastErrors"], Value::Null);
    assert_eq!(status["conditions"][1]["status"], "True");
    assert_eq!(status["conditions"][1]["reason"], "Loaded");
    // Ready went False then True: a new transition time each time
    assert_ne!(status["conditions"][1]["lastTransitionTime"], Value::Null);

    // Only changed statuses are written: bank/other once, in the first
    // round (each round patches in key order, bank/ before shop/, so a
    // second one would have arrived before the ACK's patch).
    let other: Vec<&Seen> = api
        .patches
        .iter()
        .filter(|s| s.uri.contains("/namespaces/bank/wasmplugins/other/status"))
        .collect();
    assert_eq!(other.len(), 1, "{other:#?}");
    assert_eq!(
        other[0].body["status"]["conditions"][1]["reason"],
        "NoProxies"
    );
}

#[tokio::test]
async fn an_invalid_plugin_gets_accepted_false_and_is_not_served() {
    let (_hub, addr, mut api) = controller(lists(vec![(
        Kind::Pods,
        vec![pod("shop", "gw-1", "3", json!({"app": "gw"}))],
    )]))
    .await;
    let mut proxy = Proxy::connect(addr, "shop", "gw-1", json!({})).await;
    assert!(names(&proxy.next().await).is_empty());
    // http(s) without sha256 passes the schema but not validate()
    api.event(
        Kind::WasmPlugins,
        "ADDED",
        wasmplugin("shop", "bad", "5", json!({"url": "https://h/p.wasm"})),
    );
    let patch = api.next_patch().await;
    assert_eq!(
        patch.uri,
        "/apis/extensions.weft.dev/v1alpha1/namespaces/shop/wasmplugins/bad/status?"
    );
    let accepted = &patch.body["status"]["conditions"][0];
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "Invalid");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap()
            .contains("sha256: required for an http(s) url"),
        "{accepted}"
    );
}
