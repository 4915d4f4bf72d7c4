//! Workers: thread-per-core. Each worker is a thread with a current-thread
//! tokio runtime and a `LocalSet`; it owns its listeners' sockets (bound
//! with `SO_REUSEPORT`, so the kernel spreads connections), its plugin VMs,
//! its connection pools and its connections. A new configuration arrives
//! as a new [`Generation`] on a watch channel; each worker builds its own
//! [`WorkerGen`] from it, new streams use it and streams in flight finish
//! on the one they started with.

use crate::access_log::{AccessLogger, AccessRecord};
use crate::generation::Generation;
use crate::life;
use crate::metrics::ListenerMetrics;
use crate::upstream::ClusterSet;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use weft_wasm_host::{ConnectionInfo, FilterChain, PluginInstance};

/// Spawns `!Send` futures on the worker's `LocalSet` (hyper's executor).
#[derive(Clone, Copy)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// One listener as a worker serves it in one generation.
pub struct ListenerCtx {
    pub name: String,
    pub default_cluster: Option<String>,
    pub metrics: Arc<ListenerMetrics>,
    pub access: AccessLogger,
    pub tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
    pub limits: Arc<crate::generation::ListenerLimits>,
    pub open_connections: Arc<AtomicUsize>,
    /// A FAIL_CLOSE plugin of this listener whose module is not available
    /// yet: every stream is answered 503 with this text.
    pub unavailable: Option<Rc<str>>,
}

impl ListenerCtx {
    /// Records a finished request (metrics and access log).
    pub fn finish(&self, record: &AccessRecord) {
        self.metrics.record(
            record.status,
            record.started.elapsed().as_secs_f64(),
            &record.flags,
        );
        if self.access.enabled() {
            self.access.log(record.json(&self.name));
        }
    }
}

/// A worker's own instance of a generation.
pub struct WorkerGen {
    pub generation: Arc<Generation>,
    chains: HashMap<String, FilterChain>,
    pub listeners: HashMap<String, Rc<ListenerCtx>>,
    pub clusters: Rc<ClusterSet>,
    pub buffer_limit: usize,
}

impl WorkerGen {
    pub fn chain_for(&self, listener: &str) -> &FilterChain {
        self.chains
            .get(listener)
            .unwrap_or_else(|| self.chains.get("").expect("the empty chain exists"))
    }

    /// Instantiates the generation's plugins and clusters on this worker.
    pub async fn build(
        generation: Arc<Generation>,
        access: &AccessLogger,
    ) -> Result<Rc<WorkerGen>, String> {
        let clusters = Rc::new(ClusterSet::new(
            &generation.cluster_settings,
            &generation.cluster_state,
        ));
        let boundary: Rc<dyn weft_wasm_host::ProxyBoundary> =
            Rc::new(crate::boundary::WorkerBoundary::new(
                clusters.clone(),
                generation.cluster_names.clone(),
            ));
        type Placed<'a> = (
            Rc<PluginInstance>,
            &'a Option<Vec<String>>,
            &'a [weft_config::TrafficSelector],
        );
        let mut instances: Vec<Placed> = Vec::new();
        for loaded in &generation.plugins {
            match PluginInstance::start(loaded.plugin.clone(), boundary.clone()).await {
                Ok(i) => instances.push((i, &loaded.listeners, &loaded.traffic)),
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut chains = HashMap::new();
        chains.insert(String::new(), FilterChain::default());
        let mut listeners = HashMap::new();
        for l in &generation.listeners {
            let filters = instances
                .iter()
                .filter(|(_, only, traffic)| {
                    only.as_ref()
                        .is_none_or(|names| names.iter().any(|n| n == &l.name))
                        && weft_config::TrafficSelector::select(traffic, l.address.port())
                })
                .map(|(i, _, _)| i.clone())
                .collect();
            chains.insert(l.name.clone(), FilterChain::new(filters));
            listeners.insert(
                l.name.clone(),
                Rc::new(ListenerCtx {
                    name: l.name.clone(),
                    default_cluster: l.default_cluster.clone(),
                    metrics: generation.listener_metrics(&l.name),
                    access: access.clone(),
                    tls: l.tls.clone(),
                    limits: l.limits.clone(),
                    open_connections: l.open_connections.clone(),
                    unavailable: generation
                        .pending_plugins
                        .iter()
                        .find(|p| {
                            p.fail_close
                                && p.listeners
                                    .as_ref()
                                    .is_none_or(|names| names.iter().any(|n| n == &l.name))
                                && weft_config::TrafficSelector::select(
                                    &p.traffic,
                                    l.address.port(),
                                )
                        })
                        .map(|p| {
                            Rc::from(format!(
                                "plugin {} is not available: its module could not be fetched\n",
                                p.name
                            ))
                        }),
                }),
            );
        }
        Ok(Rc::new(WorkerGen {
            buffer_limit: generation.buffer_limit,
            generation,
            chains,
            listeners,
            clusters,
        }))
    }
}

/// Binds `addr` with `SO_REUSEPORT`, so every worker can bind it.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

static CONNECTION_IDS: AtomicU64 = AtomicU64::new(1);

/// The accept loops a worker runs: listener name → (address, stop).
#[derive(Default)]
struct Running {
    loops: HashMap<String, (SocketAddr, CancellationToken)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts accept loops for the listeners new in `generation` (taking
    /// this worker's socket) and stops those it no longer has: they stop
    /// accepting and their connections drain.
    fn sync(
        &mut self,
        worker: usize,
        generation: &Generation,
        current: &Rc<RefCell<Rc<WorkerGen>>>,
        root: &CancellationToken,
    ) {
        for spec in &generation.listeners {
            if self
                .loops
                .get(&spec.name)
                .is_some_and(|(a, _)| *a == spec.address)
            {
                continue;
            }
            if let Some((_, stop)) = self.loops.remove(&spec.name) {
                stop.cancel();
            }
            let Some(socket) = spec.sockets.lock().pop() else {
                tracing::error!(worker, listener = %spec.name, "no socket left for this worker");
                continue;
            };
            let stop = root.child_token();
            self.tasks.push(tokio::task::spawn_local(accept_loop(
                worker,
                spec.name.clone(),
                socket,
                current.clone(),
                stop.clone(),
            )));
            self.loops.insert(spec.name.clone(), (spec.address, stop));
        }
        self.loops.retain(|name, (address, stop)| {
            let keep = generation
                .listeners
                .iter()
                .any(|l| &l.name == name && l.address == *address);
            if !keep {
                tracing::info!(worker, listener = %name, "listener removed: draining its connections");
                stop.cancel();
            }
            keep
        });
        self.tasks.retain(|t| !t.is_finished());
    }

    /// A generation this worker could not build: its new sockets are closed
    /// so the kernel sends no connection to a socket nobody accepts on.
    fn discard(&self, generation: &Generation) {
        for spec in &generation.listeners {
            if self
                .loops
                .get(&spec.name)
                .is_none_or(|(a, _)| *a != spec.address)
            {
                drop(spec.sockets.lock().pop());
            }
        }
    }
}

/// Runs one worker until `shutdown` turns true and its connections drain.
pub fn run_worker(
    index: usize,
    mut generations: watch::Receiver<Arc<Generation>>,
    mut shutdown: watch::Receiver<bool>,
    access: AccessLogger,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("weft-worker-{index}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(format!(
                        "worker {index}: cannot start its runtime: {e}"
                    )));
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let root = CancellationToken::new();
                let running = Rc::new(RefCell::new(Running::default()));
                let first = generations.borrow_and_update().clone();
                let current = match WorkerGen::build(first.clone(), &access).await {
                    Ok(g) => Rc::new(RefCell::new(g)),
                    Err(e) => {
                        running.borrow().discard(&first);
                        let _ = ready.send(Err(format!("worker {index}: {e}")));
                        return;
                    }
                };
                running.borrow_mut().sync(index, &first, &current, &root);
                drop(first);
                let _ = ready.send(Ok(()));
                // Follow new generations.
                let follower = {
                    let current = current.clone();
                    let access = access.clone();
                    let running = running.clone();
                    let root = root.clone();
                    tokio::task::spawn_local(async move {
                        while generations.changed().await.is_ok() {
                            let next = generations.borrow_and_update().clone();
                            let id = next.id;
                            match WorkerGen::build(next.clone(), &access).await {
                                Ok(g) => {
                                    *current.borrow_mut() = g;
                                    running.borrow_mut().sync(index, &next, &current, &root);
                                    tracing::debug!(
                                        worker = index,
                                        generation = id,
                                        "worker switched generation"
                                    );
                                }
                                Err(e) => {
                                    running.borrow().discard(&next);
                                    tracing::error!(
                                        worker = index,
                                        generation = id,
                                        "worker keeps the previous generation: {e}"
                                    )
                                }
                            }
                        }
                    })
                };
                // Drain: stop every accept loop, let connections finish.
                let _ = shutdown.changed().await;
                follower.abort();
                root.cancel();
                let tasks = std::mem::take(&mut running.borrow_mut().tasks);
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
}

async fn accept_loop(
    worker: usize,
    name: String,
    socket: std::net::TcpListener,
    current: Rc<RefCell<Rc<WorkerGen>>>,
    stop: CancellationToken,
) {
    let listener = match tokio::net::TcpListener::from_std(socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(worker, listener = %name, "cannot register listener: {e}");
            return;
        }
    };
    let local_addr = listener.local_addr().ok();
    let name: Rc<str> = name.into();
    let mut connections = Vec::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(worker, listener = %name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let generation = current.borrow().clone();
        let Some(ctx) = generation.listeners.get(&*name).cloned() else {
            continue;
        };
        let open = ctx.open_connections.fetch_add(1, Ordering::Relaxed) + 1;
        if open > ctx.limits.max_connections {
            ctx.open_connections.fetch_sub(1, Ordering::Relaxed);
            ctx.metrics
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %name, "connection limit {} reached: refusing {peer}", ctx.limits.max_connections);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let info = ConnectionInfo {
            id: CONNECTION_IDS.fetch_add(1, Ordering::Relaxed),
            source: Some(peer),
            destination: local_addr,
            tls: None,
        };
        let conn = serve_connection(
            stream,
            info,
            ctx.tls.clone(),
            current.clone(),
            name.clone(),
            ctx.limits.clone(),
            stop.clone(),
            ctx.open_connections.clone(),
        );
        connections.retain(|c: &tokio::task::JoinHandle<()>| !c.is_finished());
        connections.push(tokio::task::spawn_local(conn));
    }
    // Draining: stop accepting, let connections finish.
    drop(listener);
    for c in connections {
        let _ = c.await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: tokio::net::TcpStream,
    mut info: ConnectionInfo,
    tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
    current: Rc<RefCell<Rc<WorkerGen>>>,
    listener: Rc<str>,
    limits: Arc<crate::generation::ListenerLimits>,
    shutdown: CancellationToken,
    open: Arc<AtomicUsize>,
) {
    struct Guard(Arc<AtomicUsize>, Option<Arc<ListenerMetrics>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
            if let Some(m) = &self.1 {
                m.active_connections.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    let metrics = current
        .borrow()
        .listeners
        .get(&*listener)
        .map(|l| l.metrics.clone());
    if let Some(m) = &metrics {
        m.active_connections.fetch_add(1, Ordering::Relaxed);
        m.connections.fetch_add(1, Ordering::Relaxed);
    }
    let _guard = Guard(open, metrics);
    match tls {
        None => {
            let info = Arc::new(info);
            serve_http(
                TokioIo::new(stream),
                info,
                current,
                listener,
                limits,
                shutdown,
            )
            .await
        }
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(limits.request_header_timeout, acceptor.accept(stream)).await;
            let tls_stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(listener = %listener, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(listener = %listener, "TLS handshake timed out");
                    return;
                }
            };
            info.tls = Some(crate::tls::peer_info(tls_stream.get_ref().1));
            let info = Arc::new(info);
            serve_http(
                TokioIo::new(tls_stream),
                info,
                current,
                listener,
                limits,
                shutdown,
            )
            .await
        }
    }
}

async fn serve_http<I>(
    io: TokioIo<I>,
    info: Arc<ConnectionInfo>,
    current: Rc<RefCell<Rc<WorkerGen>>>,
    listener: Rc<str>,
    limits: Arc<crate::generation::ListenerLimits>,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let activity = Rc::new(Activity {
        in_flight: Cell::new(0),
        last: Cell::new(Instant::now()),
    });
    let svc = {
        let listener = listener.clone();
        let activity = activity.clone();
        service_fn(move |req| {
            let generation = current.borrow().clone();
            let ctx = generation.listeners.get(&*listener).cloned();
            let info = info.clone();
            let activity = activity.clone();
            activity.in_flight.set(activity.in_flight.get() + 1);
            async move {
                let resp = match ctx {
                    Some(ctx) => life::serve(generation, ctx, info, req).await,
                    None => Ok(life::plain(503, "listener removed\n")),
                };
                activity.in_flight.set(activity.in_flight.get() - 1);
                activity.last.set(Instant::now());
                resp
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_header_timeout)
        .max_buf_size(limits.max_request_headers_size.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.http2_max_pending_reset_streams)
        .max_header_list_size(limits.max_request_headers_size as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let conn = builder.serve_connection(io, svc);
    let mut conn = pin!(conn);
    let idle = limits.idle_timeout;
    loop {
        let deadline = activity.last.get() + idle;
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(listener = %listener, "connection ended: {e}");
                }
                return;
            }
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(deadline.into()) => {
                if activity.in_flight.get() > 0 {
                    activity.last.set(Instant::now());
                    continue;
                }
                if activity.last.get().elapsed() >= idle {
                    tracing::debug!(listener = %listener, "closing a connection idle for {idle:?}");
                    break;
                }
            }
        }
    }
    // Drain or idle: finish what is in flight, then close.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// What a connection is doing, for its idle timeout.
struct Activity {
    in_flight: Cell<usize>,
    last: Cell<Instant>,
}
