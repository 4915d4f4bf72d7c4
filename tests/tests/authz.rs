//! The authz filter through the real binary: JWT authentication with
//! inline and fetched JWKS (Ed25519 keys made here with rcgen), RBAC on
//! the mTLS identity of real client certificates, and CUSTOM external
//! authorization against a test server.

use bytes::Bytes;
use http_body_util::Full;
use rcgen::{KeyPair, PKCS_ED25519, SigningKey as _};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_tests::client::{Reply, get};
use weft_tests::tls::Pki;
use weft_tests::upstream::{echo, serve};
use weft_tests::weft::{TempDir, Weft, free_port, weft_cmd};

const ISS: &str = "https://issuer.weft.test";

fn authz() -> String {
    weft_tests::build_filter("weft-filter-authz")
        .display()
        .to_string()
}

/// base64url without padding, as JWTs are written.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// An Ed25519 signing key with its `kid`.
struct Signer {
    key: KeyPair,
    kid: &'static str,
}

impl Signer {
    fn new(kid: &'static str) -> Signer {
        Signer {
            key: KeyPair::generate_for(&PKCS_ED25519).expect("ed25519 key"),
            kid,
        }
    }

    /// The public JWKS, as JSON text.
    fn jwks(&self) -> String {
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": self.kid,
            "x": b64url(self.key.public_key_raw())}]})
        .to_string()
    }

    /// A token with the usual claims (valid for 10 minutes) and `extra`.
    fn token(&self, extra: serde_json::Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut claims =
            json!({"iss": ISS, "sub": "alice", "aud": "api", "iat": now, "exp": now + 600});
        for (k, v) in extra.as_object().expect("object") {
            claims[k] = v.clone();
        }
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let signed = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self.key.sign(signed.as_bytes()).expect("sign");
        format!("{signed}.{}", b64url(&sig))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn a_valid_jwt_passes_with_its_claim_and_without_the_token() {
    let signer = Signer::new("k1");
    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{up}"] }}
plugins:
  - name: authz
    url: file://{wasm}
    pluginConfig:
      jwtRules:
        - issuer: {ISS}
          audiences: [ api ]
          jwks: '{jwks}'
          outputClaimToHeaders: [ {{ header: x-user, claim: sub }}, {{ header: x-groups, claim: groups }} ]
"#,
        up = up.addr,
        wasm = authz(),
        jwks = signer.jwks(),
    );
    let _weft = Weft::start(&config);
    let url = format!("http://127.0.0.1:{port}/api/x");
    let token = signer.token(json!({"groups": ["dev", "ops"]}));
    let r = get(&url, &[("authorization", &bearer(&token))]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-seen-x-user"), Some("alice"));
    assert_eq!(r.header("x-seen-x-groups"), Some("dev,ops"));
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].headers.get("authorization").is_none(),
        "the token is not forwarded: {:?}",
        seen[0].headers
    );
    // No token: authentication passes (no policies here), no claims.
    let r = get(&url, &[("x-user", "forged")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-seen-x-user"),
        None,
        "claim headers cannot be forged"
    );
    assert_eq!(up.request_count(), 2);
}

fn assert_unauthorized(r: &Reply, body: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"http://127.0.0.1:")
            && challenge.ends_with("/api/x\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(r.text(), format!("{body}\n"));
}

#[test]
fn invalid_jwts_get_401_with_a_bearer_challenge() {
    let signer = Signer::new("k1");
    let stranger = Signer::new("k1");
    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{up}"] }}
plugins:
  - name: authz
    url: file://{wasm}
    pluginConfig:
      jwtRules:
        - {{ issuer: "{ISS}", audiences: [ api ], jwks: '{jwks}' }}
"#,
        up = up.addr,
        wasm = authz(),
        jwks = signer.jwks(),
    );
    let _weft = Weft::start(&config);
    let url = format!("http://127.0.0.1:{port}/api/x?q=1");
    let t = now();
    let cases = [
        (
            signer.token(json!({"exp": t - 3600, "iat": t - 7200})),
            "Jwt is expired",
        ),
        (signer.token(json!({"nbf": t + 3600})), "Jwt not yet valid"),
        (
            signer.token(json!({"aud": "web"})),
            "Audiences in Jwt are not allowed",
        ),
        (
            signer.token(json!({"iss": "https://evil.test"})),
            "Jwt issuer is not configured",
        ),
        (stranger.token(json!({})), "Jwt verification fails"),
    ];
    for (token, body) in &cases {
        let r = get(&url, &[("authorization", &bearer(token))]);
        assert_unauthorized(&r, body);
    }
    assert_eq!(
        up.request_count(),
        0,
        "no invalid token reached the upstream"
    );
    let r = get(
        &url,
        &[("authorization", &bearer(&signer.token(json!({}))))],
    );
    assert_eq!(r.status, 200);
}

/// Sends until the answer is not `status` (the JWKS may still be in
/// flight at the very first request), at most for 10 s.
fn get_until_not(status: u16, url: &str, headers: &[(&str, &str)]) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(url, headers);
        if r.status != status || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_jwks_is_fetched_through_a_cluster_and_requests_wait_for_it() {
    let signer = Signer::new("remote-1");
    let jwks = signer.jwks();
    let keys = serve(move |_| {
        http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(jwks.clone())))
            .expect("response")
    });
    let up = echo("up");
    let port = free_port();
    let dead = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{up}"] }}
  - {{ name: keys, endpoints: ["{keys}"] }}
  - {{ name: nokeys, endpoints: ["127.0.0.1:{dead}"] }}
plugins:
  - name: authz
    url: file://{wasm}
    pluginConfig:
      jwtRules:
        - issuer: {ISS}
          jwksUri: http://keys.weft.test/.well-known/jwks.json
          jwksCluster: keys
          outputClaimToHeaders: [ {{ header: x-user, claim: sub }} ]
        - issuer: https://down.weft.test
          jwksUri: http://down.weft.test/jwks
          jwksCluster: nokeys
          jwksTimeout: 2s
      policies:
        - name: signed-in
          action: ALLOW
          rules: [ {{ from: [ {{ source: {{ requestPrincipals: [ "{ISS}/*" ] }} }} ] }} ]
"#,
        up = up.addr,
        keys = keys.addr,
        wasm = authz(),
    );
    let _weft = Weft::start(&config);
    let url = format!("http://127.0.0.1:{port}/api/x");
    // Sent at once: it waits for the keys if they are not there yet.
    let token = signer.token(json!({}));
    let r = get(&url, &[("authorization", &bearer(&token))]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-seen-x-user"), Some("alice"));
    let fetches = keys.seen();
    assert!(!fetches.is_empty());
    assert_eq!(fetches[0].method, "GET");
    assert_eq!(fetches[0].uri, "/.well-known/jwks.json");
    assert_eq!(
        fetches[0].headers.get("host").and_then(|v| v.to_str().ok()),
        Some("keys.weft.test")
    );
    // The policy needs a request principal.
    let r = get(&url, &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "RBAC: access denied: no ALLOW policy matched\n");
    // A token of the issuer whose JWKS cannot be fetched: 503, said so.
    let other = Signer::new("x");
    let header = json!({"alg": "EdDSA", "kid": "x"});
    let claims = json!({"iss": "https://down.weft.test", "sub": "bob", "exp": now() + 600});
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = other.key.sign(signed.as_bytes()).expect("sign");
    let down = format!("{signed}.{}", b64url(&sig));
    let r = get(&url, &[("authorization", &bearer(&down))]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-weft-authz"), Some("jwks-unavailable"));
    assert_eq!(
        r.text(),
        "authz: the JWKS of issuer https://down.weft.test is not available\n"
    );
    // The good issuer still works.
    let r = get_until_not(503, &url, &[("authorization", &bearer(&token))]);
    assert_eq!(r.status, 200);
}

#[test]
fn rbac_on_the_mtls_principal_of_real_client_certificates() {
    let pki = Pki::new();
    let up = echo("up");
    let port = free_port();
    // The Pki's client is spiffe://weft.test/ns/default/sa/client.
    let config = format!(
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
      require_client_cert: false
clusters:
  - {{ name: up, endpoints: ["{up}"] }}
plugins:
  - name: authz
    url: file://{wasm}
    pluginConfig:
      policies:
        - name: no-admin-from-default
          action: DENY
          rules: [ {{ from: [ {{ source: {{ namespaces: [ default ] }} }} ], to: [ {{ operation: {{ paths: [ "/admin/*" ] }} }} ] }} ]
        - name: clients
          action: ALLOW
          rules:
            - from: [ {{ source: {{ principals: [ "weft.test/ns/default/sa/client" ] }} }} ]
              to: [ {{ operation: {{ paths: [ "/mine/*", "/admin/*" ] }} }} ]
            - from: [ {{ source: {{ principals: [ "weft.test/ns/other/sa/robot" ] }} }} ]
              to: [ {{ operation: {{ paths: [ "/theirs/*" ] }} }} ]
"#,
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
        ca = pki.ca.display(),
        up = up.addr,
        wasm = authz(),
    );
    let _weft = Weft::start(&config);
    let r = pki.get(port, "/mine/x", &[], true).expect("mTLS request");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = pki.get(port, "/theirs/x", &[], true).expect("mTLS request");
    assert_eq!(r.status, 403, "another identity's path");
    assert_eq!(r.text(), "RBAC: access denied: no ALLOW policy matched\n");
    let r = pki.get(port, "/admin/x", &[], true).expect("mTLS request");
    assert_eq!(r.status, 403, "DENY comes before ALLOW");
    assert_eq!(
        r.text(),
        "RBAC: access denied: denied by policy \"no-admin-from-default\" rule 0\n"
    );
    let r = pki.get(port, "/mine/x", &[], false).expect("TLS request");
    assert_eq!(r.status, 403, "no client certificate, no principal");
    assert_eq!(up.request_count(), 1);
}

#[test]
fn custom_policies_ask_an_external_authorization_service() {
    let ext = serve(|seen| {
        let yes = seen
            .headers
            .get("x-let-me-in")
            .and_then(|v| v.to_str().ok())
            == Some("yes");
        let b = http::Response::builder();
        if yes {
            b.status(200)
                .header("x-auth-user", "alice")
                .header("x-internal", "secret")
                .body(Full::new(Bytes::new()))
        } else {
            b.status(403)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"error\":\"nope\"}")))
        }
        .expect("response")
    });
    let up = echo("up");
    let port = free_port();
    let dead = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{up}"] }}
  - {{ name: ext, endpoints: ["{ext}"] }}
  - {{ name: gone, endpoints: ["127.0.0.1:{dead}"] }}
plugins:
  - name: authz
    url: file://{wasm}
    pluginConfig:
      policies:
        - name: ext-check
          action: CUSTOM
          provider:
            cluster: ext
            path: /check
            timeout: 2s
            headersToForward: [ x-let-me-in ]
            headersToUpstreamOnAllow: [ x-auth-user ]
          rules: [ {{ to: [ {{ operation: {{ paths: [ "/api/*" ] }} }} ] }} ]
        - name: unreachable
          action: CUSTOM
          provider: {{ cluster: gone, timeout: 2s }}
          rules: [ {{ to: [ {{ operation: {{ paths: [ "/down/*" ] }} }} ] }} ]
"#,
        up = up.addr,
        ext = ext.addr,
        wasm = authz(),
    );
    let _weft = Weft::start(&config);
    let base = format!("http://127.0.0.1:{port}");
    let r = get(
        &format!("{base}/api/x?y=1"),
        &[("x-let-me-in", "yes"), ("x-other", "1")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-seen-x-auth-user"), Some("alice"));
    assert_eq!(
        r.header("x-seen-x-internal"),
        None,
        "only the chosen headers"
    );
    let checks = ext.seen();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].method, "GET");
    assert_eq!(checks[0].uri, "/check/api/x?y=1");
    assert!(checks[0].headers.get("x-other").is_none());

    let r = get(&format!("{base}/api/x"), &[("x-let-me-in", "no")]);
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "{\"error\":\"nope\"}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        up.request_count(),
        1,
        "the denied request did not go upstream"
    );

    // Not under a CUSTOM rule: no check.
    let r = get(&format!("{base}/public"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(ext.request_count(), 2);

    // The service cannot be reached: fail closed.
    let r = get(&format!("{base}/down/x"), &[]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-weft-authz"), Some("ext-authz-error"));
    assert_eq!(up.request_count(), 2);
}

#[test]
fn a_wrong_authz_config_is_refused_with_the_field_and_reason() {
    let dir = TempDir::new("bad-authz");
    let path = dir.write(
        "weft.yaml",
        format!(
            "listeners: []\nplugins:\n  - name: authz\n    url: file://{}\n    pluginConfig: {{ policies: [ {{ name: p, rules: [ {{ from: [ {{ source: {{ ipBlocks: [ 10.0.0.0/40 ] }} }} ] }} ] }} ] }}\n",
            authz()
        ),
    );
    let (code, _, err) = weft_cmd(&["validate", "--config", path.to_str().expect("utf-8")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("authz: invalid pluginConfig: policies[0].rules[0].from[0].source.ipBlocks[0]: \"10.0.0.0/40\": prefix length must be 0–32"),
        "{err}"
    );
}

#[test]
fn a_request_waits_for_the_first_jwks_then_keys_rotate_on_refresh() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    let first = Signer::new("first");
    let second = Signer::new("second");
    let current = Arc::new(Mutex::new(first.jwks()));
    let fetches = Arc::new(AtomicUsize::new(0));
    // The first fetch is held until the test opens the gate.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let keys = {
        let (current, fetches, gate) = (current.clone(), fetches.clone(), gate.clone());
        serve(move |_| {
            if fetches.fetch_add(1, Ordering::SeqCst) == 0 {
                let (open, cv) = &*gate;
                let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                let deadline = Instant::now() + Duration::from_secs(20);
                while !*open && Instant::now() < deadline {
                    open = cv
                        .wait_timeout(open, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            let body = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
            http::Response::builder()
                .status(200)
                .body(Full::new(Bytes::from(body)))
                .expect("response")
        })
    };
    let ext = serve(|seen| {
        let yes = seen
            .headers
            .get("x-let-me-in")
            .and_then(|v| v.to_str().ok())
            == Some("yes");
        http::Response::builder()
            .status(if yes { 200 } else { 403 })
            .header("x-auth-user", "checked")
            .body(Full::new(Bytes::new()))
            .expect("response")
    });
    let up = echo("up");
    let port = free_port();
    let config = format!(
        r#"
admin: {{ address: "{{admin}}" }}
workers: 1
listeners:
  - {{ name: public, address: "127.0.0.1:{port}", default_cluster: up }}
clusters:
  - {{ name: up, endpoints: ["{up}"] }}
  - {{ name: keys, endpoints: ["{keys}"] }}
  - {{ name: ext, endpoints: ["{ext}"] }}
plugins:
  - name: authz
    url: file://{wasm}
    pluginConfig:
      jwtRules:
        - issuer: {ISS}
          jwksUri: http://keys.weft.test/jwks
          jwksCluster: keys
          jwksTimeout: 30s
          jwksRefreshInterval: 1s
      policies:
        - name: ext-check
          action: CUSTOM
          provider: {{ cluster: ext, headersToForward: [ x-let-me-in ], headersToUpstreamOnAllow: [ x-auth-user ] }}
          rules: [ {{}} ]
"#,
        up = up.addr,
        keys = keys.addr,
        ext = ext.addr,
        wasm = authz(),
    );
    let _weft = Weft::start(&config);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetches.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the first fetch started");
    let url = format!("http://127.0.0.1:{port}/api/x");
    let token = first.token(json!({}));
    let waiting = {
        let (url, token) = (url.clone(), token.clone());
        std::thread::spawn(move || {
            get(
                &url,
                &[("authorization", &bearer(&token)), ("x-let-me-in", "yes")],
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiting.is_finished(),
        "without keys the request cannot be decided"
    );
    assert_eq!(up.request_count(), 0);
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
    let r = waiting.join().expect("request thread");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-seen-x-auth-user"),
        Some("checked"),
        "the parked request went through the CUSTOM check"
    );
    // Rotation: the server now publishes only the second key.
    *current.lock().unwrap_or_else(|e| e.into_inner()) = second.jwks();
    let new_token = second.token(json!({}));
    let headers = [
        ("authorization", bearer(&new_token)),
        ("x-let-me-in", "yes".into()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = get_until_not(401, &url, &headers);
    assert_eq!(r.status, 200, "the refreshed JWKS has the new key");
    assert!(fetches.load(Ordering::SeqCst) >= 2);
    let r = get(
        &url,
        &[("authorization", &bearer(&token)), ("x-let-me-in", "yes")],
    );
    assert_eq!(r.status, 401, "the old key is gone");
}
