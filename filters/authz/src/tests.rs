//! Host tests: configuration errors, policy evaluation, JWT verification
//! with keys generated here, and whole flows through [`Flow`].

use crate::attributes;
use crate::config::{Config, parse_duration};
use crate::engine::{Flow, Step, jwks_unavailable};
use crate::jwt::{Alg, JwtError, KeySet, Requirements, Unverified, b64url};
use crate::policy::{Cidr, Pattern};
use rand_core::OsRng;
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;

// ---------------------------------------------------------------- keys

struct Keys {
    rsa: rsa::RsaPrivateKey,
    ec: p256::ecdsa::SigningKey,
    ed: ed25519_dalek::SigningKey,
    hmac: Vec<u8>,
}

/// Keys made once per test binary (RSA generation is slow).
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: rsa::RsaPrivateKey::new(&mut OsRng, 2048).expect("rsa keygen"),
        ec: p256::ecdsa::SigningKey::random(&mut OsRng),
        ed: ed25519_dalek::SigningKey::generate(&mut OsRng),
        hmac: (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect(),
    })
}

/// The public JWKS of [`keys`], each key with a `kid` naming its type.
fn jwks() -> Value {
    use rsa::traits::PublicKeyParts as _;
    let k = keys();
    let public = k.rsa.to_public_key();
    let point = k.ec.verifying_key().to_encoded_point(false);
    json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "n": b64url(&public.n().to_bytes_be()), "e": b64url(&public.e().to_bytes_be())},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64url(point.x().expect("x")), "y": b64url(point.y().expect("y"))},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64url(k.ed.verifying_key().as_bytes())},
        {"kty": "oct", "kid": "hs", "k": b64url(&k.hmac)},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}
    ]})
}

/// A JWT signed with `alg` by the matching key of [`keys`].
fn sign(alg: &str, kid: &str, claims: &Value) -> String {
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    let k = keys();
    let mut header = json!({"alg": alg, "typ": "JWT", "kid": kid});
    if kid.is_empty()
        && let Some(h) = header.as_object_mut()
    {
        h.remove("kid");
    }
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let msg = signed.as_bytes();
    let sig: Vec<u8> = match alg {
        "RS256" => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.rsa.clone())
            .sign(msg)
            .to_vec(),
        "RS384" => rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new(k.rsa.clone())
            .sign(msg)
            .to_vec(),
        "ES256" => {
            let s: p256::ecdsa::Signature = k.ec.sign(msg);
            s.to_bytes().to_vec()
        }
        "EdDSA" => k.ed.sign(msg).to_bytes().to_vec(),
        "HS256" => {
            use hmac::Mac as _;
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&k.hmac)
                .expect("hmac")
                .chain_update(msg)
                .finalize()
                .into_bytes()
                .to_vec()
        }
        "none" => Vec::new(),
        other => panic!("no signer for {other}"),
    };
    format!("{signed}.{}", b64url(&sig))
}

const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://issuer.test";

fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": ISS, "sub": "alice", "aud": "api", "exp": NOW + 600, "iat": NOW});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn verify(token: &str, algorithms: &[Alg]) -> Result<crate::jwt::Verified, JwtError> {
    let set = KeySet::parse(jwks().to_string().as_bytes()).expect("jwks");
    let audiences = vec!["api".to_owned(), "other".to_owned()];
    let req = Requirements {
        issuer: ISS,
        audiences: &audiences,
        algorithms,
        clock_skew_secs: 60,
    };
    Unverified::parse(token)?.verify(&req, &set, NOW)
}

// ---------------------------------------------------------------- JWT

#[test]
fn every_algorithm_verifies_a_valid_token() {
    for (alg, kid) in [
        ("RS256", "rsa"),
        ("RS384", "rsa"),
        ("ES256", "ec"),
        ("EdDSA", "ed"),
        ("HS256", "hs"),
    ] {
        let v = verify(&sign(alg, kid, &claims(json!({}))), &Alg::ALL)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.principal(), format!("{ISS}/alice"), "{alg}");
        assert_eq!(v.audiences, vec!["api".to_owned()]);
    }
    // Without a kid every key of the right type is tried.
    for alg in ["ES256", "RS256", "HS256"] {
        assert!(
            verify(&sign(alg, "", &claims(json!({}))), &Alg::ALL).is_ok(),
            "{alg}"
        );
    }
}

#[test]
fn expiry_and_not_before_allow_the_clock_skew() {
    let ok = |c: Value| verify(&sign("RS256", "rsa", &claims(c)), &Alg::ALL);
    assert_eq!(ok(json!({"exp": NOW - 61})).unwrap_err(), JwtError::Expired);
    assert!(ok(json!({"exp": NOW - 30})).is_ok(), "within the 60 s skew");
    assert_eq!(
        ok(json!({"nbf": NOW + 61})).unwrap_err(),
        JwtError::NotYetValid
    );
    assert!(ok(json!({"nbf": NOW + 30})).is_ok());
    assert_eq!(
        JwtError::Expired.to_string(),
        "Jwt is expired",
        "the 401 body"
    );
}

#[test]
fn audience_and_issuer_are_checked() {
    let t = |c: Value| verify(&sign("EdDSA", "ed", &claims(c)), &Alg::ALL);
    assert_eq!(t(json!({"aud": "web"})).unwrap_err(), JwtError::Audience);
    assert_eq!(t(json!({"aud": null})).unwrap_err(), JwtError::Audience);
    assert!(
        t(json!({"aud": ["web", "other"]})).is_ok(),
        "any listed audience"
    );
    assert_eq!(
        t(json!({"iss": "https://evil.test"})).unwrap_err(),
        JwtError::UnknownIssuer
    );
}

#[test]
fn bad_signatures_and_algorithms_are_refused() {
    let good = sign("ES256", "ec", &claims(json!({})));
    // Payload swapped after signing.
    let (head, rest) = good.split_once('.').expect("dot");
    let (_, sig) = rest.split_once('.').expect("dot");
    let forged = format!(
        "{head}.{}.{sig}",
        b64url(claims(json!({"sub": "mallory"})).to_string().as_bytes())
    );
    assert_eq!(
        verify(&forged, &Alg::ALL).unwrap_err(),
        JwtError::BadSignature
    );
    // A signature by one key checked against another of the same type.
    let other = p256::ecdsa::SigningKey::random(&mut OsRng);
    let point = other.verifying_key().to_encoded_point(false);
    let set = KeySet::parse(
        json!({"keys":[{"kty":"EC","kid":"ec","crv":"P-256","x": b64url(point.x().expect("x")),"y": b64url(point.y().expect("y"))}]})
            .to_string()
            .as_bytes(),
    )
    .expect("jwks");
    let req = Requirements {
        issuer: ISS,
        audiences: &[],
        algorithms: &Alg::ALL,
        clock_skew_secs: 0,
    };
    assert_eq!(
        Unverified::parse(&good).and_then(|u| u.verify(&req, &set, NOW)),
        Err(JwtError::BadSignature)
    );
    // alg none and algorithms outside the rule's list.
    assert_eq!(
        verify(&sign("none", "rsa", &claims(json!({}))), &Alg::ALL).unwrap_err(),
        JwtError::AlgNotAllowed("none".into())
    );
    assert_eq!(
        verify(&sign("ES256", "ec", &claims(json!({}))), &[Alg::Rs256]).unwrap_err(),
        JwtError::AlgNotAllowed("ES256".into())
    );
    // An HS256 token claiming the RSA key's kid finds no fitting key
    // (no algorithm confusion).
    assert_eq!(
        verify(&sign("HS256", "rsa", &claims(json!({}))), &Alg::ALL).unwrap_err(),
        JwtError::NoKey
    );
    for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.!!.AA"] {
        assert!(verify(bad, &Alg::ALL).is_err(), "{bad:?}");
    }
}

#[test]
fn jwks_documents_are_checked() {
    assert!(
        KeySet::parse(b"{")
            .unwrap_err()
            .starts_with("not a JWKS document")
    );
    assert_eq!(
        KeySet::parse(br#"{"keys":[]}"#).unwrap_err(),
        "no usable signing key (RSA, EC P-256, OKP Ed25519 or oct)"
    );
    assert_eq!(
        KeySet::parse(br#"{"keys":[{"kty":"RSA","n":"AQAB"}]}"#).unwrap_err(),
        "keys[0]: missing \"e\""
    );
    assert_eq!(
        KeySet::parse(br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#).unwrap_err(),
        "keys[0]: P-256 coordinates must be 32 bytes"
    );
    assert_eq!(
        KeySet::parse(br#"{"keys":[{"kty":"oct","k":"@@"}]}"#)
            .unwrap_err()
            .split(':')
            .next(),
        Some("keys[0]")
    );
    // Unknown key types are skipped, not errors.
    let set = KeySet::parse(
        br#"{"keys":[{"kty":"foo"},{"kty":"EC","crv":"P-384","x":"AA","y":"AA"},{"kty":"oct","k":"c2VjcmV0"}]}"#,
    )
    .expect("one usable key");
    assert_eq!(set.keys.len(), 1);
}

// ---------------------------------------------------------------- config

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    for bad in ["", "5", "s", "1.s", ".5s", "-1s", "1 s", "5S"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

fn inline_jwks() -> String {
    serde_json::to_string(&jwks().to_string()).expect("json string")
}

#[test]
fn a_valid_config_with_defaults() {
    let c = Config::parse(
        format!(
            r#"{{"jwtRules":[
                {{"issuer":"{ISS}","jwks":{}}},
                {{"issuer":"remote","jwksUri":"http://keys.test:8080/jwks.json","jwksCluster":"keys",
                  "fromHeaders":[{{"name":"X-Token"}}],"outputClaimToHeaders":[{{"header":"X-Sub","claim":"sub"}}],
                  "forwardOriginalToken":true,"algorithms":["ES256"],"clockSkew":"5s","jwksRefreshInterval":"1m"}}
              ],
              "policies":[
                {{"name":"a","rules":[{{}}]}},
                {{"name":"c","action":"CUSTOM","provider":{{"cluster":"ext"}},"rules":[{{}}]}}
              ]}}"#,
            inline_jwks()
        )
        .as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r0 = &c.jwt_rules[0];
    assert_eq!(r0.from_headers.len(), 1);
    assert_eq!(r0.from_headers[0].name, "authorization");
    assert_eq!(r0.from_headers[0].prefix, "Bearer ");
    assert_eq!(r0.from_params, vec!["access_token".to_owned()]);
    assert_eq!(r0.clock_skew_secs, 60);
    assert_eq!(r0.algorithms, Alg::ALL.to_vec());
    assert!(!r0.forward_original_token);
    let r1 = &c.jwt_rules[1];
    assert_eq!(r1.from_headers[0].name, "x-token");
    assert_eq!(r1.from_headers[0].prefix, "");
    assert!(r1.from_params.is_empty(), "explicit locations: no defaults");
    assert_eq!(
        r1.output_claim_to_headers,
        vec![("x-sub".into(), "sub".into())]
    );
    assert_eq!(r1.algorithms, vec![Alg::Es256]);
    assert_eq!(r1.clock_skew_secs, 5);
    match &r1.jwks {
        crate::config::Jwks::Remote(r) => {
            assert_eq!(r.authority, "keys.test:8080");
            assert_eq!(r.path, "/jwks.json");
            assert_eq!(r.cluster, "keys");
            assert_eq!(r.refresh, Duration::from_secs(60));
            assert_eq!(r.timeout, Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    let p = c.policies[1].provider.as_ref().expect("provider");
    assert_eq!(p.headers_to_forward, vec!["authorization".to_owned()]);
    assert_eq!(p.timeout, Duration::from_secs(1));
    assert_eq!(p.status_on_error, 403);
    assert!(!p.fail_open);
    assert!(Config::parse(b"").expect("empty").policies.is_empty());
    assert!(Config::parse(b"{}").expect("{}").jwt_rules.is_empty());
}

#[test]
fn every_invalid_field_is_named() {
    let j = inline_jwks();
    let rule = |extra: &str| format!(r#"{{"jwtRules":[{{"issuer":"i","jwks":{j}{extra}}}]}}"#);
    let remote = |extra: &str| {
        format!(
            r#"{{"jwtRules":[{{"issuer":"i","jwksUri":"http://k/j","jwksCluster":"k"{extra}}}]}}"#
        )
    };
    let pol = |body: &str| format!(r#"{{"policies":[{{"name":"p",{body}}}]}}"#);
    let src = |s: &str| pol(&format!(r#""rules":[{{"from":[{{"source":{{{s}}}}}]}}]"#));
    let op = |s: &str| pol(&format!(r#""rules":[{{"to":[{{"operation":{{{s}}}}}]}}]"#));
    let when = |s: &str| pol(&format!(r#""rules":[{{"when":[{{{s}}}]}}]"#));
    let custom = |s: &str| {
        pol(&format!(
            r#""action":"CUSTOM","provider":{{"cluster":"x"{s}}}"#
        ))
    };
    let cases: Vec<(String, &str)> = vec![
        (
            "[]".into(),
            "invalid type: sequence, expected a pluginConfig object",
        ),
        (
            r#"{"jwt":[]}"#.into(),
            "jwt: unknown field `jwt`, expected `jwtRules` or `policies`",
        ),
        (
            r#"{"jwtRules":{}}"#.into(),
            "jwtRules: invalid type: map, expected a sequence",
        ),
        (
            r#"{"jwtRules":[{}]}"#.into(),
            "jwtRules[0]: missing field `issuer`",
        ),
        (
            r#"{"jwtRules":[{"issuer":""}]}"#.into(),
            "jwtRules[0].issuer: must not be empty",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i"}]}"#.into(),
            "jwtRules[0]: needs jwks or jwksUri",
        ),
        (
            format!(r#"{{"jwtRules":[{{"issuer":"i","jwks":{j},"jwksUri":"http://k/"}}]}}"#),
            "jwtRules[0]: jwks and jwksUri are mutually exclusive",
        ),
        (
            rule(r#","bogus":1"#),
            "jwtRules[0].bogus: unknown field `bogus`, expected one of `issuer`, `audiences`, `jwks`, `jwksUri`, `jwksCluster`, `jwksRefreshInterval`, `jwksTimeout`, `fromHeaders`, `fromParams`, `outputClaimToHeaders`, `forwardOriginalToken`, `algorithms`, `clockSkew`",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwks":"{}"}]}"#.into(),
            "jwtRules[0].jwks: not a JWKS document: missing field `keys` at line 1 column 2",
        ),
        (
            rule(r#","audiences":[""]"#),
            "jwtRules[0].audiences[0]: must not be empty",
        ),
        (
            rule(r#","jwksCluster":"k""#),
            "jwtRules[0].jwksCluster: only with jwksUri",
        ),
        (
            rule(r#","jwksTimeout":"1s""#),
            "jwtRules[0]: jwksRefreshInterval and jwksTimeout only apply with jwksUri",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"ftp://k/j","jwksCluster":"k"}]}"#.into(),
            "jwtRules[0].jwksUri: \"ftp://k/j\" must be an http:// or https:// URL",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"http:///j","jwksCluster":"k"}]}"#.into(),
            "jwtRules[0].jwksUri: \"http:///j\" has no valid host",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"http://k/j"}]}"#.into(),
            "jwtRules[0].jwksCluster: required with jwksUri (the cluster the JWKS is fetched through)",
        ),
        (
            r#"{"jwtRules":[{"issuer":"i","jwksUri":"http://k/j","jwksCluster":" "}]}"#.into(),
            "jwtRules[0].jwksCluster: must not be empty",
        ),
        (
            remote(r#","jwksRefreshInterval":"10ms""#),
            "jwtRules[0].jwksRefreshInterval: must be between 1s and 168h (got \"10ms\")",
        ),
        (
            remote(r#","jwksTimeout":"soon""#),
            "jwtRules[0].jwksTimeout: invalid duration \"soon\": expected a number followed by ms, s, m or h",
        ),
        (
            rule(r#","fromHeaders":[{"name":"bad name"}]"#),
            "jwtRules[0].fromHeaders[0].name: \"bad name\" is not a valid header name",
        ),
        (
            rule(r#","fromHeaders":[{"prefix":"x"}]"#),
            "jwtRules[0].fromHeaders[0]: missing field `name`",
        ),
        (
            rule(r#","fromParams":[""]"#),
            "jwtRules[0].fromParams[0]: must not be empty",
        ),
        (
            rule(r#","outputClaimToHeaders":[{"header":"x-a b","claim":"sub"}]"#),
            "jwtRules[0].outputClaimToHeaders[0].header: \"x-a b\" is not a valid header name",
        ),
        (
            rule(r#","outputClaimToHeaders":[{"header":"Host","claim":"sub"}]"#),
            "jwtRules[0].outputClaimToHeaders[0].header: \"host\" cannot be set",
        ),
        (
            rule(r#","outputClaimToHeaders":[{"header":"x-a","claim":""}]"#),
            "jwtRules[0].outputClaimToHeaders[0].claim: must not be empty",
        ),
        (
            rule(r#","forwardOriginalToken":"yes""#),
            "jwtRules[0].forwardOriginalToken: invalid type: string \"yes\", expected a boolean",
        ),
        (
            rule(r#","algorithms":[]"#),
            "jwtRules[0].algorithms: must not be empty",
        ),
        (
            rule(r#","algorithms":["RS256","none"]"#),
            "jwtRules[0].algorithms[1]: unsupported algorithm \"none\" (expected RS256, RS384, ES256, EdDSA or HS256)",
        ),
        (
            rule(r#","clockSkew":"2h""#),
            "jwtRules[0].clockSkew: must be between 0s and 1h (got \"2h\")",
        ),
        (
            format!(r#"{{"jwtRules":[{{"issuer":"i","jwks":{j}}},{{"issuer":"i","jwks":{j}}}]}}"#),
            "jwtRules[1].issuer: \"i\" is already used by another jwtRule",
        ),
        (
            r#"{"policies":[{}]}"#.into(),
            "policies[0]: missing field `name`",
        ),
        (
            pol(r#""name2":1"#),
            "policies[0].name2: unknown field `name2`, expected one of `name`, `action`, `rules`, `provider`",
        ),
        (
            r#"{"policies":[{"name":" "}]}"#.into(),
            "policies[0].name: must not be empty",
        ),
        (
            r#"{"policies":[{"name":"p"},{"name":"p"}]}"#.into(),
            "policies[1].name: \"p\" is used twice",
        ),
        (
            pol(r#""action":"REJECT""#),
            "policies[0].action: unknown action \"REJECT\" (expected ALLOW, DENY, AUDIT or CUSTOM)",
        ),
        (
            pol(r#""action":"CUSTOM""#),
            "policies[0].provider: required with action CUSTOM",
        ),
        (
            pol(r#""action":"DENY","provider":{"cluster":"x"}"#),
            "policies[0].provider: only with action CUSTOM",
        ),
        (
            pol(r#""rules":[{"from":[{"principals":[]}]}]"#),
            "policies[0].rules[0].from[0].principals: unknown field `principals`, expected `source`",
        ),
        (
            src(r#""principals":[""]"#),
            "policies[0].rules[0].from[0].source.principals[0]: must not be empty",
        ),
        (
            src(r#""notPrincipals":["a*b"]"#),
            "policies[0].rules[0].from[0].source.notPrincipals[0]: \"a*b\": `*` is only allowed once, at the start or the end",
        ),
        (
            src(r#""requestPrincipals":["**"]"#),
            "policies[0].rules[0].from[0].source.requestPrincipals[0]: \"**\": `*` is only allowed once, at the start or the end",
        ),
        (
            src(r#""notRequestPrincipals":["*a*"]"#),
            "policies[0].rules[0].from[0].source.notRequestPrincipals[0]: \"*a*\": `*` is only allowed once, at the start or the end",
        ),
        (
            src(r#""namespaces":[""]"#),
            "policies[0].rules[0].from[0].source.namespaces[0]: must not be empty",
        ),
        (
            src(r#""notNamespaces":[""]"#),
            "policies[0].rules[0].from[0].source.notNamespaces[0]: must not be empty",
        ),
        (
            src(r#""ipBlocks":["10.0.0.0/33"]"#),
            "policies[0].rules[0].from[0].source.ipBlocks[0]: \"10.0.0.0/33\": prefix length must be 0–32",
        ),
        (
            src(r#""notIpBlocks":["ten"]"#),
            "policies[0].rules[0].from[0].source.notIpBlocks[0]: \"ten\" is not an IP address or CIDR block",
        ),
        (
            src(r#""remoteIpBlocks":["::1/129"]"#),
            "policies[0].rules[0].from[0].source.remoteIpBlocks[0]: \"::1/129\": prefix length must be 0–128",
        ),
        (
            src(r#""notRemoteIpBlocks":["1.2.3.4/x"]"#),
            "policies[0].rules[0].from[0].source.notRemoteIpBlocks[0]: \"1.2.3.4/x\": prefix length must be 0–32",
        ),
        (
            src(r#""ports":["80"]"#),
            "policies[0].rules[0].from[0].source.ports: unknown field `ports`, expected one of `principals`, `notPrincipals`, `requestPrincipals`, `notRequestPrincipals`, `namespaces`, `notNamespaces`, `ipBlocks`, `notIpBlocks`, `remoteIpBlocks`, `notRemoteIpBlocks`",
        ),
        (
            op(r#""hosts":[""]"#),
            "policies[0].rules[0].to[0].operation.hosts[0]: must not be empty",
        ),
        (
            op(r#""notHosts":["a*.b*"]"#),
            "policies[0].rules[0].to[0].operation.notHosts[0]: \"a*.b*\": `*` is only allowed once, at the start or the end",
        ),
        (
            op(r#""methods":["get"]"#),
            "policies[0].rules[0].to[0].operation.methods[0]: \"get\" is not an HTTP method (upper case, such as GET)",
        ),
        (
            op(r#""notMethods":["GET","P OST"]"#),
            "policies[0].rules[0].to[0].operation.notMethods[1]: \"P OST\" is not an HTTP method (upper case, such as GET)",
        ),
        (
            op(r#""paths":["/a*b"]"#),
            "policies[0].rules[0].to[0].operation.paths[0]: \"/a*b\": `*` is only allowed once, at the start or the end",
        ),
        (
            op(r#""notPaths":[""]"#),
            "policies[0].rules[0].to[0].operation.notPaths[0]: must not be empty",
        ),
        (
            when(r#""key":"request.time","values":["x"]"#),
            "policies[0].rules[0].when[0].key: unsupported key \"request.time\" (expected request.headers[…], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter or request.auth.claims[…])",
        ),
        (
            when(r#""key":"request.headers[]","values":["x"]"#),
            "policies[0].rules[0].when[0].key: \"request.headers[]\": expected request.headers[<name>]",
        ),
        (
            when(r#""key":"request.auth.claims","values":["x"]"#),
            "policies[0].rules[0].when[0].key: \"request.auth.claims\": expected request.auth.claims[<name>] (or [a][b] for nested claims)",
        ),
        (
            when(r#""key":"source.ip""#),
            "policies[0].rules[0].when[0]: needs values or notValues",
        ),
        (
            when(r#""key":"source.ip","values":["nope"]"#),
            "policies[0].rules[0].when[0].values[0]: \"nope\" is not an IP address or CIDR block",
        ),
        (
            when(r#""key":"request.headers[x]","notValues":["a*b"]"#),
            "policies[0].rules[0].when[0].notValues[0]: \"a*b\": `*` is only allowed once, at the start or the end",
        ),
        (
            custom(r#","bogus":1"#),
            "policies[0].provider.bogus: unknown field `bogus`, expected one of `cluster`, `path`, `timeout`, `headersToForward`, `headersToUpstreamOnAllow`, `failOpen`, `statusOnError`",
        ),
        (
            pol(r#""action":"CUSTOM","provider":{}"#),
            "policies[0].provider: missing field `cluster`",
        ),
        (
            pol(r#""action":"CUSTOM","provider":{"cluster":""}"#),
            "policies[0].provider.cluster: must not be empty",
        ),
        (
            custom(r#","path":"check""#),
            "policies[0].provider.path: \"check\" must start with / and hold no spaces, ? or #",
        ),
        (
            custom(r#","timeout":"0ms""#),
            "policies[0].provider.timeout: must be between 1ms and 1m (got \"0ms\")",
        ),
        (
            custom(r#","headersToForward":["a b"]"#),
            "policies[0].provider.headersToForward[0]: \"a b\" is not a valid header name",
        ),
        (
            custom(r#","headersToUpstreamOnAllow":[""]"#),
            "policies[0].provider.headersToUpstreamOnAllow[0]: \"\" is not a valid header name",
        ),
        (
            custom(r#","failOpen":1"#),
            "policies[0].provider.failOpen: invalid type: integer `1`, expected a boolean",
        ),
        (
            custom(r#","statusOnError":99"#),
            "policies[0].provider.statusOnError: must be 200–599 (got 99)",
        ),
    ];
    for (json, want) in &cases {
        match Config::parse(json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => assert_eq!(&e, want, "for {json}"),
        }
    }
}

// ---------------------------------------------------------------- policies

/// A request: method, path, headers, peer address, peer URI SAN.
fn request(method: &str, path: &str, headers: &[(&str, &str)], peer: Option<&str>) -> Flow {
    let mut h = vec![
        (":method".to_owned(), method.to_owned()),
        (":path".to_owned(), path.to_owned()),
        (":authority".to_owned(), "Api.Example.com:8443".to_owned()),
        (":scheme".to_owned(), "https".to_owned()),
    ];
    h.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    attributes(h, Some("10.1.2.3:40000"), peer)
}

fn config(json: Value) -> Config {
    Config::parse(json.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a flow with no fetched keys; returns the status (200 for
/// proceed) and the body or audit list.
fn run(c: &Config, mut f: Flow) -> (u32, String) {
    match f.authenticate(c, &vec![None; c.jwt_rules.len()], NOW) {
        Step::Proceed { audit } => (200, audit.join(",")),
        Step::Reply(r) => (r.status, String::from_utf8_lossy(&r.body).into_owned()),
        Step::Call { policy } => (0, format!("call {policy}")),
        Step::NeedKeys(rule) => (1, format!("keys {rule}")),
    }
}

#[test]
fn patterns_and_cidrs() {
    let p = |s: &str| Pattern::parse(s).expect("pattern");
    assert!(p("/a").matches("/a") && !p("/a").matches("/ab"));
    assert!(p("/a/*").matches("/a/b") && !p("/a/*").matches("/a"));
    assert!(p("*.png").matches("/x.png") && !p("*.png").matches("/x.jpg"));
    assert!(p("*").matches(""));
    let c = |s: &str| Cidr::parse(s).expect("cidr");
    let ip = |s: &str| s.parse().expect("ip");
    assert!(c("10.0.0.0/8").contains(ip("10.200.1.1")));
    assert!(!c("10.0.0.0/8").contains(ip("11.0.0.1")));
    assert!(c("0.0.0.0/0").contains(ip("1.2.3.4")));
    assert!(c("1.2.3.4").contains(ip("1.2.3.4")) && !c("1.2.3.4").contains(ip("1.2.3.5")));
    assert!(c("2001:db8::/32").contains(ip("2001:db8:1::1")));
    assert!(!c("2001:db8::/32").contains(ip("10.0.0.1")));
    assert!(
        c("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")),
        "v4-mapped"
    );
}

#[test]
fn custom_then_deny_then_allow() {
    let c = config(json!({"policies": [
        {"name": "allow-api", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]},
        {"name": "deny-secret", "action": "DENY", "rules": [
            {"to": [{"operation": {"paths": ["/nothing"]}}]},
            {"to": [{"operation": {"paths": ["*/secret"]}}]}]},
        {"name": "ext", "action": "CUSTOM", "provider": {"cluster": "x"}, "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]},
        {"name": "audit-all", "action": "AUDIT", "rules": [{}]},
        {"name": "never", "action": "ALLOW"}
    ]}));
    let table: &[(&str, &str, u32, &str)] = &[
        ("GET", "/api/x", 200, "audit-all"),
        ("GET", "/api/x?q=1", 200, "audit-all"),
        (
            "GET",
            "/other",
            403,
            "RBAC: access denied: no ALLOW policy matched\n",
        ),
        (
            "GET",
            "/api/secret",
            403,
            "RBAC: access denied: denied by policy \"deny-secret\" rule 1\n",
        ),
        ("DELETE", "/api/secret", 0, "call 2"),
    ];
    for (method, path, status, body) in table {
        assert_eq!(
            run(&c, request(method, path, &[], None)),
            (*status, body.to_string()),
            "{method} {path}"
        );
    }
    // After the CUSTOM check allows, DENY still applies.
    let mut f = request("DELETE", "/api/secret", &[], None);
    assert_eq!(f.authenticate(&c, &[], NOW), Step::Call { policy: 2 });
    match f.on_answer(&c, 2, Some(200), &[], b"") {
        Step::Reply(r) => assert_eq!(r.status, 403),
        other => panic!("{other:?}"),
    }
    // No policies at all: everything passes.
    assert_eq!(
        run(&config(json!({})), request("GET", "/", &[], None)).0,
        200
    );
    // Only DENY policies: what they do not match passes.
    let deny_only = config(
        json!({"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]}]}),
    );
    assert_eq!(run(&deny_only, request("GET", "/", &[], None)).0, 200);
    assert_eq!(run(&deny_only, request("POST", "/", &[], None)).0, 403);
}

#[test]
fn sources_operations_and_conditions() {
    let allow = |rule: Value| config(json!({"policies": [{"name": "p", "rules": [rule]}]}));
    let spiffe = "spiffe://cluster.local/ns/web/sa/frontend";
    let cases: Vec<(Value, Flow, u32)> = vec![
        // principals: Istio form, without spiffe://
        (
            json!({"from": [{"source": {"principals": ["cluster.local/ns/web/sa/frontend"]}}]}),
            request("GET", "/", &[], Some(spiffe)),
            200,
        ),
        (
            json!({"from": [{"source": {"principals": ["cluster.local/ns/web/sa/frontend"]}}]}),
            request(
                "GET",
                "/",
                &[],
                Some("spiffe://cluster.local/ns/web/sa/other"),
            ),
            403,
        ),
        (
            json!({"from": [{"source": {"principals": ["*"]}}]}),
            request("GET", "/", &[], None),
            403,
        ),
        (
            json!({"from": [{"source": {"principals": ["*/sa/frontend"]}}]}),
            request("GET", "/", &[], Some(spiffe)),
            200,
        ),
        (
            json!({"from": [{"source": {"notPrincipals": ["cluster.local/ns/web/*"]}}]}),
            request("GET", "/", &[], Some(spiffe)),
            403,
        ),
        (
            json!({"from": [{"source": {"notPrincipals": ["cluster.local/ns/web/*"]}}]}),
            request("GET", "/", &[], None),
            200,
        ),
        (
            json!({"from": [{"source": {"namespaces": ["web"]}}]}),
            request("GET", "/", &[], Some(spiffe)),
            200,
        ),
        (
            json!({"from": [{"source": {"notNamespaces": ["web"]}}]}),
            request("GET", "/", &[], Some(spiffe)),
            403,
        ),
        // ipBlocks against the peer (10.1.2.3), remoteIpBlocks against XFF's first hop
        (
            json!({"from": [{"source": {"ipBlocks": ["10.1.0.0/16"]}}]}),
            request("GET", "/", &[], None),
            200,
        ),
        (
            json!({"from": [{"source": {"ipBlocks": ["10.2.0.0/16", "192.168.0.1"]}}]}),
            request("GET", "/", &[], None),
            403,
        ),
        (
            json!({"from": [{"source": {"notIpBlocks": ["10.0.0.0/8"]}}]}),
            request("GET", "/", &[], None),
            403,
        ),
        (
            json!({"from": [{"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]}),
            request(
                "GET",
                "/",
                &[("x-forwarded-for", "203.0.113.7, 10.1.2.3")],
                None,
            ),
            200,
        ),
        (
            json!({"from": [{"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]}),
            request("GET", "/", &[], None),
            403,
        ),
        (
            json!({"from": [{"source": {"notRemoteIpBlocks": ["10.1.2.3"]}}]}),
            request("GET", "/", &[], None),
            403,
        ),
        // two from entries are ORed; fields of one source are ANDed
        (
            json!({"from": [{"source": {"namespaces": ["db"]}}, {"source": {"ipBlocks": ["10.0.0.0/8"]}}]}),
            request("GET", "/", &[], None),
            200,
        ),
        (
            json!({"from": [{"source": {"namespaces": ["web"], "ipBlocks": ["192.168.0.0/16"]}}]}),
            request("GET", "/", &[], Some(spiffe)),
            403,
        ),
        // operations
        (
            json!({"to": [{"operation": {"methods": ["GET", "HEAD"]}}]}),
            request("HEAD", "/", &[], None),
            200,
        ),
        (
            json!({"to": [{"operation": {"methods": ["GET"]}}]}),
            request("POST", "/", &[], None),
            403,
        ),
        (
            json!({"to": [{"operation": {"notMethods": ["POST"]}}]}),
            request("POST", "/", &[], None),
            403,
        ),
        (
            json!({"to": [{"operation": {"hosts": ["api.example.com"]}}]}),
            request("GET", "/", &[], None),
            200,
        ),
        (
            json!({"to": [{"operation": {"hosts": ["*.example.com:8443"]}}]}),
            request("GET", "/", &[], None),
            200,
        ),
        (
            json!({"to": [{"operation": {"notHosts": ["api.*"]}}]}),
            request("GET", "/", &[], None),
            403,
        ),
        (
            json!({"to": [{"operation": {"paths": ["/static/*", "*.png"]}}]}),
            request("GET", "/img/a.png?x=1", &[], None),
            200,
        ),
        (
            json!({"to": [{"operation": {"paths": ["/api"]}}]}),
            request("GET", "/api/", &[], None),
            403,
        ),
        (
            json!({"to": [{"operation": {"notPaths": ["/admin*"]}}]}),
            request("GET", "/admin/x", &[], None),
            403,
        ),
        (
            json!({"to": [{"operation": {"paths": ["/a"], "methods": ["GET"]}}]}),
            request("POST", "/a", &[], None),
            403,
        ),
        // when
        (
            json!({"when": [{"key": "request.headers[X-Tenant]", "values": ["acme", "globex"]}]}),
            request("GET", "/", &[("x-tenant", "acme")], None),
            200,
        ),
        (
            json!({"when": [{"key": "request.headers[x-tenant]", "values": ["acme"]}]}),
            request("GET", "/", &[], None),
            403,
        ),
        (
            json!({"when": [{"key": "request.headers[x-tenant]", "notValues": ["evil*"]}]}),
            request("GET", "/", &[("x-tenant", "evilcorp")], None),
            403,
        ),
        (
            json!({"when": [{"key": "source.ip", "values": ["10.0.0.0/8"]}]}),
            request("GET", "/", &[], None),
            200,
        ),
        (
            json!({"when": [{"key": "remote.ip", "values": ["10.0.0.0/8"]}]}),
            request("GET", "/", &[("x-forwarded-for", "8.8.8.8")], None),
            403,
        ),
        (
            json!({"when": [{"key": "source.principal", "values": ["*/sa/frontend"]}]}),
            request("GET", "/", &[], Some(spiffe)),
            200,
        ),
        (
            json!({"when": [{"key": "source.namespace", "values": ["web"]}, {"key": "source.ip", "values": ["192.168.0.0/16"]}]}),
            request("GET", "/", &[], Some(spiffe)),
            403,
        ),
        (
            json!({"when": [{"key": "request.auth.principal", "values": ["*"]}]}),
            request("GET", "/", &[], None),
            403,
        ),
    ];
    for (i, (rule, f, want)) in cases.into_iter().enumerate() {
        let c = allow(rule.clone());
        assert_eq!(run(&c, f).0, want, "case {i}: {rule}");
    }
}

fn jwt_config(extra_rule: Value, policies: Value) -> Config {
    let mut rule = json!({"issuer": ISS, "audiences": ["api"], "jwks": jwks().to_string(),
        "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}, {"header": "x-groups", "claim": "groups"}, {"header": "x-org", "claim": "org.name"}]});
    if let (Some(r), Some(e)) = (rule.as_object_mut(), extra_rule.as_object()) {
        for (k, v) in e {
            r.insert(k.clone(), v.clone());
        }
    }
    config(json!({"jwtRules": [rule], "policies": policies}))
}

#[test]
fn tokens_authenticate_and_feed_policies() {
    let c = jwt_config(
        json!({}),
        json!([
            {"name": "admins", "rules": [{
                "from": [{"source": {"requestPrincipals": [format!("{ISS}/*")]}}],
                "when": [{"key": "request.auth.claims[groups]", "values": ["admins"]},
                         {"key": "request.auth.claims[org][name]", "values": ["acme"]},
                         {"key": "request.auth.audiences", "values": ["api"]}]}]},
            {"name": "public", "rules": [{"to": [{"operation": {"paths": ["/public/*"]}}]}]}
        ]),
    );
    let admin = sign(
        "RS256",
        "rsa",
        &claims(json!({"groups": ["dev", "admins"], "org": {"name": "acme"}})),
    );
    let bearer = format!("Bearer {admin}");
    let mut f = request("GET", "/x", &[("authorization", &bearer)], None);
    assert_eq!(
        f.authenticate(&c, &[None], NOW),
        Step::Proceed { audit: vec![] }
    );
    assert_eq!(
        f.remove,
        ["x-user", "x-groups", "x-org", "authorization"].map(String::from),
        "claim headers a client sent, and the token, are removed"
    );
    assert_eq!(
        f.set,
        vec![
            ("x-user".to_owned(), "alice".to_owned()),
            ("x-groups".to_owned(), "dev,admins".to_owned()),
            ("x-org".to_owned(), "acme".to_owned()),
        ]
    );
    // Same token in the default query parameter.
    let q = format!("/x?a=1&access_token={admin}");
    assert_eq!(run(&c, request("GET", &q, &[], None)).0, 200);
    // A valid token without the claim: authenticated, not authorized.
    let dev = sign(
        "ES256",
        "ec",
        &claims(json!({"groups": ["dev"], "org": {"name": "acme"}})),
    );
    let (status, body) = run(
        &c,
        request(
            "GET",
            "/x",
            &[("authorization", &format!("Bearer {dev}"))],
            None,
        ),
    );
    assert_eq!(
        (status, body.as_str()),
        (403, "RBAC: access denied: no ALLOW policy matched\n")
    );
    // No token: authentication passes, the public path is allowed, and
    // a forged claim header is dropped.
    let mut f = request("GET", "/public/a", &[("x-user", "root")], None);
    assert_eq!(
        f.authenticate(&c, &[None], NOW),
        Step::Proceed { audit: vec![] }
    );
    assert!(f.remove.contains(&"x-user".to_owned()) && f.set.is_empty());
    assert_eq!(run(&c, request("GET", "/x", &[], None)).0, 403);
    // Another prefix is no token for this location.
    assert_eq!(
        run(
            &c,
            request("GET", "/public/a", &[("authorization", "Basic dTpw")], None)
        )
        .0,
        200
    );
    // Invalid tokens: 401 with the challenge, whatever the policies say.
    let expired = sign("EdDSA", "ed", &claims(json!({"exp": NOW - 3600})));
    let mut f = request(
        "GET",
        "/public/a",
        &[("authorization", &format!("Bearer {expired}"))],
        None,
    );
    match f.authenticate(&c, &[None], NOW) {
        Step::Reply(r) => {
            assert_eq!(r.status, 401);
            assert_eq!(r.body, b"Jwt is expired\n");
            assert!(r.headers.contains(&(
                "www-authenticate".to_owned(),
                "Bearer realm=\"https://api.example.com:8443/public/a\", error=\"invalid_token\"".to_owned()
            )));
        }
        other => panic!("{other:?}"),
    }
    for (token, body) in [
        (
            sign("HS256", "hs", &claims(json!({"aud": "web"}))),
            "Audiences in Jwt are not allowed\n",
        ),
        (
            sign("HS256", "hs", &claims(json!({"iss": "https://other"}))),
            "Jwt issuer is not configured\n",
        ),
        (
            "not-a-jwt".to_owned(),
            "Jwt is not in the form of Header.Payload.Signature\n",
        ),
    ] {
        let got = run(
            &c,
            request(
                "GET",
                "/public/a",
                &[("authorization", &format!("Bearer {token}"))],
                None,
            ),
        );
        assert_eq!(got, (401, body.to_owned()));
    }
}

#[test]
fn forwarding_the_token_and_custom_headers() {
    let c = jwt_config(
        json!({"forwardOriginalToken": true, "fromHeaders": [{"name": "x-jwt"}]}),
        json!([]),
    );
    let t = sign("HS256", "hs", &claims(json!({})));
    let mut f = request("GET", "/", &[("x-jwt", &t)], None);
    assert_eq!(
        f.authenticate(&c, &[None], NOW),
        Step::Proceed { audit: vec![] }
    );
    assert_eq!(
        f.remove,
        ["x-user", "x-groups", "x-org"].map(String::from),
        "the token header is kept"
    );
    assert_eq!(
        f.identity.as_ref().map(|i| i.principal()),
        Some(format!("{ISS}/alice"))
    );
    // The default Authorization location is not used once fromHeaders is set.
    let mut f = request(
        "GET",
        "/",
        &[("authorization", &format!("Bearer {t}"))],
        None,
    );
    assert_eq!(
        f.authenticate(&c, &[None], NOW),
        Step::Proceed { audit: vec![] }
    );
    assert!(f.identity.is_none());
}

#[test]
fn remote_keys_are_waited_for() {
    let c = config(
        json!({"jwtRules": [{"issuer": ISS, "jwksUri": "http://keys/jwks", "jwksCluster": "keys"}]}),
    );
    let t = sign("RS256", "rsa", &claims(json!({})));
    let mut f = request(
        "GET",
        "/",
        &[("authorization", &format!("Bearer {t}"))],
        None,
    );
    assert_eq!(f.authenticate(&c, &[None], NOW), Step::NeedKeys(0));
    let fetched = KeySet::parse(jwks().to_string().as_bytes()).expect("jwks");
    assert_eq!(
        f.authenticate(&c, &[Some(fetched)], NOW),
        Step::Proceed { audit: vec![] }
    );
    // No token: no need for keys.
    assert_eq!(run(&c, request("GET", "/", &[], None)).0, 200);
    assert_eq!(jwks_unavailable(ISS).status, 503);
}

#[test]
fn custom_answers() {
    let c = config(json!({"policies": [
        {"name": "ext", "action": "CUSTOM", "rules": [{}], "provider": {"cluster": "authz", "path": "/check",
            "headersToForward": ["authorization", "x-tenant"], "headersToUpstreamOnAllow": ["x-auth-user"]}},
        {"name": "open", "action": "CUSTOM", "rules": [{"to": [{"operation": {"paths": ["/open"]}}]}],
            "provider": {"cluster": "down", "failOpen": true}},
        {"name": "strict", "action": "CUSTOM", "rules": [{"to": [{"operation": {"paths": ["/strict"]}}]}],
            "provider": {"cluster": "down", "statusOnError": 503}}
    ]}));
    let mut f = request(
        "POST",
        "/a?b=1",
        &[
            ("authorization", "Bearer x"),
            ("x-tenant", "acme"),
            ("cookie", "c"),
        ],
        None,
    );
    assert_eq!(f.authenticate(&c, &[], NOW), Step::Call { policy: 0 });
    let provider = c.policies[0].provider.as_ref().expect("provider");
    let h = f.call_headers(provider);
    let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get(":method"), Some("POST"));
    assert_eq!(get(":path"), Some("/check/a?b=1"));
    assert_eq!(get(":authority"), Some("api.example.com:8443"));
    assert_eq!(get("x-tenant"), Some("acme"));
    assert_eq!(get("authorization"), Some("Bearer x"));
    assert_eq!(get("cookie"), None, "only the chosen headers");
    // 2xx: allowed, the chosen answer headers go upstream.
    let answer = vec![
        (":status".to_owned(), "200".to_owned()),
        ("X-Auth-User".to_owned(), "alice".to_owned()),
        ("x-other".to_owned(), "no".to_owned()),
    ];
    let mut allowed = f.clone();
    assert_eq!(
        allowed.on_answer(&c, 0, Some(200), &answer, b""),
        Step::Proceed { audit: vec![] }
    );
    assert_eq!(
        allowed.set,
        vec![("x-auth-user".to_owned(), "alice".to_owned())]
    );
    assert_eq!(
        allowed.remove,
        vec!["x-auth-user".to_owned()],
        "the client's value goes"
    );
    // Another status: returned as it is.
    let deny = vec![("content-type".to_owned(), "application/json".to_owned())];
    match f.clone().on_answer(&c, 0, Some(401), &deny, b"{\"no\":1}") {
        Step::Reply(r) => {
            assert_eq!(r.status, 401);
            assert_eq!(r.body, b"{\"no\":1}");
            assert!(
                r.headers
                    .contains(&("content-type".to_owned(), "application/json".to_owned()))
            );
        }
        other => panic!("{other:?}"),
    }
    // No answer: fail closed with 403, or statusOnError, or open.
    match f.clone().on_answer(&c, 0, None, &[], b"") {
        Step::Reply(r) => {
            assert_eq!(r.status, 403);
            assert!(String::from_utf8_lossy(&r.body).contains("\"ext\" could not reach"));
        }
        other => panic!("{other:?}"),
    }
    let mut open = request("GET", "/open", &[], None);
    assert_eq!(open.authenticate(&c, &[], NOW), Step::Call { policy: 0 });
    assert_eq!(
        open.on_answer(&c, 0, Some(204), &[], b""),
        Step::Call { policy: 1 }
    );
    assert_eq!(
        open.on_answer(&c, 1, None, &[], b""),
        Step::Proceed { audit: vec![] }
    );
    let mut strict = request("GET", "/strict", &[], None);
    assert_eq!(strict.authenticate(&c, &[], NOW), Step::Call { policy: 0 });
    assert_eq!(
        strict.on_answer(&c, 0, Some(200), &[], b""),
        Step::Call { policy: 2 }
    );
    match strict.on_answer(&c, 2, None, &[], b"") {
        Step::Reply(r) => assert_eq!(r.status, 503),
        other => panic!("{other:?}"),
    }
}
