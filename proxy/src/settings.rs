//! From the YAML model (`weft-config`) to the settings the proxy's parts
//! take: clusters, listener limits, TLS acceptors.

use crate::generation::ListenerLimits;
use crate::upstream::{
    CircuitBreakerSettings, ClusterSettings, EndpointSettings, HealthCheckSettings, LbPolicy,
    OutlierSettings, UpstreamProtocol, UpstreamTlsSettings,
};
use std::time::Duration;

/// Maps one cluster; errors name the reason (the caller adds the cluster).
pub fn cluster(c: &weft_config::Cluster) -> Result<ClusterSettings, String> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let tls = match &c.tls {
        None => None,
        Some(t) => Some(UpstreamTlsSettings {
            ca_pem: t.ca.as_deref().map(read).transpose()?,
            sni: t.sni.clone(),
            client_cert_pem: t.cert.as_deref().map(read).transpose()?,
            client_key_pem: t.key.as_deref().map(read).transpose()?,
            insecure_skip_verify: t.insecure_skip_verify,
        }),
    };
    let mut endpoints = Vec::new();
    for e in &c.endpoints {
        endpoints.push(EndpointSettings {
            host: e.host.clone(),
            port: e.port,
            weight: e.weight,
        });
    }
    let settings = ClusterSettings {
        name: c.name.clone(),
        endpoints,
        lb_policy: match c.lb_policy {
            weft_config::LbPolicy::RoundRobin => LbPolicy::RoundRobin,
            weft_config::LbPolicy::LeastRequest => LbPolicy::LeastRequest,
            weft_config::LbPolicy::Random => LbPolicy::Random,
            weft_config::LbPolicy::RingHash => LbPolicy::RingHash,
        },
        hash_header: match &c.hash_header {
            Some(h) => Some(
                http::HeaderName::from_bytes(h.as_bytes())
                    .map_err(|e| format!("hash_header {h:?}: {e}"))?,
            ),
            None => None,
        },
        protocol: match c.protocol {
            weft_config::Protocol::Http1 => UpstreamProtocol::Http1,
            weft_config::Protocol::Http2 => UpstreamProtocol::Http2,
        },
        connect_timeout: c.connect_timeout,
        dns_refresh_rate: c.dns_refresh_rate,
        health_check: c.health_check.as_ref().map(|h| HealthCheckSettings {
            path: h.path.clone(),
            interval: h.interval,
            timeout: h.timeout,
            unhealthy_threshold: h.unhealthy_threshold,
            healthy_threshold: h.healthy_threshold,
        }),
        outlier_detection: c.outlier_detection.as_ref().map(|o| OutlierSettings {
            consecutive_5xx: o.consecutive_5xx,
            consecutive_connect_failures: o.consecutive_connect_failures,
            base_ejection_time: o.base_ejection_time,
        }),
        circuit_breakers: CircuitBreakerSettings {
            max_connections: c.circuit_breakers.max_connections,
            max_pending_requests: c.circuit_breakers.max_pending_requests,
            max_requests: c.circuit_breakers.max_requests,
        },
        tls,
        idle_timeout: Duration::from_secs(90),
    };
    settings.validate()?;
    Ok(settings)
}

pub fn listener_limits(l: &weft_config::Listener) -> ListenerLimits {
    let x = &l.limits;
    ListenerLimits {
        max_request_headers_size: x.max_request_headers_size as usize,
        request_header_timeout: x.request_header_timeout,
        idle_timeout: x.idle_timeout,
        max_connections: x.max_connections as usize,
        http2_max_concurrent_streams: x.http2_max_concurrent_streams,
        http2_max_pending_reset_streams: x.http2_max_pending_reset_streams as usize,
    }
}

pub fn acceptor(
    l: &weft_config::Listener,
    t: &weft_config::ListenerTls,
) -> Result<tokio_rustls::TlsAcceptor, crate::tls::TlsError> {
    let certs: Vec<_> = t
        .certificates
        .iter()
        .map(|c| crate::tls::CertSpec {
            cert: &c.cert,
            key: &c.key,
            server_names: &c.server_names,
        })
        .collect();
    crate::tls::acceptor(
        &l.name,
        &certs,
        t.client_ca.as_deref(),
        t.require_client_cert,
    )
}
