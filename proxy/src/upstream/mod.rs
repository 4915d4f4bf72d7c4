//! The upstream side: clusters, load balancing, connection pools, active
//! health checks, outlier ejection, circuit breakers and upstream TLS.
//!
//! # Thread-per-core split
//!
//! Every worker thread runs its own current-thread runtime and `LocalSet`,
//! and owns a [`ClusterSet`] built from the generation's settings:
//! per-worker endpoint lists, load-balancer state (round-robin weights,
//! active-request counts for least request, the hash ring) and connection
//! pools (idle HTTP/1 keep-alive connections, one multiplexed HTTP/2
//! connection per endpoint). A request on a worker touches only that
//! worker's `Rc`/`Cell` state, plus a few atomics of the shared state; it
//! takes no lock shared with other workers.
//!
//! What must be process-wide lives in one [`SharedClusterState`] per
//! generation, built once and handed to every worker behind an `Arc`:
//!
//! - the endpoint list (DNS results) with a version number workers compare
//!   on each request; they copy the list (under a mutex) only when it
//!   changed, keeping the pools of endpoints that stayed;
//! - endpoint health from active checks (one checker per endpoint per
//!   process) and outlier ejections (consecutive 5xx/resets or connect
//!   failures, for `base_ejection_time` × times ejected, capped at 300 s),
//!   as atomics;
//! - circuit-breaker counters (connections, pending requests, requests),
//!   process-wide like Envoy's;
//! - each worker's counters, registered once, summed by
//!   [`SharedClusterState::stats`] and rendered by [`render_metrics`].
//!
//! [`SharedClusterState::spawn_background`] runs DNS re-resolution and the
//! health checkers on the runtime it is called from (the control thread's);
//! [`SharedClusterState::shutdown`] or dropping the state stops them.
//!
//! # Choosing an endpoint
//!
//! Among endpoints that are healthy and not ejected, or among all of them
//! when none is (panic mode, as Envoy's panic threshold): smooth weighted
//! round robin (per worker), weighted random, least request (two weighted
//! random choices, fewer active requests on this worker wins) or ring hash
//! (100 × weight virtual nodes per endpoint, a stable FNV-1a/murmur hash;
//! no key means random).
//!
//! # Request form
//!
//! See [`Cluster::send`]: origin-form URIs with a `Host` header (or
//! absolute-form); the client's authority is kept, HTTP/1 upstreams get
//! origin-form plus `Host`, HTTP/2 upstreams get `:authority`.

mod cluster;
mod conn;
mod error;
mod health;
mod lb;
mod settings;
mod shared;
mod stats;
mod tls;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use cluster::{Cluster, ClusterSet, ResponseBody};
pub use error::UpstreamError;
pub use settings::{
    CircuitBreakerSettings, ClusterSettings, EndpointSettings, HealthCheckSettings, LbPolicy,
    OutlierSettings, UpstreamProtocol, UpstreamTlsSettings,
};
pub use shared::SharedClusterState;
pub use stats::{ClusterStats, EndpointStats, render_metrics, render_stats};
pub use tls::TlsConfigError;

/// Boxed error of request bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request sent upstream.
pub type UpstreamBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

/// A response head from an endpoint; its body streams from the upstream.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub response: http::Response<ResponseBody>,
    /// The endpoint that answered.
    pub endpoint: std::net::SocketAddr,
}
