//! The routing decision for one request, without the host: which rule,
//! which backend, what to rewrite, what to write, or what to answer.

use crate::config::{
    CLUSTER, Config, Hostname, PathModifier, Property, ROUTE_NAME, Redirect, Rule,
};
use crate::rng::{Rng, pick};
use weft_filter_match::Request;

/// What the router sees of a request besides what matching reads.
pub struct Incoming<'a> {
    /// Method, `:path` (query included) and headers.
    pub request: &'a dyn Request,
    /// `:authority` (host and optional port).
    pub authority: &'a str,
    /// `:scheme`; empty means `http`.
    pub scheme: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send upstream, after setting `:authority` and `:path` when given.
    Forward {
        authority: Option<String>,
        path: Option<String>,
    },
    /// Answer locally (`send_http_response`).
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Written with `set_property` before acting on the outcome.
    pub properties: Vec<Property>,
    pub outcome: Outcome,
}

pub const NO_HOST: &str = "no route for this host\n";
pub const NO_ROUTE: &str = "no matching route\n";
pub const NO_BACKEND: &str = "no backend\n";
pub const NO_WEIGHT: &str = "no backend with a non-zero weight\n";

fn reply(properties: Vec<Property>, status: u16, body: &str) -> Decision {
    Decision {
        properties,
        outcome: Outcome::Reply {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        },
    }
}

/// Splits `host[:port]` (also `[v6]:port`) into host and port.
pub fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port.filter(|p| !p.is_empty()))
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (authority, None),
    }
}

impl Config {
    /// True when `authority`'s host (port stripped, any case, a trailing
    /// dot ignored) is allowed by `hostnames` (empty: any host).
    pub fn host_matches(&self, authority: &str) -> bool {
        if self.hostnames.is_empty() {
            return true;
        }
        let host = split_authority(authority).0.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        self.hostnames.iter().any(|h| match h {
            Hostname::Exact(e) => e == host,
            // `.example.com`: one or more labels before it, not the bare domain.
            Hostname::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        })
    }

    /// The winning rule and match for a request, by Gateway API precedence.
    pub fn select(&self, req: &dyn Request) -> Option<(usize, usize)> {
        self.order
            .iter()
            .copied()
            .find(|&(i, j)| self.rules[i].matches[j].matches(req))
    }

    /// Decides what to do with a request.
    pub fn decide(&self, inc: &Incoming<'_>, rng: &mut Rng) -> Decision {
        if !self.host_matches(inc.authority) {
            return reply(Vec::new(), 404, NO_HOST);
        }
        let Some((i, j)) = self.select(inc.request) else {
            return reply(Vec::new(), 404, NO_ROUTE);
        };
        let rule = &self.rules[i];
        let prefix = rule.matches[j].path_prefix().unwrap_or("");
        let mut properties: Vec<Property> = vec![(ROUTE_NAME, rule.name.clone())];
        if let Some(d) = &rule.direct {
            return reply(properties, d.status, &d.body);
        }
        if let Some(r) = &rule.redirect {
            return Decision {
                properties,
                outcome: Outcome::Reply {
                    status: r.status,
                    headers: vec![("location", location(r, inc, prefix))],
                    body: String::new(),
                },
            };
        }
        if rule.backends.is_empty() {
            return reply(properties, 500, NO_BACKEND);
        }
        let Some(b) = choose(rule, rng) else {
            return reply(properties, 503, NO_WEIGHT);
        };
        properties.insert(0, (CLUSTER, rule.backends[b].name.clone()));
        properties.extend(rule.upstream_properties.iter().cloned());
        let (authority, path) = match &rule.rewrite {
            None => (None, None),
            Some(rw) => (
                rw.hostname.clone(),
                rw.path
                    .as_ref()
                    .map(|m| modified_path(m, inc.request.path(), prefix)),
            ),
        };
        Decision {
            properties,
            outcome: Outcome::Forward { authority, path },
        }
    }
}

fn choose(rule: &Rule, rng: &mut Rng) -> Option<usize> {
    let weights: Vec<u32> = rule.backends.iter().map(|b| b.weight).collect();
    pick(&weights, rng)
}

/// Applies a path modifier to `full` (`:path`, query kept). `prefix` is the
/// matched `PathPrefix` without its trailing `/`; Gateway API replaces it
/// segment-wise: with prefix `/foo`, `/foo/bar` → `/xyz/bar` for `/xyz`
/// or `/xyz/`, `/foo` → `/xyz`, `/foo/` → `/xyz/`, and `/foo/bar` → `/bar`
/// for `/`.
pub fn modified_path(m: &PathModifier, full: &str, prefix: &str) -> String {
    let (path, query) = match full.find('?') {
        Some(q) => (&full[..q], &full[q..]),
        None => (full, ""),
    };
    let mut out = match m {
        PathModifier::Full(p) => p.clone(),
        PathModifier::Prefix(replacement) => {
            let rest = path.strip_prefix(prefix).unwrap_or(path);
            let mut p = replacement.trim_end_matches('/').to_owned();
            p.push_str(rest);
            if p.is_empty() {
                p.push('/');
            }
            p
        }
    };
    out.push_str(query);
    out
}

fn default_port(scheme: &str) -> &'static str {
    if scheme == "https" { "443" } else { "80" }
}

/// The `location` of a `RequestRedirect`, as Gateway API defines it:
/// scheme, hostname and path default to the request's; the port is the
/// configured one, else the scheme's well-known port when `scheme` is set,
/// else the request's; a port that is the scheme's well-known one is left
/// out.
pub fn location(r: &Redirect, inc: &Incoming<'_>, prefix: &str) -> String {
    let scheme = r.scheme.as_deref().unwrap_or(match inc.scheme {
        "" => "http",
        s => s,
    });
    let (req_host, req_port) = split_authority(inc.authority);
    let host = r.hostname.as_deref().unwrap_or(req_host);
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => Some(p.to_string()),
        (None, Some(_)) => None,
        (None, None) => req_port.map(str::to_owned),
    }
    .filter(|p| p != default_port(scheme));
    let path = match &r.path {
        Some(m) => modified_path(m, inc.request.path(), prefix),
        None => inc.request.path().to_owned(),
    };
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    }
}
