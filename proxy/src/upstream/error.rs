//! What can go wrong on the way to an upstream. Every error names its
//! cluster, and its endpoint once one was chosen.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The cluster has no endpoint at all (e.g. its DNS names resolve to
    /// nothing). Unhealthy or ejected endpoints are still used when every
    /// endpoint is (panic mode), so this is not about health.
    #[error("cluster {cluster}: no healthy endpoint")]
    NoHealthyEndpoint { cluster: String },

    #[error("cluster {cluster}: connect to {endpoint} failed: {source}")]
    ConnectFailed {
        cluster: String,
        endpoint: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// TCP connect, TLS handshake and HTTP handshake took longer than the
    /// cluster's `connect_timeout`.
    #[error("cluster {cluster}: connect to {endpoint} timed out after {timeout:?}")]
    ConnectTimeout {
        cluster: String,
        endpoint: SocketAddr,
        timeout: Duration,
    },

    /// The TLS handshake with the endpoint failed (certificate, SNI, ALPN,
    /// client certificate refused...).
    #[error("cluster {cluster}: TLS handshake with {endpoint} failed: {source}")]
    Tls {
        cluster: String,
        endpoint: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The cluster's TLS settings cannot be used (bad PEM, no CA...).
    #[error("cluster {cluster}: TLS settings: {reason}")]
    TlsConfig { cluster: String, reason: String },

    /// The HTTP/1 or HTTP/2 handshake on a fresh connection failed.
    #[error("cluster {cluster}: HTTP handshake with {endpoint} failed: {source}")]
    Handshake {
        cluster: String,
        endpoint: SocketAddr,
        #[source]
        source: hyper::Error,
    },

    /// A circuit breaker is open; `which` is `max_connections`,
    /// `max_pending_requests` or `max_requests`.
    #[error("cluster {cluster}: overloaded ({which} reached)")]
    Overloaded {
        cluster: String,
        which: &'static str,
    },

    /// The request was (at least partly) sent and the connection broke, or
    /// the upstream answered garbage, before the response headers.
    #[error(
        "cluster {cluster}: connection to {endpoint} broke before the response headers: {source}"
    )]
    Reset {
        cluster: String,
        endpoint: SocketAddr,
        #[source]
        source: hyper::Error,
    },

    /// The request failed on our side: its body errored or was aborted, or
    /// hyper refused it.
    #[error("cluster {cluster}: request to {endpoint} failed: {source}")]
    Request {
        cluster: String,
        endpoint: SocketAddr,
        #[source]
        source: hyper::Error,
    },

    /// The request cannot be expressed upstream (e.g. a Host that is not a
    /// valid authority for HTTP/2).
    #[error("cluster {cluster}: invalid request: {reason}")]
    InvalidRequest { cluster: String, reason: String },

    /// Not produced by this module: callers that put a deadline around
    /// [`crate::upstream::Cluster::send`] report it with this.
    #[error("cluster {cluster}: upstream request timed out")]
    Timeout { cluster: String },
}

impl UpstreamError {
    /// No connection could be established (connect refused or timed out, TLS
    /// or HTTP handshake failed): nothing reached the upstream application,
    /// so the request is always safe to retry.
    pub fn is_connect_failure(&self) -> bool {
        matches!(
            self,
            UpstreamError::ConnectFailed { .. }
                | UpstreamError::ConnectTimeout { .. }
                | UpstreamError::Tls { .. }
                | UpstreamError::Handshake { .. }
        )
    }

    /// The connection broke after the request was sent, before the
    /// response headers.
    pub fn is_reset(&self) -> bool {
        matches!(self, UpstreamError::Reset { .. })
    }

    /// A circuit breaker refused the request.
    pub fn is_overloaded(&self) -> bool {
        matches!(self, UpstreamError::Overloaded { .. })
    }

    /// The cluster the error is about.
    pub fn cluster(&self) -> &str {
        match self {
            UpstreamError::NoHealthyEndpoint { cluster }
            | UpstreamError::ConnectFailed { cluster, .. }
            | UpstreamError::ConnectTimeout { cluster, .. }
            | UpstreamError::Tls { cluster, .. }
            | UpstreamError::TlsConfig { cluster, .. }
            | UpstreamError::Handshake { cluster, .. }
            | UpstreamError::Overloaded { cluster, .. }
            | UpstreamError::Reset { cluster, .. }
            | UpstreamError::Request { cluster, .. }
            | UpstreamError::InvalidRequest { cluster, .. }
            | UpstreamError::Timeout { cluster } => cluster,
        }
    }

    /// The endpoint the error is about, when one had been chosen.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        match self {
            UpstreamError::ConnectFailed { endpoint, .. }
            | UpstreamError::ConnectTimeout { endpoint, .. }
            | UpstreamError::Tls { endpoint, .. }
            | UpstreamError::Handshake { endpoint, .. }
            | UpstreamError::Reset { endpoint, .. }
            | UpstreamError::Request { endpoint, .. } => Some(*endpoint),
            _ => None,
        }
    }
}
