//! Real HTTP servers on loopback for tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A request as an upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
    /// Over TLS: whether the client presented a certificate.
    pub client_cert: bool,
}

/// A handle on a running test server.
pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Server {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync>;

/// Starts an HTTP/1.1 + h2c server on its own thread; `handler` answers
/// every request (after the body is read).
pub fn serve(handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static) -> Server {
    serve_on("127.0.0.1:0".parse().expect("addr"), Arc::new(handler))
}

/// An echo upstream: answers 200 with `x-upstream: <name>`, echoing the
/// request body, and `x-seen-<name>` for every `x-*` request header.
pub fn echo(name: &'static str) -> Server {
    serve(move |seen| {
        let mut b = Response::builder().status(200).header("x-upstream", name);
        for (name, value) in &seen.headers {
            if name.as_str().starts_with("x-") {
                b = b.header(format!("x-seen-{name}"), value);
            }
        }
        b = b.header("x-seen-path", seen.uri.as_str());
        b.body(Full::new(seen.body.clone())).expect("response")
    })
}

pub fn serve_on(addr: SocketAddr, handler: Handler) -> Server {
    spawn_server(addr, handler, None)
}

/// An HTTPS server (HTTP/1.1 and h2 by ALPN) with the given certificate;
/// with `client_ca`, client certificates are verified against it (and
/// required when `require_client_cert`).
pub fn serve_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<(&std::path::Path, bool)>,
    handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> Server {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .expect("server cert")
        .flatten()
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("server key");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((ca, required)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).expect("ca").flatten() {
                roots.add(c).expect("root");
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if required {
                v.build()
            } else {
                v.allow_unauthenticated().build()
            };
            builder.with_client_cert_verifier(v.expect("verifier"))
        }
    };
    let mut config = builder.with_single_cert(chain, key).expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    spawn_server(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(handler),
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
    )
}

fn spawn_server(
    addr: SocketAddr,
    handler: Handler,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Server {
    let std_listener = std::net::TcpListener::bind(addr).expect("bind test upstream");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("local addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let (r, c, s) = (requests.clone(), connections.clone(), seen.clone());
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            loop {
                tokio::select! {
                    _ = &mut rx => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        c.fetch_add(1, Ordering::SeqCst);
                        let (handler, r, s) = (handler.clone(), r.clone(), s.clone());
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            let svc = move |client_cert: bool| service_fn(move |req: Request<Incoming>| {
                                let (handler, r, s) = (handler.clone(), r.clone(), s.clone());
                                async move {
                                    let (parts, body) = req.into_parts();
                                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                    let seen = Seen {
                                        method: parts.method.to_string(),
                                        uri: parts.uri.to_string(),
                                        headers: parts.headers,
                                        body,
                                        version: parts.version,
                                        client_cert,
                                    };
                                    r.fetch_add(1, Ordering::SeqCst);
                                    let resp = handler(&seen);
                                    s.lock().unwrap_or_else(|e| e.into_inner()).push(seen);
                                    Ok::<_, Infallible>(resp)
                                }
                            });
                            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            match tls {
                                None => {
                                    let _ = builder.serve_connection(TokioIo::new(stream), svc(false)).await;
                                }
                                Some(acceptor) => {
                                    let Ok(stream) = acceptor.accept(stream).await else { return };
                                    let client_cert = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                                    let _ = builder.serve_connection(TokioIo::new(stream), svc(client_cert)).await;
                                }
                            }
                        });
                    }
                }
            }
        });
    });
    Server {
        addr,
        requests,
        connections,
        seen,
        shutdown: Some(tx),
        thread: Some(thread),
    }
}
