//! One request's way through the filter, as plain Rust: find and verify
//! the token (RequestAuthentication), then authorize (AuthorizationPolicy),
//! possibly asking an external service. The glue in `lib.rs` only reads
//! the request, performs the [`Step`]s and calls back in.

use crate::config::{Config, Jwks, JwtRule, Provider};
use crate::jwt::{JwtError, KeySet, Requirements, Unverified, Verified, claim, claim_text};
use crate::policy::{Attributes, Verdict, authorize};

/// A local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the glue does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The token's jwtRule (an index) has no keys yet: park the request
    /// until they arrive (then call [`Flow::authenticate`] again).
    NeedKeys(usize),
    /// Answer locally.
    Reply(Reply),
    /// Ask CUSTOM policy `policy`'s provider (see [`Flow::call_headers`]),
    /// then call [`Flow::on_answer`].
    Call { policy: usize },
    /// Proxy the request after removing [`Flow::remove`] and setting
    /// [`Flow::set`]; `audit` names the AUDIT policies that matched.
    Proceed { audit: Vec<String> },
}

/// What the token lookup found.
#[derive(Debug)]
enum Authn {
    Anonymous,
    Verified {
        rule: usize,
        id: Verified,
        header: Option<String>,
    },
    Failed(JwtError),
    NeedKeys(usize),
}

/// One request's state.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    pub attrs: Attributes,
    /// `:path` with the query.
    pub full_path: String,
    pub scheme: String,
    pub identity: Option<Verified>,
    /// Request headers to set before proxying.
    pub set: Vec<(String, String)>,
    /// Request headers to remove before proxying.
    pub remove: Vec<String>,
}

fn query_param<'a>(full_path: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = full_path.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The first token in any rule's locations (rules in order, headers
/// before query parameters), with the header it came from.
fn find_token(config: &Config, flow: &Flow) -> Option<(String, Option<String>)> {
    for rule in &config.jwt_rules {
        for loc in &rule.from_headers {
            if let Some(v) = flow.attrs.header(&loc.name)
                && let Some(token) = v.strip_prefix(loc.prefix.as_str())
                && !token.trim().is_empty()
            {
                return Some((token.trim().to_owned(), Some(loc.name.clone())));
            }
        }
        for p in &rule.from_params {
            if let Some(v) = query_param(&flow.full_path, p) {
                return Some((v.to_owned(), None));
            }
        }
    }
    None
}

fn requirements(rule: &JwtRule) -> Requirements<'_> {
    Requirements {
        issuer: &rule.issuer,
        audiences: &rule.audiences,
        algorithms: &rule.algorithms,
        clock_skew_secs: rule.clock_skew_secs,
    }
}

fn authn(config: &Config, flow: &Flow, keys: &[Option<KeySet>], now: u64) -> Authn {
    let Some((token, header)) = find_token(config, flow) else {
        return Authn::Anonymous;
    };
    let unverified = match Unverified::parse(&token) {
        Ok(u) => u,
        Err(e) => return Authn::Failed(e),
    };
    let Some(index) = unverified
        .issuer()
        .and_then(|iss| config.jwt_rules.iter().position(|r| r.issuer == iss))
    else {
        return Authn::Failed(JwtError::UnknownIssuer);
    };
    let rule = &config.jwt_rules[index];
    let set = match &rule.jwks {
        Jwks::Inline(k) => k,
        Jwks::Remote(_) => match keys.get(index).and_then(Option::as_ref) {
            Some(k) => k,
            None => return Authn::NeedKeys(index),
        },
    };
    match unverified.verify(&requirements(rule), set, now) {
        Ok(id) => Authn::Verified {
            rule: index,
            id,
            header,
        },
        Err(e) => Authn::Failed(e),
    }
}

/// `text/plain` reply with `x-weft-authz` saying why.
fn plain(status: u32, why: &str, extra: Vec<(String, String)>, body: String) -> Reply {
    let mut headers = vec![
        ("content-type".to_owned(), "text/plain".to_owned()),
        ("x-weft-authz".to_owned(), why.to_owned()),
    ];
    headers.extend(extra);
    Reply {
        status,
        headers,
        body: body.into_bytes(),
    }
}

/// 503 for requests whose JWKS could not be fetched.
pub fn jwks_unavailable(issuer: &str) -> Reply {
    plain(
        503,
        "jwks-unavailable",
        Vec::new(),
        format!("authz: the JWKS of issuer {issuer} is not available\n"),
    )
}

impl Flow {
    /// RequestAuthentication, then (unless it fails or must wait)
    /// authorization. `keys[i]` holds the fetched keys of jwtRule `i`;
    /// `now` is in seconds since the epoch.
    pub fn authenticate(&mut self, config: &Config, keys: &[Option<KeySet>], now: u64) -> Step {
        // Claim headers only ever come from a verified token: a client's
        // own values are dropped (a parked request comes here twice).
        for rule in &config.jwt_rules {
            for (header, _) in &rule.output_claim_to_headers {
                if !self.remove.contains(header) {
                    self.remove.push(header.clone());
                }
            }
        }
        self.set.clear();
        match authn(config, self, keys, now) {
            Authn::Anonymous => {}
            Authn::NeedKeys(rule) => return Step::NeedKeys(rule),
            Authn::Failed(e) => {
                let realm = format!("{}://{}{}", self.scheme, self.attrs.host, self.attrs.path);
                let challenge = format!(
                    "Bearer realm=\"{}\", error=\"invalid_token\"",
                    realm.replace(['"', '\\'], "")
                );
                return Step::Reply(plain(
                    401,
                    "unauthenticated",
                    vec![("www-authenticate".into(), challenge)],
                    format!("{e}\n"),
                ));
            }
            Authn::Verified { rule, id, header } => {
                let rule = &config.jwt_rules[rule];
                if !rule.forward_original_token
                    && let Some(h) = header
                {
                    self.remove.push(h);
                }
                for (header, name) in &rule.output_claim_to_headers {
                    if let Some(v) = claim(&id.claims, name) {
                        let text = claim_text(v);
                        // A value a header cannot carry is left out.
                        if !text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                            self.set.push((header.clone(), text));
                        }
                    }
                }
                self.identity = Some(id);
            }
        }
        self.authorize(config, 0)
    }

    /// AuthorizationPolicy from CUSTOM policy `custom_from` on.
    pub fn authorize(&mut self, config: &Config, custom_from: usize) -> Step {
        match authorize(config, &self.attrs, self.identity.as_ref(), custom_from) {
            Verdict::Allow { audit } => Step::Proceed { audit },
            Verdict::Custom { policy } => Step::Call { policy },
            Verdict::Deny { reason } => Step::Reply(plain(
                403,
                "denied",
                Vec::new(),
                format!("RBAC: access denied: {reason}\n"),
            )),
        }
    }

    /// The headers of the check request to a CUSTOM provider: the
    /// request's method, the provider's path prefix plus the request's
    /// path, its authority, and the chosen request headers.
    pub fn call_headers(&self, provider: &Provider) -> Vec<(String, String)> {
        let mut h = vec![
            (":method".to_owned(), self.attrs.method.clone()),
            (
                ":path".to_owned(),
                format!("{}{}", provider.path, self.full_path),
            ),
            (
                ":authority".to_owned(),
                if self.attrs.host.is_empty() {
                    provider.cluster.clone()
                } else {
                    self.attrs.host.clone()
                },
            ),
            ("content-length".to_owned(), "0".to_owned()),
        ];
        for name in &provider.headers_to_forward {
            for (k, v) in &self.attrs.headers {
                if k == name && !name.starts_with(':') && name != "content-length" {
                    h.push((k.clone(), v.clone()));
                }
            }
        }
        h
    }

    /// The provider's answer for CUSTOM policy `policy`: `status` is
    /// `None` when the call failed (timeout, connection, no answer).
    pub fn on_answer(
        &mut self,
        config: &Config,
        policy: usize,
        status: Option<u32>,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Step {
        let p = &config.policies[policy];
        let Some(provider) = &p.provider else {
            return self.authorize(config, policy + 1);
        };
        match status {
            Some(s) if (200..300).contains(&s) => {
                for name in &provider.headers_to_upstream_on_allow {
                    // The service's value, never the client's.
                    if !self.remove.contains(name) {
                        self.remove.push(name.clone());
                    }
                    for (k, v) in headers {
                        if k.eq_ignore_ascii_case(name) {
                            self.set.push((name.clone(), v.clone()));
                        }
                    }
                }
                self.authorize(config, policy + 1)
            }
            Some(s) if (100..=599).contains(&s) => {
                let mut reply = Reply {
                    status: s,
                    headers: vec![("x-weft-authz".to_owned(), "denied".to_owned())],
                    body: body.to_vec(),
                };
                for (k, v) in headers {
                    let k = k.to_ascii_lowercase();
                    if matches!(k.as_str(), "content-type" | "www-authenticate" | "location") {
                        reply.headers.push((k, v.clone()));
                    }
                }
                Step::Reply(reply)
            }
            _ if provider.fail_open => self.authorize(config, policy + 1),
            _ => Step::Reply(plain(
                provider.status_on_error,
                "ext-authz-error",
                Vec::new(),
                format!(
                    "RBAC: access denied: policy {:?} could not reach its authorization service\n",
                    p.name
                ),
            )),
        }
    }
}
