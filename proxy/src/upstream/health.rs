//! Background work of a cluster, once per process: DNS re-resolution and
//! one active health checker per endpoint. Runs on whatever runtime
//! `SharedClusterState::spawn_background` was called on and ends when the
//! state's stop channel closes.

use crate::upstream::conn::{self, MaybeTls};
use crate::upstream::settings::{HealthCheckSettings, UpstreamProtocol};
use crate::upstream::shared::{SharedCluster, SharedEndpoint, dedup};
use crate::upstream::tls;
use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::{Request, Uri};
use http_body_util::Empty;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsConnector;

/// Shortest DNS refresh period and the retry period of a name that has no
/// address yet.
const MIN_DNS_REFRESH: Duration = Duration::from_millis(50);
const UNRESOLVED_RETRY: Duration = Duration::from_secs(5);

/// The background task of one cluster.
pub(crate) async fn run_cluster(cluster: Arc<SharedCluster>, mut stop: watch::Receiver<()>) {
    let settings = &cluster.settings;
    let tls = match &settings.tls {
        None => Ok(None),
        Some(t) => tls::client_config(t, settings.protocol).map(|c| Some(TlsConnector::from(c))),
    };
    let checks = match (&settings.health_check, tls) {
        (Some(hc), Ok(tls)) => Some((hc.clone(), tls)),
        (Some(_), Err(e)) => {
            tracing::error!(cluster = %settings.name, "no health checks: TLS settings unusable: {e}");
            None
        }
        (None, _) => None,
    };
    let dns: Vec<usize> = settings
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| e.ip().is_none())
        .map(|(i, _)| i)
        .collect();
    let mut checkers = JoinSet::new();
    let mut running: HashMap<(usize, SocketAddr), AbortHandle> = HashMap::new();
    loop {
        if let Some((hc, tls)) = &checks {
            let (_, endpoints) = cluster.endpoints();
            running.retain(|key, handle| {
                let keep = endpoints.iter().any(|e| (e.entry, e.address) == *key);
                if !keep {
                    handle.abort();
                }
                keep
            });
            for ep in endpoints.iter() {
                if let Entry::Vacant(slot) = running.entry((ep.entry, ep.address)) {
                    let task = check_endpoint(
                        cluster.clone(),
                        ep.clone(),
                        hc.clone(),
                        tls.clone(),
                        stop.clone(),
                    );
                    slot.insert(checkers.spawn(task));
                }
            }
            while checkers.try_join_next().is_some() {}
        }
        if dns.is_empty() {
            // Nothing will change the endpoint list: wait for the stop.
            let _ = stop.changed().await;
            break;
        }
        let (_, endpoints) = cluster.endpoints();
        let unresolved = dns
            .iter()
            .any(|entry| !endpoints.iter().any(|e| e.entry == *entry));
        let mut period = settings.dns_refresh_rate.max(MIN_DNS_REFRESH);
        if unresolved {
            period = period.min(UNRESOLVED_RETRY);
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(period) => {}
        }
        for &entry in &dns {
            let Some(e) = settings.endpoints.get(entry) else {
                continue;
            };
            let lookup = tokio::net::lookup_host((e.host.as_str(), e.port));
            match tokio::time::timeout(period.max(Duration::from_secs(5)), lookup).await {
                Ok(Ok(addrs)) => {
                    let addrs = dedup(addrs.collect());
                    if addrs.is_empty() {
                        tracing::warn!(cluster = %settings.name, host = %e.host, "DNS answered no address; keeping the previous ones");
                    } else if cluster.set_resolved(entry, &addrs) {
                        tracing::info!(cluster = %settings.name, host = %e.host, ?addrs, "endpoints re-resolved");
                    }
                }
                Ok(Err(err)) => {
                    tracing::warn!(cluster = %settings.name, host = %e.host, "DNS resolution failed, keeping the previous addresses: {err}");
                }
                Err(_) => {
                    tracing::warn!(cluster = %settings.name, host = %e.host, "DNS resolution timed out, keeping the previous addresses");
                }
            }
        }
    }
    checkers.abort_all();
}

/// Checks one endpoint every `interval` until stopped or aborted.
async fn check_endpoint(
    cluster: Arc<SharedCluster>,
    ep: Arc<SharedEndpoint>,
    hc: HealthCheckSettings,
    tls: Option<TlsConnector>,
    mut stop: watch::Receiver<()>,
) {
    let name = cluster.settings.name.clone();
    let (mut failures, mut successes) = (0u32, 0u32);
    loop {
        let probe = tokio::time::timeout(hc.timeout, probe(&cluster, &ep, &hc, tls.as_ref()));
        let result = tokio::select! {
            _ = stop.changed() => return,
            r = probe => r.unwrap_or_else(|_| Err(format!("timed out after {:?}", hc.timeout))),
        };
        match result {
            Ok(()) => {
                failures = 0;
                successes = successes.saturating_add(1);
                if !ep.is_healthy() && successes >= hc.healthy_threshold.max(1) {
                    ep.set_healthy(true);
                    tracing::info!(cluster = %name, endpoint = %ep.address, "endpoint healthy again");
                }
            }
            Err(reason) => {
                successes = 0;
                failures = failures.saturating_add(1);
                if ep.is_healthy() && failures >= hc.unhealthy_threshold.max(1) {
                    ep.set_healthy(false);
                    tracing::warn!(cluster = %name, endpoint = %ep.address, "endpoint unhealthy: {reason}");
                } else {
                    tracing::debug!(cluster = %name, endpoint = %ep.address, "health check failed: {reason}");
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(hc.interval) => {}
        }
    }
}

/// One `GET` on a fresh connection; 2xx is healthy.
async fn probe(
    cluster: &SharedCluster,
    ep: &SharedEndpoint,
    hc: &HealthCheckSettings,
    tls: Option<&TlsConnector>,
) -> Result<(), String> {
    let settings = &cluster.settings;
    let server_name = tls.map(|c| {
        let sni = settings.tls.as_ref().and_then(|t| t.sni.as_deref());
        (c, tls::server_name(sni, &ep.host, ep.address.ip()))
    });
    let io: MaybeTls = conn::open(&settings.name, ep.address, server_name)
        .await
        .map_err(|e| e.to_string())?;
    let authority = if ep.host.parse::<std::net::IpAddr>().is_ok() || ep.host.starts_with('[') {
        ep.address.to_string()
    } else {
        format!("{}:{}", ep.host, ep.address.port())
    };
    let status = match settings.protocol {
        UpstreamProtocol::Http1 => {
            let req = Request::get(hc.path.as_str())
                .header(HOST, authority.as_str())
                .header(USER_AGENT, "weft-health-check")
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("bad health check request: {e}"))?;
            let (mut sender, connection) = http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| e.to_string())?;
            exchange(sender.send_request(req), connection).await?
        }
        UpstreamProtocol::Http2 => {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let uri: Uri = format!("{scheme}://{authority}{}", hc.path)
                .parse()
                .map_err(|e| format!("bad health check path {:?}: {e}", hc.path))?;
            let req = Request::get(uri)
                .version(http::Version::HTTP_2)
                .header(USER_AGENT, "weft-health-check")
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("bad health check request: {e}"))?;
            let (mut sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(|e| e.to_string())?;
            exchange(sender.send_request(req), connection).await?
        }
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// Drives the connection while the request runs; both are dropped (the
/// connection closed) when this returns.
async fn exchange(
    send: impl Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>>,
    connection: impl Future<Output = hyper::Result<()>>,
) -> Result<http::StatusCode, String> {
    let send = std::pin::pin!(send);
    let connection = std::pin::pin!(connection);
    tokio::select! {
        r = send => r.map(|r| r.status()).map_err(|e| e.to_string()),
        r = connection => Err(match r {
            Ok(()) => "connection closed before the answer".to_owned(),
            Err(e) => e.to_string(),
        }),
    }
}
