//! The filter's configuration: parsed and validated completely at
//! `on_configure`, errors naming the field.

use serde::Deserialize;
use std::time::Duration;
pub use weft_filter_match::config::parse_duration;
use weft_filter_match::{HttpRouteMatch, Matcher, Request};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a pluginConfig object")]
struct RawConfig {
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default, rename = "match")]
    matches: Option<HttpRouteMatch>,
    #[serde(default)]
    delay: Option<RawDelay>,
    #[serde(default)]
    abort: Option<RawAbort>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDelay {
    fixed_delay: String,
    #[serde(default)]
    percentage: Option<RawPercentage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAbort {
    #[serde(default)]
    http_status: Option<u32>,
    /// A code name (`UNAVAILABLE`) or a number; checked after parsing.
    #[serde(default)]
    grpc_status: Option<serde_json::Value>,
    #[serde(default)]
    percentage: Option<RawPercentage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPercentage {
    value: f64,
}

/// What an abort answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortKind {
    /// An HTTP status, 200–599.
    Http(u16),
    /// A gRPC status code, 0–16 (answered as HTTP 200, `grpc-status`).
    Grpc(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delay {
    pub fixed: Duration,
    /// 0–100.
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    pub kind: AbortKind,
    /// 0–100.
    pub percent: f64,
}

#[derive(Debug)]
pub struct Rule {
    pub matcher: Matcher,
    pub delay: Option<Delay>,
    pub abort: Option<Abort>,
}

#[derive(Debug, Default)]
pub struct Config {
    pub rules: Vec<Rule>,
}

/// What to do to one request, once the rule's percentages were drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    pub delay: Option<Duration>,
    pub abort: Option<AbortKind>,
}

/// gRPC status code names, indexed by code.
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Shortest and longest `fixedDelay`.
pub const MIN_DELAY: Duration = Duration::from_millis(1);
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

fn percentage(at: &str, p: Option<RawPercentage>) -> Result<f64, String> {
    match p {
        None => Ok(100.0),
        Some(RawPercentage { value }) if (0.0..=100.0).contains(&value) => Ok(value),
        Some(RawPercentage { value }) => Err(format!(
            "{at}.percentage.value: must be between 0 and 100 (got {value})"
        )),
    }
}

fn grpc_code(at: &str, v: &serde_json::Value) -> Result<u32, String> {
    let field = format!("{at}.grpcStatus");
    match v {
        serde_json::Value::String(name) => GRPC_CODES
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .map(|i| i as u32)
            .ok_or_else(|| {
                format!(
                    "{field}: unknown gRPC status {name:?} (expected a code name such as UNAVAILABLE, or a number 0–16)"
                )
            }),
        serde_json::Value::Number(n) => n
            .as_u64()
            .filter(|c| *c <= 16)
            .map(|c| c as u32)
            .ok_or_else(|| format!("{field}: must be a gRPC status code 0–16 (got {n})")),
        other => Err(format!(
            "{field}: expected a gRPC status name or number (got {other})"
        )),
    }
}

fn delay(at: &str, raw: RawDelay) -> Result<Delay, String> {
    let field = format!("{at}.fixedDelay");
    let fixed = parse_duration(&raw.fixed_delay).map_err(|e| format!("{field}: {e}"))?;
    if !(MIN_DELAY..=MAX_DELAY).contains(&fixed) {
        return Err(format!(
            "{field}: must be between 1ms and 24h (got {:?})",
            raw.fixed_delay
        ));
    }
    Ok(Delay {
        fixed,
        percent: percentage(at, raw.percentage)?,
    })
}

fn abort(at: &str, raw: RawAbort) -> Result<Abort, String> {
    let kind = match (raw.http_status, &raw.grpc_status) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}: httpStatus and grpcStatus are mutually exclusive"
            ));
        }
        (None, None) => return Err(format!("{at}: needs httpStatus or grpcStatus")),
        (Some(s), None) => {
            if !(200..=599).contains(&s) {
                return Err(format!("{at}.httpStatus: must be 200–599 (got {s})"));
            }
            AbortKind::Http(s as u16)
        }
        (None, Some(g)) => AbortKind::Grpc(grpc_code(at, g)?),
    };
    Ok(Abort {
        kind,
        percent: percentage(at, raw.percentage)?,
    })
}

impl Config {
    /// Parses and validates; the error names the field and the reason.
    pub fn parse(raw: &[u8]) -> Result<Config, String> {
        // serde would take a JSON array for a struct's fields in order.
        if raw.trim_ascii_start().starts_with(b"[") {
            return Err("invalid type: sequence, expected a pluginConfig object".into());
        }
        let raw: RawConfig = if raw.is_empty() {
            RawConfig { rules: Vec::new() }
        } else {
            weft_filter_match::config::from_json(raw)?
        };
        let mut rules = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            let matcher = match &r.matches {
                Some(m) => m
                    .compile(&format!("{at}.match"))
                    .map_err(|e| e.to_string())?,
                None => Matcher::default(),
            };
            if r.delay.is_none() && r.abort.is_none() {
                return Err(format!("{at}: needs delay or abort (or both)"));
            }
            let delay = r
                .delay
                .map(|d| delay(&format!("{at}.delay"), d))
                .transpose()?;
            let abort = r
                .abort
                .map(|a| abort(&format!("{at}.abort"), a))
                .transpose()?;
            rules.push(Rule {
                matcher,
                delay,
                abort,
            });
        }
        Ok(Config { rules })
    }

    /// The first rule whose match holds.
    pub fn select(&self, req: &dyn Request) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matcher.matches(req))
    }
}

impl Rule {
    /// Applies the rule's percentages to two independent random draws
    /// (one for the delay, one for the abort), as Istio does.
    pub fn decide(&self, delay_draw: u64, abort_draw: u64) -> Decision {
        Decision {
            delay: self
                .delay
                .as_ref()
                .filter(|d| crate::sample::sampled(d.percent, delay_draw))
                .map(|d| d.fixed),
            abort: self
                .abort
                .as_ref()
                .filter(|a| crate::sample::sampled(a.percent, abort_draw))
                .map(|a| a.kind),
        }
    }
}

/// The local reply of an abort: status, headers and body.
pub fn abort_response(kind: AbortKind) -> (u32, Vec<(&'static str, String)>, &'static [u8]) {
    match kind {
        AbortKind::Http(status) => (
            u32::from(status),
            vec![
                ("content-type", "text/plain".to_owned()),
                ("x-weft-fault", "abort".to_owned()),
            ],
            b"fault filter abort\n",
        ),
        AbortKind::Grpc(code) => (
            200,
            vec![
                ("content-type", "application/grpc".to_owned()),
                ("grpc-status", code.to_string()),
                ("grpc-message", "fault filter abort".to_owned()),
                ("x-weft-fault", "abort".to_owned()),
            ],
            b"",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use weft_filter_match::StaticRequest as R;

    fn parse(json: &str) -> Config {
        Config::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn empty_config_has_no_rules() {
        assert!(Config::parse(b"").unwrap().rules.is_empty());
        assert!(Config::parse(b"{}").unwrap().rules.is_empty());
    }

    #[test]
    fn valid_config_and_defaults() {
        let c = parse(
            r#"{"rules":[
                {"match":{"path":{"type":"PathPrefix","value":"/slow"}},
                 "delay":{"fixedDelay":"1.5s","percentage":{"value":12.5}}},
                {"abort":{"httpStatus":503}},
                {"delay":{"fixedDelay":"250ms"},"abort":{"grpcStatus":"UNAVAILABLE","percentage":{"value":0}}},
                {"abort":{"grpcStatus":4}},
                {"abort":{"grpcStatus":"not_found"}}
            ]}"#,
        );
        assert_eq!(c.rules.len(), 5);
        assert_eq!(
            c.rules[0].delay,
            Some(Delay {
                fixed: Duration::from_millis(1500),
                percent: 12.5
            })
        );
        assert!(c.rules[0].abort.is_none());
        assert_eq!(
            c.rules[1].abort,
            Some(Abort {
                kind: AbortKind::Http(503),
                percent: 100.0
            })
        );
        let r2 = &c.rules[2];
        assert_eq!(r2.delay.as_ref().unwrap().percent, 100.0);
        assert_eq!(
            r2.abort,
            Some(Abort {
                kind: AbortKind::Grpc(14),
                percent: 0.0
            })
        );
        assert_eq!(c.rules[3].abort.as_ref().unwrap().kind, AbortKind::Grpc(4));
        assert_eq!(c.rules[4].abort.as_ref().unwrap().kind, AbortKind::Grpc(5));
    }

    #[test]
    fn every_invalid_field_is_named() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"rulez":[]}"#,
                "rulez: unknown field `rulez`, expected `rules`",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":503},"bogus":1}]}"#,
                "rules[0].bogus: unknown field `bogus`, expected one of `match`, `delay`, `abort`",
            ),
            (
                r#"{"rules":[{}]}"#,
                "rules[0]: needs delay or abort (or both)",
            ),
            (
                r#"{"rules":[{"match":{}}]}"#,
                "rules[0]: needs delay or abort (or both)",
            ),
            (
                r#"{"rules":[{"delay":{"fixedDelay":"5x"}}]}"#,
                "rules[0].delay.fixedDelay: invalid duration \"5x\": expected a number followed by ms, s, m or h",
            ),
            (
                r#"{"rules":[{"delay":{"fixedDelay":"0s"}}]}"#,
                "rules[0].delay.fixedDelay: must be between 1ms and 24h (got \"0s\")",
            ),
            (
                r#"{"rules":[{"delay":{"fixedDelay":"25h"}}]}"#,
                "rules[0].delay.fixedDelay: must be between 1ms and 24h (got \"25h\")",
            ),
            (
                r#"{"rules":[{"delay":{"fixedDelay":5}}]}"#,
                "rules[0].delay.fixedDelay: invalid type: integer `5`, expected a string",
            ),
            (
                r#"{"rules":[{"delay":{"percentage":{"value":50}}}]}"#,
                "rules[0].delay: missing field `fixedDelay`",
            ),
            (
                r#"{"rules":[{"delay":{"fixedDelay":"1s","exponentialDelay":"1s"}}]}"#,
                "rules[0].delay.exponentialDelay: unknown field `exponentialDelay`, expected `fixedDelay` or `percentage`",
            ),
            (
                r#"{"rules":[{"delay":{"fixedDelay":"1s","percentage":{"value":100.5}}}]}"#,
                "rules[0].delay.percentage.value: must be between 0 and 100 (got 100.5)",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":503,"percentage":{"value":-1}}}]}"#,
                "rules[0].abort.percentage.value: must be between 0 and 100 (got -1)",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":503,"percentage":{}}}]}"#,
                "rules[0].abort.percentage: missing field `value`",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":503,"percentage":{"value":"x"}}}]}"#,
                "rules[0].abort.percentage.value: invalid type: string \"x\", expected f64",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":503,"percent":50}}]}"#,
                "rules[0].abort.percent: unknown field `percent`, expected one of `httpStatus`, `grpcStatus`, `percentage`",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":503,"grpcStatus":"UNAVAILABLE"}}]}"#,
                "rules[0].abort: httpStatus and grpcStatus are mutually exclusive",
            ),
            (
                r#"{"rules":[{"abort":{}}]}"#,
                "rules[0].abort: needs httpStatus or grpcStatus",
            ),
            (
                r#"{"rules":[{"abort":{"percentage":{"value":5}}}]}"#,
                "rules[0].abort: needs httpStatus or grpcStatus",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":99}}]}"#,
                "rules[0].abort.httpStatus: must be 200–599 (got 99)",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":600}}]}"#,
                "rules[0].abort.httpStatus: must be 200–599 (got 600)",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":-1}}]}"#,
                "rules[0].abort.httpStatus: invalid value: integer `-1`, expected u32",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":"503"}}]}"#,
                "rules[0].abort.httpStatus: invalid type: string \"503\", expected u32",
            ),
            (
                r#"{"rules":[{"abort":{"grpcStatus":"NOPE"}}]}"#,
                "rules[0].abort.grpcStatus: unknown gRPC status \"NOPE\" (expected a code name such as UNAVAILABLE, or a number 0–16)",
            ),
            (
                r#"{"rules":[{"abort":{"grpcStatus":17}}]}"#,
                "rules[0].abort.grpcStatus: must be a gRPC status code 0–16 (got 17)",
            ),
            (
                r#"{"rules":[{"abort":{"grpcStatus":1.5}}]}"#,
                "rules[0].abort.grpcStatus: must be a gRPC status code 0–16 (got 1.5)",
            ),
            (
                r#"{"rules":[{"abort":{"grpcStatus":true}}]}"#,
                "rules[0].abort.grpcStatus: expected a gRPC status name or number (got true)",
            ),
            (
                r#"{"rules":[{"abort":{"httpStatus":503}},{"match":{"path":{"value":"nope"}},"abort":{"httpStatus":503}}]}"#,
                "rules[1].match.path.value: must start with '/' (got \"nope\")",
            ),
            (
                r#"{"rules":[{"match":{"method":"FETCH"},"abort":{"httpStatus":503}}]}"#,
                "rules[0].match.method: unknown method \"FETCH\"",
            ),
            (
                r#"{"rules":[{"match":{"pathz":{}},"abort":{"httpStatus":503}}]}"#,
                "rules[0].match.pathz: unknown field `pathz`",
            ),
            (
                r#"{"rules":{}}"#,
                "rules: invalid type: map, expected a sequence",
            ),
            (
                r#""x""#,
                "invalid type: string \"x\", expected a pluginConfig object",
            ),
            (
                r#" [1]"#,
                "invalid type: sequence, expected a pluginConfig object",
            ),
        ];
        for (json, want) in cases {
            let err = Config::parse(json.as_bytes()).unwrap_err();
            assert!(err.starts_with(want), "{json}\n got: {err}\nwant: {want}");
        }
    }

    #[test]
    fn the_first_matching_rule_applies() {
        let c = parse(
            r#"{"rules":[
                {"match":{"path":{"type":"Exact","value":"/a"}},"abort":{"httpStatus":500}},
                {"match":{"headers":[{"name":"x-fault","value":"yes"}]},"abort":{"httpStatus":501}},
                {"match":{"path":{"value":"/a"}},"abort":{"httpStatus":502}},
                {"abort":{"httpStatus":503}}
            ]}"#,
        );
        let status = |r: R| match c.select(&r).and_then(|r| r.abort.as_ref()).unwrap().kind {
            AbortKind::Http(s) => s,
            AbortKind::Grpc(_) => unreachable!(),
        };
        assert_eq!(status(R("GET", "/a?x=1", vec![("x-fault", "yes")])), 500);
        assert_eq!(status(R("GET", "/a/b", vec![("x-fault", "yes")])), 501);
        assert_eq!(status(R("GET", "/a/b", vec![])), 502);
        assert_eq!(status(R("GET", "/b", vec![])), 503);

        let only = parse(r#"{"rules":[{"match":{"method":"POST"},"abort":{"httpStatus":500}}]}"#);
        assert!(only.select(&R("GET", "/", vec![])).is_none());
        assert!(only.select(&R("POST", "/", vec![])).is_some());
        assert!(Config::default().select(&R("GET", "/", vec![])).is_none());
    }

    #[test]
    fn decisions_follow_each_percentage() {
        let c = parse(
            r#"{"rules":[{"delay":{"fixedDelay":"10ms","percentage":{"value":50}},
                          "abort":{"httpStatus":503,"percentage":{"value":50}}}]}"#,
        );
        let r = &c.rules[0];
        // A draw of 0 is below every positive percentage; u64::MAX above 50%.
        assert_eq!(
            r.decide(0, 0),
            Decision {
                delay: Some(Duration::from_millis(10)),
                abort: Some(AbortKind::Http(503))
            }
        );
        assert_eq!(
            r.decide(0, u64::MAX),
            Decision {
                delay: Some(Duration::from_millis(10)),
                abort: None
            }
        );
        assert_eq!(r.decide(u64::MAX, u64::MAX), Decision::default());
        let never = parse(r#"{"rules":[{"abort":{"httpStatus":503,"percentage":{"value":0}}}]}"#);
        assert_eq!(never.rules[0].decide(0, 0), Decision::default());
        let always = parse(r#"{"rules":[{"abort":{"grpcStatus":"INTERNAL"}}]}"#);
        assert_eq!(
            always.rules[0].decide(u64::MAX, u64::MAX).abort,
            Some(AbortKind::Grpc(13))
        );
    }

    #[test]
    fn abort_responses() {
        let (status, headers, body) = abort_response(AbortKind::Http(503));
        assert_eq!(status, 503);
        assert_eq!(
            headers,
            vec![
                ("content-type", "text/plain".to_owned()),
                ("x-weft-fault", "abort".to_owned())
            ]
        );
        assert_eq!(body, b"fault filter abort\n");
        let (status, headers, body) = abort_response(AbortKind::Grpc(14));
        assert_eq!(status, 200);
        assert_eq!(
            headers,
            vec![
                ("content-type", "application/grpc".to_owned()),
                ("grpc-status", "14".to_owned()),
                ("grpc-message", "fault filter abort".to_owned()),
                ("x-weft-fault", "abort".to_owned())
            ]
        );
        assert!(body.is_empty());
    }
}
