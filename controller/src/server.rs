//! The streaming server: proxies connect, the [`Hub`] pushes each one its
//! snapshot, and their ACK/NACK reports feed the plugins' status.
//!
//! Protocol (`POST /v1/stream`, HTTP/2 or HTTP/1.1, newline-delimited JSON
//! both ways): the proxy's first request line is its node identity
//! (`{"name", "namespace", "labels"}`, the `node` block of weft.yaml);
//! each later line is a [`Report`] (`{"version", "errors": {plugin:
//! reason}}`; no errors: an ACK). Each response line is a [`Snapshot`]
//! (`{"version", "plugins": [PluginSpec…]}`): the full one at connect, then
//! a new one only when that proxy's snapshot changes. `GET /status` gives
//! every plugin's status as JSON, `GET /metrics` Prometheus metrics.

use crate::crd::{Condition, ProxyError, WasmPluginStatus};
use crate::select::{PluginKey, Workload, WorkloadKey};
use crate::snapshot::{Engine, PluginChange, PluginState, Snapshot, WorkloadChange};
use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Longest line a proxy may send.
pub const MAX_LINE: usize = 1 << 20;
/// Most errors kept in a plugin's `lastErrors`.
pub const MAX_LAST_ERRORS: usize = 10;

/// What a proxy reports after applying a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The snapshot version the report is about.
    pub version: String,
    /// Plugins that failed, by proxy name (`namespace.name`), with the reason.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
}

struct Proxy {
    conn: u64,
    /// The workload the proxy's `node` block describes (used when no
    /// workload source knows it).
    node: Workload,
    tx: watch::Sender<Bytes>,
    sent: String,
    report: Option<Report>,
}

#[derive(Default)]
struct Metrics {
    proxies: Gauge,
    pushes: Counter,
    nacks: Counter,
    plugins: Gauge,
    rejected: Gauge,
}

struct State {
    engine: Engine,
    proxies: BTreeMap<WorkloadKey, Proxy>,
    source_errors: Vec<String>,
    /// Workloads a workload source (Kubernetes Pods) reported; they win
    /// over a proxy's own `node` block and outlive its connection.
    sourced: std::collections::BTreeSet<WorkloadKey>,
}

/// The controller's shared state: the engine, the connected proxies and
/// what they reported.
pub struct Hub {
    state: Mutex<State>,
    next_conn: AtomicU64,
    metrics: Metrics,
    registry: Registry,
    /// Bumped whenever something a plugin's status depends on may have
    /// changed (plugins, workloads, connections, reports).
    status_tick: watch::Sender<u64>,
}

/// The `/status` document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusReport {
    /// Errors of the plugin source (bad files and documents).
    pub source_errors: Vec<String>,
    /// Connected proxies, as namespace/name.
    pub proxies: Vec<String>,
    /// Every plugin, keyed `namespace/name`.
    pub plugins: BTreeMap<String, WasmPluginStatus>,
}

fn line(snapshot: &Snapshot) -> Bytes {
    // A snapshot is plain data: its JSON encoding cannot fail.
    let mut v = serde_json::to_vec(snapshot).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

impl Hub {
    pub fn new(engine: Engine) -> Arc<Hub> {
        let metrics = Metrics::default();
        let mut registry = Registry::with_prefix("weft_controller");
        registry.register("proxies", "Connected proxies", metrics.proxies.clone());
        registry.register(
            "pushes",
            "Snapshots sent to proxies",
            metrics.pushes.clone(),
        );
        registry.register(
            "nacks",
            "Reports with errors received from proxies",
            metrics.nacks.clone(),
        );
        registry.register("plugins", "WasmPlugins known", metrics.plugins.clone());
        registry.register(
            "plugins_rejected",
            "WasmPlugins whose latest version was refused",
            metrics.rejected.clone(),
        );
        Arc::new(Hub {
            state: Mutex::new(State {
                engine,
                proxies: BTreeMap::new(),
                source_errors: Vec::new(),
                sourced: std::collections::BTreeSet::new(),
            }),
            next_conn: AtomicU64::new(1),
            metrics,
            registry,
            status_tick: watch::channel(0).0,
        })
    }

    /// A receiver that is marked changed whenever the plugins' status may
    /// have changed (what the Kubernetes status writer waits on).
    pub fn status_changes(&self) -> watch::Receiver<u64> {
        self.status_tick.subscribe()
    }

    fn touch_status(&self) {
        self.status_tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Pushes the connected proxies among `changed` their new snapshot.
    fn push(&self, st: &mut State, changed: &std::collections::BTreeSet<WorkloadKey>) {
        let State {
            engine, proxies, ..
        } = st;
        for wk in changed {
            if let (Some(p), Some(snap)) = (proxies.get_mut(wk), engine.snapshot(wk))
                && p.sent != snap.version
            {
                p.sent = snap.version.clone();
                p.tx.send_replace(line(snap));
                self.metrics.pushes.inc();
            }
        }
    }

    /// Applies workload changes from a workload source (Kubernetes Pods)
    /// and pushes the connected proxies whose snapshot changed; returns
    /// the workloads whose snapshot changed. A sourced workload wins over
    /// the `node` block its proxy sent; when the source removes it while
    /// its proxy is still connected, the proxy's `node` workload is used
    /// again.
    pub fn apply_workloads(&self, changes: Vec<WorkloadChange>) -> Vec<WorkloadKey> {
        let mut st = self.state.lock();
        let mut changed = std::collections::BTreeSet::new();
        for c in changes {
            match c {
                WorkloadChange::Upsert(w) => {
                    let key = w.key();
                    st.sourced.insert(key.clone());
                    if st.engine.upsert_workload(w) {
                        changed.insert(key);
                    }
                }
                WorkloadChange::Remove(key) => {
                    if !st.sourced.remove(&key) {
                        continue;
                    }
                    match st.proxies.get(&key).map(|p| p.node.clone()) {
                        Some(node) => {
                            if st.engine.upsert_workload(node) {
                                changed.insert(key);
                            }
                        }
                        None => {
                            st.engine.remove_workload(&key);
                        }
                    }
                }
            }
        }
        self.push(&mut st, &changed);
        drop(st);
        self.touch_status();
        changed.into_iter().collect()
    }

    /// Applies plugin changes and pushes the proxies whose snapshot changed.
    /// Returns the workloads whose snapshot changed.
    pub fn apply(&self, changes: Vec<PluginChange>) -> Vec<WorkloadKey> {
        let mut st = self.state.lock();
        let mut changed = std::collections::BTreeSet::new();
        for c in changes {
            changed.extend(st.engine.apply(c));
        }
        let (total, rejected) = st.engine.plugins().fold((0, 0), |(t, r), (_, s)| {
            (t + 1, r + i64::from(!s.errors.is_empty()))
        });
        self.metrics.plugins.set(total);
        self.metrics.rejected.set(rejected);
        self.push(&mut st, &changed);
        drop(st);
        self.touch_status();
        changed.into_iter().collect()
    }

    /// Replaces the source's errors shown in `/status`.
    pub fn set_source_errors(&self, errors: Vec<String>) {
        self.state.lock().source_errors = errors;
    }

    /// Registers a proxy (replacing an older connection of the same
    /// workload); returns its connection id and its snapshot channel.
    fn connect(&self, w: Workload) -> (WorkloadKey, u64, watch::Receiver<Bytes>) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let key = w.key();
        let mut st = self.state.lock();
        if !st.sourced.contains(&key) {
            st.engine.upsert_workload(w.clone());
        }
        let snap = st
            .engine
            .snapshot(&key)
            .cloned()
            .unwrap_or_else(|| Snapshot::new(Vec::new()));
        let (tx, rx) = watch::channel(line(&snap));
        self.metrics.pushes.inc();
        let old = st.proxies.insert(
            key.clone(),
            Proxy {
                conn,
                node: w,
                tx,
                sent: snap.version,
                report: None,
            },
        );
        if old.is_none() {
            self.metrics.proxies.inc();
        }
        drop(st);
        self.touch_status();
        (key, conn, rx)
    }

    fn report(&self, key: &WorkloadKey, conn: u64, report: Report) {
        if !report.errors.is_empty() {
            self.metrics.nacks.inc();
        }
        let mut st = self.state.lock();
        if let Some(p) = st.proxies.get_mut(key).filter(|p| p.conn == conn) {
            p.report = Some(report);
            drop(st);
            self.touch_status();
        }
    }

    fn disconnect(&self, key: &WorkloadKey, conn: u64) -> bool {
        let mut st = self.state.lock();
        if st.proxies.get(key).is_some_and(|p| p.conn == conn) {
            st.proxies.remove(key);
            if !st.sourced.contains(key) {
                st.engine.remove_workload(key);
            }
            self.metrics.proxies.dec();
            drop(st);
            self.touch_status();
            return true;
        }
        false
    }

    /// The status of every plugin (what a Kubernetes status writer would
    /// write to each WasmPlugin's `status`).
    pub fn status(&self) -> StatusReport {
        let st = self.state.lock();
        // which connected proxies run each plugin
        let mut running: BTreeMap<&PluginKey, Vec<(&WorkloadKey, &Proxy)>> = BTreeMap::new();
        for (wk, p) in &st.proxies {
            for served in st.engine.snapshot(wk).iter().flat_map(|s| &s.plugins) {
                running.entry(&served.key).or_default().push((wk, p));
            }
        }
        let plugins = st
            .engine
            .plugins()
            .map(|(k, s)| {
                let proxies = running.get(k).map_or(&[][..], Vec::as_slice);
                (k.to_string(), plugin_status(k, s, proxies))
            })
            .collect();
        StatusReport {
            source_errors: st.source_errors.clone(),
            proxies: st.proxies.keys().map(|k| k.to_string()).collect(),
            plugins,
        }
    }

    fn metrics_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: None,
    }
}

/// A plugin's status from the engine and the connected proxies' reports:
/// a proxy has loaded the plugin when it acknowledged the snapshot it was
/// last sent without an error for it, and failed it when its report on that
/// snapshot names it.
fn plugin_status(
    key: &PluginKey,
    s: &PluginState,
    running: &[(&WorkloadKey, &Proxy)],
) -> WasmPluginStatus {
    let name = key.proxy_name();
    let (mut total, mut loaded, mut failed) = (0u32, 0u32, 0u32);
    let mut last_errors = Vec::new();
    for (wk, p) in running {
        total += 1;
        let Some(r) = p.report.as_ref().filter(|r| r.version == p.sent) else {
            continue; // no report on the snapshot it was last sent yet
        };
        match r.errors.get(&name) {
            Some(e) => {
                failed += 1;
                if last_errors.len() < MAX_LAST_ERRORS {
                    last_errors.push(ProxyError {
                        proxy: wk.to_string(),
                        message: e.clone(),
                    });
                }
            }
            None => loaded += 1,
        }
    }
    let accepted = if s.errors.is_empty() {
        condition("Accepted", true, "Valid", String::new(), s.generation)
    } else {
        let serving = if s.served.is_some() {
            "; the last valid version keeps serving"
        } else {
            ""
        };
        condition(
            "Accepted",
            false,
            "Invalid",
            format!("{}{serving}", s.errors.join("; ")),
            s.generation,
        )
    };
    let ready = if total == 0 {
        condition(
            "Ready",
            false,
            "NoProxies",
            "no connected proxy runs it".to_owned(),
            s.generation,
        )
    } else if failed > 0 {
        condition(
            "Ready",
            false,
            "LoadFailed",
            format!("{failed} of {total} proxies failed to load it"),
            s.generation,
        )
    } else if loaded < total {
        condition(
            "Ready",
            false,
            "Pending",
            format!("{loaded} of {total} proxies loaded it"),
            s.generation,
        )
    } else {
        condition(
            "Ready",
            true,
            "Loaded",
            format!("{loaded} of {total} proxies loaded it"),
            s.generation,
        )
    };
    WasmPluginStatus {
        observed_generation: s.generation,
        conditions: vec![accepted, ready],
        ready: Some(format!("{loaded}/{total}")),
        proxies_total: total,
        proxies_loaded: loaded,
        proxies_failed: failed,
        last_errors,
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Reads newline-delimited lines from a request body.
struct Lines {
    body: Incoming,
    buf: BytesMut,
    done: bool,
}

impl Lines {
    /// The next line (without `\n`); `Ok(None)` at the end of the body.
    async fn next(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l = self.buf.split_to(i + 1).freeze();
                return Ok(Some(l.slice(..i)));
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!("line longer than {MAX_LINE} bytes"));
            }
            if self.done {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.buf.split().freeze()));
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => return Err(format!("reading the request: {e}")),
                None => self.done = true,
            }
        }
    }
}

/// Forgets a proxy when its response stream is dropped (the proxy went
/// away, or a newer connection of the same workload replaced it).
struct ConnGuard {
    hub: Arc<Hub>,
    key: WorkloadKey,
    conn: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.hub.disconnect(&self.key, self.conn) {
            tracing::info!(proxy = %self.key, conn = self.conn, "proxy disconnected");
        }
    }
}

async fn stream(hub: Arc<Hub>, req: Request<Incoming>) -> Response<Body> {
    let mut lines = Lines {
        body: req.into_body(),
        buf: BytesMut::new(),
        done: false,
    };
    let node: weft_config::Node = match lines.next().await {
        Ok(Some(l)) => match serde_json::from_slice(&l) {
            Ok(n) => n,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("first line: not a node identity: {e}\n"),
                );
            }
        },
        Ok(None) => {
            return text(
                StatusCode::BAD_REQUEST,
                "first line: missing node identity\n",
            );
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("first line: {e}\n")),
    };
    if node.name.is_empty() || node.namespace.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "first line: node name and namespace must not be empty\n",
        );
    }
    let (key, conn, mut rx) = hub.connect(Workload::from_node(&node));
    tracing::info!(proxy = %key, conn, "proxy connected");
    let reader_hub = hub.clone();
    let reader_key = key.clone();
    tokio::spawn(async move {
        // Reports until the proxy ends its request stream; the proxy stays
        // connected (and pushed to) until the response stream goes away.
        for n in 2..u64::MAX {
            match lines.next().await {
                Ok(Some(l)) if l.iter().all(u8::is_ascii_whitespace) => {}
                Ok(Some(l)) => match serde_json::from_slice::<Report>(&l) {
                    Ok(r) => reader_hub.report(&reader_key, conn, r),
                    Err(e) => tracing::warn!(proxy = %reader_key, line = n, "bad report: {e}"),
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(proxy = %reader_key, "reports ended: {e}");
                    break;
                }
            }
        }
    });
    rx.mark_changed();
    let guard = ConnGuard { hub, key, conn };
    let frames = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.changed().await.ok()?;
        let data = rx.borrow_and_update().clone();
        Some((Ok::<_, Infallible>(Frame::data(data)), (rx, guard)))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

async fn route(hub: Arc<Hub>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let r = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/stream") => stream(hub, req).await,
        (&Method::GET, "/status") => {
            let body = serde_json::to_vec_pretty(&hub.status()).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        (&Method::GET, "/metrics") => {
            let mut r = text(StatusCode::OK, hub.metrics_text());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (_, "/v1/stream" | "/status" | "/metrics") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        (_, path) => text(StatusCode::NOT_FOUND, format!("{path}: not found\n")),
    };
    Ok(r)
}

/// Serves the stream, `/status` and `/metrics` on `listener` (HTTP/1.1
/// and HTTP/2 with prior knowledge) until the task is dropped.
pub async fn serve(listener: TcpListener, hub: Arc<Hub>) -> std::io::Result<()> {
    serve_with(listener, hub, None).await
}

/// [`serve`], over TLS when `tls` is given (ALPN h2 and http/1.1).
pub async fn serve_with(
    listener: TcpListener,
    hub: Arc<Hub>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    loop {
        let (tcp, peer) = listener.accept().await?;
        let hub = hub.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| route(hub.clone(), req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                None => builder.serve_connection(TokioIo::new(tcp), svc).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => builder.serve_connection(TokioIo::new(stream), svc).await,
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

/// A TLS acceptor from a PEM certificate chain and key.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
