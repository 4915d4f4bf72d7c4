//! JSON Web Key Sets and JWT verification (RS256, RS384, ES256, EdDSA,
//! HS256) on RustCrypto crates, with no host calls so it is tested
//! natively.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

/// base64url, with or without padding (some issuers pad).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A signature algorithm weft verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Es256,
    EdDsa,
    Hs256,
}

impl Alg {
    pub const ALL: [Alg; 5] = [Alg::Rs256, Alg::Rs384, Alg::Es256, Alg::EdDsa, Alg::Hs256];

    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Hs256 => "HS256",
        }
    }

    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// One usable key of a JWKS.
#[derive(Clone)]
pub enum Key {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An HS256 secret (`kty: oct`).
    Oct(Vec<u8>),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.write_str(match self {
            Key::Rsa(_) => "Key::Rsa",
            Key::P256(_) => "Key::P256",
            Key::Ed25519(_) => "Key::Ed25519",
            Key::Oct(_) => "Key::Oct",
        })
    }
}

impl Key {
    fn fits(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (Key::Rsa(_), Alg::Rs256 | Alg::Rs384)
                | (Key::P256(_), Alg::Es256)
                | (Key::Ed25519(_), Alg::EdDsa)
                | (Key::Oct(_), Alg::Hs256)
        )
    }
}

#[derive(Debug, Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's own `alg`, when the JWK names one.
    pub alg: Option<Alg>,
    pub key: Key,
}

/// A parsed JWKS: the keys weft can use (keys of other types, or meant
/// for encryption, are skipped).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    k: Option<String>,
}

fn b64(field: &str, v: &Option<String>) -> Result<Vec<u8>, String> {
    let v = v.as_deref().ok_or_else(|| format!("missing {field:?}"))?;
    B64URL
        .decode(v)
        .map_err(|e| format!("{field:?} is not base64url: {e}"))
}

fn parse_jwk(raw: RawJwk) -> Result<Option<Jwk>, String> {
    if raw.usage.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(name) => match Alg::from_name(name) {
            Some(a) => Some(a),
            // A key for an algorithm weft does not verify: not usable.
            None => return Ok(None),
        },
    };
    let key = match raw.kty.as_str() {
        "RSA" => {
            let n = rsa::BigUint::from_bytes_be(&b64("n", &raw.n)?);
            let e = rsa::BigUint::from_bytes_be(&b64("e", &raw.e)?);
            Key::Rsa(rsa::RsaPublicKey::new(n, e).map_err(|e| format!("bad RSA key: {e}"))?)
        }
        "EC" => {
            if raw.crv.as_deref() != Some("P-256") {
                return Ok(None);
            }
            let (x, y) = (b64("x", &raw.x)?, b64("y", &raw.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes".into());
            }
            let point = p256::EncodedPoint::from_affine_coordinates(
                p256::FieldBytes::from_slice(&x),
                p256::FieldBytes::from_slice(&y),
                false,
            );
            Key::P256(
                p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| "not a point on P-256".to_owned())?,
            )
        }
        "OKP" => {
            if raw.crv.as_deref() != Some("Ed25519") {
                return Ok(None);
            }
            let x: [u8; 32] = b64("x", &raw.x)?
                .try_into()
                .map_err(|_| "Ed25519 key must be 32 bytes".to_owned())?;
            Key::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| "not an Ed25519 public key".to_owned())?,
            )
        }
        "oct" => {
            let k = b64("k", &raw.k)?;
            if k.is_empty() {
                return Err("empty \"k\"".into());
            }
            Key::Oct(k)
        }
        _ => return Ok(None),
    };
    Ok(Some(Jwk {
        kid: raw.kid,
        alg,
        key,
    }))
}

impl KeySet {
    /// Parses a JWKS document; a malformed key is an error naming it,
    /// keys weft cannot use are skipped, and a set with no usable key is
    /// an error.
    pub fn parse(text: &[u8]) -> Result<KeySet, String> {
        let raw: RawJwks =
            serde_json::from_slice(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for (i, v) in raw.keys.into_iter().enumerate() {
            let raw: RawJwk = serde_json::from_value(v).map_err(|e| format!("keys[{i}]: {e}"))?;
            if let Some(k) = parse_jwk(raw).map_err(|e| format!("keys[{i}]: {e}"))? {
                keys.push(k);
            }
        }
        if keys.is_empty() {
            return Err("no usable signing key (RSA, EC P-256, OKP Ed25519 or oct)".into());
        }
        Ok(KeySet { keys })
    }
}

/// Why a token was refused. The text is what the 401 carries (it never
/// includes the token or a key).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtError {
    #[error("Jwt is not in the form of Header.Payload.Signature")]
    Malformed,
    #[error("Jwt header is an invalid JSON")]
    BadHeader,
    #[error("Jwt payload is an invalid JSON")]
    BadPayload,
    #[error("Jwt algorithm {0:?} is not allowed")]
    AlgNotAllowed(String),
    #[error("Jwt issuer is not configured")]
    UnknownIssuer,
    #[error("Jwks doesn't have key to match kid or alg from Jwt")]
    NoKey,
    #[error("Jwt verification fails")]
    BadSignature,
    #[error("Jwt is expired")]
    Expired,
    #[error("Jwt not yet valid")]
    NotYetValid,
    #[error("Audiences in Jwt are not allowed")]
    Audience,
}

/// The verified parts of a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    /// `azp`, when present.
    pub presenter: Option<String>,
    pub claims: Map<String, Value>,
}

impl Verified {
    /// Istio's `requestPrincipal`: `iss/sub`.
    pub fn principal(&self) -> String {
        format!("{}/{}", self.issuer, self.subject)
    }
}

/// A token split into its parts, payload decoded but not yet trusted.
#[derive(Debug)]
pub struct Unverified<'a> {
    pub alg: String,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    signed: &'a str,
    signature: Vec<u8>,
}

impl<'a> Unverified<'a> {
    pub fn parse(token: &'a str) -> Result<Unverified<'a>, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Map<String, Value> = B64URL
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::BadHeader)?;
        let claims: Map<String, Value> = B64URL
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::BadPayload)?;
        let signature = B64URL.decode(s).map_err(|_| JwtError::Malformed)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwtError::BadHeader)?
            .to_owned();
        let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
        Ok(Unverified {
            alg,
            kid,
            claims,
            signed: &token[..h.len() + 1 + p.len()],
            signature,
        })
    }

    /// The `iss` claim, used to pick the jwtRule.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

/// What a jwtRule demands of a token.
#[derive(Debug, Clone)]
pub struct Requirements<'a> {
    pub issuer: &'a str,
    /// Empty: any audience.
    pub audiences: &'a [String],
    pub algorithms: &'a [Alg],
    pub clock_skew_secs: u64,
}

fn check_signature(key: &Key, alg: Alg, msg: &[u8], sig: &[u8]) -> bool {
    use rsa::signature::Verifier as _;
    match (key, alg) {
        (Key::Rsa(k), Alg::Rs256) => rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone())
                .verify(msg, &s)
                .is_ok()
        }),
        (Key::Rsa(k), Alg::Rs384) => rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(k.clone())
                .verify(msg, &s)
                .is_ok()
        }),
        (Key::P256(k), Alg::Es256) => {
            p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
        }
        (Key::Ed25519(k), Alg::EdDsa) => ed25519_dalek::Signature::from_slice(sig)
            .is_ok_and(|s| k.verify_strict(msg, &s).is_ok()),
        (Key::Oct(secret), Alg::Hs256) => {
            use hmac::Mac as _;
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
                .is_ok_and(|mac| mac.chain_update(msg).verify_slice(sig).is_ok())
        }
        _ => false,
    }
}

fn number(claims: &Map<String, Value>, name: &str) -> Option<f64> {
    claims.get(name).and_then(Value::as_f64)
}

impl Unverified<'_> {
    /// Checks the algorithm, the signature against `keys`, the issuer,
    /// the audiences and the time window (`now` in seconds since the
    /// epoch).
    pub fn verify(
        self,
        req: &Requirements<'_>,
        keys: &KeySet,
        now: u64,
    ) -> Result<Verified, JwtError> {
        let alg = Alg::from_name(&self.alg)
            .filter(|a| req.algorithms.contains(a))
            .ok_or_else(|| JwtError::AlgNotAllowed(self.alg.clone()))?;
        let candidates: Vec<&Jwk> = keys
            .keys
            .iter()
            .filter(|k| k.key.fits(alg))
            .filter(|k| k.alg.is_none_or(|a| a == alg))
            .filter(|k| match (&self.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::NoKey);
        }
        let msg = self.signed.as_bytes();
        if !candidates
            .iter()
            .any(|k| check_signature(&k.key, alg, msg, &self.signature))
        {
            return Err(JwtError::BadSignature);
        }
        let claims = self.claims;
        let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if issuer != req.issuer {
            return Err(JwtError::UnknownIssuer);
        }
        let skew = req.clock_skew_secs as f64;
        let now = now as f64;
        if number(&claims, "exp").is_some_and(|exp| now > exp + skew) {
            return Err(JwtError::Expired);
        }
        if number(&claims, "nbf").is_some_and(|nbf| now + skew < nbf) {
            return Err(JwtError::NotYetValid);
        }
        let audiences: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if !req.audiences.is_empty() && !audiences.iter().any(|a| req.audiences.contains(a)) {
            return Err(JwtError::Audience);
        }
        Ok(Verified {
            issuer: issuer.to_owned(),
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            audiences,
            presenter: claims.get("azp").and_then(Value::as_str).map(str::to_owned),
            claims,
        })
    }
}

/// A claim by name, or by a dotted path into nested objects
/// (`realm_access.roles`) when no top-level claim has that name.
pub fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    claims.get(name).or_else(|| {
        let mut parts = name.split('.');
        let mut v = claims.get(parts.next()?)?;
        for p in parts {
            v = v.as_object()?.get(p)?;
        }
        Some(v)
    })
}

/// A claim's value as a header value: strings as they are, numbers and
/// booleans printed, arrays of strings joined with `,`, anything else as
/// JSON.
pub fn claim_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(list) if list.iter().all(Value::is_string) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// base64url without padding, as JWTs are written (used by tests).
pub fn b64url(bytes: &[u8]) -> String {
    general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
