use crate::config::*;
use crate::rng::Rng;
use crate::route::*;
use weft_filter_match::Request;

struct R {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
}

impl Request for R {
    fn method(&self) -> &str {
        self.method
    }
    fn path(&self) -> &str {
        self.path
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn get(path: &'static str) -> R {
    R {
        method: "GET",
        path,
        headers: Vec::new(),
    }
}

fn parse(json: &str) -> Config {
    Config::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}\n{e}"))
}

fn decide_at(c: &Config, authority: &str, scheme: &str, req: &R) -> Decision {
    let inc = Incoming {
        request: req,
        authority,
        scheme,
    };
    c.decide(&inc, &mut Rng::new(1))
}

fn decide(c: &Config, req: &R) -> Decision {
    decide_at(c, "example.com", "http", req)
}

fn props(d: &Decision) -> Vec<(String, String)> {
    d.properties
        .iter()
        .map(|(p, v)| (p.join("."), v.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn forwarded_path(d: &Decision) -> Option<String> {
    match &d.outcome {
        Outcome::Forward { path, .. } => path.clone(),
        o => panic!("not forwarded: {o:?}"),
    }
}

fn local(d: &Decision) -> (u16, Vec<(&'static str, String)>, String) {
    match &d.outcome {
        Outcome::Reply {
            status,
            headers,
            body,
        } => (*status, headers.clone(), body.clone()),
        o => panic!("not a local reply: {o:?}"),
    }
}

#[test]
fn the_doc_example_parses() {
    let c = parse(
        r#"{"hostnames":["api.example.com","*.api.example.com"],"rules":[
        {"name":"checkout",
         "matches":[{"path":{"type":"PathPrefix","value":"/checkout"},"method":"POST",
                     "headers":[{"name":"x-canary","value":"yes"}]}],
         "backendRefs":[{"name":"checkout-v1","weight":90},{"name":"checkout-v2","weight":10,"port":8080}],
         "filters":[{"type":"URLRewrite","urlRewrite":{"hostname":"checkout.internal",
             "path":{"type":"ReplacePrefixMatch","replacePrefixMatch":"/v1/checkout"}}}],
         "timeouts":{"request":"10s","backendRequest":"2s"},
         "retry":{"attempts":3,"perTryTimeout":"1s","retryOn":["connect-failure","reset","retriable-status-codes"],"codes":[503]}},
        {"matches":[{"path":{"type":"Exact","value":"/old"}}],
         "filters":[{"type":"RequestRedirect","requestRedirect":{"scheme":"https",
             "path":{"type":"ReplaceFullPath","replaceFullPath":"/new"},"statusCode":301}}]},
        {"matches":[{"path":{"type":"Exact","value":"/healthz"}}],
         "directResponse":{"status":200,"body":"ok\n"}}]}"#,
    );
    assert_eq!(c.rules.len(), 3);
    assert_eq!(c.rules[0].name, "checkout");
    assert_eq!(c.rules[1].name, "rules[1]");
    assert_eq!(
        c.hostnames,
        vec![
            Hostname::Exact("api.example.com".into()),
            Hostname::Wildcard(".api.example.com".into())
        ]
    );
    assert_eq!(
        c.rules[0].backends,
        vec![
            Backend {
                name: "checkout-v1".into(),
                weight: 90
            },
            Backend {
                name: "checkout-v2".into(),
                weight: 10
            }
        ]
    );
    assert_eq!(
        c.rules[1].redirect,
        Some(Redirect {
            scheme: Some("https".into()),
            hostname: None,
            port: None,
            path: Some(PathModifier::Full("/new".into())),
            status: 301
        })
    );
    assert_eq!(
        c.rules[2].direct,
        Some(DirectResponse {
            status: 200,
            body: "ok\n".into()
        })
    );
}

#[test]
fn every_invalid_field_is_named() {
    let rule = |body: &str| format!(r#"{{"rules":[{{{body}}}]}}"#);
    let b = r#""backendRefs":[{"name":"a"}]"#;
    let cases: Vec<(String, &str)> = vec![
        (r#"{"rulez":[]}"#.into(), "unknown field `rulez`"),
        ("{}".into(), "rules: at least one rule is required"),
        (String::new(), "rules: at least one rule is required"),
        (
            rule(&format!(r#"{b},"backend":"x""#)),
            "rules[0].backend: unknown field `backend`, expected one of `name`, `matches`, `backendRefs`",
        ),
        (
            r#"{"hostnames":["bad host"],"rules":[{}]}"#.into(),
            "hostnames[0]: \"bad host\" is not a valid hostname",
        ),
        (
            r#"{"hostnames":["*"],"rules":[{}]}"#.into(),
            "hostnames[0]: \"*\" is not a valid hostname",
        ),
        (
            r#"{"hostnames":["a.com:80"],"rules":[{}]}"#.into(),
            "hostnames[0]: \"a.com:80\" is not a valid hostname",
        ),
        (
            r#"{"hostnames":["*.-a.com"],"rules":[{}]}"#.into(),
            "hostnames[0]: \"*.-a.com\" is not a valid hostname",
        ),
        (
            rule(r#""name":"""#),
            "rules[0].name: must be non-empty, without spaces or control characters",
        ),
        (
            r#"{"rules":[{"name":"a"},{"name":"a"}]}"#.into(),
            "rules[1].name: \"a\" is used by another rule",
        ),
        (
            r#"{"rules":[{"name":"rules[1]"},{}]}"#.into(),
            "rules[1].name: \"rules[1]\" is used by another rule",
        ),
        (
            rule(r#""matches":[{"path":{"type":"Prefix","value":"/"}}]"#),
            "rules[0].matches[0].path.type: unknown variant `Prefix`, expected one of `PathPrefix`, `Exact`, `RegularExpression`",
        ),
        (
            rule(r#""matches":[{"path":{"type":"RegularExpression","value":"(/a"}}]"#),
            "rules[0].matches[0].path.value: invalid regular expression",
        ),
        (
            rule(r#""matches":[{},{"path":{"value":"a"}}]"#),
            "rules[0].matches[1].path.value: must start with '/' (got \"a\")",
        ),
        (
            rule(r#""matches":[{"method":"get"}]"#),
            "rules[0].matches[0].method: unknown method \"get\"",
        ),
        (
            rule(r#""matches":[{"headers":[{"name":"","value":"v"}]}]"#),
            "rules[0].matches[0].headers[0].name: must not be empty",
        ),
        (
            rule(r#""backendRefs":[{"name":""}]"#),
            "rules[0].backendRefs[0].name: must not be empty",
        ),
        (
            rule(r#""backendRefs":[{"name":"a","weight":-1}]"#),
            "rules[0].backendRefs[0].weight: must be between 0 and 1000000 (got -1)",
        ),
        (
            rule(r#""backendRefs":[{"name":"a","weight":1000001}]"#),
            "rules[0].backendRefs[0].weight: must be between 0 and 1000000 (got 1000001)",
        ),
        (
            rule(r#""backendRefs":[{"name":"a","weight":"1"}]"#),
            "rules[0].backendRefs[0].weight: invalid type: string \"1\"",
        ),
        (
            rule(r#""backendRefs":[{"weight":1}]"#),
            "rules[0].backendRefs[0]: missing field `name`",
        ),
        (
            rule(r#""backendRefs":[{"name":"a","namespace":"x"}]"#),
            "rules[0].backendRefs[0].namespace: unknown field `namespace`, expected one of `name`, `weight`, `port`",
        ),
        (
            rule(r#""backendRefs":[{"name":"a","port":70000}]"#),
            "rules[0].backendRefs[0].port: invalid value: integer `70000`",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"RequestHeaderModifier","requestHeaderModifier":{{"set":[]}}}}]"#
            )),
            "rules[0].filters[0].type: unsupported filter type \"RequestHeaderModifier\" (the router supports URLRewrite and RequestRedirect; header changes belong to the header-rewrite filter)",
        ),
        (
            rule(&format!(r#"{b},"filters":[{{"type":"Bogus"}}]"#)),
            "rules[0].filters[0].type: unsupported filter type \"Bogus\"",
        ),
        (
            rule(&format!(r#"{b},"filters":[{{"urlRewrite":{{}}}}]"#)),
            "rules[0].filters[0]: missing field `type`",
        ),
        (
            rule(&format!(r#"{b},"filters":[{{"type":"URLRewrite"}}]"#)),
            "rules[0].filters[0].urlRewrite: required with type URLRewrite",
        ),
        (
            rule(r#""filters":[{"type":"RequestRedirect"}]"#),
            "rules[0].filters[0].requestRedirect: required with type RequestRedirect",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{}},"requestRedirect":{{}}}}]"#
            )),
            "rules[0].filters[0].requestRedirect: not allowed with type URLRewrite",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{"host":"x"}}}}]"#
            )),
            "rules[0].filters[0].urlRewrite.host: unknown field `host`, expected `hostname` or `path`",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{"hostname":"a_b"}}}}]"#
            )),
            "rules[0].filters[0].urlRewrite.hostname: \"a_b\" is not a valid hostname",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{"path":{{"type":"ReplaceAll","replaceFullPath":"/"}}}}}}]"#
            )),
            "rules[0].filters[0].urlRewrite.path.type: unknown variant `ReplaceAll`, expected `ReplaceFullPath` or `ReplacePrefixMatch`",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{"path":{{"type":"ReplaceFullPath"}}}}}}]"#
            )),
            "rules[0].filters[0].urlRewrite.path.replaceFullPath: required with type ReplaceFullPath",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{"path":{{"type":"ReplaceFullPath","replaceFullPath":"/a","replacePrefixMatch":"/b"}}}}}}]"#
            )),
            "rules[0].filters[0].urlRewrite.path.replacePrefixMatch: not allowed with type ReplaceFullPath",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{"path":{{"type":"ReplaceFullPath","replaceFullPath":"a"}}}}}}]"#
            )),
            "rules[0].filters[0].urlRewrite.path.replaceFullPath: must start with '/' (got \"a\")",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{"path":{{"type":"ReplaceFullPath","replaceFullPath":"/a?b"}}}}}}]"#
            )),
            "rules[0].filters[0].urlRewrite.path.replaceFullPath: must not contain spaces, control characters, '?' or '#'",
        ),
        (
            rule(&format!(
                r#"{b},"matches":[{{"path":{{"type":"PathPrefix","value":"/a"}}}},{{"path":{{"type":"Exact","value":"/b"}}}}],"filters":[{{"type":"URLRewrite","urlRewrite":{{"path":{{"type":"ReplacePrefixMatch","replacePrefixMatch":"/x"}}}}}}]"#
            )),
            "rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs a PathPrefix match, but rules[0].matches[1].path is not a PathPrefix",
        ),
        (
            rule(
                r#""matches":[{"path":{"type":"RegularExpression","value":"/a.*"}}],"filters":[{"type":"RequestRedirect","requestRedirect":{"path":{"type":"ReplacePrefixMatch","replacePrefixMatch":"/x"}}}]"#,
            ),
            "rules[0].filters[0].requestRedirect.path.type: ReplacePrefixMatch needs a PathPrefix match, but rules[0].matches[0].path is not a PathPrefix",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"URLRewrite","urlRewrite":{{}}}},{{"type":"URLRewrite","urlRewrite":{{}}}}]"#
            )),
            "rules[0].filters[1].type: only one URLRewrite filter per rule",
        ),
        (
            rule(
                r#""filters":[{"type":"URLRewrite","urlRewrite":{}},{"type":"RequestRedirect","requestRedirect":{}}]"#,
            ),
            "rules[0].filters: URLRewrite and RequestRedirect cannot be used together",
        ),
        (
            rule(&format!(
                r#"{b},"filters":[{{"type":"RequestRedirect","requestRedirect":{{}}}}]"#
            )),
            "rules[0].backendRefs: not allowed with a RequestRedirect filter",
        ),
        (
            rule(r#""filters":[{"type":"RequestRedirect","requestRedirect":{"statusCode":304}}]"#),
            "rules[0].filters[0].requestRedirect.statusCode: must be 301, 302, 303, 307 or 308 (got 304)",
        ),
        (
            rule(r#""filters":[{"type":"RequestRedirect","requestRedirect":{"scheme":"ftp"}}]"#),
            "rules[0].filters[0].requestRedirect.scheme: must be http or https (got \"ftp\")",
        ),
        (
            rule(r#""filters":[{"type":"RequestRedirect","requestRedirect":{"port":0}}]"#),
            "rules[0].filters[0].requestRedirect.port: must be between 1 and 65535 (got 0)",
        ),
        (
            rule(
                r#""filters":[{"type":"RequestRedirect","requestRedirect":{"hostname":"*.a.com"}}]"#,
            ),
            "rules[0].filters[0].requestRedirect.hostname: \"*.a.com\" is not a valid hostname",
        ),
        (
            rule(&format!(r#"{b},"timeouts":{{"request":"10"}}"#)),
            "rules[0].timeouts.request: invalid duration \"10\"",
        ),
        (
            rule(&format!(r#"{b},"timeouts":{{"request":"1.5s"}}"#)),
            "rules[0].timeouts.request: invalid duration \"1.5s\"",
        ),
        (
            rule(&format!(r#"{b},"timeouts":{{"backendRequest":"2d"}}"#)),
            "rules[0].timeouts.backendRequest: invalid duration \"2d\"",
        ),
        (
            rule(&format!(
                r#"{b},"timeouts":{{"request":"1s","backendRequest":"2s"}}"#
            )),
            "rules[0].timeouts.backendRequest: must not exceed timeouts.request (2000ms > 1000ms)",
        ),
        (
            rule(&format!(r#"{b},"timeouts":{{"idle":"1s"}}"#)),
            "rules[0].timeouts.idle: unknown field `idle`, expected `request` or `backendRequest`",
        ),
        (
            rule(&format!(r#"{b},"retry":{{"attempts":0}}"#)),
            "rules[0].retry.attempts: must be between 1 and 10 (tries in all, the first included; got 0)",
        ),
        (
            rule(&format!(r#"{b},"retry":{{"attempts":11}}"#)),
            "rules[0].retry.attempts: must be between 1 and 10",
        ),
        (
            rule(&format!(r#"{b},"retry":{{}}"#)),
            "rules[0].retry: missing field `attempts`",
        ),
        (
            rule(&format!(
                r#"{b},"retry":{{"attempts":2,"perTryTimeout":"soon"}}"#
            )),
            "rules[0].retry.perTryTimeout: invalid duration \"soon\"",
        ),
        (
            rule(&format!(
                r#"{b},"timeouts":{{"request":"1s"}},"retry":{{"attempts":2,"perTryTimeout":"2s"}}"#
            )),
            "rules[0].retry.perTryTimeout: must not exceed timeouts.request (2000ms > 1000ms)",
        ),
        (
            rule(&format!(
                r#"{b},"retry":{{"attempts":2,"retryOn":["gateway-error"]}}"#
            )),
            "rules[0].retry.retryOn[0]: unknown condition \"gateway-error\" (expected one of 5xx, reset, connect-failure, retriable-status-codes)",
        ),
        (
            rule(&format!(r#"{b},"retry":{{"attempts":2,"retryOn":[]}}"#)),
            "rules[0].retry.retryOn: must not be empty",
        ),
        (
            rule(&format!(
                r#"{b},"retry":{{"attempts":2,"retryOn":["retriable-status-codes"]}}"#
            )),
            "rules[0].retry.codes: required when retryOn has retriable-status-codes",
        ),
        (
            rule(&format!(r#"{b},"retry":{{"attempts":2,"codes":[200]}}"#)),
            "rules[0].retry.codes[0]: must be an HTTP status between 400 and 599 (got 200)",
        ),
        (
            rule(&format!(r#"{b},"directResponse":{{"status":200}}"#)),
            "rules[0].directResponse: not allowed with backendRefs or filters",
        ),
        (
            rule(r#""directResponse":{"status":99}"#),
            "rules[0].directResponse.status: must be between 200 and 599 (got 99)",
        ),
        (
            rule(r#""directResponse":{"body":"x"}"#),
            "rules[0].directResponse: missing field `status`",
        ),
    ];
    let mut failures = Vec::new();
    for (json, want) in cases {
        match Config::parse(json.as_bytes()) {
            Err(err) if err.contains(want) => {}
            got => failures.push(format!("{json}\n got: {got:?}\nwant: {want}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn durations() {
    for (s, ms) in [
        ("0s", 0),
        ("500ms", 500),
        ("10s", 10_000),
        ("1m", 60_000),
        ("1h", 3_600_000),
        ("1h30m", 5_400_000),
        ("1h1m1s1ms", 3_661_001),
        ("99999ms", 99_999),
    ] {
        assert_eq!(parse_duration(s), Ok(ms), "{s}");
    }
    for s in [
        "",
        "10",
        "s",
        "1.5s",
        "-1s",
        "1d",
        "100000s",
        "1h1m1s1ms1ms",
        " 1s",
        "1S",
    ] {
        assert!(parse_duration(s).is_err(), "{s:?} should be refused");
    }
}

#[test]
fn hostnames() {
    let c = parse(r#"{"hostnames":["api.example.com","*.Apps.example.com"],"rules":[{}]}"#);
    for (authority, ok) in [
        ("api.example.com", true),
        ("API.Example.COM", true),
        ("api.example.com:8443", true),
        ("api.example.com.", true),
        ("www.example.com", false),
        ("example.com", false),
        ("a.apps.example.com", true),
        ("a.b.apps.example.com:80", true),
        ("apps.example.com", false),
        ("xapps.example.com", false),
        ("", false),
        ("[::1]:80", false),
    ] {
        assert_eq!(c.host_matches(authority), ok, "{authority}");
    }
    assert!(parse(r#"{"rules":[{}]}"#).host_matches("anything:1"));
    // An unmatched host is a 404 before any rule is looked at.
    let d = decide_at(&c, "other.com", "http", &get("/"));
    assert_eq!(local(&d), (404, vec![], NO_HOST.into()));
    assert!(d.properties.is_empty());
}

#[test]
fn authority_splitting() {
    assert_eq!(split_authority("a.com:8080"), ("a.com", Some("8080")));
    assert_eq!(split_authority("a.com"), ("a.com", None));
    assert_eq!(split_authority("[::1]:9000"), ("[::1]", Some("9000")));
    assert_eq!(split_authority("[::1]"), ("[::1]", None));
    assert_eq!(split_authority("a.com:"), ("a.com:", None));
}

/// Each row: rules (JSON, named r0, r1, ...), a request, the winner.
#[test]
fn precedence_table() {
    let route = |rules: &[&str]| -> Config {
        let rules: Vec<String> = rules
            .iter()
            .enumerate()
            .map(|(i, m)| {
                format!(r#"{{"name":"r{i}","matches":[{m}],"backendRefs":[{{"name":"c{i}"}}]}}"#)
            })
            .collect();
        parse(&format!(r#"{{"rules":[{}]}}"#, rules.join(",")))
    };
    let prefix = |p: &str| format!(r#"{{"path":{{"type":"PathPrefix","value":"{p}"}}}}"#);
    let exact = |p: &str| format!(r#"{{"path":{{"type":"Exact","value":"{p}"}}}}"#);
    let with = |p: &str, extra: &str| {
        format!(r#"{{"path":{{"type":"PathPrefix","value":"{p}"}},{extra}}}"#)
    };
    let h1 = r#""headers":[{"name":"x-a","value":"1"}]"#;
    let h2 = r#""headers":[{"name":"x-a","value":"1"},{"name":"x-b","value":"2"}]"#;
    let q1 = r#""queryParams":[{"name":"q","value":"1"}]"#;
    let req = |method, path, headers| R {
        method,
        path,
        headers,
    };
    let hdrs = vec![("x-a", "1"), ("x-b", "2")];
    let rows: Vec<(Vec<String>, R, &str)> = vec![
        // Exact beats prefix, whatever the order or length.
        (vec![prefix("/a"), exact("/a")], get("/a"), "r1"),
        (vec![exact("/a"), prefix("/a")], get("/a"), "r0"),
        (
            vec![prefix("/a/b/c/d"), exact("/a/b/c/d")],
            get("/a/b/c/d?x=1"),
            "r1",
        ),
        // Longer prefix beats shorter.
        (
            vec![prefix("/"), prefix("/api"), prefix("/api/v1")],
            get("/api/v1/x"),
            "r2",
        ),
        (
            vec![prefix("/api/v1"), prefix("/api")],
            get("/api/v2"),
            "r1",
        ),
        (vec![prefix("/api/v1"), prefix("/")], get("/other"), "r1"),
        // A method match beats more headers.
        (
            vec![with("/a", h2), with("/a", r#""method":"GET""#)],
            req("GET", "/a", hdrs.clone()),
            "r1",
        ),
        (
            vec![with("/a", h2), with("/a", r#""method":"POST""#)],
            req("GET", "/a", hdrs.clone()),
            "r0",
        ),
        // ...but not a longer prefix.
        (
            vec![with("/", r#""method":"GET""#), prefix("/a")],
            get("/a"),
            "r1",
        ),
        // More header matches win, then more query matches.
        (
            vec![with("/a", h1), with("/a", h2)],
            req("GET", "/a", hdrs.clone()),
            "r1",
        ),
        (
            vec![with("/a", q1), with("/a", h1)],
            req("GET", "/a?q=1", hdrs.clone()),
            "r1",
        ),
        (vec![prefix("/a"), with("/a", q1)], get("/a?q=1"), "r1"),
        // A tie goes to rule order.
        (vec![prefix("/a/"), prefix("/a")], get("/a/b"), "r0"),
        (
            vec![
                with("/a", h1),
                with("/a", r#""headers":[{"name":"x-b","value":"2"}]"#),
            ],
            req("GET", "/a", hdrs.clone()),
            "r0",
        ),
        // A regex ranks like `/`, after a real prefix.
        (
            vec![
                r#"{"path":{"type":"RegularExpression","value":"/a.*"}}"#.into(),
                prefix("/a"),
            ],
            get("/a/b"),
            "r1",
        ),
        // Conditions that fail do not count.
        (vec![prefix("/a"), with("/a", h1)], get("/a"), "r0"),
    ];
    for (rules, request, want) in rows {
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let c = route(&refs);
        let d = decide(&c, &request);
        let name = d
            .properties
            .iter()
            .find(|(p, _)| *p == ROUTE_NAME)
            .map(|(_, v)| v.clone());
        assert_eq!(name.as_deref(), Some(want), "{rules:?} {}", request.path);
    }
}

#[test]
fn match_order_breaks_ties_within_a_rule_and_no_match_is_404() {
    let c = parse(
        r#"{"rules":[{"name":"a","matches":[{"path":{"value":"/x"}}],"backendRefs":[{"name":"a"}]},
                     {"name":"b","matches":[{"path":{"value":"/y"}},{"path":{"value":"/x"}}],"backendRefs":[{"name":"b"}]}]}"#,
    );
    assert_eq!(c.select(&get("/x")), Some((0, 0)));
    assert_eq!(c.select(&get("/y")), Some((1, 0)));
    let d = decide(&c, &get("/z"));
    assert_eq!(local(&d), (404, vec![], NO_ROUTE.into()));
    assert!(d.properties.is_empty());
    // No matches: one match-all.
    let all = parse(r#"{"rules":[{"backendRefs":[{"name":"a"}]}]}"#);
    assert_eq!(all.select(&get("/anything?at=all")), Some((0, 0)));
}

#[test]
fn the_exact_properties_of_a_decision() {
    let c = parse(
        r#"{"rules":[
        {"name":"full","matches":[{"path":{"value":"/full"}}],"backendRefs":[{"name":"svc-a"}],
         "timeouts":{"request":"10s","backendRequest":"2s"},
         "retry":{"attempts":3,"perTryTimeout":"1s","retryOn":["5xx","reset"],"codes":[504,503,504]}},
        {"matches":[{"path":{"value":"/plain"}}],"backendRefs":[{"name":"svc-b"}]},
        {"name":"backend-timeout","matches":[{"path":{"value":"/bt"}}],"backendRefs":[{"name":"svc-c"}],
         "timeouts":{"backendRequest":"250ms"},"retry":{"attempts":2}},
        {"name":"no-retry","matches":[{"path":{"value":"/nr"}}],"backendRefs":[{"name":"svc-d"}],
         "timeouts":{"request":"1m","backendRequest":"5s"}},
        {"name":"codes-only","matches":[{"path":{"value":"/co"}}],"backendRefs":[{"name":"svc-e"}],
         "retry":{"attempts":4,"codes":[502]}},
        {"name":"disabled","matches":[{"path":{"value":"/zero"}}],"backendRefs":[{"name":"svc-f"}],
         "timeouts":{"request":"0s"}}]}"#,
    );
    let rows: [(&str, &[(&str, &str)]); 6] = [
        (
            "/full/x",
            &[
                ("weft.cluster", "svc-a"),
                ("weft.route.name", "full"),
                ("weft.timeout_ms", "10000"),
                ("weft.retry.attempts", "3"),
                ("weft.retry.per_try_timeout_ms", "1000"),
                ("weft.retry.on", "5xx,reset,retriable-status-codes"),
                ("weft.retry.codes", "504,503"),
            ],
        ),
        (
            "/plain",
            &[("weft.cluster", "svc-b"), ("weft.route.name", "rules[1]")],
        ),
        (
            "/bt",
            &[
                ("weft.cluster", "svc-c"),
                ("weft.route.name", "backend-timeout"),
                ("weft.retry.attempts", "2"),
                ("weft.retry.per_try_timeout_ms", "250"),
                ("weft.retry.on", "5xx,reset,connect-failure"),
            ],
        ),
        (
            "/nr",
            &[
                ("weft.cluster", "svc-d"),
                ("weft.route.name", "no-retry"),
                ("weft.timeout_ms", "60000"),
                ("weft.retry.per_try_timeout_ms", "5000"),
            ],
        ),
        (
            "/co",
            &[
                ("weft.cluster", "svc-e"),
                ("weft.route.name", "codes-only"),
                ("weft.retry.attempts", "4"),
                (
                    "weft.retry.on",
                    "reset,connect-failure,retriable-status-codes",
                ),
                ("weft.retry.codes", "502"),
            ],
        ),
        (
            "/zero",
            &[
                ("weft.cluster", "svc-f"),
                ("weft.route.name", "disabled"),
                ("weft.timeout_ms", "0"),
            ],
        ),
    ];
    for (path, want) in rows {
        let d = decide(&c, &get(path));
        assert_eq!(props(&d), pairs(want), "{path}");
        assert_eq!(
            d.outcome,
            Outcome::Forward {
                authority: None,
                path: None
            }
        );
    }
    // The segments handed to set_property.
    let d = decide(&c, &get("/full"));
    let paths: Vec<&[&str]> = d.properties.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        paths,
        vec![
            &["weft", "cluster"][..],
            &["weft", "route", "name"],
            &["weft", "timeout_ms"],
            &["weft", "retry", "attempts"],
            &["weft", "retry", "per_try_timeout_ms"],
            &["weft", "retry", "on"],
            &["weft", "retry", "codes"],
        ]
    );
}

#[test]
fn local_replies() {
    let c = parse(
        r#"{"rules":[
        {"name":"empty","matches":[{"path":{"value":"/none"}}],"timeouts":{"request":"1s"}},
        {"name":"zero","matches":[{"path":{"value":"/zero"}}],"backendRefs":[{"name":"a","weight":0},{"name":"b","weight":0}]},
        {"name":"health","matches":[{"path":{"type":"Exact","value":"/healthz"}}],"directResponse":{"status":200,"body":"ok\n"}},
        {"name":"gone","matches":[{"path":{"type":"Exact","value":"/gone"}}],"directResponse":{"status":410}}]}"#,
    );
    for (path, status, body, route) in [
        ("/none", 500, NO_BACKEND, "empty"),
        ("/zero", 503, NO_WEIGHT, "zero"),
        ("/healthz", 200, "ok\n", "health"),
        ("/gone", 410, "", "gone"),
    ] {
        let d = decide(&c, &get(path));
        assert_eq!(local(&d), (status, vec![], body.to_string()), "{path}");
        assert_eq!(props(&d), pairs(&[("weft.route.name", route)]), "{path}");
    }
}

#[test]
fn url_rewrites() {
    let rewrite = |prefix: &str, filter: &str| {
        parse(&format!(
            r#"{{"rules":[{{"matches":[{{"path":{{"type":"PathPrefix","value":"{prefix}"}}}}],
                "backendRefs":[{{"name":"svc"}}],"filters":[{{"type":"URLRewrite","urlRewrite":{filter}}}]}}]}}"#
        ))
    };
    let rpm = |to: &str| {
        format!(r#"{{"path":{{"type":"ReplacePrefixMatch","replacePrefixMatch":"{to}"}}}}"#)
    };
    // Gateway API's ReplacePrefixMatch table, plus the query string.
    for (prefix, to, request, want) in [
        ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
        ("/foo", "/xyz/", "/foo/bar", "/xyz/bar"),
        ("/foo/", "/xyz", "/foo/bar", "/xyz/bar"),
        ("/foo/", "/xyz/", "/foo/bar", "/xyz/bar"),
        ("/foo", "/xyz", "/foo", "/xyz"),
        ("/foo", "/xyz", "/foo/", "/xyz/"),
        ("/foo", "/", "/foo/bar", "/bar"),
        ("/foo", "/", "/foo", "/"),
        ("/foo", "/", "/foo/", "/"),
        ("/", "/api", "/x/y", "/api/x/y"),
        ("/", "/api", "/", "/api/"),
        ("/foo", "/xyz", "/foo/bar?a=1&b=/foo", "/xyz/bar?a=1&b=/foo"),
    ] {
        let c = rewrite(prefix, &rpm(to));
        let d = decide(&c, &get(request));
        assert_eq!(
            forwarded_path(&d).as_deref(),
            Some(want),
            "{prefix} {to} {request}"
        );
    }
    // ReplaceFullPath keeps the query; hostname sets :authority.
    let c = rewrite(
        "/old",
        r#"{"hostname":"New.Internal","path":{"type":"ReplaceFullPath","replaceFullPath":"/v2/new"}}"#,
    );
    assert_eq!(
        decide(&c, &get("/old/deep/path?x=1")).outcome,
        Outcome::Forward {
            authority: Some("new.internal".into()),
            path: Some("/v2/new?x=1".into())
        }
    );
    let c = rewrite("/", r#"{"hostname":"backend.local"}"#);
    assert_eq!(
        decide(&c, &get("/p")).outcome,
        Outcome::Forward {
            authority: Some("backend.local".into()),
            path: None
        }
    );
    // A match without a path counts as PathPrefix / for ReplacePrefixMatch.
    let c = parse(
        r#"{"rules":[{"matches":[{"method":"GET"}],"backendRefs":[{"name":"svc"}],
            "filters":[{"type":"URLRewrite","urlRewrite":{"path":{"type":"ReplacePrefixMatch","replacePrefixMatch":"/base"}}}]}]}"#,
    );
    assert_eq!(
        forwarded_path(&decide(&c, &get("/a"))).as_deref(),
        Some("/base/a")
    );
    // With several matches, the prefix replaced is the winning match's.
    let c = parse(
        r#"{"rules":[{"matches":[{"path":{"value":"/a"}},{"path":{"value":"/a/b"}}],"backendRefs":[{"name":"svc"}],
            "filters":[{"type":"URLRewrite","urlRewrite":{"path":{"type":"ReplacePrefixMatch","replacePrefixMatch":"/z"}}}]}]}"#,
    );
    assert_eq!(
        forwarded_path(&decide(&c, &get("/a/b/c"))).as_deref(),
        Some("/z/c")
    );
    assert_eq!(
        forwarded_path(&decide(&c, &get("/a/c"))).as_deref(),
        Some("/z/c")
    );
}

#[test]
fn redirect_locations() {
    let redirect = |prefix: &str, body: &str| {
        parse(&format!(
            r#"{{"rules":[{{"name":"r","matches":[{{"path":{{"type":"PathPrefix","value":"{prefix}"}}}}],
                "filters":[{{"type":"RequestRedirect","requestRedirect":{body}}}]}}]}}"#
        ))
    };
    // (prefix, requestRedirect, scheme, authority, path, status, location)
    for (prefix, body, scheme, authority, path, status, want) in [
        (
            "/",
            "{}",
            "http",
            "a.com",
            "/x?y=1",
            302,
            "http://a.com/x?y=1",
        ),
        ("/", "{}", "", "a.com", "/x", 302, "http://a.com/x"),
        (
            "/",
            r#"{"scheme":"https"}"#,
            "http",
            "a.com",
            "/x",
            302,
            "https://a.com/x",
        ),
        // scheme set: the port becomes the scheme's well-known one.
        (
            "/",
            r#"{"scheme":"https"}"#,
            "http",
            "a.com:8080",
            "/x",
            302,
            "https://a.com/x",
        ),
        // scheme unset: the request's port is kept, unless well-known.
        (
            "/",
            r#"{"hostname":"b.com"}"#,
            "http",
            "a.com:8080",
            "/x",
            302,
            "http://b.com:8080/x",
        ),
        (
            "/",
            r#"{"hostname":"b.com"}"#,
            "http",
            "a.com:80",
            "/x",
            302,
            "http://b.com/x",
        ),
        (
            "/",
            "{}",
            "https",
            "a.com:443",
            "/x",
            302,
            "https://a.com/x",
        ),
        (
            "/",
            "{}",
            "https",
            "a.com:80",
            "/x",
            302,
            "https://a.com:80/x",
        ),
        (
            "/",
            r#"{"port":8443,"scheme":"https"}"#,
            "http",
            "a.com",
            "/",
            302,
            "https://a.com:8443/",
        ),
        (
            "/",
            r#"{"port":443,"scheme":"https"}"#,
            "http",
            "a.com:80",
            "/",
            302,
            "https://a.com/",
        ),
        (
            "/",
            r#"{"port":9000}"#,
            "http",
            "[::1]:8080",
            "/",
            302,
            "http://[::1]:9000/",
        ),
        (
            "/",
            r#"{"statusCode":301}"#,
            "http",
            "a.com",
            "/",
            301,
            "http://a.com/",
        ),
        (
            "/",
            r#"{"statusCode":308,"scheme":"https","hostname":"secure.a.com"}"#,
            "http",
            "a.com",
            "/p",
            308,
            "https://secure.a.com/p",
        ),
        (
            "/old",
            r#"{"path":{"type":"ReplacePrefixMatch","replacePrefixMatch":"/new"}}"#,
            "http",
            "a.com",
            "/old/page?q=1",
            302,
            "http://a.com/new/page?q=1",
        ),
        (
            "/",
            r#"{"path":{"type":"ReplaceFullPath","replaceFullPath":"/moved"},"statusCode":307}"#,
            "http",
            "a.com",
            "/any/thing?q=1",
            307,
            "http://a.com/moved?q=1",
        ),
    ] {
        let c = redirect(prefix, body);
        let d = decide_at(&c, authority, scheme, &get(path));
        assert_eq!(
            local(&d),
            (status, vec![("location", want.to_string())], String::new()),
            "{body} {scheme} {authority} {path}"
        );
        assert_eq!(props(&d), pairs(&[("weft.route.name", "r")]));
    }
}

/// Weighted split through the whole decision: 10,000 requests with a fixed
/// seed; each share within 2 percentage points of its weight's share.
#[test]
fn weighted_split_statistics() {
    let c = parse(
        r#"{"rules":[{"backendRefs":[{"name":"stable","weight":80},{"name":"canary","weight":20},{"name":"off","weight":0}]}]}"#,
    );
    let mut rng = Rng::new(2024);
    let (mut stable, mut canary) = (0u32, 0u32);
    let req = get("/");
    for _ in 0..10_000 {
        let inc = Incoming {
            request: &req,
            authority: "a",
            scheme: "http",
        };
        let d = c.decide(&inc, &mut rng);
        match d.properties[0].1.as_str() {
            "stable" => stable += 1,
            "canary" => canary += 1,
            other => panic!("chose {other}"),
        }
    }
    let share = f64::from(canary) / 10_000.0;
    assert!((share - 0.2).abs() <= 0.02, "canary share {share}");
    assert_eq!(stable + canary, 10_000);
    // A default weight is 1: an even split.
    let even = parse(r#"{"rules":[{"backendRefs":[{"name":"blue"},{"name":"green"}]}]}"#);
    let mut rng = Rng::new(7);
    let blue = (0..10_000)
        .filter(|_| {
            let inc = Incoming {
                request: &req,
                authority: "a",
                scheme: "http",
            };
            even.decide(&inc, &mut rng).properties[0].1 == "blue"
        })
        .count();
    assert!((blue as f64 / 10_000.0 - 0.5).abs() <= 0.02, "blue {blue}");
}
