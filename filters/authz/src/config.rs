//! The filter's configuration: parsed and validated completely at
//! `on_configure`, errors naming the field and the reason.

use crate::jwt::{Alg, KeySet};
use crate::policy::{Cidr, Key, Pattern};
use serde::Deserialize;
use std::time::Duration;
pub use weft_filter_match::config::parse_duration;

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a pluginConfig object"
)]
struct RawConfig {
    #[serde(default)]
    jwt_rules: Vec<RawJwtRule>,
    #[serde(default)]
    policies: Vec<RawPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawJwtRule {
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    jwks: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    jwks_cluster: Option<String>,
    #[serde(default)]
    jwks_refresh_interval: Option<String>,
    #[serde(default)]
    jwks_timeout: Option<String>,
    #[serde(default)]
    from_headers: Option<Vec<RawHeaderLocation>>,
    #[serde(default)]
    from_params: Option<Vec<String>>,
    #[serde(default)]
    output_claim_to_headers: Vec<RawClaimToHeader>,
    #[serde(default)]
    forward_original_token: bool,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    clock_skew: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderLocation {
    name: String,
    #[serde(default)]
    prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimToHeader {
    header: String,
    claim: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    provider: Option<RawProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    from: Vec<RawFrom>,
    #[serde(default)]
    to: Vec<RawTo>,
    #[serde(default)]
    when: Vec<RawCondition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrom {
    source: RawSource,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTo {
    operation: RawOperation,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSource {
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    not_principals: Vec<String>,
    #[serde(default)]
    request_principals: Vec<String>,
    #[serde(default)]
    not_request_principals: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    not_namespaces: Vec<String>,
    #[serde(default)]
    ip_blocks: Vec<String>,
    #[serde(default)]
    not_ip_blocks: Vec<String>,
    #[serde(default)]
    remote_ip_blocks: Vec<String>,
    #[serde(default)]
    not_remote_ip_blocks: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOperation {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    not_hosts: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    not_methods: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    not_paths: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCondition {
    key: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    not_values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProvider {
    cluster: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    headers_to_forward: Option<Vec<String>>,
    #[serde(default)]
    headers_to_upstream_on_allow: Vec<String>,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    status_on_error: Option<u32>,
}

/// Where a token is looked for in a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderLocation {
    /// Lower case.
    pub name: String,
    pub prefix: String,
}

/// Where a rule's keys come from.
#[derive(Debug, Clone)]
pub enum Jwks {
    Inline(KeySet),
    /// Fetched with an HTTP GET through `cluster` and refreshed.
    Remote(RemoteJwks),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub uri: String,
    pub cluster: String,
    /// `:authority` and `:path` of the GET, from the URI.
    pub authority: String,
    pub path: String,
    pub refresh: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct JwtRule {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: Jwks,
    pub from_headers: Vec<HeaderLocation>,
    pub from_params: Vec<String>,
    /// (header, claim).
    pub output_claim_to_headers: Vec<(String, String)>,
    pub forward_original_token: bool,
    pub algorithms: Vec<Alg>,
    pub clock_skew_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    Audit,
    Custom,
}

#[derive(Debug, Clone, Default)]
pub struct Source {
    pub principals: Vec<Pattern>,
    pub not_principals: Vec<Pattern>,
    pub request_principals: Vec<Pattern>,
    pub not_request_principals: Vec<Pattern>,
    pub namespaces: Vec<Pattern>,
    pub not_namespaces: Vec<Pattern>,
    pub ip_blocks: Vec<Cidr>,
    pub not_ip_blocks: Vec<Cidr>,
    pub remote_ip_blocks: Vec<Cidr>,
    pub not_remote_ip_blocks: Vec<Cidr>,
}

#[derive(Debug, Clone, Default)]
pub struct Operation {
    pub hosts: Vec<Pattern>,
    pub not_hosts: Vec<Pattern>,
    pub methods: Vec<Pattern>,
    pub not_methods: Vec<Pattern>,
    pub paths: Vec<Pattern>,
    pub not_paths: Vec<Pattern>,
}

/// A `when` value: a string pattern, or a CIDR for the IP keys.
#[derive(Debug, Clone)]
pub enum Value {
    Pattern(Pattern),
    Cidr(Cidr),
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub key: Key,
    pub values: Vec<Value>,
    pub not_values: Vec<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub from: Vec<Source>,
    pub to: Vec<Operation>,
    pub when: Vec<Condition>,
}

/// The external authorization service of a CUSTOM policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub cluster: String,
    /// Prepended to the request's path.
    pub path: String,
    pub timeout: Duration,
    /// Lower case.
    pub headers_to_forward: Vec<String>,
    /// Lower case.
    pub headers_to_upstream_on_allow: Vec<String>,
    pub fail_open: bool,
    pub status_on_error: u32,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub action: Action,
    /// `None` (absent): never matches; `[{}]`: always matches.
    pub rules: Vec<Rule>,
    pub provider: Option<Provider>,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub jwt_rules: Vec<JwtRule>,
    pub policies: Vec<Policy>,
}

/// Defaults of the weft extension fields.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
pub const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_EXT_AUTHZ_TIMEOUT: Duration = Duration::from_secs(1);

fn duration_in(
    field: &str,
    raw: Option<&str>,
    default: Duration,
    min: Duration,
    max: Duration,
    range: &str,
) -> Result<Duration, String> {
    let Some(text) = raw else {
        return Ok(default);
    };
    let d = parse_duration(text).map_err(|e| format!("{field}: {e}"))?;
    if !(min..=max).contains(&d) {
        return Err(format!("{field}: must be between {range} (got {text:?})"));
    }
    Ok(d)
}

/// A valid HTTP header name (RFC 9110 token), returned in lower case.
fn header_name(field: &str, name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("{field}: {name:?} is not a valid header name"))
    }
}

fn cluster_name(field: &str, name: &str) -> Result<String, String> {
    if name.trim().is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    Ok(name.to_owned())
}

/// Splits `http://host[:port]/path` into (authority, path).
fn split_uri(field: &str, uri: &str) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or_else(|| format!("{field}: {uri:?} must be an http:// or https:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(format!("{field}: {uri:?} has no valid host"));
    }
    if path.contains(' ') {
        return Err(format!("{field}: {uri:?} has spaces in its path"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

fn jwt_rule(at: &str, raw: RawJwtRule) -> Result<JwtRule, String> {
    if raw.issuer.is_empty() {
        return Err(format!("{at}.issuer: must not be empty"));
    }
    for (i, a) in raw.audiences.iter().enumerate() {
        if a.is_empty() {
            return Err(format!("{at}.audiences[{i}]: must not be empty"));
        }
    }
    let jwks = match (raw.jwks, raw.jwks_uri) {
        (Some(_), Some(_)) => {
            return Err(format!("{at}: jwks and jwksUri are mutually exclusive"));
        }
        (None, None) => return Err(format!("{at}: needs jwks or jwksUri")),
        (Some(text), None) => {
            if raw.jwks_cluster.is_some() {
                return Err(format!("{at}.jwksCluster: only with jwksUri"));
            }
            Jwks::Inline(KeySet::parse(text.as_bytes()).map_err(|e| format!("{at}.jwks: {e}"))?)
        }
        (None, Some(uri)) => {
            let (authority, path) = split_uri(&format!("{at}.jwksUri"), &uri)?;
            let cluster = raw
                .jwks_cluster
                .ok_or_else(|| format!("{at}.jwksCluster: required with jwksUri (the cluster the JWKS is fetched through)"))?;
            let cluster = cluster_name(&format!("{at}.jwksCluster"), &cluster)?;
            Jwks::Remote(RemoteJwks {
                uri,
                cluster,
                authority,
                path,
                refresh: duration_in(
                    &format!("{at}.jwksRefreshInterval"),
                    raw.jwks_refresh_interval.as_deref(),
                    DEFAULT_JWKS_REFRESH,
                    Duration::from_secs(1),
                    Duration::from_secs(7 * 24 * 3600),
                    "1s and 168h",
                )?,
                timeout: duration_in(
                    &format!("{at}.jwksTimeout"),
                    raw.jwks_timeout.as_deref(),
                    DEFAULT_JWKS_TIMEOUT,
                    Duration::from_millis(1),
                    Duration::from_secs(60),
                    "1ms and 1m",
                )?,
            })
        }
    };
    if !matches!(jwks, Jwks::Remote(_))
        && (raw.jwks_refresh_interval.is_some() || raw.jwks_timeout.is_some())
    {
        return Err(format!(
            "{at}: jwksRefreshInterval and jwksTimeout only apply with jwksUri"
        ));
    }
    let defaults = raw.from_headers.is_none() && raw.from_params.is_none();
    let mut from_headers = Vec::new();
    for (i, h) in raw.from_headers.unwrap_or_default().into_iter().enumerate() {
        from_headers.push(HeaderLocation {
            name: header_name(&format!("{at}.fromHeaders[{i}].name"), &h.name)?,
            prefix: h.prefix,
        });
    }
    let mut from_params = raw.from_params.unwrap_or_default();
    for (i, p) in from_params.iter().enumerate() {
        if p.is_empty() {
            return Err(format!("{at}.fromParams[{i}]: must not be empty"));
        }
    }
    if defaults {
        from_headers.push(HeaderLocation {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        });
        from_params.push("access_token".into());
    }
    let mut output = Vec::new();
    for (i, o) in raw.output_claim_to_headers.into_iter().enumerate() {
        let header = header_name(&format!("{at}.outputClaimToHeaders[{i}].header"), &o.header)?;
        if header.starts_with(':') || header == "host" {
            return Err(format!(
                "{at}.outputClaimToHeaders[{i}].header: {header:?} cannot be set"
            ));
        }
        if o.claim.is_empty() {
            return Err(format!(
                "{at}.outputClaimToHeaders[{i}].claim: must not be empty"
            ));
        }
        output.push((header, o.claim));
    }
    let algorithms = match raw.algorithms {
        None => Alg::ALL.to_vec(),
        Some(list) => {
            if list.is_empty() {
                return Err(format!("{at}.algorithms: must not be empty"));
            }
            let mut algs = Vec::new();
            for (i, name) in list.iter().enumerate() {
                algs.push(Alg::from_name(name).ok_or_else(|| {
                    format!(
                        "{at}.algorithms[{i}]: unsupported algorithm {name:?} (expected RS256, RS384, ES256, EdDSA or HS256)"
                    )
                })?);
            }
            algs
        }
    };
    let skew = duration_in(
        &format!("{at}.clockSkew"),
        raw.clock_skew.as_deref(),
        DEFAULT_CLOCK_SKEW,
        Duration::ZERO,
        Duration::from_secs(3600),
        "0s and 1h",
    )?;
    Ok(JwtRule {
        issuer: raw.issuer,
        audiences: raw.audiences,
        jwks,
        from_headers,
        from_params,
        output_claim_to_headers: output,
        forward_original_token: raw.forward_original_token,
        algorithms,
        clock_skew_secs: skew.as_secs(),
    })
}

fn patterns(field: &str, list: Vec<String>) -> Result<Vec<Pattern>, String> {
    list.iter()
        .enumerate()
        .map(|(i, v)| Pattern::parse(v).map_err(|e| format!("{field}[{i}]: {e}")))
        .collect()
}

fn cidrs(field: &str, list: Vec<String>) -> Result<Vec<Cidr>, String> {
    list.iter()
        .enumerate()
        .map(|(i, v)| Cidr::parse(v).map_err(|e| format!("{field}[{i}]: {e}")))
        .collect()
}

fn source(at: &str, s: RawSource) -> Result<Source, String> {
    Ok(Source {
        principals: patterns(&format!("{at}.principals"), s.principals)?,
        not_principals: patterns(&format!("{at}.notPrincipals"), s.not_principals)?,
        request_principals: patterns(&format!("{at}.requestPrincipals"), s.request_principals)?,
        not_request_principals: patterns(
            &format!("{at}.notRequestPrincipals"),
            s.not_request_principals,
        )?,
        namespaces: patterns(&format!("{at}.namespaces"), s.namespaces)?,
        not_namespaces: patterns(&format!("{at}.notNamespaces"), s.not_namespaces)?,
        ip_blocks: cidrs(&format!("{at}.ipBlocks"), s.ip_blocks)?,
        not_ip_blocks: cidrs(&format!("{at}.notIpBlocks"), s.not_ip_blocks)?,
        remote_ip_blocks: cidrs(&format!("{at}.remoteIpBlocks"), s.remote_ip_blocks)?,
        not_remote_ip_blocks: cidrs(&format!("{at}.notRemoteIpBlocks"), s.not_remote_ip_blocks)?,
    })
}

fn methods(field: &str, list: Vec<String>) -> Result<Vec<Pattern>, String> {
    for (i, m) in list.iter().enumerate() {
        if m != "*" && (m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(format!(
                "{field}[{i}]: {m:?} is not an HTTP method (upper case, such as GET)"
            ));
        }
    }
    patterns(field, list)
}

fn operation(at: &str, o: RawOperation) -> Result<Operation, String> {
    let lower = |v: Vec<String>| v.into_iter().map(|h| h.to_ascii_lowercase()).collect();
    Ok(Operation {
        hosts: patterns(&format!("{at}.hosts"), lower(o.hosts))?,
        not_hosts: patterns(&format!("{at}.notHosts"), lower(o.not_hosts))?,
        methods: methods(&format!("{at}.methods"), o.methods)?,
        not_methods: methods(&format!("{at}.notMethods"), o.not_methods)?,
        paths: patterns(&format!("{at}.paths"), o.paths)?,
        not_paths: patterns(&format!("{at}.notPaths"), o.not_paths)?,
    })
}

fn values(field: &str, key: &Key, list: Vec<String>) -> Result<Vec<Value>, String> {
    if key.is_ip() {
        Ok(cidrs(field, list)?.into_iter().map(Value::Cidr).collect())
    } else {
        Ok(patterns(field, list)?
            .into_iter()
            .map(Value::Pattern)
            .collect())
    }
}

fn condition(at: &str, c: RawCondition) -> Result<Condition, String> {
    let key = Key::parse(&c.key).map_err(|e| format!("{at}.key: {e}"))?;
    if c.values.is_empty() && c.not_values.is_empty() {
        return Err(format!("{at}: needs values or notValues"));
    }
    Ok(Condition {
        values: values(&format!("{at}.values"), &key, c.values)?,
        not_values: values(&format!("{at}.notValues"), &key, c.not_values)?,
        key,
    })
}

fn provider(at: &str, p: RawProvider) -> Result<Provider, String> {
    let cluster = cluster_name(&format!("{at}.cluster"), &p.cluster)?;
    let path = p.path.unwrap_or_default();
    if !path.is_empty() && (!path.starts_with('/') || path.contains([' ', '?', '#'])) {
        return Err(format!(
            "{at}.path: {path:?} must start with / and hold no spaces, ? or #"
        ));
    }
    let timeout = duration_in(
        &format!("{at}.timeout"),
        p.timeout.as_deref(),
        DEFAULT_EXT_AUTHZ_TIMEOUT,
        Duration::from_millis(1),
        Duration::from_secs(60),
        "1ms and 1m",
    )?;
    let names = |field: &str, list: Vec<String>| -> Result<Vec<String>, String> {
        list.iter()
            .enumerate()
            .map(|(i, h)| header_name(&format!("{at}.{field}[{i}]"), h))
            .collect()
    };
    let headers_to_forward = match p.headers_to_forward {
        Some(list) => names("headersToForward", list)?,
        None => vec!["authorization".into()],
    };
    let headers_to_upstream_on_allow =
        names("headersToUpstreamOnAllow", p.headers_to_upstream_on_allow)?;
    let status_on_error = p.status_on_error.unwrap_or(403);
    if !(200..=599).contains(&status_on_error) {
        return Err(format!(
            "{at}.statusOnError: must be 200–599 (got {status_on_error})"
        ));
    }
    Ok(Provider {
        cluster,
        path,
        timeout,
        headers_to_forward,
        headers_to_upstream_on_allow,
        fail_open: p.fail_open,
        status_on_error,
    })
}

fn policy(at: &str, p: RawPolicy) -> Result<Policy, String> {
    if p.name.trim().is_empty() {
        return Err(format!("{at}.name: must not be empty"));
    }
    let action = match p.action.as_deref().unwrap_or("ALLOW") {
        "ALLOW" => Action::Allow,
        "DENY" => Action::Deny,
        "AUDIT" => Action::Audit,
        "CUSTOM" => Action::Custom,
        other => {
            return Err(format!(
                "{at}.action: unknown action {other:?} (expected ALLOW, DENY, AUDIT or CUSTOM)"
            ));
        }
    };
    let provider = match (action, p.provider) {
        (Action::Custom, Some(raw)) => Some(provider(&format!("{at}.provider"), raw)?),
        (Action::Custom, None) => {
            return Err(format!("{at}.provider: required with action CUSTOM"));
        }
        (_, Some(_)) => return Err(format!("{at}.provider: only with action CUSTOM")),
        (_, None) => None,
    };
    let mut rules = Vec::new();
    for (i, r) in p.rules.unwrap_or_default().into_iter().enumerate() {
        let at = format!("{at}.rules[{i}]");
        let mut rule = Rule::default();
        for (j, f) in r.from.into_iter().enumerate() {
            rule.from
                .push(source(&format!("{at}.from[{j}].source"), f.source)?);
        }
        for (j, t) in r.to.into_iter().enumerate() {
            rule.to
                .push(operation(&format!("{at}.to[{j}].operation"), t.operation)?);
        }
        for (j, c) in r.when.into_iter().enumerate() {
            rule.when.push(condition(&format!("{at}.when[{j}]"), c)?);
        }
        rules.push(rule);
    }
    Ok(Policy {
        name: p.name,
        action,
        rules,
        provider,
    })
}

impl Config {
    /// Parses and validates; the error names the field and the reason.
    pub fn parse(raw: &[u8]) -> Result<Config, String> {
        if raw.trim_ascii_start().starts_with(b"[") {
            return Err("invalid type: sequence, expected a pluginConfig object".into());
        }
        if raw.trim_ascii().is_empty() {
            return Ok(Config::default());
        }
        let raw: RawConfig = weft_filter_match::config::from_json(raw)?;
        let mut jwt_rules: Vec<JwtRule> = Vec::new();
        for (i, r) in raw.jwt_rules.into_iter().enumerate() {
            let at = format!("jwtRules[{i}]");
            let rule = jwt_rule(&at, r)?;
            if jwt_rules.iter().any(|o| o.issuer == rule.issuer) {
                return Err(format!(
                    "{at}.issuer: {:?} is already used by another jwtRule",
                    rule.issuer
                ));
            }
            jwt_rules.push(rule);
        }
        let mut policies: Vec<Policy> = Vec::new();
        for (i, p) in raw.policies.into_iter().enumerate() {
            let at = format!("policies[{i}]");
            let p = policy(&at, p)?;
            if policies.iter().any(|o| o.name == p.name) {
                return Err(format!("{at}.name: {:?} is used twice", p.name));
            }
            policies.push(p);
        }
        Ok(Config {
            jwt_rules,
            policies,
        })
    }
}
