//! HTTPS and mTLS through the real binary, with certificates made at test
//! time; the client identity reaches filters as `connection.*`.

use weft_tests::tls::Pki;
use weft_tests::upstream::echo;
use weft_tests::weft::{Weft, free_port};

fn config(pki: &Pki, port: u16, upstream: std::net::SocketAddr, require: bool) -> String {
    format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - name: secure
    address: 127.0.0.1:{port}
    default_cluster: up
    tls:
      certificates: [ {{ cert: "{cert}", key: "{key}" }} ]
      client_ca: "{ca}"
      require_client_cert: {require}
clusters:
  - {{ name: up, endpoints: ["{upstream}"] }}
plugins:
  - {{ name: probe, url: "file://{probe}" }}
"#,
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
        ca = pki.ca.display(),
        probe = weft_tests::build_filter("weft-test-probe").display(),
    )
}

#[test]
fn https_with_optional_client_certificates_exposes_the_peer_identity() {
    let pki = Pki::new();
    let up = echo("up");
    let port = free_port();
    let _weft = Weft::start(&config(&pki, port, up.addr, false));

    let r = pki
        .get(port, "/secure", &[("x-probe", "props")], true)
        .expect("mTLS request");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("x-seen-x-prop-peer"),
        Some(pki.client_spiffe.as_str())
    );
    assert_eq!(r.header("x-seen-x-prop-mtls"), Some("Some([1])"));
    assert_eq!(r.header("x-seen-x-forwarded-proto"), Some("https"));

    // Without a client certificate: allowed (not required), no peer identity.
    let r = pki
        .get(port, "/secure", &[("x-probe", "props")], false)
        .expect("TLS request");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-x-prop-mtls"), Some("Some([0])"));
    assert_eq!(r.header("x-seen-x-prop-peer"), Some(""));
}

#[test]
fn required_client_certificates_refuse_anonymous_clients() {
    let pki = Pki::new();
    let up = echo("up");
    let port = free_port();
    let _weft = Weft::start(&config(&pki, port, up.addr, true));
    assert_eq!(
        pki.get(port, "/", &[], true).expect("mTLS request").status,
        200
    );
    let err = pki
        .get(port, "/", &[], false)
        .expect_err("no client certificate must fail");
    assert!(!err.is_empty());
    assert_eq!(up.request_count(), 1);
}

#[test]
fn an_unreadable_certificate_is_a_clear_startup_error() {
    let pki = Pki::new();
    let up = echo("up");
    let port = free_port();
    let text = config(&pki, port, up.addr, false).replace(
        &pki.server_cert.display().to_string(),
        "/nonexistent/cert.pem",
    );
    let dir = weft_tests::weft::TempDir::new("badcert");
    let err = match Weft::try_start(&text, dir) {
        Err(e) => e,
        Ok(_) => panic!("weft must refuse a missing certificate"),
    };
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    assert!(
        err.contains("listeners[0].tls.certificates[0].cert"),
        "{err}"
    );
}

#[test]
fn certificates_are_chosen_by_sni() {
    let pki = Pki::new();
    let (other_cert, other_key) = pki.issue_server_cert("other", &["other.test"]);
    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - name: secure
    address: 127.0.0.1:{port}
    default_cluster: up
    tls:
      certificates:
        - {{ cert: "{}", key: "{}", server_names: [localhost] }}
        - {{ cert: "{}", key: "{}", server_names: [other.test] }}
clusters:
  - {{ name: up, endpoints: ["{}"] }}
"#,
        pki.server_cert.display(),
        pki.server_key.display(),
        other_cert.display(),
        other_key.display(),
        up.addr
    );
    let _weft = Weft::start(&config);
    // Each name verifies only against its own certificate.
    assert_eq!(
        pki.get_as("localhost", port, "/", &[], false)
            .expect("localhost")
            .status,
        200
    );
    assert_eq!(
        pki.get_as("other.test", port, "/", &[], false)
            .expect("other.test")
            .status,
        200
    );
    let err = pki
        .get_as("unknown.test", port, "/", &[], false)
        .expect_err("no certificate for that name");
    assert!(err.contains("TLS"), "{err}");
}
