//! Cluster counters. Each worker writes its own [`WorkerCounters`] (one
//! writer per cache line, so plain load+store instead of a locked
//! read-modify-write); [`crate::upstream::SharedClusterState::stats`] sums
//! them with the shared gauges (connections, pending requests, ejections,
//! endpoint health).

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A snapshot of one cluster, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub name: String,
    /// Requests given to `Cluster::send`.
    pub requests: u64,
    /// Answers with a 5xx status.
    pub responses_5xx: u64,
    /// Connect errors: refused, timed out, TLS or HTTP handshake failed.
    pub connect_failures: u64,
    /// Of which timeouts.
    pub connect_timeouts: u64,
    /// Connections broken before the response headers.
    pub resets: u64,
    /// Requests refused by a circuit breaker, all breakers together...
    pub overloaded: u64,
    /// ...and by breaker.
    pub overloaded_max_connections: u64,
    pub overloaded_max_pending_requests: u64,
    pub overloaded_max_requests: u64,
    /// Requests that found no endpoint at all.
    pub no_endpoint: u64,
    /// Connections opened (all time).
    pub connections_opened: u64,
    /// Endpoints ejected by outlier detection (all time).
    pub ejections: u64,
    /// Requests waiting for their response headers now.
    pub active_requests: u64,
    /// Open upstream connections now.
    pub active_connections: u64,
    /// Requests waiting for a new connection now.
    pub pending_requests: u64,
    /// Endpoints healthy and not ejected.
    pub healthy_endpoints: usize,
    pub endpoints: Vec<EndpointStats>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStats {
    pub address: SocketAddr,
    /// The configured host it came from (DNS name or IP literal).
    pub host: String,
    pub weight: u32,
    /// By the active health check (true without one).
    pub healthy: bool,
    /// By outlier detection, now.
    pub ejected: bool,
    /// Times ejected (all time).
    pub ejections: u64,
}

/// The counters of one worker for one cluster. Written only by its worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    pub requests: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub connect_failures: AtomicU64,
    pub connect_timeouts: AtomicU64,
    pub resets: AtomicU64,
    pub overloaded_max_connections: AtomicU64,
    pub overloaded_max_pending_requests: AtomicU64,
    pub overloaded_max_requests: AtomicU64,
    pub no_endpoint: AtomicU64,
    pub connections_opened: AtomicU64,
    pub active_requests: AtomicI64,
}

/// Adds one to a counter that only the current worker writes.
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// Adds `d` to a gauge that only the current worker writes.
pub(crate) fn add(c: &AtomicI64, d: i64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(d), Ordering::Relaxed);
}

impl WorkerCounters {
    pub fn add_to(&self, s: &mut ClusterStats) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.requests += g(&self.requests);
        s.responses_5xx += g(&self.responses_5xx);
        s.connect_failures += g(&self.connect_failures);
        s.connect_timeouts += g(&self.connect_timeouts);
        s.resets += g(&self.resets);
        s.overloaded_max_connections += g(&self.overloaded_max_connections);
        s.overloaded_max_pending_requests += g(&self.overloaded_max_pending_requests);
        s.overloaded_max_requests += g(&self.overloaded_max_requests);
        s.overloaded = s.overloaded_max_connections
            + s.overloaded_max_pending_requests
            + s.overloaded_max_requests;
        s.no_endpoint += g(&self.no_endpoint);
        s.connections_opened += g(&self.connections_opened);
        s.active_requests += self.active_requests.load(Ordering::Relaxed).max(0) as u64;
    }

    /// The overload counter of a breaker name.
    pub fn overloaded(&self, which: &str) -> &AtomicU64 {
        match which {
            "max_connections" => &self.overloaded_max_connections,
            "max_pending_requests" => &self.overloaded_max_pending_requests,
            _ => &self.overloaded_max_requests,
        }
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes every cluster's series in the Prometheus text format
/// (`weft_cluster_*`, `weft_endpoint_*`).
pub fn render_metrics(out: &mut String, state: &crate::upstream::SharedClusterState) {
    render_stats(out, &state.stats());
}

/// [`render_metrics`] from a snapshot.
pub fn render_stats(out: &mut String, stats: &[ClusterStats]) {
    type Get = fn(&ClusterStats) -> u64;
    let series: [(&str, &str, Get); 14] = [
        ("weft_cluster_requests_total", "counter", |s| s.requests),
        ("weft_cluster_responses_5xx_total", "counter", |s| {
            s.responses_5xx
        }),
        ("weft_cluster_connect_failures_total", "counter", |s| {
            s.connect_failures
        }),
        ("weft_cluster_connect_timeouts_total", "counter", |s| {
            s.connect_timeouts
        }),
        ("weft_cluster_resets_total", "counter", |s| s.resets),
        ("weft_cluster_overloaded_total", "counter", |s| s.overloaded),
        ("weft_cluster_no_endpoint_total", "counter", |s| {
            s.no_endpoint
        }),
        ("weft_cluster_connections_opened_total", "counter", |s| {
            s.connections_opened
        }),
        ("weft_cluster_ejections_total", "counter", |s| s.ejections),
        ("weft_cluster_active_requests", "gauge", |s| {
            s.active_requests
        }),
        ("weft_cluster_active_connections", "gauge", |s| {
            s.active_connections
        }),
        ("weft_cluster_pending_requests", "gauge", |s| {
            s.pending_requests
        }),
        ("weft_cluster_healthy_endpoints", "gauge", |s| {
            s.healthy_endpoints as u64
        }),
        ("weft_cluster_endpoints", "gauge", |s| {
            s.endpoints.len() as u64
        }),
    ];
    for (name, kind, get) in series {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in stats {
            let _ = writeln!(out, "{name}{{cluster=\"{}\"}} {}", label(&s.name), get(s));
        }
    }
    let _ = writeln!(
        out,
        "# TYPE weft_cluster_overloaded_by_breaker_total counter"
    );
    for s in stats {
        for (which, n) in [
            ("max_connections", s.overloaded_max_connections),
            ("max_pending_requests", s.overloaded_max_pending_requests),
            ("max_requests", s.overloaded_max_requests),
        ] {
            let _ = writeln!(
                out,
                "weft_cluster_overloaded_by_breaker_total{{cluster=\"{}\",breaker=\"{which}\"}} {n}",
                label(&s.name)
            );
        }
    }
    for (name, kind) in [
        ("weft_endpoint_healthy", "gauge"),
        ("weft_endpoint_ejected", "gauge"),
        ("weft_endpoint_ejections_total", "counter"),
    ] {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in stats {
            for e in &s.endpoints {
                let v = match name {
                    "weft_endpoint_healthy" => u64::from(e.healthy),
                    "weft_endpoint_ejected" => u64::from(e.ejected),
                    _ => e.ejections,
                };
                let _ = writeln!(
                    out,
                    "{name}{{cluster=\"{}\",endpoint=\"{}\",host=\"{}\"}} {v}",
                    label(&s.name),
                    e.address,
                    label(&e.host)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let s = ClusterStats {
            name: "a\"b".into(),
            requests: 7,
            overloaded_max_requests: 2,
            overloaded: 2,
            healthy_endpoints: 1,
            endpoints: vec![EndpointStats {
                address: "127.0.0.1:80".parse().expect("addr"),
                host: "127.0.0.1".into(),
                weight: 1,
                healthy: true,
                ejected: false,
                ejections: 3,
            }],
            ..Default::default()
        };
        let mut out = String::new();
        render_stats(&mut out, &[s]);
        assert!(
            out.contains("weft_cluster_requests_total{cluster=\"a\\\"b\"} 7\n"),
            "{out}"
        );
        assert!(out.contains("breaker=\"max_requests\"} 2\n"), "{out}");
        assert!(out.contains("weft_endpoint_ejections_total{cluster=\"a\\\"b\",endpoint=\"127.0.0.1:80\",host=\"127.0.0.1\"} 3\n"));
        assert!(out.contains("weft_cluster_healthy_endpoints{cluster=\"a\\\"b\"} 1\n"));
    }
}
