//! The per-worker side: a [`ClusterSet`] of [`Cluster`]s, each with its own
//! copy of the endpoint list, load-balancer state and connection pools.
//! Nothing here is shared with other workers except through
//! [`crate::upstream::shared`] atomics.

use crate::upstream::conn::{self, LocalExec, MaybeTls};
use crate::upstream::error::UpstreamError;
use crate::upstream::lb::{self, LbEndpoint, Ring};
use crate::upstream::settings::{ClusterSettings, LbPolicy, UpstreamProtocol};
use crate::upstream::shared::{
    Breakers, ConnectionSlot, Outcome, SharedCluster, SharedClusterState, SharedEndpoint, now_ms,
};
use crate::upstream::stats::{WorkerCounters, add, bump};
use crate::upstream::tls;
use crate::upstream::{UpstreamBody, UpstreamResponse};
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::TlsConnector;

/// Idle HTTP/1 connections kept per endpoint and worker.
const MAX_IDLE_PER_ENDPOINT: usize = 128;

/// A worker's clusters. Build one per worker (and configuration
/// generation) with [`ClusterSet::new`]; it is `!Send` and must be used on
/// its worker's `LocalSet`.
pub struct ClusterSet {
    clusters: HashMap<String, Cluster>,
}

impl ClusterSet {
    /// Builds this worker's clusters from the generation's settings and its
    /// shared state (matched by cluster name; a name missing from `shared`
    /// gets private state, without background checks, and a warning).
    pub fn new(settings: &[ClusterSettings], shared: &SharedClusterState) -> Self {
        let mut clusters = HashMap::with_capacity(settings.len());
        for s in settings {
            let state = match shared.cluster(&s.name) {
                Some(c) => c.clone(),
                None => {
                    tracing::warn!(cluster = %s.name, "cluster missing from the shared state; it gets private state");
                    Arc::new(SharedCluster::new(s.clone()))
                }
            };
            clusters.insert(s.name.clone(), Cluster::new(state));
        }
        ClusterSet { clusters }
    }

    pub fn get(&self, name: &str) -> Option<&Cluster> {
        self.clusters.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters.values()
    }
}

/// One cluster on one worker.
pub struct Cluster {
    /// The cluster's name, for logs and errors.
    pub name: String,
    inner: Rc<ClusterInner>,
}

impl Cluster {
    fn new(shared: Arc<SharedCluster>) -> Self {
        let settings = &shared.settings;
        let tls = match &settings.tls {
            None => Ok(None),
            Some(t) => tls::client_config(t, settings.protocol).map(|c| Some(TlsConnector::from(c))).map_err(|e| {
                tracing::error!(cluster = %settings.name, "upstream TLS settings unusable: {e}");
                e.to_string()
            }),
        };
        let counters = shared.register_worker();
        let inner = ClusterInner {
            counters,
            tls,
            endpoints: RefCell::new(Rc::new(EndpointList {
                eps: Vec::new(),
                ring: None,
            })),
            version: Cell::new(0),
            sweeper: Cell::new(false),
            shared,
        };
        inner.rebuild();
        Cluster {
            name: inner.shared.name().to_owned(),
            inner: Rc::new(inner),
        }
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.shared.settings
    }

    /// The header whose value is the ring-hash key (the caller reads it and
    /// passes it as `hash_key`; `send` falls back to it too).
    pub fn hash_header(&self) -> Option<&HeaderName> {
        self.inner.shared.settings.hash_header.as_ref()
    }

    /// Sends `req` to an endpoint of the cluster and returns the response
    /// head (its body streams from the upstream) and the endpoint.
    ///
    /// The request URI may be origin-form (`/path?q`, the usual case, with a
    /// `Host` header) or absolute-form; either way the authority is the
    /// `Host` header, else the URI's authority, else the endpoint's
    /// `host:port`, and it is never rewritten to the endpoint. HTTP/1
    /// upstreams get origin-form with that `Host`; HTTP/2 upstreams get it
    /// as `:authority` (the `Host` header is then dropped) with scheme
    /// `http` or `https`. The request version is set to match the upstream.
    ///
    /// `hash_key` feeds `ring_hash` (else the `hash_header` value of the
    /// request, else a random endpoint is used). Fails fast with
    /// [`UpstreamError::Overloaded`] when a circuit breaker is open. Must run
    /// on a tokio `LocalSet` (connections are driven by local tasks).
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
        hash_key: Option<&[u8]>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.inner.send(req, hash_key).await
    }

    /// Idle pooled HTTP/1 connections plus open HTTP/2 connections held by
    /// this worker (for tests and introspection).
    pub fn pooled_connections(&self) -> usize {
        let list = self.inner.endpoints.borrow().clone();
        list.eps
            .iter()
            .map(|e| e.idle.borrow().len() + usize::from(e.h2.borrow().is_some()))
            .sum()
    }
}

struct EndpointList {
    eps: Vec<Rc<LocalEndpoint>>,
    ring: Option<Ring>,
}

/// A worker's view of one endpoint: its shared state plus this worker's
/// load-balancer counters and pool.
struct LocalEndpoint {
    shared: Arc<SharedEndpoint>,
    active: Cell<u32>,
    current_weight: Cell<i64>,
    /// Idle HTTP/1 connections, most recent last.
    idle: RefCell<Vec<Idle>>,
    /// The HTTP/2 connection, multiplexed by every request to this endpoint.
    h2: RefCell<Option<H2Conn>>,
    /// Held while an HTTP/2 connection is being established, so concurrent
    /// requests wait for it instead of opening their own.
    h2_connect: tokio::sync::Mutex<()>,
}

struct Idle {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
}

/// A response and, for HTTP/1 with keep-alive, its connection.
type H1Answer = (Response<Incoming>, Option<http1::SendRequest<UpstreamBody>>);

/// An upstream response body. An HTTP/1 connection goes back to its
/// endpoint's pool when the body is done with — read to its end, or
/// dropped (hyper then closes the connection, and the pool skips it) —
/// without a task per request.
pub struct ResponseBody {
    inner: Incoming,
    checkin: Option<(Weak<LocalEndpoint>, http1::SendRequest<UpstreamBody>)>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("pooled", &self.checkin.is_some())
            .finish()
    }
}

impl ResponseBody {
    fn check_in(&mut self) {
        if let Some((ep, sender)) = self.checkin.take()
            && !sender.is_closed()
            && let Some(ep) = ep.upgrade()
        {
            ep.put_idle(sender);
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.check_in();
    }
}

impl http_body::Body for ResponseBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) {
            self.check_in();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

struct H2Conn {
    sender: http2::SendRequest<UpstreamBody>,
    last_used: Cell<Instant>,
}

impl LocalEndpoint {
    fn new(shared: Arc<SharedEndpoint>) -> Self {
        LocalEndpoint {
            shared,
            active: Cell::new(0),
            current_weight: Cell::new(0),
            idle: RefCell::new(Vec::new()),
            h2: RefCell::new(None),
            h2_connect: tokio::sync::Mutex::new(()),
        }
    }

    /// The most recently used idle connection that is still open (it may
    /// still be finishing its last response: callers wait for `ready`).
    fn take_idle(&self, idle_timeout: Duration) -> Option<http1::SendRequest<UpstreamBody>> {
        let mut idle = self.idle.borrow_mut();
        while let Some(i) = idle.pop() {
            if !i.sender.is_closed() && i.since.elapsed() < idle_timeout {
                return Some(i.sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: http1::SendRequest<UpstreamBody>) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    fn h2_ready(&self) -> Option<http2::SendRequest<UpstreamBody>> {
        let h2 = self.h2.borrow();
        let c = h2.as_ref()?;
        if c.sender.is_closed() {
            return None;
        }
        c.last_used.set(Instant::now());
        Some(c.sender.clone())
    }

    fn sweep(&self, idle_timeout: Duration) {
        self.idle
            .borrow_mut()
            .retain(|i| !i.sender.is_closed() && i.since.elapsed() < idle_timeout);
        let mut h2 = self.h2.borrow_mut();
        let stale = h2.as_ref().is_some_and(|c| {
            c.sender.is_closed()
                || (self.active.get() == 0 && c.last_used.get().elapsed() >= idle_timeout)
        });
        if stale {
            // Streams still in flight keep the connection until they end.
            h2.take();
        }
    }
}

impl LbEndpoint for LocalEndpoint {
    fn weight(&self) -> u32 {
        self.shared.weight
    }
    fn active(&self) -> u32 {
        self.active.get()
    }
    fn current_weight(&self) -> &Cell<i64> {
        &self.current_weight
    }
}

/// Counts a request as active on its endpoint (least request) and in the
/// worker's counters (metrics) while alive.
struct Active<'a> {
    ep: &'a LocalEndpoint,
    counters: &'a WorkerCounters,
}

impl<'a> Active<'a> {
    fn new(ep: &'a LocalEndpoint, counters: &'a WorkerCounters) -> Self {
        ep.active.set(ep.active.get() + 1);
        add(&counters.active_requests, 1);
        Active { ep, counters }
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.ep.active.set(self.ep.active.get().saturating_sub(1));
        add(&self.counters.active_requests, -1);
    }
}

struct ClusterInner {
    shared: Arc<SharedCluster>,
    counters: Arc<WorkerCounters>,
    /// `Err` when the TLS settings do not build: every request fails.
    tls: Result<Option<TlsConnector>, String>,
    endpoints: RefCell<Rc<EndpointList>>,
    /// The shared list version `endpoints` was built from.
    version: Cell<u64>,
    sweeper: Cell<bool>,
}

impl ClusterInner {
    fn settings(&self) -> &ClusterSettings {
        &self.shared.settings
    }

    fn name(&self) -> String {
        self.shared.settings.name.clone()
    }

    /// Rebuilds this worker's list from the shared one, keeping the pools
    /// and counters of endpoints that stay.
    fn rebuild(&self) {
        let (version, shared) = self.shared.endpoints();
        let old = self.endpoints.borrow().clone();
        let eps: Vec<Rc<LocalEndpoint>> = shared
            .iter()
            .map(|s| {
                old.eps
                    .iter()
                    .find(|o| Arc::ptr_eq(&o.shared, s))
                    .cloned()
                    .unwrap_or_else(|| Rc::new(LocalEndpoint::new(s.clone())))
            })
            .collect();
        let ring = (self.settings().lb_policy == LbPolicy::RingHash).then(|| {
            let ids: Vec<String> = eps.iter().map(|e| e.shared.address.to_string()).collect();
            Ring::new(
                ids.iter()
                    .map(String::as_str)
                    .zip(eps.iter().map(|e| e.shared.weight)),
            )
        });
        *self.endpoints.borrow_mut() = Rc::new(EndpointList { eps, ring });
        self.version.set(version);
    }

    fn endpoint_list(&self) -> Rc<EndpointList> {
        if self.shared.version() != self.version.get() {
            self.rebuild();
        }
        self.endpoints.borrow().clone()
    }

    /// Picks by policy among available endpoints, or among all of them
    /// when none is available (panic mode).
    fn pick(&self, list: &EndpointList, key_hash: Option<u64>) -> Option<Rc<LocalEndpoint>> {
        let now = now_ms();
        let eps = &list.eps;
        let any_available = eps.iter().any(|e| e.shared.is_available(now));
        let ok = |i: usize| !any_available || eps[i].shared.is_available(now);
        let index = match (self.settings().lb_policy, key_hash, &list.ring) {
            (LbPolicy::RoundRobin, _, _) => lb::round_robin(eps, ok),
            (LbPolicy::LeastRequest, _, _) => lb::least_request(eps, ok, &mut rand::rng()),
            (LbPolicy::RingHash, Some(h), Some(ring)) => ring.pick(h, ok),
            (LbPolicy::Random | LbPolicy::RingHash, _, _) => lb::random(eps, ok, &mut rand::rng()),
        }?;
        eps.get(index).cloned()
    }

    fn overloaded(&self, which: &'static str) -> UpstreamError {
        bump(self.counters.overloaded(which));
        UpstreamError::Overloaded {
            cluster: self.name(),
            which,
        }
    }

    async fn send(
        self: &Rc<Self>,
        req: Request<UpstreamBody>,
        hash_key: Option<&[u8]>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        bump(&self.counters.requests);
        if let Err(reason) = &self.tls {
            return Err(UpstreamError::TlsConfig {
                cluster: self.name(),
                reason: reason.clone(),
            });
        }
        let Some(_request_slot) = self.shared.breakers.request() else {
            return Err(self.overloaded("max_requests"));
        };
        let list = self.endpoint_list();
        let key_hash = match hash_key {
            Some(k) => Some(lb::hash(k)),
            None => self
                .settings()
                .hash_header
                .as_ref()
                .and_then(|h| req.headers().get(h))
                .map(|v| lb::hash(v.as_bytes())),
        };
        let Some(ep) = self.pick(&list, key_hash) else {
            bump(&self.counters.no_endpoint);
            return Err(UpstreamError::NoHealthyEndpoint {
                cluster: self.name(),
            });
        };
        let _active = Active::new(&ep, &self.counters);
        let req = self.prepare(req, &ep)?;
        let result = match self.settings().protocol {
            UpstreamProtocol::Http1 => self.send_h1(&ep, req).await,
            UpstreamProtocol::Http2 => self.send_h2(&ep, req).await.map(|r| (r, None)),
        };
        self.record(&ep, result.as_ref().map(|(r, _)| r));
        result.map(|(response, sender)| UpstreamResponse {
            response: response.map(|inner| ResponseBody {
                inner,
                checkin: sender.map(|s| (Rc::downgrade(&ep), s)),
            }),
            endpoint: ep.shared.address,
        })
    }

    fn record(&self, ep: &LocalEndpoint, result: Result<&Response<Incoming>, &UpstreamError>) {
        let outcome = match result {
            Ok(r) if r.status().is_server_error() => {
                bump(&self.counters.responses_5xx);
                Outcome::Failure5xx
            }
            Ok(_) => Outcome::Success,
            Err(e) if e.is_connect_failure() => {
                bump(&self.counters.connect_failures);
                if matches!(e, UpstreamError::ConnectTimeout { .. }) {
                    bump(&self.counters.connect_timeouts);
                }
                Outcome::ConnectFailure
            }
            Err(e) if e.is_reset() => {
                bump(&self.counters.resets);
                Outcome::Failure5xx
            }
            Err(_) => return,
        };
        self.shared.record(&ep.shared, outcome);
    }

    /// The authority the client addressed, never the endpoint's unless
    /// the request has none.
    fn authority(&self, req: &Request<UpstreamBody>, ep: &LocalEndpoint) -> HeaderValue {
        if let Some(h) = req.headers().get(HOST) {
            return h.clone();
        }
        if let Some(a) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            return a;
        }
        let s = &ep.shared;
        let fallback = if s.host.parse::<std::net::IpAddr>().is_ok() || s.host.starts_with('[') {
            s.address.to_string()
        } else {
            format!("{}:{}", s.host, s.address.port())
        };
        HeaderValue::from_str(&fallback).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
    }

    fn prepare(
        &self,
        mut req: Request<UpstreamBody>,
        ep: &LocalEndpoint,
    ) -> Result<Request<UpstreamBody>, UpstreamError> {
        let authority = self.authority(&req, ep);
        let invalid = |reason: String| UpstreamError::InvalidRequest {
            cluster: self.name(),
            reason,
        };
        match self.settings().protocol {
            UpstreamProtocol::Http1 => {
                if req.uri().authority().is_some() {
                    let pq = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
                    *req.uri_mut() =
                        Uri::try_from(pq).map_err(|e| invalid(format!("path {pq:?}: {e}")))?;
                }
                req.headers_mut().entry(HOST).or_insert(authority);
                *req.version_mut() = Version::HTTP_11;
            }
            UpstreamProtocol::Http2 => {
                let auth = Authority::try_from(authority.as_bytes())
                    .map_err(|e| invalid(format!("authority {authority:?}: {e}")))?;
                let scheme = if matches!(self.tls, Ok(Some(_))) {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                };
                let pq = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                *req.uri_mut() = Uri::builder()
                    .scheme(scheme)
                    .authority(auth)
                    .path_and_query(pq)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
                req.headers_mut().remove(HOST);
                *req.version_mut() = Version::HTTP_2;
            }
        }
        Ok(req)
    }

    /// Classifies an error of a request that was handed to a connection.
    fn request_error(&self, ep: &LocalEndpoint, source: hyper::Error) -> UpstreamError {
        let (cluster, endpoint) = (self.name(), ep.shared.address);
        if let Some(tls) = rustls_error(&source) {
            // E.g. TLS 1.3: the server refuses our client certificate after
            // the handshake; nothing reached the application.
            let source = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
            return UpstreamError::Tls {
                cluster,
                endpoint,
                source,
            };
        }
        if source.is_user() || source.is_body_write_aborted() {
            UpstreamError::Request {
                cluster,
                endpoint,
                source,
            }
        } else {
            UpstreamError::Reset {
                cluster,
                endpoint,
                source,
            }
        }
    }

    /// A fresh connection closed before the request could be written.
    fn closed_before_sending(&self, ep: &LocalEndpoint, e: &hyper::Error) -> UpstreamError {
        UpstreamError::ConnectFailed {
            cluster: self.name(),
            endpoint: ep.shared.address,
            source: std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                format!("connection closed before the request was sent: {e}"),
            ),
        }
    }

    /// Sends on a pooled HTTP/1 connection, or a new one. The connection
    /// comes back with the response, for the response body to return it to
    /// the pool ([`ResponseBody`]); none when keep-alive is off.
    async fn send_h1(
        self: &Rc<Self>,
        ep: &Rc<LocalEndpoint>,
        mut req: Request<UpstreamBody>,
    ) -> Result<H1Answer, UpstreamError> {
        let idle_timeout = self.settings().idle_timeout;
        let keep = |sender| {
            if idle_timeout.is_zero() {
                None // no keep-alive: the connection closes after this response
            } else {
                Some(sender)
            }
        };
        // Pooled connections first; one that turns out closed before the
        // request was written gives the request back for the next.
        while let Some(mut sender) = ep.take_idle(idle_timeout) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, keep(sender))),
                Err(mut e) => match e.take_message() {
                    Some(r) => req = r,
                    None => return Err(self.request_error(ep, e.into_error())),
                },
            }
        }
        let mut sender = self.connect_h1(ep).await?;
        match sender.try_send_request(req).await {
            Ok(resp) => {
                if !idle_timeout.is_zero() {
                    self.start_sweeper();
                }
                Ok((resp, keep(sender)))
            }
            Err(mut e) => match e.take_message() {
                Some(_) => Err(self.closed_before_sending(ep, e.error())),
                None => Err(self.request_error(ep, e.into_error())),
            },
        }
    }

    /// Closes connections idle for longer than `idle_timeout`, on a timer
    /// that ends with the cluster.
    fn start_sweeper(self: &Rc<Self>) {
        if self.sweeper.replace(true) {
            return;
        }
        let idle_timeout = self.settings().idle_timeout;
        let period = (idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(30));
        let inner = Rc::downgrade(self);
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = inner.upgrade() else { break };
                let list = inner.endpoints.borrow().clone();
                for ep in &list.eps {
                    ep.sweep(idle_timeout);
                }
            }
        });
    }

    /// Runs `fut` (connect and handshake) within `connect_timeout`.
    async fn within_connect_timeout<T>(
        &self,
        ep: &LocalEndpoint,
        fut: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        let timeout = self.settings().connect_timeout;
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::ConnectTimeout {
                cluster: self.name(),
                endpoint: ep.shared.address,
                timeout,
            }),
        }
    }

    async fn open(&self, ep: &LocalEndpoint) -> Result<MaybeTls, UpstreamError> {
        let address = ep.shared.address;
        let tls = match &self.tls {
            Ok(Some(c)) => {
                let sni = self.settings().tls.as_ref().and_then(|t| t.sni.as_deref());
                Some((c, tls::server_name(sni, &ep.shared.host, address.ip())))
            }
            _ => None,
        };
        conn::open(self.shared.name(), address, tls).await
    }

    fn handshake_error(&self, ep: &LocalEndpoint, source: hyper::Error) -> UpstreamError {
        UpstreamError::Handshake {
            cluster: self.name(),
            endpoint: ep.shared.address,
            source,
        }
    }

    /// Takes the breaker slots a new connection needs.
    fn new_connection_slots(
        &self,
    ) -> Result<(crate::upstream::shared::Slot<'_>, ConnectionSlot), UpstreamError> {
        let pending = self
            .shared
            .breakers
            .pending()
            .ok_or_else(|| self.overloaded("max_pending_requests"))?;
        let conn =
            Breakers::connection(&self.shared).ok_or_else(|| self.overloaded("max_connections"))?;
        Ok((pending, conn))
    }

    async fn connect_h1(
        &self,
        ep: &LocalEndpoint,
    ) -> Result<http1::SendRequest<UpstreamBody>, UpstreamError> {
        let (_pending, slot) = self.new_connection_slots()?;
        let (sender, connection) = self
            .within_connect_timeout(ep, async {
                let io = self.open(ep).await?;
                http1::handshake(TokioIo::new(io))
                    .await
                    .map_err(|e| self.handshake_error(ep, e))
            })
            .await?;
        bump(&self.counters.connections_opened);
        let (cluster, endpoint) = (self.name(), ep.shared.address);
        tokio::task::spawn_local(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(%cluster, %endpoint, "upstream HTTP/1 connection ended: {e}");
            }
        });
        Ok(sender)
    }

    async fn send_h2(
        self: &Rc<Self>,
        ep: &LocalEndpoint,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        // A connection that went away (GOAWAY, close) before taking the
        // request gives it back: one more try on a fresh connection.
        let mut retried = false;
        loop {
            let mut sender = self.h2_sender(ep).await?;
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    Some(r) if !retried => {
                        ep.h2.borrow_mut().take();
                        retried = true;
                        req = r;
                    }
                    Some(_) => return Err(self.closed_before_sending(ep, e.error())),
                    None => return Err(self.request_error(ep, e.into_error())),
                },
            }
        }
    }

    async fn h2_sender(
        self: &Rc<Self>,
        ep: &LocalEndpoint,
    ) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        if let Some(s) = ep.h2_ready() {
            return Ok(s);
        }
        let _pending = self
            .shared
            .breakers
            .pending()
            .ok_or_else(|| self.overloaded("max_pending_requests"))?;
        let _connecting = ep.h2_connect.lock().await;
        if let Some(s) = ep.h2_ready() {
            return Ok(s); // another request connected meanwhile
        }
        let slot =
            Breakers::connection(&self.shared).ok_or_else(|| self.overloaded("max_connections"))?;
        let (sender, connection) = self
            .within_connect_timeout(ep, async {
                let io = self.open(ep).await?;
                http2::Builder::new(LocalExec)
                    .timer(TokioTimer::new())
                    .handshake(TokioIo::new(io))
                    .await
                    .map_err(|e| self.handshake_error(ep, e))
            })
            .await?;
        bump(&self.counters.connections_opened);
        let (cluster, endpoint) = (self.name(), ep.shared.address);
        tokio::task::spawn_local(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(%cluster, %endpoint, "upstream HTTP/2 connection ended: {e}");
            }
        });
        self.start_sweeper();
        *ep.h2.borrow_mut() = Some(H2Conn {
            sender: sender.clone(),
            last_used: Cell::new(Instant::now()),
        });
        Ok(sender)
    }
}

/// The TLS error under a connection error, if that is what it is.
fn rustls_error(e: &hyper::Error) -> Option<rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t.clone());
        }
        if let Some(t) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref()?.downcast_ref::<rustls::Error>())
        {
            return Some(t.clone());
        }
        cause = c.source();
    }
    None
}

/// The endpoint addresses of a worker's cluster, in list order (tests).
#[cfg(test)]
pub(crate) fn addresses(cluster: &Cluster) -> Vec<std::net::SocketAddr> {
    cluster
        .inner
        .endpoint_list()
        .eps
        .iter()
        .map(|e| e.shared.address)
        .collect()
}
