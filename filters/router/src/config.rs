//! The filter's configuration, a Gateway API `HTTPRoute` spec: parsed and
//! validated completely at `on_configure`, errors naming the field
//! (`rules[0].backendRefs[1].weight: ...`).

use serde::Deserialize;
use serde::de::IgnoredAny;
use weft_filter_match::{HttpRouteMatch, Matcher};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    matches: Vec<HttpRouteMatch>,
    #[serde(default)]
    backend_refs: Vec<RawBackendRef>,
    #[serde(default)]
    filters: Vec<RawFilter>,
    #[serde(default)]
    timeouts: Option<RawTimeouts>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    direct_response: Option<RawDirectResponse>,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackendRef {
    name: String,
    #[serde(default = "one")]
    weight: i64,
    /// Accepted for Gateway API compatibility and ignored: weft clusters
    /// are named, their endpoints carry the ports.
    #[serde(default, rename = "port")]
    _port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFilter {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url_rewrite: Option<RawUrlRewrite>,
    #[serde(default)]
    request_redirect: Option<RawRedirect>,
    // The other Gateway API filters' fields, read only so that `type`
    // gets the clear "unsupported filter type" error.
    #[serde(default)]
    request_header_modifier: Option<IgnoredAny>,
    #[serde(default)]
    response_header_modifier: Option<IgnoredAny>,
    #[serde(default)]
    request_mirror: Option<IgnoredAny>,
    #[serde(default)]
    extension_ref: Option<IgnoredAny>,
    #[serde(default)]
    cors: Option<IgnoredAny>,
    #[serde(default)]
    external_auth: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUrlRewrite {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    path: Option<RawPathModifier>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum PathModifierType {
    ReplaceFullPath,
    ReplacePrefixMatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPathModifier {
    #[serde(rename = "type")]
    kind: PathModifierType,
    #[serde(default)]
    replace_full_path: Option<String>,
    #[serde(default)]
    replace_prefix_match: Option<String>,
}

fn found() -> i64 {
    302
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRedirect {
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    path: Option<RawPathModifier>,
    #[serde(default = "found")]
    status_code: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTimeouts {
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    backend_request: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetry {
    attempts: i64,
    #[serde(default)]
    per_try_timeout: Option<String>,
    #[serde(default)]
    retry_on: Option<Vec<String>>,
    #[serde(default)]
    codes: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectResponse {
    status: i64,
    #[serde(default)]
    body: Option<String>,
}

/// A `hostnames[]` entry, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostname {
    Exact(String),
    /// `*.example.com`, kept as the suffix `.example.com`.
    Wildcard(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    /// `ReplaceFullPath`: the whole path (the query is kept).
    Full(String),
    /// `ReplacePrefixMatch`: the replacement for the matched prefix.
    Prefix(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlRewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathModifier>,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    pub status: u16,
    pub body: String,
}

/// A property the router writes: its path segments and its text.
pub type Property = (&'static [&'static str], String);

pub const CLUSTER: &[&str] = &["weft", "cluster"];
pub const ROUTE_NAME: &[&str] = &["weft", "route", "name"];
pub const TIMEOUT_MS: &[&str] = &["weft", "timeout_ms"];
pub const RETRY_ATTEMPTS: &[&str] = &["weft", "retry", "attempts"];
pub const RETRY_PER_TRY_TIMEOUT_MS: &[&str] = &["weft", "retry", "per_try_timeout_ms"];
pub const RETRY_ON: &[&str] = &["weft", "retry", "on"];
pub const RETRY_CODES: &[&str] = &["weft", "retry", "codes"];

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// `name`, else `rules[N]`.
    pub name: String,
    pub matches: Vec<Matcher>,
    pub backends: Vec<Backend>,
    pub rewrite: Option<UrlRewrite>,
    pub redirect: Option<Redirect>,
    pub direct: Option<DirectResponse>,
    /// Timeout and retry properties, written when the request is forwarded.
    pub upstream_properties: Vec<Property>,
}

#[derive(Debug, Default)]
pub struct Config {
    /// Empty: any host.
    pub hostnames: Vec<Hostname>,
    pub rules: Vec<Rule>,
    /// Every (rule, match) pair, most specific first (ties in rule, then
    /// match order): the first that matches a request wins.
    pub order: Vec<(usize, usize)>,
}

/// The `retryOn` conditions weft's proxy understands.
pub const RETRY_CONDITIONS: [&str; 4] =
    ["5xx", "reset", "connect-failure", "retriable-status-codes"];

/// Parses a Gateway API duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`, e.g.
/// `500ms`, `10s`, `1m`, `1h30m`) into milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid duration {s:?} (expected up to 4 groups of 1-5 digits with a unit h, m, s or ms, e.g. 500ms, 10s, 1h30m)"
        )
    };
    let b = s.as_bytes();
    let (mut i, mut groups, mut total) = (0, 0, 0u64);
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = s[start..i].parse().map_err(|_| bad())?;
        let unit = match (b.get(i), b.get(i + 1)) {
            (Some(b'm'), Some(b's')) => {
                i += 2;
                1
            }
            (Some(b'h'), _) => {
                i += 1;
                3_600_000
            }
            (Some(b'm'), _) => {
                i += 1;
                60_000
            }
            (Some(b's'), _) => {
                i += 1;
                1_000
            }
            _ => return Err(bad()),
        };
        total += n * unit;
        groups += 1;
        if groups > 4 {
            return Err(bad());
        }
    }
    if groups == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// RFC 1123 hostname as Gateway API's `PreciseHostname` (lowercase labels
/// of letters, digits and `-`, not starting or ending with `-`).
fn precise_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        })
}

fn hostname_error(field: &str, s: &str) -> String {
    format!(
        "{field}: {s:?} is not a valid hostname (RFC 1123 labels, no port; a wildcard only as a leading `*.` in hostnames)"
    )
}

fn hostname_field(field: &str, s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if precise_hostname(&lower) {
        Ok(lower)
    } else {
        Err(hostname_error(field, s))
    }
}

fn path_value(field: &str, s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("{field}: must start with '/' (got {s:?})"));
    }
    if s.bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
    {
        return Err(format!(
            "{field}: must not contain spaces, control characters, '?' or '#' (got {s:?})"
        ));
    }
    Ok(s.to_owned())
}

fn path_modifier(
    at: &str,
    raw: RawPathModifier,
    prefix_ok: Result<(), String>,
) -> Result<PathModifier, String> {
    match raw.kind {
        PathModifierType::ReplaceFullPath => {
            if raw.replace_prefix_match.is_some() {
                return Err(format!(
                    "{at}.replacePrefixMatch: not allowed with type ReplaceFullPath"
                ));
            }
            let v = raw.replace_full_path.ok_or_else(|| {
                format!("{at}.replaceFullPath: required with type ReplaceFullPath")
            })?;
            Ok(PathModifier::Full(path_value(
                &format!("{at}.replaceFullPath"),
                &v,
            )?))
        }
        PathModifierType::ReplacePrefixMatch => {
            if raw.replace_full_path.is_some() {
                return Err(format!(
                    "{at}.replaceFullPath: not allowed with type ReplacePrefixMatch"
                ));
            }
            let v = raw.replace_prefix_match.ok_or_else(|| {
                format!("{at}.replacePrefixMatch: required with type ReplacePrefixMatch")
            })?;
            prefix_ok.map_err(|why| format!("{at}.type: ReplacePrefixMatch {why}"))?;
            Ok(PathModifier::Prefix(path_value(
                &format!("{at}.replacePrefixMatch"),
                &v,
            )?))
        }
    }
}

fn duration_field(field: &str, s: &Option<String>) -> Result<Option<u64>, String> {
    s.as_deref()
        .map(|d| parse_duration(d).map_err(|e| format!("{field}: {e}")))
        .transpose()
}

fn retry_properties(
    at: &str,
    raw: RawRetry,
    backend_request_ms: Option<u64>,
    request_ms: Option<u64>,
) -> Result<Vec<Property>, String> {
    if !(1..=10).contains(&raw.attempts) {
        return Err(format!(
            "{at}.attempts: must be between 1 and 10 (tries in all, the first included; got {})",
            raw.attempts
        ));
    }
    let per_try = duration_field(&format!("{at}.perTryTimeout"), &raw.per_try_timeout)?;
    if let (Some(p), Some(r)) = (per_try, request_ms)
        && r > 0
        && p > r
    {
        return Err(format!(
            "{at}.perTryTimeout: must not exceed timeouts.request ({p}ms > {r}ms)"
        ));
    }
    let mut codes = Vec::new();
    for (i, &c) in raw.codes.iter().enumerate() {
        if !(400..=599).contains(&c) {
            return Err(format!(
                "{at}.codes[{i}]: must be an HTTP status between 400 and 599 (got {c})"
            ));
        }
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    let mut on: Vec<&'static str> = Vec::new();
    match &raw.retry_on {
        None if codes.is_empty() => on.extend(["5xx", "reset", "connect-failure"]),
        None => on.extend(["reset", "connect-failure"]),
        Some(list) if list.is_empty() => {
            return Err(format!(
                "{at}.retryOn: must not be empty (omit it for the default)"
            ));
        }
        Some(list) => {
            for (i, w) in list.iter().enumerate() {
                let c = RETRY_CONDITIONS
                    .iter()
                    .find(|c| **c == w.as_str())
                    .ok_or_else(|| {
                        format!(
                            "{at}.retryOn[{i}]: unknown condition {w:?} (expected one of {})",
                            RETRY_CONDITIONS.join(", ")
                        )
                    })?;
                if !on.contains(c) {
                    on.push(c);
                }
            }
        }
    }
    let wants_codes = on.contains(&"retriable-status-codes");
    if codes.is_empty() && wants_codes {
        return Err(format!(
            "{at}.codes: required when retryOn has retriable-status-codes"
        ));
    }
    if !codes.is_empty() && !wants_codes {
        // `codes` implies `retriable-status-codes`.
        on.push("retriable-status-codes");
    }
    let mut props: Vec<Property> = vec![(RETRY_ATTEMPTS, raw.attempts.to_string())];
    if let Some(ms) = per_try.or(backend_request_ms) {
        props.push((RETRY_PER_TRY_TIMEOUT_MS, ms.to_string()));
    }
    props.push((RETRY_ON, on.join(",")));
    if !codes.is_empty() {
        let text: Vec<String> = codes.iter().map(i64::to_string).collect();
        props.push((RETRY_CODES, text.join(",")));
    }
    Ok(props)
}

fn rule(i: usize, r: RawRule, names: &mut Vec<String>) -> Result<Rule, String> {
    let at = format!("rules[{i}]");
    let name = match r.name {
        Some(n) if n.is_empty() || n.bytes().any(|b| b <= b' ' || b == 0x7f) => {
            return Err(format!(
                "{at}.name: must be non-empty, without spaces or control characters (got {n:?})"
            ));
        }
        Some(n) => n,
        None => at.clone(),
    };
    if names.contains(&name) {
        return Err(format!("{at}.name: {name:?} is used by another rule"));
    }
    names.push(name.clone());

    let matches = if r.matches.is_empty() {
        vec![Matcher::default()]
    } else {
        r.matches
            .iter()
            .enumerate()
            .map(|(j, m)| m.compile(&format!("{at}.matches[{j}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?
    };
    // ReplacePrefixMatch needs the prefix every match of the rule tested.
    let prefix_ok = || match matches.iter().position(|m| m.path_prefix().is_none()) {
        None => Ok(()),
        Some(j) => Err(format!(
            "needs a PathPrefix match, but {at}.matches[{j}].path is not a PathPrefix"
        )),
    };

    let mut backends = Vec::new();
    for (j, b) in r.backend_refs.into_iter().enumerate() {
        let field = format!("{at}.backendRefs[{j}]");
        if b.name.is_empty() {
            return Err(format!("{field}.name: must not be empty"));
        }
        if !(0..=1_000_000).contains(&b.weight) {
            return Err(format!(
                "{field}.weight: must be between 0 and 1000000 (got {})",
                b.weight
            ));
        }
        backends.push(Backend {
            name: b.name,
            weight: b.weight as u32,
        });
    }

    let mut rewrite = None;
    let mut redirect = None;
    for (j, f) in r.filters.into_iter().enumerate() {
        let field = format!("{at}.filters[{j}]");
        let (own, others): (&str, [(&str, bool); 7]) = match f.kind.as_str() {
            "URLRewrite" => (
                "urlRewrite",
                [
                    ("requestRedirect", f.request_redirect.is_some()),
                    ("requestHeaderModifier", f.request_header_modifier.is_some()),
                    (
                        "responseHeaderModifier",
                        f.response_header_modifier.is_some(),
                    ),
                    ("requestMirror", f.request_mirror.is_some()),
                    ("extensionRef", f.extension_ref.is_some()),
                    ("cors", f.cors.is_some()),
                    ("externalAuth", f.external_auth.is_some()),
                ],
            ),
            "RequestRedirect" => (
                "requestRedirect",
                [
                    ("urlRewrite", f.url_rewrite.is_some()),
                    ("requestHeaderModifier", f.request_header_modifier.is_some()),
                    (
                        "responseHeaderModifier",
                        f.response_header_modifier.is_some(),
                    ),
                    ("requestMirror", f.request_mirror.is_some()),
                    ("extensionRef", f.extension_ref.is_some()),
                    ("cors", f.cors.is_some()),
                    ("externalAuth", f.external_auth.is_some()),
                ],
            ),
            other => {
                return Err(format!(
                    "{field}.type: unsupported filter type {other:?} (the router supports URLRewrite and RequestRedirect; header changes belong to the header-rewrite filter)"
                ));
            }
        };
        if let Some((extra, _)) = others.iter().find(|(_, set)| *set) {
            return Err(format!("{field}.{extra}: not allowed with type {}", f.kind));
        }
        if f.kind == "URLRewrite" {
            let u = f
                .url_rewrite
                .ok_or_else(|| format!("{field}.{own}: required with type URLRewrite"))?;
            if rewrite.is_some() {
                return Err(format!("{field}.type: only one URLRewrite filter per rule"));
            }
            let at = format!("{field}.urlRewrite");
            rewrite = Some(UrlRewrite {
                hostname: u
                    .hostname
                    .map(|h| hostname_field(&format!("{at}.hostname"), &h))
                    .transpose()?,
                path: u
                    .path
                    .map(|p| path_modifier(&format!("{at}.path"), p, prefix_ok()))
                    .transpose()?,
            });
        } else {
            let rr = f
                .request_redirect
                .ok_or_else(|| format!("{field}.{own}: required with type RequestRedirect"))?;
            if redirect.is_some() {
                return Err(format!(
                    "{field}.type: only one RequestRedirect filter per rule"
                ));
            }
            let at = format!("{field}.requestRedirect");
            let scheme = match rr.scheme.as_deref() {
                None => None,
                Some(s @ ("http" | "https")) => Some(s.to_owned()),
                Some(s) => {
                    return Err(format!("{at}.scheme: must be http or https (got {s:?})"));
                }
            };
            let port = match rr.port {
                None => None,
                Some(p) if (1..=65535).contains(&p) => Some(p as u16),
                Some(p) => {
                    return Err(format!("{at}.port: must be between 1 and 65535 (got {p})"));
                }
            };
            if ![301, 302, 303, 307, 308].contains(&rr.status_code) {
                return Err(format!(
                    "{at}.statusCode: must be 301, 302, 303, 307 or 308 (got {})",
                    rr.status_code
                ));
            }
            redirect = Some(Redirect {
                scheme,
                hostname: rr
                    .hostname
                    .map(|h| hostname_field(&format!("{at}.hostname"), &h))
                    .transpose()?,
                port,
                path: rr
                    .path
                    .map(|p| path_modifier(&format!("{at}.path"), p, prefix_ok()))
                    .transpose()?,
                status: rr.status_code as u16,
            });
        }
    }
    if rewrite.is_some() && redirect.is_some() {
        return Err(format!(
            "{at}.filters: URLRewrite and RequestRedirect cannot be used together"
        ));
    }
    if redirect.is_some() && !backends.is_empty() {
        return Err(format!(
            "{at}.backendRefs: not allowed with a RequestRedirect filter (the redirect answers the request)"
        ));
    }

    let direct = match r.direct_response {
        None => None,
        Some(d) => {
            if !backends.is_empty() || rewrite.is_some() || redirect.is_some() {
                return Err(format!(
                    "{at}.directResponse: not allowed with backendRefs or filters"
                ));
            }
            if !(200..=599).contains(&d.status) {
                return Err(format!(
                    "{at}.directResponse.status: must be between 200 and 599 (got {})",
                    d.status
                ));
            }
            Some(DirectResponse {
                status: d.status as u16,
                body: d.body.unwrap_or_default(),
            })
        }
    };

    let mut upstream_properties = Vec::new();
    let (mut request_ms, mut backend_ms) = (None, None);
    if let Some(t) = &r.timeouts {
        request_ms = duration_field(&format!("{at}.timeouts.request"), &t.request)?;
        backend_ms = duration_field(&format!("{at}.timeouts.backendRequest"), &t.backend_request)?;
        if let (Some(req), Some(be)) = (request_ms, backend_ms)
            && req > 0
            && be > req
        {
            return Err(format!(
                "{at}.timeouts.backendRequest: must not exceed timeouts.request ({be}ms > {req}ms)"
            ));
        }
        if let Some(ms) = request_ms {
            upstream_properties.push((TIMEOUT_MS, ms.to_string()));
        }
    }
    match r.retry {
        Some(retry) => upstream_properties.extend(retry_properties(
            &format!("{at}.retry"),
            retry,
            backend_ms,
            request_ms,
        )?),
        None => {
            // Without retries the backend request timeout bounds the one try.
            if let Some(ms) = backend_ms {
                upstream_properties.push((RETRY_PER_TRY_TIMEOUT_MS, ms.to_string()));
            }
        }
    }

    Ok(Rule {
        name,
        matches,
        backends,
        rewrite,
        redirect,
        direct,
        upstream_properties,
    })
}

impl Config {
    /// Parses and validates; the error names the field and the reason.
    pub fn parse(raw: &[u8]) -> Result<Config, String> {
        let raw: RawConfig = if raw.is_empty() {
            RawConfig {
                hostnames: Vec::new(),
                rules: Vec::new(),
            }
        } else {
            weft_filter_match::config::from_json(raw)?
        };
        let mut hostnames = Vec::new();
        for (i, h) in raw.hostnames.iter().enumerate() {
            let field = format!("hostnames[{i}]");
            hostnames.push(match h.strip_prefix("*.") {
                Some(rest) => Hostname::Wildcard(format!(
                    ".{}",
                    hostname_field(&field, rest).map_err(|_| hostname_error(&field, h))?
                )),
                None => Hostname::Exact(hostname_field(&field, h)?),
            });
        }
        if raw.rules.is_empty() {
            return Err("rules: at least one rule is required".into());
        }
        let mut names = Vec::new();
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| rule(i, r, &mut names))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<(usize, usize)> = rules
            .iter()
            .enumerate()
            .flat_map(|(i, r)| (0..r.matches.len()).map(move |j| (i, j)))
            .collect();
        // Stable: equal specificity keeps rule order, then match order.
        order.sort_by_key(|&(i, j)| std::cmp::Reverse(rules[i].matches[j].specificity()));
        Ok(Config {
            hostnames,
            rules,
            order,
        })
    }
}
