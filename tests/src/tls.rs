//! Certificates made at test time (rcgen) and an HTTPS client.

use crate::client::Reply;
use crate::weft::TempDir;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;

/// A CA, a server certificate for `localhost`/127.0.0.1 and a client
/// certificate with a SPIFFE URI SAN, written as PEM files.
pub struct Pki {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    pub dir: TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub client_spiffe: String,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("pki");
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
        let mut sp = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = sp.signed_by(&server_key, &issuer).expect("server cert");

        let spiffe = "spiffe://weft.test/ns/default/sa/client".to_owned();
        let client_key = KeyPair::generate().expect("client key");
        let mut cp = CertificateParams::new(Vec::<String>::new()).expect("params");
        cp.distinguished_name.push(DnType::CommonName, "client");
        cp.subject_alt_names = vec![SanType::URI(spiffe.clone().try_into().expect("uri"))];
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = cp.signed_by(&client_key, &issuer).expect("client cert");

        Pki {
            ca_params,
            ca_key,
            ca: dir.write("ca.pem", ca.pem()),
            server_cert: dir.write("server.pem", server.pem()),
            server_key: dir.write("server.key", server_key.serialize_pem()),
            client_cert: dir.write("client.pem", client.pem()),
            client_key: dir.write("client.key", client_key.serialize_pem()),
            client_spiffe: spiffe,
            dir,
        }
    }

    /// Issues another server certificate for `names`; returns (cert, key) paths.
    pub fn issue_server_cert(&self, tag: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &issuer).expect("cert");
        (
            self.dir.write(&format!("{tag}.pem"), cert.pem()),
            self.dir.write(&format!("{tag}.key"), key.serialize_pem()),
        )
    }

    fn client_config(&self, with_client_cert: bool) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca)
            .expect("ca")
            .flatten()
        {
            roots.add(c).expect("root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = if with_client_cert {
            let chain: Vec<_> = CertificateDer::pem_file_iter(&self.client_cert)
                .expect("cert")
                .flatten()
                .collect();
            let key = PrivateKeyDer::from_pem_file(&self.client_key).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// GET over TLS to `127.0.0.1:port` with SNI `localhost`.
    pub fn get(
        &self,
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
        client_cert: bool,
    ) -> Result<Reply, String> {
        self.get_as("localhost", port, path, headers, client_cert)
    }

    /// GET over TLS to `127.0.0.1:port`, asking for (and verifying) `server_name`.
    pub fn get_as(
        &self,
        server_name: &str,
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
        client_cert: bool,
    ) -> Result<Reply, String> {
        let server_name = server_name.to_owned();
        let config = Arc::new(self.client_config(client_cert));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let mut builder = http::Request::builder()
            .uri(path)
            .header("host", format!("{server_name}:{port}"));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?;
            let connector = tokio_rustls::TlsConnector::from(config);
            let name = ServerName::try_from(server_name.clone()).map_err(|e| e.to_string())?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(tls);
            let resp = if h2 {
                let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2: {e}"))?;
                tokio::spawn(conn);
                let (mut parts, body) = req.into_parts();
                parts.uri = format!("https://{server_name}:{port}{path}")
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                parts.headers.remove("host");
                s.send_request(http::Request::from_parts(parts, body))
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                let (mut s, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                s.send_request(req).await.map_err(|e| e.to_string())?
            };
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Reply {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
                version: parts.version,
            })
        })
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}
