//! Upstream TLS: a rustls client configuration per cluster (ring provider,
//! the given CA only, optional client certificate, ALPN from the protocol)
//! and the server name an endpoint is checked against.

use crate::upstream::settings::{UpstreamProtocol, UpstreamTlsSettings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::net::IpAddr;
use std::sync::Arc;

/// Why a cluster's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("no CA given (ca_pem) and insecure_skip_verify is off: there are no system roots")]
    NoCa,
    #[error("ca_pem: {0}")]
    Ca(String),
    #[error("client_cert_pem and client_key_pem go together")]
    HalfClientAuth,
    #[error("client_cert_pem: {0}")]
    ClientCert(String),
    #[error("client_key_pem: {0}")]
    ClientKey(String),
    #[error("sni {0:?} is not a valid server name")]
    Sni(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client configuration of one cluster. ALPN offers exactly the
/// configured protocol (`h2` or `http/1.1`).
pub fn client_config(
    tls: &UpstreamTlsSettings,
    protocol: UpstreamProtocol,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    if let Some(sni) = &tls.sni {
        ServerName::try_from(sni.clone()).map_err(|_| TlsConfigError::Sni(sni.clone()))?;
    }
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        let pem = tls.ca_pem.as_deref().ok_or(TlsConfigError::NoCa)?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TlsConfigError::Ca(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TlsConfigError::Ca(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsConfigError::Ca("no certificate in it".into()));
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsConfigError::ClientCert(e.to_string()))?;
            if chain.is_empty() {
                return Err(TlsConfigError::ClientCert("no certificate in it".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| TlsConfigError::ClientKey(e.to_string()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => return Err(TlsConfigError::HalfClientAuth),
    };
    config.alpn_protocols = match protocol {
        UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
        UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// The name an endpoint's certificate is checked against (and sent as SNI
/// when it is a DNS name): the configured `sni`, else the endpoint's host
/// when it is a DNS name, else its IP address.
pub fn server_name(sni: Option<&str>, host: &str, ip: IpAddr) -> ServerName<'static> {
    if let Some(name) = sni.and_then(|s| ServerName::try_from(s.to_owned()).ok()) {
        return name;
    }
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.parse::<IpAddr>().is_err()
        && let Ok(name) = ServerName::try_from(bare.to_owned())
    {
        return name;
    }
    ServerName::IpAddress(ip.into())
}

/// `insecure_skip_verify`: accepts any certificate but still checks the
/// handshake signatures (so the peer holds the key of what it presented).
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_prefers_sni_then_dns_host_then_ip() {
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            server_name(Some("api.example"), "db.internal", ip),
            ServerName::try_from("api.example").expect("name")
        );
        assert_eq!(
            server_name(None, "db.internal", ip),
            ServerName::try_from("db.internal").expect("name")
        );
        assert_eq!(
            server_name(None, "10.0.0.1", ip),
            ServerName::IpAddress(ip.into())
        );
        assert_eq!(
            server_name(None, "[::1]", ip),
            ServerName::IpAddress(ip.into())
        );
    }

    #[test]
    fn config_errors() {
        let none = UpstreamTlsSettings::default();
        assert!(matches!(
            client_config(&none, UpstreamProtocol::Http1),
            Err(TlsConfigError::NoCa)
        ));
        let garbage = UpstreamTlsSettings {
            ca_pem: Some(b"not a pem".to_vec()),
            ..Default::default()
        };
        assert!(matches!(
            client_config(&garbage, UpstreamProtocol::Http1),
            Err(TlsConfigError::Ca(_))
        ));
        let half = UpstreamTlsSettings {
            insecure_skip_verify: true,
            client_cert_pem: Some(Vec::new()),
            ..Default::default()
        };
        assert!(matches!(
            client_config(&half, UpstreamProtocol::Http1),
            Err(TlsConfigError::HalfClientAuth)
        ));
        let skip = UpstreamTlsSettings {
            insecure_skip_verify: true,
            ..Default::default()
        };
        let config = client_config(&skip, UpstreamProtocol::Http2).expect("insecure config builds");
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }
}
