//! Proxy metrics: lock-free counters per listener, rendered in the
//! Prometheus text format by the admin listener together with cluster,
//! plugin and filter-defined metrics.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Latency histogram bounds in seconds.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters of one listener, shared by all workers.
#[derive(Default, Debug)]
pub struct ListenerMetrics {
    pub requests: AtomicU64,
    pub by_class: [AtomicU64; 5],
    pub active_connections: AtomicI64,
    pub connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub active_requests: AtomicI64,
    pub local_replies: AtomicU64,
    pub retries: AtomicU64,
    pub plugin_failures: AtomicU64,
    pub upstream_failures: AtomicU64,
    latency: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_us: AtomicU64,
}

impl ListenerMetrics {
    pub fn requests_active_inc(&self) {
        self.active_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, status: u16, seconds: f64, flags: &crate::access_log::LogFlags) {
        self.active_requests.fetch_sub(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let idx = LATENCY_BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency[idx].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        if flags.local_reply {
            self.local_replies.fetch_add(1, Ordering::Relaxed);
        }
        if flags.retried {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        if flags.plugin_failure {
            self.plugin_failures.fetch_add(1, Ordering::Relaxed);
        }
        if flags.upstream_failure {
            self.upstream_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Escapes a label value.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one listener's series.
pub fn render_listener(out: &mut String, name: &str, m: &ListenerMetrics) {
    let l = label(name);
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "weft_listener_requests_total{{listener=\"{l}\"}} {}",
        get(&m.requests)
    );
    for (i, c) in m.by_class.iter().enumerate() {
        let _ = writeln!(
            out,
            "weft_listener_responses_total{{listener=\"{l}\",class=\"{}xx\"}} {}",
            i + 1,
            get(c)
        );
    }
    let _ = writeln!(
        out,
        "weft_listener_active_connections{{listener=\"{l}\"}} {}",
        m.active_connections.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "weft_listener_connections_total{{listener=\"{l}\"}} {}",
        get(&m.connections)
    );
    let _ = writeln!(
        out,
        "weft_listener_rejected_connections_total{{listener=\"{l}\"}} {}",
        get(&m.rejected_connections)
    );
    let _ = writeln!(
        out,
        "weft_listener_active_requests{{listener=\"{l}\"}} {}",
        m.active_requests.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "weft_listener_local_replies_total{{listener=\"{l}\"}} {}",
        get(&m.local_replies)
    );
    let _ = writeln!(
        out,
        "weft_listener_retried_requests_total{{listener=\"{l}\"}} {}",
        get(&m.retries)
    );
    let _ = writeln!(
        out,
        "weft_listener_plugin_failures_total{{listener=\"{l}\"}} {}",
        get(&m.plugin_failures)
    );
    let _ = writeln!(
        out,
        "weft_listener_upstream_failures_total{{listener=\"{l}\"}} {}",
        get(&m.upstream_failures)
    );
    let mut cumulative = 0;
    for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
        cumulative += get(&m.latency[i]);
        let _ = writeln!(
            out,
            "weft_listener_request_duration_seconds_bucket{{listener=\"{l}\",le=\"{b}\"}} {cumulative}"
        );
    }
    cumulative += get(&m.latency[LATENCY_BOUNDS.len()]);
    let _ = writeln!(
        out,
        "weft_listener_request_duration_seconds_bucket{{listener=\"{l}\",le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "weft_listener_request_duration_seconds_sum{{listener=\"{l}\"}} {}",
        get(&m.latency_sum_us) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "weft_listener_request_duration_seconds_count{{listener=\"{l}\"}} {cumulative}"
    );
}
