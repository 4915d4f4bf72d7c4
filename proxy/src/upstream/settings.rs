//! Plain settings of a cluster, mapped from the YAML model by the caller.
//! Built once per generation and shared (by value or `Arc`) by every worker.

use std::net::IpAddr;
use std::time::Duration;

/// One upstream cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub name: String,
    pub endpoints: Vec<EndpointSettings>,
    pub lb_policy: LbPolicy,
    /// The request header whose value is the ring-hash key when the caller
    /// passes no key of its own (see [`crate::upstream::Cluster::send`]).
    pub hash_header: Option<http::HeaderName>,
    pub protocol: UpstreamProtocol,
    /// Bounds TCP connect, the TLS handshake and the HTTP handshake together.
    pub connect_timeout: Duration,
    /// How often DNS names are re-resolved by the background task.
    pub dns_refresh_rate: Duration,
    pub health_check: Option<HealthCheckSettings>,
    pub outlier_detection: Option<OutlierSettings>,
    pub circuit_breakers: CircuitBreakerSettings,
    pub tls: Option<UpstreamTlsSettings>,
    /// A pooled keep-alive connection unused for this long is closed.
    pub idle_timeout: Duration,
}

impl ClusterSettings {
    /// A cluster with the given endpoints and defaults for everything else:
    /// round robin, HTTP/1.1, 5 s connect timeout, 30 s DNS refresh, no
    /// health check, no outlier detection, Envoy's default breakers (1024),
    /// plain TCP, 90 s idle timeout.
    pub fn new(name: impl Into<String>, endpoints: Vec<EndpointSettings>) -> Self {
        ClusterSettings {
            name: name.into(),
            endpoints,
            lb_policy: LbPolicy::RoundRobin,
            hash_header: None,
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Duration::from_secs(5),
            dns_refresh_rate: Duration::from_secs(30),
            health_check: None,
            outlier_detection: None,
            circuit_breakers: CircuitBreakerSettings::default(),
            tls: None,
            idle_timeout: Duration::from_secs(90),
        }
    }

    /// Checks what would otherwise only fail at request time: endpoints,
    /// health-check values and the TLS material (CA, client certificate and
    /// key are parsed). The error is a reason without the cluster name.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("the cluster has no name".into());
        }
        if self.endpoints.is_empty() {
            return Err("the cluster has no endpoints".into());
        }
        for e in &self.endpoints {
            if e.host.trim().is_empty() {
                return Err("an endpoint has an empty host".into());
            }
            if e.port == 0 {
                return Err(format!("endpoint {}: port 0", e.host));
            }
        }
        if self.connect_timeout.is_zero() {
            return Err("connect_timeout is 0".into());
        }
        if let Some(h) = &self.health_check {
            if !h.path.starts_with('/') {
                return Err(format!(
                    "health_check.path {:?} does not start with '/'",
                    h.path
                ));
            }
            if h.interval.is_zero() || h.timeout.is_zero() {
                return Err("health_check interval and timeout must be above 0".into());
            }
        }
        if let Some(t) = &self.tls {
            crate::upstream::tls::client_config(t, self.protocol)
                .map_err(|e| format!("tls: {e}"))?;
        }
        Ok(())
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings::new("", Vec::new())
    }
}

/// One configured endpoint: an IP literal (never resolved) or a DNS name
/// (every address it resolves to becomes an endpoint with this weight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSettings {
    pub host: String,
    pub port: u16,
    /// Relative weight; 0 is taken as 1.
    pub weight: u32,
}

impl EndpointSettings {
    pub fn new(host: impl Into<String>, port: u16, weight: u32) -> Self {
        EndpointSettings {
            host: host.into(),
            port,
            weight,
        }
    }

    /// The host as an IP address when it is a literal (`[::1]` accepted).
    pub fn ip(&self) -> Option<IpAddr> {
        let h = self.host.trim();
        let h = h
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(h);
        h.parse().ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbPolicy {
    /// Smooth weighted round robin (nginx), per worker.
    #[default]
    RoundRobin,
    /// Power of two weighted random choices, fewer active requests wins.
    LeastRequest,
    /// Weighted random.
    Random,
    /// Consistent hashing on a ring of 100 × weight virtual nodes.
    RingHash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    /// One multiplexed connection per endpoint and worker (h2c prior
    /// knowledge without TLS, ALPN `h2` with TLS).
    Http2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// Path of the `GET`; a 2xx answer is a success.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures that make a healthy endpoint unhealthy (0 = 1).
    pub unhealthy_threshold: u32,
    /// Consecutive successes that make an unhealthy endpoint healthy (0 = 1).
    pub healthy_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierSettings {
    /// Consecutive 5xx answers (or resets) that eject an endpoint; 0 = off.
    pub consecutive_5xx: u32,
    /// Consecutive connect failures that eject an endpoint; 0 = off.
    pub consecutive_connect_failures: u32,
    /// An ejection lasts this × the number of times the endpoint has been
    /// ejected, capped at max(this, 300 s).
    pub base_ejection_time: Duration,
}

/// Process-wide limits of a cluster (all workers together). 0 = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerSettings {
    /// Open upstream connections.
    pub max_connections: u32,
    /// Requests waiting for a new connection to be established.
    pub max_pending_requests: u32,
    /// Requests in flight (until their response headers arrive).
    pub max_requests: u32,
}

impl Default for CircuitBreakerSettings {
    fn default() -> Self {
        CircuitBreakerSettings {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTlsSettings {
    /// PEM CA bundle the upstream certificates are verified against. There
    /// are no system roots: without it, `insecure_skip_verify` must be set.
    pub ca_pem: Option<Vec<u8>>,
    /// SNI and the name the certificate is checked against; default: the
    /// endpoint's host when it is a DNS name, else its IP address.
    pub sni: Option<String>,
    /// PEM certificate chain presented to the upstream (mTLS).
    pub client_cert_pem: Option<Vec<u8>>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert_pem`.
    pub client_key_pem: Option<Vec<u8>>,
    /// Accept any upstream certificate. For tests and trusted networks.
    pub insecure_skip_verify: bool,
}
