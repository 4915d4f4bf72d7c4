//! Downstream TLS: certificates from PEM, chosen by SNI, optional client
//! certificates (mTLS), and the peer identity filters see as `connection.*`.

use rustls::RootCertStore;
use rustls::server::{ResolvesServerCertUsingSni, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use weft_wasm_host::TlsInfo;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("listener {listener}: cannot read certificates from {path}: {reason}")]
    Certs {
        listener: String,
        path: String,
        reason: String,
    },
    #[error("listener {listener}: cannot read the private key {path}: {reason}")]
    Key {
        listener: String,
        path: String,
        reason: String,
    },
    #[error("listener {listener}: {reason}")]
    Config { listener: String, reason: String },
}

pub struct CertSpec<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub server_names: &'a [String],
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certs(listener: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certs {
        listener: listener.into(),
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn load_key(listener: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        listener: listener.into(),
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Builds the acceptor of a TLS listener.
pub fn acceptor(
    listener: &str,
    certs: &[CertSpec<'_>],
    client_ca: Option<&Path>,
    require_client_cert: bool,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let cfg_err = |reason: String| TlsError::Config {
        listener: listener.into(),
        reason,
    };
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| cfg_err(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(listener, ca)? {
                roots
                    .add(c)
                    .map_err(|e| cfg_err(format!("client_ca {}: {e}", ca.display())))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| cfg_err(e.to_string()))?)
        }
        None if require_client_cert => {
            return Err(cfg_err("require_client_cert needs client_ca".into()));
        }
        None => builder.with_no_client_auth(),
    };
    let mut keys = Vec::new();
    for spec in certs {
        let chain = load_certs(listener, spec.cert)?;
        let key = load_key(listener, spec.key)?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Key {
                listener: listener.into(),
                path: spec.key.display().to_string(),
                reason: e.to_string(),
            })?;
        keys.push((
            Arc::new(CertifiedKey::new(chain, signing)),
            spec.server_names,
        ));
    }
    let mut config = if keys.len() == 1 && keys[0].1.is_empty() {
        let (key, _) = keys.remove(0);
        builder.with_cert_resolver(Arc::new(Single(key)))
    } else {
        let mut sni = ResolvesServerCertUsingSni::new();
        let mut default = None;
        for (key, names) in keys {
            if names.is_empty() {
                default.get_or_insert(key);
                continue;
            }
            for n in names {
                sni.add(n, (*key).clone())
                    .map_err(|e| cfg_err(format!("server name {n}: {e}")))?;
            }
        }
        builder.with_cert_resolver(Arc::new(SniOrDefault { sni, default }))
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Single {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[derive(Debug)]
struct SniOrDefault {
    sni: ResolvesServerCertUsingSni,
    default: Option<Arc<CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for SniOrDefault {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.sni.resolve(hello).or_else(|| self.default.clone())
    }
}

/// The TLS facts of an accepted connection.
pub fn peer_info(conn: &rustls::ServerConnection) -> TlsInfo {
    let mut info = TlsInfo {
        version: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        sni: conn.server_name().map(str::to_owned),
        ..Default::default()
    };
    if let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) {
        info.mtls = true;
        if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) {
            info.peer_subject = Some(parsed.subject().to_string());
            if let Ok(Some(san)) = parsed.subject_alternative_name() {
                for name in &san.value.general_names {
                    match name {
                        x509_parser::extensions::GeneralName::URI(u) => {
                            info.peer_uri_sans.push((*u).to_owned())
                        }
                        x509_parser::extensions::GeneralName::DNSName(d) => {
                            info.peer_dns_sans.push((*d).to_owned())
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    info
}
