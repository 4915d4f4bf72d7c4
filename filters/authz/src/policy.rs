//! Istio `AuthorizationPolicy` evaluation over a request's attributes:
//! string patterns, CIDR blocks, `when` keys, and the CUSTOM → DENY →
//! ALLOW order.

use crate::config::{Action, Condition, Config, Operation, Rule, Source, Value};
use crate::jwt::{Verified, claim};
use std::net::IpAddr;

/// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Any,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text == "*" {
            return Ok(Pattern::Any);
        }
        let inner = |s: &str| s.contains('*');
        if let Some(rest) = text.strip_suffix('*') {
            if inner(rest) {
                return Err(format!(
                    "{text:?}: `*` is only allowed once, at the start or the end"
                ));
            }
            return Ok(Pattern::Prefix(rest.to_owned()));
        }
        if let Some(rest) = text.strip_prefix('*') {
            if inner(rest) {
                return Err(format!(
                    "{text:?}: `*` is only allowed once, at the start or the end"
                ));
            }
            return Ok(Pattern::Suffix(rest.to_owned()));
        }
        if inner(text) {
            return Err(format!(
                "{text:?}: `*` is only allowed once, at the start or the end"
            ));
        }
        Ok(Pattern::Exact(text.to_owned()))
    }

    pub fn matches(&self, v: &str) -> bool {
        match self {
            Pattern::Exact(e) => v == e,
            Pattern::Prefix(p) => v.starts_with(p.as_str()),
            Pattern::Suffix(s) => v.ends_with(s.as_str()),
            Pattern::Any => true,
        }
    }
}

/// An IP block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (ip, bits) = match text.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (text, None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0–{max}"))?,
        };
        Ok(Cidr { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address is its IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let masked = |a: u128, width: u32| {
            let bits = u32::from(self.bits);
            if bits == 0 { 0 } else { a >> (width - bits) }
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(n)), 32) == masked(u128::from(u32::from(a)), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), 128) == masked(u128::from(a), 128)
            }
            _ => false,
        }
    }
}

/// A `when` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `request.headers[name]` (name in lower case).
    RequestHeader(String),
    SourceIp,
    RemoteIp,
    SourceNamespace,
    SourcePrincipal,
    RequestAuthPrincipal,
    RequestAuthAudiences,
    RequestAuthPresenter,
    /// `request.auth.claims[a][b]`: a path into nested claims.
    RequestAuthClaims(Vec<String>),
}

impl Key {
    pub fn parse(text: &str) -> Result<Key, String> {
        let brackets = |rest: &str| -> Option<Vec<String>> {
            let mut out = Vec::new();
            let mut rest = rest;
            while !rest.is_empty() {
                let inner = rest.strip_prefix('[')?;
                let end = inner.find(']')?;
                let name = &inner[..end];
                if name.is_empty() {
                    return None;
                }
                out.push(name.to_owned());
                rest = &inner[end + 1..];
            }
            (!out.is_empty()).then_some(out)
        };
        Ok(match text {
            "source.ip" => Key::SourceIp,
            "remote.ip" => Key::RemoteIp,
            "source.namespace" => Key::SourceNamespace,
            "source.principal" => Key::SourcePrincipal,
            "request.auth.principal" => Key::RequestAuthPrincipal,
            "request.auth.audiences" => Key::RequestAuthAudiences,
            "request.auth.presenter" => Key::RequestAuthPresenter,
            _ => {
                if let Some(rest) = text.strip_prefix("request.headers") {
                    match brackets(rest) {
                        Some(names) if names.len() == 1 => {
                            Key::RequestHeader(names[0].to_ascii_lowercase())
                        }
                        _ => {
                            return Err(format!("{text:?}: expected request.headers[<name>]"));
                        }
                    }
                } else if let Some(rest) = text.strip_prefix("request.auth.claims") {
                    Key::RequestAuthClaims(brackets(rest).ok_or_else(|| {
                        format!("{text:?}: expected request.auth.claims[<name>] (or [a][b] for nested claims)")
                    })?)
                } else {
                    return Err(format!(
                        "unsupported key {text:?} (expected request.headers[…], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter or request.auth.claims[…])"
                    ));
                }
            }
        })
    }

    pub fn is_ip(&self) -> bool {
        matches!(self, Key::SourceIp | Key::RemoteIp)
    }
}

/// What policies look at in one request.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub method: String,
    /// The path without its query.
    pub path: String,
    /// `:authority`, lower case.
    pub host: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// The downstream peer's address (`source.address`).
    pub source_ip: Option<IpAddr>,
    /// The first `x-forwarded-for` hop, else the peer.
    pub remote_ip: Option<IpAddr>,
    /// The mTLS peer identity without `spiffe://`.
    pub principal: Option<String>,
}

impl Attributes {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `source.namespace`: the `ns/<name>` segment of the principal.
    pub fn namespace(&self) -> Option<&str> {
        let p = self.principal.as_deref()?;
        let mut parts = p.split('/');
        while let Some(seg) = parts.next() {
            if seg == "ns" {
                return parts.next();
            }
        }
        None
    }
}

/// Parses an address as properties carry it (`1.2.3.4:5678`,
/// `[::1]:80`) or a bare IP.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

/// A list field: empty holds; otherwise any value matching any pattern.
fn any_of(patterns: &[Pattern], value: Option<&str>) -> bool {
    patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
}

/// A `not…` field: empty holds; otherwise no pattern may match.
fn none_of(patterns: &[Pattern], value: Option<&str>) -> bool {
    patterns.is_empty() || !value.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
}

fn any_ip(blocks: &[Cidr], ip: Option<IpAddr>) -> bool {
    blocks.is_empty() || ip.is_some_and(|ip| blocks.iter().any(|b| b.contains(ip)))
}

fn no_ip(blocks: &[Cidr], ip: Option<IpAddr>) -> bool {
    blocks.is_empty() || !ip.is_some_and(|ip| blocks.iter().any(|b| b.contains(ip)))
}

fn source_matches(s: &Source, a: &Attributes, id: Option<&Verified>) -> bool {
    let principal = a.principal.as_deref();
    let request_principal = id.map(Verified::principal);
    let rp = request_principal.as_deref();
    any_of(&s.principals, principal)
        && none_of(&s.not_principals, principal)
        && any_of(&s.request_principals, rp)
        && none_of(&s.not_request_principals, rp)
        && any_of(&s.namespaces, a.namespace())
        && none_of(&s.not_namespaces, a.namespace())
        && any_ip(&s.ip_blocks, a.source_ip)
        && no_ip(&s.not_ip_blocks, a.source_ip)
        && any_ip(&s.remote_ip_blocks, a.remote_ip)
        && no_ip(&s.not_remote_ip_blocks, a.remote_ip)
}

fn host_matches(patterns: &[Pattern], host: &str) -> bool {
    let bare = host
        .rsplit_once(':')
        .filter(|(h, port)| {
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')
        })
        .map_or(host, |(h, _)| h);
    patterns.iter().any(|p| p.matches(host) || p.matches(bare))
}

fn operation_matches(o: &Operation, a: &Attributes) -> bool {
    (o.hosts.is_empty() || host_matches(&o.hosts, &a.host))
        && (o.not_hosts.is_empty() || !host_matches(&o.not_hosts, &a.host))
        && any_of(&o.methods, Some(&a.method))
        && none_of(&o.not_methods, Some(&a.method))
        && any_of(&o.paths, Some(&a.path))
        && none_of(&o.not_paths, Some(&a.path))
}

/// The values a `when` key has for this request (a claim list has several).
fn key_values(key: &Key, a: &Attributes, id: Option<&Verified>) -> Vec<String> {
    let one = |v: Option<&str>| v.map(|v| vec![v.to_owned()]).unwrap_or_default();
    match key {
        Key::RequestHeader(name) => one(a.header(name)),
        Key::SourceIp => a.source_ip.map(|i| vec![i.to_string()]).unwrap_or_default(),
        Key::RemoteIp => a.remote_ip.map(|i| vec![i.to_string()]).unwrap_or_default(),
        Key::SourceNamespace => one(a.namespace()),
        Key::SourcePrincipal => one(a.principal.as_deref()),
        Key::RequestAuthPrincipal => id.map(|v| vec![v.principal()]).unwrap_or_default(),
        Key::RequestAuthAudiences => id.map(|v| v.audiences.clone()).unwrap_or_default(),
        Key::RequestAuthPresenter => one(id.and_then(|v| v.presenter.as_deref())),
        Key::RequestAuthClaims(path) => {
            let Some(id) = id else { return Vec::new() };
            let mut v = claim(&id.claims, &path[0]);
            for p in &path[1..] {
                v = v.and_then(|v| v.as_object()).and_then(|o| o.get(p));
            }
            match v {
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .map(|x| match x {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
                Some(serde_json::Value::Null) | None => Vec::new(),
                Some(other) => vec![other.to_string()],
            }
        }
    }
}

fn value_matches(v: &Value, candidate: &str) -> bool {
    match v {
        Value::Pattern(p) => p.matches(candidate),
        Value::Cidr(c) => parse_ip(candidate).is_some_and(|ip| c.contains(ip)),
    }
}

fn condition_matches(c: &Condition, a: &Attributes, id: Option<&Verified>) -> bool {
    let have = key_values(&c.key, a, id);
    let hit = |list: &[Value]| {
        have.iter()
            .any(|h| list.iter().any(|v| value_matches(v, h)))
    };
    (c.values.is_empty() || hit(&c.values)) && (c.not_values.is_empty() || !hit(&c.not_values))
}

/// Whether one rule holds: some `from` (or none given), some `to` (or
/// none given), and every `when`.
pub fn rule_matches(r: &Rule, a: &Attributes, id: Option<&Verified>) -> bool {
    (r.from.is_empty() || r.from.iter().any(|s| source_matches(s, a, id)))
        && (r.to.is_empty() || r.to.iter().any(|o| operation_matches(o, a)))
        && r.when.iter().all(|c| condition_matches(c, a, id))
}

/// The first rule of a policy that holds (a policy without rules never
/// matches; `rules: [{}]` always does).
pub fn matching_rule(rules: &[Rule], a: &Attributes, id: Option<&Verified>) -> Option<usize> {
    rules.iter().position(|r| rule_matches(r, a, id))
}

/// The result of authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proxy the request. `audit` names the AUDIT policies that matched.
    Allow { audit: Vec<String> },
    /// 403, naming the reason (no secrets).
    Deny { reason: String },
    /// Ask the external service of CUSTOM policy `policy` (an index),
    /// then go on with [`authorize`] from `policy + 1`.
    Custom { policy: usize },
}

/// Istio's order: CUSTOM policies first (from index `custom_from` on, so
/// that a CUSTOM answer resumes the evaluation), then DENY, then ALLOW
/// (with ALLOW policies present, one must match). AUDIT policies only
/// record that they matched.
pub fn authorize(
    config: &Config,
    a: &Attributes,
    id: Option<&Verified>,
    custom_from: usize,
) -> Verdict {
    for (i, p) in config.policies.iter().enumerate().skip(custom_from) {
        if p.action == Action::Custom && matching_rule(&p.rules, a, id).is_some() {
            return Verdict::Custom { policy: i };
        }
    }
    for p in config.policies.iter().filter(|p| p.action == Action::Deny) {
        if let Some(rule) = matching_rule(&p.rules, a, id) {
            return Verdict::Deny {
                reason: format!("denied by policy {:?} rule {rule}", p.name),
            };
        }
    }
    let mut allows = config
        .policies
        .iter()
        .filter(|p| p.action == Action::Allow)
        .peekable();
    if allows.peek().is_some() && !allows.any(|p| matching_rule(&p.rules, a, id).is_some()) {
        return Verdict::Deny {
            reason: "no ALLOW policy matched".into(),
        };
    }
    let audit = config
        .policies
        .iter()
        .filter(|p| p.action == Action::Audit && matching_rule(&p.rules, a, id).is_some())
        .map(|p| p.name.clone())
        .collect();
    Verdict::Allow { audit }
}
