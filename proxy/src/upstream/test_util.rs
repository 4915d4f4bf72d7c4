//! Test support: real hyper servers on 127.0.0.1:0 that count connections
//! and requests and can fail, hold or check client certificates, a test
//! PKI made with rcgen, and a current-thread runtime with a `LocalSet`.

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Runs `f` on a current-thread runtime inside a `LocalSet`, like a worker.
pub(crate) fn run<F: Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, f);
}

/// Polls `f` every 10 ms for up to 5 s.
pub(crate) async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Proto {
    /// HTTP/1.1 and h2c prior knowledge (hyper-util auto).
    Auto,
    /// HTTP/2 only.
    Http2Only,
}

/// What a server saw of one request.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// `Host`, else the URI authority (HTTP/2 `:authority`).
    pub authority: Option<String>,
    /// The request target as the server parsed it.
    pub path_and_query: String,
    pub version: Version,
    pub client_cert: bool,
}

pub(crate) struct ServerState {
    pub name: String,
    /// Status of every answer except `/health`.
    pub status: AtomicU16,
    /// Status of `/health`.
    pub health_status: AtomicU16,
    pub requests: AtomicUsize,
    pub health_checks: AtomicUsize,
    pub connections: AtomicUsize,
    /// While true, answers (except `/health`) wait.
    pub hold: watch::Sender<bool>,
    pub seen: Mutex<Vec<Seen>>,
}

impl ServerState {
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    pub fn set_status(&self, s: u16) {
        self.status.store(s, Ordering::SeqCst);
    }
    pub fn last_seen(&self) -> Seen {
        self.seen
            .lock()
            .expect("seen")
            .last()
            .cloned()
            .expect("a request was seen")
    }
}

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
}

/// A plain HTTP server (HTTP/1.1 and h2c with `Proto::Auto`).
pub(crate) async fn server(name: &str, proto: Proto) -> TestServer {
    server_with_tls(name, proto, None).await
}

pub(crate) async fn server_with_tls(
    name: &str,
    proto: Proto,
    tls: Option<Arc<ServerConfig>>,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let state = Arc::new(ServerState {
        name: name.to_owned(),
        status: AtomicU16::new(200),
        health_status: AtomicU16::new(200),
        requests: AtomicUsize::new(0),
        health_checks: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
        hold: watch::channel(false).0,
        seen: Mutex::new(Vec::new()),
    });
    let st = state.clone();
    tokio::task::spawn_local(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            st.connections.fetch_add(1, Ordering::SeqCst);
            let st = st.clone();
            let tls = tls.clone();
            tokio::task::spawn_local(async move {
                match tls {
                    None => serve_connection(TokioIo::new(tcp), st, false, proto).await,
                    Some(config) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                            let cert = s
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty());
                            serve_connection(TokioIo::new(s), st, cert, proto).await;
                        }
                    }
                }
            });
        }
    });
    TestServer { addr, state }
}

async fn serve_connection<I>(io: TokioIo<I>, st: Arc<ServerState>, client_cert: bool, proto: Proto)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(st.clone(), client_cert, req));
    match proto {
        Proto::Auto => {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(io, svc)
                .await;
        }
        Proto::Http2Only => {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, svc)
                .await;
        }
    }
}

async fn handle(
    st: Arc<ServerState>,
    client_cert: bool,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/health" {
        st.health_checks.fetch_add(1, Ordering::SeqCst);
        let status =
            StatusCode::from_u16(st.health_status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK);
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = status;
        return Ok(r);
    }
    let authority = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    st.seen.lock().expect("seen").push(Seen {
        authority,
        path_and_query: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: req.version(),
        client_cert,
    });
    st.requests.fetch_add(1, Ordering::SeqCst);
    let _ = req.into_body().collect().await;
    let mut hold = st.hold.subscribe();
    let _ = hold.wait_for(|held| !*held).await;
    let status = StatusCode::from_u16(st.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK);
    let r = Response::builder()
        .status(status)
        .header("x-server", st.name.as_str())
        .body(Full::new(Bytes::from(st.name.clone())))
        .expect("response");
    Ok(r)
}

/// A listener that accepts connections and never answers (TLS handshakes
/// and HTTP requests hang). Returns its address; connections are kept open
/// until the listener task ends.
pub(crate) async fn silent_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::task::spawn_local(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    addr
}

/// A listener that reads the start of each request, then closes the
/// connection without answering.
pub(crate) async fn closing_listener() -> SocketAddr {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::task::spawn_local(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::task::spawn_local(async move {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
            });
        }
    });
    addr
}

/// An address nothing listens on (bound, then closed).
pub(crate) fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr")
}

/// A CA, a server certificate for `localhost` and 127.0.0.1, a client
/// certificate, and server configs with and without client auth.
pub(crate) struct Pki {
    pub ca_pem: Vec<u8>,
    pub client_cert_pem: Vec<u8>,
    pub client_key_pem: Vec<u8>,
    pub server: Arc<ServerConfig>,
    pub server_mtls: Arc<ServerConfig>,
}

pub(crate) fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "weft test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server cert");

    let client_key = KeyPair::generate().expect("client key");
    let mut client_params =
        CertificateParams::new(vec!["client.weft.test".to_owned()]).expect("client params");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &issuer)
        .expect("client cert");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![server_cert.der().clone()];
    let key = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key())
        .expect("server config");
    server.alpn_protocols = alpn.clone();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.der().to_vec()))
        .expect("root");
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("verifier");
    let mut server_mtls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key())
        .expect("mtls server config");
    server_mtls.alpn_protocols = alpn;

    Pki {
        ca_pem: ca.pem().into_bytes(),
        client_cert_pem: client_cert.pem().into_bytes(),
        client_key_pem: client_key.serialize_pem().into_bytes(),
        server: Arc::new(server),
        server_mtls: Arc::new(server_mtls),
    }
}
