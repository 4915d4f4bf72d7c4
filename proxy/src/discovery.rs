//! The proxy's side of the controller's stream (`weft run --controller
//! URL`): one long `POST /v1/stream` over HTTP/2 (h2c, or TLS with the
//! given CA for `https://`), newline-delimited JSON both ways. The proxy
//! sends its node identity, then one report per snapshot it applied (no
//! errors: ACK; errors by plugin: NACK); the controller sends snapshots
//! (`{"version", "plugins": [PluginSpec…]}`).
//!
//! The client reconnects with backoff (0.5 s doubling to 10 s) and never
//! stops the proxy: while the controller is away the last snapshot applied
//! keeps serving, and after a reconnect the controller's full snapshot is
//! compared by version.

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest snapshot line accepted.
const MAX_LINE: usize = 16 << 20;

/// A plugin list from the controller.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Snapshot {
    pub version: String,
    #[serde(default)]
    pub plugins: Vec<weft_config::PluginSpec>,
}

/// What the proxy says of a snapshot it tried to apply.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub version: String,
    /// Plugin name (`namespace.name`) → why it did not load.
    pub errors: BTreeMap<String, String>,
}

/// Where the controller is.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// CA bundle (PEM) for an `https://` controller.
    pub ca: Option<PathBuf>,
}

/// Problems of one session with the controller.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("bad controller url {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS to the controller: {0}")]
    Tls(String),
    #[error("HTTP/2 to the controller: {0}")]
    Http(#[from] hyper::Error),
    #[error("the controller answered {0}")]
    Status(http::StatusCode),
    #[error("a snapshot line is not valid: {0}")]
    Snapshot(String),
}

/// Starts the client on the current `LocalSet`; snapshots come out of the
/// receiver, reports go into the sender.
pub fn spawn(
    target: Target,
    node: weft_config::Node,
) -> (mpsc::Receiver<Snapshot>, mpsc::Sender<Report>) {
    let (snap_tx, snap_rx) = mpsc::channel(4);
    let (report_tx, mut report_rx) = mpsc::channel::<Report>(16);
    tokio::task::spawn_local(async move {
        let first = Duration::from_millis(500);
        let mut backoff = first;
        loop {
            match session(&target, &node, &snap_tx, &mut report_rx).await {
                Ok(()) => {
                    tracing::warn!(controller = %target.url, "the controller closed the stream; the last snapshot keeps serving");
                    backoff = first;
                }
                Err(e) => {
                    tracing::warn!(controller = %target.url, "{e}; the last snapshot keeps serving, retrying in {backoff:?}");
                }
            }
            if snap_tx.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
    (snap_rx, report_tx)
}

async fn session(
    target: &Target,
    node: &weft_config::Node,
    snapshots: &mpsc::Sender<Snapshot>,
    reports: &mut mpsc::Receiver<Report>,
) -> Result<(), DiscoveryError> {
    let url: http::Uri = target.url.parse().map_err(|e| DiscoveryError::Url {
        url: target.url.clone(),
        reason: format!("{e}"),
    })?;
    let tls = match url.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(DiscoveryError::Url {
                url: target.url.clone(),
                reason: "the scheme must be http:// or https://".into(),
            });
        }
    };
    let host = url.host().unwrap_or("").to_owned();
    let port = url.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = format!("{host}:{port}");
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|source| DiscoveryError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let (body_tx, mut body_rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| {
        body_rx.poll_recv(cx)
    }));
    let request = http::Request::post(format!(
        "{}://{addr}/v1/stream",
        url.scheme_str().unwrap_or("http")
    ))
    .header("content-type", "application/x-ndjson")
    .body(body)
    .map_err(|e| DiscoveryError::Url {
        url: target.url.clone(),
        reason: e.to_string(),
    })?;
    let mut sender = if tls {
        let stream = tls_connect(tcp, &host, target.ca.as_deref()).await?;
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        tokio::task::spawn_local(conn);
        sender
    } else {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
        tokio::task::spawn_local(conn);
        sender
    };
    let hello = serde_json::json!({
        "name": node.name,
        "namespace": node.namespace,
        "labels": node.labels,
    });
    let _ = body_tx.send(Ok(Frame::data(line(&hello)))).await;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(DiscoveryError::Status(response.status()));
    }
    tracing::info!(controller = %target.url, "connected to the controller");
    let mut body = response.into_body();
    let mut buf = BytesMut::new();
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    buf.extend_from_slice(&data);
                    while let Some(at) = buf.iter().position(|b| *b == b'\n') {
                        let text = buf.split_to(at + 1);
                        let text = &text[..at];
                        if text.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let snapshot: Snapshot = serde_json::from_slice(text)
                            .map_err(|e| DiscoveryError::Snapshot(e.to_string()))?;
                        if snapshots.send(snapshot).await.is_err() {
                            return Ok(());
                        }
                    }
                    if buf.len() > MAX_LINE {
                        return Err(DiscoveryError::Snapshot(format!("a line is longer than {MAX_LINE} bytes")));
                    }
                }
            },
            report = reports.recv() => match report {
                None => return Ok(()),
                Some(r) => {
                    let value = serde_json::to_value(&r).unwrap_or_default();
                    if body_tx.send(Ok(Frame::data(line(&value)))).await.is_err() {
                        return Ok(());
                    }
                }
            },
        }
    }
}

fn line(value: &serde_json::Value) -> Bytes {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

async fn tls_connect(
    tcp: tokio::net::TcpStream,
    host: &str,
    ca: Option<&std::path::Path>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, DiscoveryError> {
    let ca = ca.ok_or_else(|| {
        DiscoveryError::Tls("an https:// controller needs --controller-ca".into())
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| DiscoveryError::Tls(format!("cannot read {}: {e}", ca.display())))?;
    for c in certs {
        let c = c.map_err(|e| DiscoveryError::Tls(format!("{}: {e}", ca.display())))?;
        roots
            .add(c)
            .map_err(|e| DiscoveryError::Tls(format!("{}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DiscoveryError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| DiscoveryError::Tls(format!("server name {host}: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| DiscoveryError::Tls(e.to_string()))
}
