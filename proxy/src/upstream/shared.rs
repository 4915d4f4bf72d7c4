//! State shared by every worker of a process: the endpoint list (DNS
//! results), endpoint health (active checks) and ejections (passive
//! outlier detection), circuit-breaker counters and the workers' counters
//! for metrics. Everything a request touches here is an atomic; the one
//! mutex (the endpoint list) is only taken when DNS changed the list.

use crate::upstream::settings::{CircuitBreakerSettings, ClusterSettings};
use crate::upstream::stats::{ClusterStats, EndpointStats, WorkerCounters};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Longest ejection, unless `base_ejection_time` is longer. Also the quiet
/// period after which an endpoint's ejection multiplier starts over.
pub(crate) const MAX_EJECTION: Duration = Duration::from_secs(300);

/// Milliseconds since a process-wide origin, never 0 (0 means "never").
pub(crate) fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Per-cluster state of a process; built once per configuration generation.
///
/// Owns the background work (DNS re-resolution and active health checks):
/// [`SharedClusterState::spawn_background`] starts it on the current tokio
/// runtime, [`SharedClusterState::shutdown`] or dropping the state stops it.
pub struct SharedClusterState {
    clusters: Vec<Arc<SharedCluster>>,
    background: Mutex<Option<watch::Sender<()>>>,
}

impl SharedClusterState {
    /// Resolves the clusters' DNS names (blocking, with the system
    /// resolver, once) and builds their shared state. A name that does not
    /// resolve yet leaves its entry without endpoints until the background
    /// task resolves it; TLS settings that do not build make every request
    /// of that cluster fail with [`crate::upstream::UpstreamError::TlsConfig`]
    /// (use [`ClusterSettings::validate`] to refuse them up front).
    pub fn new(settings: &[ClusterSettings]) -> Self {
        SharedClusterState {
            clusters: settings
                .iter()
                .map(|s| Arc::new(SharedCluster::new(s.clone())))
                .collect(),
            background: Mutex::new(None),
        }
    }

    /// Starts DNS re-resolution (clusters with DNS names) and one active
    /// health checker per endpoint (clusters with `health_check`) as tasks
    /// on the tokio runtime this is called from (`tokio::spawn`: works on a
    /// multi-thread runtime and on a current-thread one, inside a
    /// `LocalSet` or not). A second call while running does nothing.
    /// Without a runtime it logs an error and does nothing.
    pub fn spawn_background(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                "upstream: spawn_background called outside a tokio runtime; no health checks, no DNS refresh"
            );
            return;
        };
        let mut background = lock(&self.background);
        if background.is_some() {
            return;
        }
        let (tx, rx) = watch::channel(());
        for cluster in &self.clusters {
            if cluster.needs_background() {
                handle.spawn(crate::upstream::health::run_cluster(
                    cluster.clone(),
                    rx.clone(),
                ));
            }
        }
        *background = Some(tx);
    }

    /// Stops the background tasks (they end at their next await point).
    /// `spawn_background` may start them again later.
    pub fn shutdown(&self) {
        lock(&self.background).take();
    }

    /// A snapshot of every cluster's counters and endpoints, in settings order.
    pub fn stats(&self) -> Vec<ClusterStats> {
        self.clusters.iter().map(|c| c.stats()).collect()
    }

    /// The names of the clusters, in settings order.
    pub fn cluster_names(&self) -> impl Iterator<Item = &str> {
        self.clusters.iter().map(|c| c.settings.name.as_str())
    }

    pub(crate) fn cluster(&self, name: &str) -> Option<&Arc<SharedCluster>> {
        self.clusters.iter().find(|c| c.settings.name == name)
    }
}

impl Drop for SharedClusterState {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The shared state of one cluster.
pub(crate) struct SharedCluster {
    pub settings: ClusterSettings,
    /// Bumped (under `endpoints`) whenever the endpoint list changes; read
    /// without the lock by workers on every request.
    version: AtomicU64,
    endpoints: Mutex<(u64, Arc<[Arc<SharedEndpoint>]>)>,
    pub breakers: Breakers,
    pub ejections: AtomicU64,
    workers: Mutex<Vec<Arc<WorkerCounters>>>,
}

impl SharedCluster {
    pub fn new(settings: ClusterSettings) -> Self {
        let mut list = Vec::new();
        for (entry, e) in settings.endpoints.iter().enumerate() {
            let addrs: Vec<SocketAddr> = match e.ip() {
                Some(ip) => vec![SocketAddr::new(ip, e.port)],
                None => match (e.host.as_str(), e.port).to_socket_addrs() {
                    Ok(addrs) => dedup(addrs.collect()),
                    Err(err) => {
                        tracing::warn!(cluster = %settings.name, host = %e.host, "cannot resolve endpoint yet: {err}");
                        Vec::new()
                    }
                },
            };
            for a in addrs {
                list.push(Arc::new(SharedEndpoint::new(
                    entry,
                    e.host.clone(),
                    a,
                    e.weight,
                )));
            }
        }
        SharedCluster {
            breakers: Breakers::new(settings.circuit_breakers),
            settings,
            version: AtomicU64::new(1),
            endpoints: Mutex::new((1, list.into())),
            ejections: AtomicU64::new(0),
            workers: Mutex::new(Vec::new()),
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    fn has_dns_names(&self) -> bool {
        self.settings.endpoints.iter().any(|e| e.ip().is_none())
    }

    fn needs_background(&self) -> bool {
        self.settings.health_check.is_some() || self.has_dns_names()
    }

    /// The list version, without locking: workers compare it with theirs.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current list and its version.
    pub fn endpoints(&self) -> (u64, Arc<[Arc<SharedEndpoint>]>) {
        let g = lock(&self.endpoints);
        (g.0, g.1.clone())
    }

    /// Replaces the endpoints of DNS entry `entry` with `addrs`, keeping the
    /// state of addresses that stay. Returns whether the list changed.
    pub fn set_resolved(&self, entry: usize, addrs: &[SocketAddr]) -> bool {
        let Some(e) = self.settings.endpoints.get(entry) else {
            return false;
        };
        let mut g = lock(&self.endpoints);
        let old = &g.1;
        let current: Vec<SocketAddr> = old
            .iter()
            .filter(|x| x.entry == entry)
            .map(|x| x.address)
            .collect();
        if current.len() == addrs.len() && addrs.iter().all(|a| current.contains(a)) {
            return false;
        }
        let mut next: Vec<Arc<SharedEndpoint>> =
            old.iter().filter(|x| x.entry != entry).cloned().collect();
        for a in addrs {
            match old.iter().find(|x| x.entry == entry && x.address == *a) {
                Some(kept) => next.push(kept.clone()),
                None => next.push(Arc::new(SharedEndpoint::new(
                    entry,
                    e.host.clone(),
                    *a,
                    e.weight,
                ))),
            }
        }
        next.sort_by_key(|x| x.entry);
        let version = g.0 + 1;
        *g = (version, next.into());
        self.version.store(version, Ordering::Release);
        true
    }

    pub fn register_worker(&self) -> Arc<WorkerCounters> {
        let c = Arc::new(WorkerCounters::default());
        lock(&self.workers).push(c.clone());
        c
    }

    pub fn stats(&self) -> ClusterStats {
        let now = now_ms();
        let (_, endpoints) = self.endpoints();
        let mut s = ClusterStats {
            name: self.settings.name.clone(),
            ..Default::default()
        };
        for w in lock(&self.workers).iter() {
            w.add_to(&mut s);
        }
        s.ejections = self.ejections.load(Ordering::Relaxed);
        s.active_connections = u64::from(self.breakers.connections.load(Ordering::Relaxed));
        s.pending_requests = u64::from(self.breakers.pending.load(Ordering::Relaxed));
        s.endpoints = endpoints
            .iter()
            .map(|e| EndpointStats {
                address: e.address,
                host: e.host.clone(),
                weight: e.weight,
                healthy: e.is_healthy(),
                ejected: e.is_ejected(now),
                ejections: e.ejections_total.load(Ordering::Relaxed),
            })
            .collect();
        s.healthy_endpoints = s
            .endpoints
            .iter()
            .filter(|e| e.healthy && !e.ejected)
            .count();
        s
    }

    /// Outcome of a request on `ep`, for passive outlier detection.
    pub fn record(&self, ep: &SharedEndpoint, outcome: Outcome) {
        let Some(o) = &self.settings.outlier_detection else {
            return;
        };
        let (counter, threshold) = match outcome {
            Outcome::Success => {
                reset(&ep.consecutive_5xx);
                reset(&ep.consecutive_connect_failures);
                return;
            }
            Outcome::Failure5xx => (&ep.consecutive_5xx, o.consecutive_5xx),
            Outcome::ConnectFailure => (
                &ep.consecutive_connect_failures,
                o.consecutive_connect_failures,
            ),
        };
        if threshold == 0 {
            return;
        }
        let n = counter.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= threshold {
            counter.store(0, Ordering::Release);
            self.eject(ep, o.base_ejection_time, now_ms());
        }
    }

    fn eject(&self, ep: &SharedEndpoint, base: Duration, now: u64) {
        let until = ep.ejected_until.load(Ordering::Acquire);
        if until > now {
            return;
        }
        let quiet = until != 0 && now - until >= MAX_EJECTION.as_millis() as u64;
        let times = if quiet {
            1
        } else {
            ep.ejection_multiplier
                .load(Ordering::Relaxed)
                .saturating_add(1)
        };
        let cap = MAX_EJECTION.max(base);
        let duration = base.saturating_mul(times).min(cap);
        let next = now + duration.as_millis().max(1) as u64;
        if ep
            .ejected_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // another worker ejected it first
        }
        ep.ejection_multiplier.store(times, Ordering::Relaxed);
        ep.ejections_total.fetch_add(1, Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(cluster = %self.settings.name, endpoint = %ep.address, ?duration, times, "endpoint ejected");
    }
}

fn reset(a: &AtomicU32) {
    // Load first: the common case (already 0) then writes nothing, so the
    // cache line is not bounced between workers on every success.
    if a.load(Ordering::Relaxed) != 0 {
        a.store(0, Ordering::Relaxed);
    }
}

pub(crate) fn dedup(mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut seen = Vec::with_capacity(addrs.len());
    addrs.retain(|a| {
        if seen.contains(a) {
            false
        } else {
            seen.push(*a);
            true
        }
    });
    addrs
}

/// What a request's result means for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// A 5xx answer, or a reset before the answer.
    Failure5xx,
    ConnectFailure,
}

/// One resolved endpoint, shared by all workers.
pub(crate) struct SharedEndpoint {
    /// Index of its entry in `ClusterSettings::endpoints`.
    pub entry: usize,
    /// The configured host (DNS name or IP literal).
    pub host: String,
    pub address: SocketAddr,
    pub weight: u32,
    healthy: AtomicBool,
    consecutive_5xx: AtomicU32,
    consecutive_connect_failures: AtomicU32,
    /// `now_ms()` when the ejection ends; 0 = never ejected.
    ejected_until: AtomicU64,
    ejection_multiplier: AtomicU32,
    ejections_total: AtomicU64,
}

impl SharedEndpoint {
    pub fn new(entry: usize, host: String, address: SocketAddr, weight: u32) -> Self {
        SharedEndpoint {
            entry,
            host,
            address,
            weight: weight.max(1),
            healthy: AtomicBool::new(true),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_connect_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejection_multiplier: AtomicU32::new(0),
            ejections_total: AtomicU64::new(0),
        }
    }

    /// Health from active checks (always true without health checks).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn is_ejected(&self, now: u64) -> bool {
        now < self.ejected_until.load(Ordering::Relaxed)
    }

    /// Usable for new requests: healthy and not ejected.
    pub fn is_available(&self, now: u64) -> bool {
        self.is_healthy() && !self.is_ejected(now)
    }
}

/// Circuit-breaker counters of a cluster, process-wide.
pub(crate) struct Breakers {
    limits: CircuitBreakerSettings,
    pub connections: AtomicU32,
    pub pending: AtomicU32,
    pub requests: AtomicU32,
}

/// Decrements its counter when dropped.
pub(crate) struct Slot<'a>(&'a AtomicU32);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's place in `max_connections`, held by its connection task.
pub(crate) struct ConnectionSlot(Arc<SharedCluster>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.breakers.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

fn try_take(counter: &AtomicU32, max: u32) -> bool {
    if max == 0 {
        counter.fetch_add(1, Ordering::AcqRel);
        return true;
    }
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl Breakers {
    fn new(limits: CircuitBreakerSettings) -> Self {
        Breakers {
            limits,
            connections: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            requests: AtomicU32::new(0),
        }
    }

    pub fn request(&self) -> Option<Slot<'_>> {
        try_take(&self.requests, self.limits.max_requests).then(|| Slot(&self.requests))
    }

    pub fn pending(&self) -> Option<Slot<'_>> {
        try_take(&self.pending, self.limits.max_pending_requests).then(|| Slot(&self.pending))
    }

    pub fn connection(cluster: &Arc<SharedCluster>) -> Option<ConnectionSlot> {
        try_take(
            &cluster.breakers.connections,
            cluster.breakers.limits.max_connections,
        )
        .then(|| ConnectionSlot(cluster.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::settings::{EndpointSettings, OutlierSettings};

    fn cluster(outlier: Option<OutlierSettings>) -> SharedCluster {
        let mut s = ClusterSettings::new(
            "c",
            vec![
                EndpointSettings::new("127.0.0.1", 1, 1),
                EndpointSettings::new("127.0.0.2", 1, 1),
            ],
        );
        s.outlier_detection = outlier;
        SharedCluster::new(s)
    }

    #[test]
    fn ejection_time_grows_with_each_ejection_and_is_capped() {
        let c = cluster(Some(OutlierSettings {
            consecutive_5xx: 2,
            consecutive_connect_failures: 0,
            base_ejection_time: Duration::from_secs(100),
        }));
        let (_, eps) = c.endpoints();
        let ep = &eps[0];
        let t0 = 1_000;
        c.eject(ep, Duration::from_secs(100), t0);
        assert_eq!(ep.ejected_until.load(Ordering::Relaxed), t0 + 100_000);
        assert!(ep.is_ejected(t0 + 99_999) && !ep.is_ejected(t0 + 100_000));
        // Already ejected: no change.
        c.eject(ep, Duration::from_secs(100), t0 + 10);
        assert_eq!(ep.ejections_total.load(Ordering::Relaxed), 1);
        let t1 = t0 + 100_000;
        c.eject(ep, Duration::from_secs(100), t1);
        assert_eq!(ep.ejected_until.load(Ordering::Relaxed), t1 + 200_000);
        let t2 = t1 + 200_000;
        c.eject(ep, Duration::from_secs(100), t2);
        assert_eq!(
            ep.ejected_until.load(Ordering::Relaxed),
            t2 + 300_000,
            "capped at 300 s"
        );
        // A long quiet period starts the multiplier over.
        let t3 = t2 + 300_000 + 300_000;
        c.eject(ep, Duration::from_secs(100), t3);
        assert_eq!(ep.ejected_until.load(Ordering::Relaxed), t3 + 100_000);
        assert_eq!(c.ejections.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn consecutive_counters_reset_on_success() {
        let c = cluster(Some(OutlierSettings {
            consecutive_5xx: 3,
            consecutive_connect_failures: 2,
            base_ejection_time: Duration::from_secs(30),
        }));
        let (_, eps) = c.endpoints();
        let ep = &eps[1];
        for _ in 0..5 {
            c.record(ep, Outcome::Failure5xx);
            c.record(ep, Outcome::Failure5xx);
            c.record(ep, Outcome::Success);
        }
        assert!(!ep.is_ejected(now_ms()));
        c.record(ep, Outcome::ConnectFailure);
        c.record(ep, Outcome::ConnectFailure);
        assert!(ep.is_ejected(now_ms()));
        assert_eq!(c.stats().healthy_endpoints, 1);
    }

    #[test]
    fn breakers_count_and_release() {
        let mut s = ClusterSettings::new("c", vec![EndpointSettings::new("127.0.0.1", 1, 1)]);
        s.circuit_breakers = CircuitBreakerSettings {
            max_connections: 1,
            max_pending_requests: 0,
            max_requests: 2,
        };
        let c = Arc::new(SharedCluster::new(s));
        let a = c.breakers.request();
        let b = c.breakers.request();
        assert!(a.is_some() && b.is_some());
        assert!(c.breakers.request().is_none());
        drop(a);
        assert!(c.breakers.request().is_some());
        let conn = Breakers::connection(&c);
        assert!(conn.is_some());
        assert!(Breakers::connection(&c).is_none());
        drop(conn);
        assert!(Breakers::connection(&c).is_some());
        // 0 = unlimited.
        let pend: Vec<_> = (0..100).map(|_| c.breakers.pending()).collect();
        assert!(pend.iter().all(Option::is_some));
    }

    #[test]
    fn resolved_addresses_keep_the_state_of_those_that_stay() {
        let mut s = ClusterSettings::new("c", vec![EndpointSettings::new("127.0.0.1", 80, 1)]);
        // A DNS entry ("localhost" resolves from /etc/hosts, no network needed).
        s.endpoints.push(EndpointSettings::new("localhost", 80, 3));
        let c = SharedCluster::new(s);
        let (v0, eps) = c.endpoints();
        let a: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let b: SocketAddr = "10.0.0.2:80".parse().expect("addr");
        assert!(c.set_resolved(1, &[a, b]));
        let (v1, eps1) = c.endpoints();
        assert!(v1 > v0);
        assert_eq!(eps1.len(), eps.iter().filter(|e| e.entry == 0).count() + 2);
        let kept = eps1.iter().find(|e| e.address == a).expect("a").clone();
        assert_eq!(kept.weight, 3);
        kept.set_healthy(false);
        assert!(!c.set_resolved(1, &[b, a]), "same set, in another order");
        assert!(c.set_resolved(1, &[a]));
        let (_, eps2) = c.endpoints();
        let again = eps2.iter().find(|e| e.address == a).expect("a");
        assert!(Arc::ptr_eq(again, &kept) && !again.is_healthy());
        assert!(eps2.iter().all(|e| e.address != b));
        assert_eq!(c.version(), c.endpoints().0);
    }
}
