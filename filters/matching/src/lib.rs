//! `weft-filter-match`: the Gateway API `HTTPRouteMatch` (`path`,
//! `headers`, `queryParams`, `method`) as weft's filters share it — the
//! serde model users write, compiled once at configure time, and matched
//! against a request without touching the host (so it is tested natively);
//! and the [`config`] helpers every filter's `on_configure` uses.

pub mod config;

use serde::Deserialize;

/// `HTTPRouteMatch`, as written in a filter's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRouteMatch {
    #[serde(default)]
    pub path: Option<PathMatch>,
    #[serde(default)]
    pub headers: Vec<ValueMatch>,
    #[serde(default)]
    pub query_params: Vec<ValueMatch>,
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum PathMatchType {
    #[default]
    PathPrefix,
    Exact,
    RegularExpression,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMatch {
    #[serde(default, rename = "type")]
    pub kind: PathMatchType,
    #[serde(default = "slash")]
    pub value: String,
}

fn slash() -> String {
    "/".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ValueMatchType {
    #[default]
    Exact,
    RegularExpression,
}

/// A header or query parameter match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    #[serde(default, rename = "type")]
    pub kind: ValueMatchType,
    pub name: String,
    pub value: String,
}

/// A configuration problem: the field (a path such as
/// `matches[0].path.value`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchError {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for MatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

#[derive(Debug, Clone)]
enum PathRule {
    Prefix(String),
    Exact(String),
    Regex(regex_lite::Regex),
}

#[derive(Debug, Clone)]
enum ValueRule {
    Exact(String),
    Regex(regex_lite::Regex),
}

impl ValueRule {
    fn matches(&self, v: &str) -> bool {
        match self {
            ValueRule::Exact(e) => e == v,
            ValueRule::Regex(r) => r.is_match(v),
        }
    }
}

/// A compiled match, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    path: Option<PathRule>,
    headers: Vec<(String, ValueRule)>,
    query: Vec<(String, ValueRule)>,
    method: Option<String>,
}

fn anchored(field: &str, pattern: &str) -> Result<regex_lite::Regex, MatchError> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| MatchError {
        field: field.to_owned(),
        reason: format!("invalid regular expression: {e}"),
    })
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

impl HttpRouteMatch {
    /// Validates and compiles; `at` is the field path of this match.
    pub fn compile(&self, at: &str) -> Result<Matcher, MatchError> {
        let path = match &self.path {
            None => None,
            Some(p) => {
                let field = format!("{at}.path.value");
                Some(match p.kind {
                    PathMatchType::RegularExpression => {
                        PathRule::Regex(anchored(&field, &p.value)?)
                    }
                    kind => {
                        if !p.value.starts_with('/') {
                            return Err(MatchError {
                                field,
                                reason: format!("must start with '/' (got {:?})", p.value),
                            });
                        }
                        if kind == PathMatchType::Exact {
                            PathRule::Exact(p.value.clone())
                        } else {
                            PathRule::Prefix(p.value.trim_end_matches('/').to_owned())
                        }
                    }
                })
            }
        };
        let values = |list: &[ValueMatch],
                      what: &str,
                      lower: bool|
         -> Result<Vec<(String, ValueRule)>, MatchError> {
            list.iter()
                .enumerate()
                .map(|(i, m)| {
                    let field = format!("{at}.{what}[{i}]");
                    if m.name.is_empty() {
                        return Err(MatchError {
                            field: format!("{field}.name"),
                            reason: "must not be empty".into(),
                        });
                    }
                    let rule = match m.kind {
                        ValueMatchType::Exact => ValueRule::Exact(m.value.clone()),
                        ValueMatchType::RegularExpression => {
                            ValueRule::Regex(anchored(&format!("{field}.value"), &m.value)?)
                        }
                    };
                    Ok((
                        if lower {
                            m.name.to_ascii_lowercase()
                        } else {
                            m.name.clone()
                        },
                        rule,
                    ))
                })
                .collect()
        };
        let method = match &self.method {
            Some(m) if !METHODS.contains(&m.as_str()) => {
                return Err(MatchError {
                    field: format!("{at}.method"),
                    reason: format!(
                        "unknown method {m:?} (expected one of {})",
                        METHODS.join(", ")
                    ),
                });
            }
            m => m.clone(),
        };
        Ok(Matcher {
            path,
            headers: values(&self.headers, "headers", true)?,
            query: values(&self.query_params, "queryParams", false)?,
            method,
        })
    }
}

/// What a matcher looks at.
pub trait Request {
    fn method(&self) -> &str;
    /// The `:path`, query included.
    fn path(&self) -> &str;
    fn header(&self, name: &str) -> Option<String>;
}

impl Matcher {
    /// True when every condition holds (an empty matcher matches all).
    pub fn matches(&self, req: &dyn Request) -> bool {
        if let Some(m) = &self.method
            && m != req.method()
        {
            return false;
        }
        let full = req.path();
        let (path, query) = full.split_once('?').unwrap_or((full, ""));
        match &self.path {
            None => {}
            Some(PathRule::Exact(e)) if e != path => return false,
            Some(PathRule::Prefix(p)) if !prefix_matches(p, path) => return false,
            Some(PathRule::Regex(r)) if !r.is_match(path) => return false,
            Some(_) => {}
        }
        for (name, rule) in &self.headers {
            match req.header(name) {
                Some(v) if rule.matches(&v) => {}
                _ => return false,
            }
        }
        for (name, rule) in &self.query {
            let found = query
                .split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| k == name);
            match found {
                Some((_, v)) if rule.matches(v) => {}
                _ => return false,
            }
        }
        true
    }

    /// How specific this match is, for Gateway API precedence: a greater
    /// [`Specificity`] wins.
    pub fn specificity(&self) -> Specificity {
        let (exact_path, path_len) = match &self.path {
            Some(PathRule::Exact(e)) => (true, e.len()),
            Some(PathRule::Prefix(p)) => (false, p.len()),
            _ => (false, 0),
        };
        Specificity {
            exact_path,
            path_len,
            method: self.method.is_some(),
            headers: self.headers.len(),
            query_params: self.query.len(),
        }
    }

    /// The path prefix this match tests, without its trailing `/` (so
    /// `PathPrefix /` is `""`); a match without a path is Gateway API's
    /// default `PathPrefix /`. `None` for `Exact` and `RegularExpression`
    /// paths.
    pub fn path_prefix(&self) -> Option<&str> {
        match &self.path {
            None => Some(""),
            Some(PathRule::Prefix(p)) => Some(p),
            Some(_) => None,
        }
    }
}

/// Gateway API match precedence, most significant first: an `Exact` path
/// beats a `PathPrefix`; a longer path (prefix length without its trailing
/// `/`) beats a shorter; a method match beats none; more header matches
/// beat fewer; more query-parameter matches beat fewer. The derived order
/// compares the fields in that order, so the greater value wins.
/// `RegularExpression` paths rank like `PathPrefix /` (length 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    pub exact_path: bool,
    pub path_len: usize,
    pub method: bool,
    pub headers: usize,
    pub query_params: usize,
}

/// Gateway API path-prefix semantics: whole path segments only.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// A request made of literals — method, path (with its query), headers —
/// for the filters' unit tests of their matching logic.
#[derive(Debug, Clone)]
pub struct StaticRequest(
    pub &'static str,
    pub &'static str,
    pub Vec<(&'static str, &'static str)>,
);

impl Request for StaticRequest {
    fn method(&self) -> &str {
        self.0
    }
    fn path(&self) -> &str {
        self.1
    }
    fn header(&self, name: &str) -> Option<String> {
        self.2
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::StaticRequest as R;

    fn m(json: &str) -> Result<Matcher, MatchError> {
        let parsed: HttpRouteMatch = serde_json_lite(json);
        parsed.compile("match")
    }

    // Tiny JSON-free constructor helper for tests.
    fn serde_json_lite(s: &str) -> HttpRouteMatch {
        let mut out = HttpRouteMatch::default();
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap();
            match k {
                "prefix" => {
                    out.path = Some(PathMatch {
                        kind: PathMatchType::PathPrefix,
                        value: v.into(),
                    })
                }
                "exact" => {
                    out.path = Some(PathMatch {
                        kind: PathMatchType::Exact,
                        value: v.into(),
                    })
                }
                "regex" => {
                    out.path = Some(PathMatch {
                        kind: PathMatchType::RegularExpression,
                        value: v.into(),
                    })
                }
                "method" => out.method = Some(v.into()),
                "header" => {
                    let (n, val) = v.split_once(':').unwrap();
                    out.headers.push(ValueMatch {
                        kind: ValueMatchType::Exact,
                        name: n.into(),
                        value: val.into(),
                    })
                }
                "query" => {
                    let (n, val) = v.split_once(':').unwrap();
                    out.query_params.push(ValueMatch {
                        kind: ValueMatchType::RegularExpression,
                        name: n.into(),
                        value: val.into(),
                    })
                }
                _ => panic!("{k}"),
            }
        }
        out
    }

    #[test]
    fn path_prefix_is_segment_wise() {
        let mm = m("prefix=/foo/").unwrap();
        assert!(mm.matches(&R("GET", "/foo", vec![])));
        assert!(mm.matches(&R("GET", "/foo/bar?x=1", vec![])));
        assert!(!mm.matches(&R("GET", "/foobar", vec![])));
        assert!(
            m("prefix=/")
                .unwrap()
                .matches(&R("GET", "/anything", vec![]))
        );
    }

    #[test]
    fn exact_regex_method_headers_query() {
        assert!(m("exact=/a").unwrap().matches(&R("GET", "/a?q", vec![])));
        assert!(!m("exact=/a").unwrap().matches(&R("GET", "/a/", vec![])));
        assert!(
            m("regex=/v[0-9]+/.*")
                .unwrap()
                .matches(&R("GET", "/v2/x", vec![]))
        );
        assert!(
            !m("regex=/v[0-9]+")
                .unwrap()
                .matches(&R("GET", "/v2/x", vec![])),
            "regexes are anchored"
        );
        assert!(!m("method=POST").unwrap().matches(&R("GET", "/", vec![])));
        let h = m("header=X-Env:canary").unwrap();
        assert!(h.matches(&R("GET", "/", vec![("x-env", "canary")])));
        assert!(!h.matches(&R("GET", "/", vec![("x-env", "prod")])));
        let q = m("query=v:[0-9]+").unwrap();
        assert!(q.matches(&R("GET", "/?a=b&v=12", vec![])));
        assert!(!q.matches(&R("GET", "/?v=x", vec![])));
    }

    #[test]
    fn specificity_orders_by_gateway_api_precedence() {
        let s = |spec: &str| m(spec).unwrap().specificity();
        // Exact beats any prefix, even a longer one.
        assert!(s("exact=/a") > s("prefix=/abcdef/ghi"));
        // Longer prefix beats shorter; the trailing slash does not count.
        assert!(s("prefix=/api/v1") > s("prefix=/api"));
        assert_eq!(s("prefix=/api/"), s("prefix=/api"));
        // Then a method, then more headers, then more query params.
        assert!(s("prefix=/a;method=GET") > s("prefix=/a;header=x:1;header=y:2"));
        assert!(s("prefix=/a;header=x:1;header=y:2") > s("prefix=/a;header=x:1;query=q:1"));
        assert!(s("prefix=/a;query=q:1") > s("prefix=/a"));
        // A longer prefix still beats a method match.
        assert!(s("prefix=/ab") > s("prefix=/a;method=GET"));
        // No path and a regex rank like `PathPrefix /`.
        assert_eq!(s(""), s("prefix=/"));
        assert_eq!(s("regex=/x.*"), s("prefix=/"));
        assert_eq!(
            s("exact=/ab;method=POST;header=h:v"),
            Specificity {
                exact_path: true,
                path_len: 3,
                method: true,
                headers: 1,
                query_params: 0
            }
        );
    }

    #[test]
    fn path_prefix_of_a_match() {
        assert_eq!(m("prefix=/api/").unwrap().path_prefix(), Some("/api"));
        assert_eq!(m("prefix=/").unwrap().path_prefix(), Some(""));
        assert_eq!(m("method=GET").unwrap().path_prefix(), Some(""));
        assert_eq!(m("exact=/api").unwrap().path_prefix(), None);
        assert_eq!(m("regex=/a.*").unwrap().path_prefix(), None);
    }

    #[test]
    fn invalid_matches_name_the_field() {
        assert_eq!(
            m("prefix=foo").unwrap_err(),
            MatchError {
                field: "match.path.value".into(),
                reason: "must start with '/' (got \"foo\")".into()
            }
        );
        assert!(
            m("regex=(")
                .unwrap_err()
                .reason
                .starts_with("invalid regular expression")
        );
        assert_eq!(m("method=FETCH").unwrap_err().field, "match.method");
    }
}
