//! The filter's configuration: parsed and validated completely at
//! `on_configure`, errors naming the field.

use serde::Deserialize;
use std::time::Duration;
pub use weft_filter_match::config::parse_duration;
use weft_filter_match::{HttpRouteMatch, Matcher, Request};

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a pluginConfig object"
)]
struct RawConfig {
    #[serde(default)]
    mirrors: Vec<RawMirror>,
    #[serde(default)]
    max_body_bytes: Option<u64>,
    #[serde(default)]
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMirror {
    #[serde(default, rename = "match")]
    matches: Option<HttpRouteMatch>,
    backend_ref: RawBackendRef,
    #[serde(default)]
    percent: Option<u32>,
    #[serde(default)]
    fraction: Option<RawFraction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackendRef {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFraction {
    numerator: u32,
    #[serde(default)]
    denominator: Option<u32>,
}

#[derive(Debug)]
pub struct Mirror {
    pub matcher: Matcher,
    /// The cluster the copies go to.
    pub cluster: String,
    /// The share of matching requests mirrored: `numerator / denominator`.
    pub numerator: u32,
    pub denominator: u32,
}

#[derive(Debug)]
pub struct Config {
    pub mirrors: Vec<Mirror>,
    /// Requests with a longer body are not mirrored.
    pub max_body_bytes: usize,
    /// Timeout of each mirrored request.
    pub timeout: Duration,
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 10;
/// The most body a VM buffers for mirrors at once (all streams together),
/// and so the largest `maxBodyBytes`: a mirror must never make the VM run
/// out of memory and fail the primary requests.
pub const BUFFER_BUDGET: usize = 16 << 20;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Config {
    fn default() -> Self {
        Config {
            mirrors: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

fn mirror(at: &str, raw: RawMirror) -> Result<Mirror, String> {
    let matcher = match &raw.matches {
        Some(m) => m
            .compile(&format!("{at}.match"))
            .map_err(|e| e.to_string())?,
        None => Matcher::default(),
    };
    let name = raw.backend_ref.name;
    if name.is_empty() {
        return Err(format!("{at}.backendRef.name: must not be empty"));
    }
    if name
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!(
            "{at}.backendRef.name: {name:?} is not a valid cluster name"
        ));
    }
    let (numerator, denominator) = match (raw.percent, raw.fraction) {
        (Some(_), Some(_)) => {
            return Err(format!("{at}: percent and fraction are mutually exclusive"));
        }
        (None, None) => (100, 100),
        (Some(p), None) => {
            if p > 100 {
                return Err(format!("{at}.percent: must be between 0 and 100 (got {p})"));
            }
            (p, 100)
        }
        (None, Some(f)) => {
            let den = f.denominator.unwrap_or(100);
            if den == 0 {
                return Err(format!("{at}.fraction.denominator: must be greater than 0"));
            }
            if f.numerator > den {
                return Err(format!(
                    "{at}.fraction.numerator: must not exceed the denominator ({} > {den})",
                    f.numerator
                ));
            }
            (f.numerator, den)
        }
    };
    Ok(Mirror {
        matcher,
        cluster: name,
        numerator,
        denominator,
    })
}

impl Config {
    /// Parses and validates; the error names the field and the reason.
    pub fn parse(raw: &[u8]) -> Result<Config, String> {
        // serde would take a JSON array for a struct's fields in order.
        if raw.trim_ascii_start().starts_with(b"[") {
            return Err("invalid type: sequence, expected a pluginConfig object".into());
        }
        if raw.is_empty() {
            return Ok(Config::default());
        }
        let raw: RawConfig = weft_filter_match::config::from_json(raw)?;
        let max_body_bytes = match raw.max_body_bytes {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(n) if n <= BUFFER_BUDGET as u64 => n as usize,
            Some(n) => {
                return Err(format!(
                    "maxBodyBytes: must be at most {BUFFER_BUDGET} (got {n})"
                ));
            }
        };
        let timeout = match raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => {
                let d = parse_duration(&t).map_err(|e| format!("timeout: {e}"))?;
                if !(Duration::from_millis(1)..=Duration::from_secs(24 * 3600)).contains(&d) {
                    return Err(format!("timeout: must be between 1ms and 24h (got {t:?})"));
                }
                d
            }
        };
        let mirrors = raw
            .mirrors
            .into_iter()
            .enumerate()
            .map(|(i, m)| mirror(&format!("mirrors[{i}]"), m))
            .collect::<Result<_, _>>()?;
        Ok(Config {
            mirrors,
            max_body_bytes,
            timeout,
        })
    }

    /// The mirrors a request goes to: those whose match holds and whose
    /// sampling passes. `draw` gives one random `u64` per matching mirror.
    pub fn select(&self, req: &dyn Request, mut draw: impl FnMut() -> u64) -> Vec<usize> {
        self.mirrors
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                m.matcher.matches(req) && crate::sample::sampled(m.numerator, m.denominator, draw())
            })
            .map(|(i, _)| i)
            .collect()
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
    fn defaults() {
        for empty in ["", "{}"] {
            let c = Config::parse(empty.as_bytes()).unwrap();
            assert!(c.mirrors.is_empty());
            assert_eq!(c.max_body_bytes, 65536);
            assert_eq!(c.timeout, Duration::from_secs(5));
        }
        let c = parse(r#"{"mirrors":[{"backendRef":{"name":"shadow"}}]}"#);
        let m = &c.mirrors[0];
        assert_eq!(
            (m.cluster.as_str(), m.numerator, m.denominator),
            ("shadow", 100, 100)
        );
    }

    #[test]
    fn valid_config() {
        let c = parse(
            r#"{"mirrors":[
                {"match":{"path":{"value":"/api"}},"backendRef":{"name":"a"},"percent":25},
                {"backendRef":{"name":"b"},"fraction":{"numerator":1,"denominator":1000}},
                {"backendRef":{"name":"c"},"fraction":{"numerator":5}},
                {"backendRef":{"name":"d"},"percent":0}
            ],"maxBodyBytes":1024,"timeout":"1.5s"}"#,
        );
        let f: Vec<_> = c
            .mirrors
            .iter()
            .map(|m| (m.cluster.as_str(), m.numerator, m.denominator))
            .collect();
        assert_eq!(
            f,
            vec![("a", 25, 100), ("b", 1, 1000), ("c", 5, 100), ("d", 0, 100)]
        );
        assert_eq!(c.max_body_bytes, 1024);
        assert_eq!(c.timeout, Duration::from_millis(1500));
        assert_eq!(parse(r#"{"maxBodyBytes":0}"#).max_body_bytes, 0);
    }

    #[test]
    fn every_invalid_field_is_named() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"mirror":[]}"#,
                "mirror: unknown field `mirror`, expected one of `mirrors`, `maxBodyBytes`, `timeout`",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"weight":1}]}"#,
                "mirrors[0].weight: unknown field `weight`, expected one of `match`, `backendRef`, `percent`, `fraction`",
            ),
            (
                r#"{"mirrors":[{}]}"#,
                "mirrors[0]: missing field `backendRef`",
            ),
            (
                r#"{"mirrors":[{"backendRef":{}}]}"#,
                "mirrors[0].backendRef: missing field `name`",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a","port":8080}}]}"#,
                "mirrors[0].backendRef.port: unknown field `port`, expected `name`",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":""}}]}"#,
                "mirrors[0].backendRef.name: must not be empty",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a b"}}]}"#,
                "mirrors[0].backendRef.name: \"a b\" is not a valid cluster name",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":7}}]}"#,
                "mirrors[0].backendRef.name: invalid type: integer `7`, expected a string",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"percent":101}]}"#,
                "mirrors[0].percent: must be between 0 and 100 (got 101)",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"percent":-1}]}"#,
                "mirrors[0].percent: invalid value: integer `-1`, expected u32",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"percent":12.5}]}"#,
                "mirrors[0].percent: invalid type: floating point `12.5`, expected u32",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"percent":50,"fraction":{"numerator":1}}]}"#,
                "mirrors[0]: percent and fraction are mutually exclusive",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"fraction":{"numerator":1,"denominator":0}}]}"#,
                "mirrors[0].fraction.denominator: must be greater than 0",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"fraction":{"numerator":3,"denominator":2}}]}"#,
                "mirrors[0].fraction.numerator: must not exceed the denominator (3 > 2)",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"fraction":{"numerator":101}}]}"#,
                "mirrors[0].fraction.numerator: must not exceed the denominator (101 > 100)",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"fraction":{"denominator":10}}]}"#,
                "mirrors[0].fraction: missing field `numerator`",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"},"fraction":{"numerator":-1}}]}"#,
                "mirrors[0].fraction.numerator: invalid value: integer `-1`, expected u32",
            ),
            (
                r#"{"mirrors":[{"backendRef":{"name":"a"}},{"match":{"path":{"value":"x"}},"backendRef":{"name":"a"}}]}"#,
                "mirrors[1].match.path.value: must start with '/' (got \"x\")",
            ),
            (
                r#"{"mirrors":[{"match":{"headers":[{"name":"","value":"v"}]},"backendRef":{"name":"a"}}]}"#,
                "mirrors[0].match.headers[0].name: must not be empty",
            ),
            (
                r#"{"maxBodyBytes":16777217}"#,
                "maxBodyBytes: must be at most 16777216 (got 16777217)",
            ),
            (
                r#"{"maxBodyBytes":-1}"#,
                "maxBodyBytes: invalid value: integer `-1`, expected u64",
            ),
            (
                r#"{"timeout":"soon"}"#,
                "timeout: invalid duration \"soon\": expected a number followed by ms, s, m or h",
            ),
            (
                r#"{"timeout":"0ms"}"#,
                "timeout: must be between 1ms and 24h (got \"0ms\")",
            ),
            (
                r#"{"mirrors":{}}"#,
                "mirrors: invalid type: map, expected a sequence",
            ),
            (
                r#"[]"#,
                "invalid type: sequence, expected a pluginConfig object",
            ),
        ];
        for (json, want) in cases {
            let err = Config::parse(json.as_bytes()).unwrap_err();
            assert!(err.starts_with(want), "{json}\n got: {err}\nwant: {want}");
        }
    }

    #[test]
    fn every_matching_sampled_mirror_is_selected() {
        let c = parse(
            r#"{"mirrors":[
                {"match":{"path":{"value":"/api"}},"backendRef":{"name":"api-shadow"}},
                {"match":{"method":"POST"},"backendRef":{"name":"posts"}},
                {"backendRef":{"name":"all"},"percent":50},
                {"backendRef":{"name":"never"},"percent":0}
            ]}"#,
        );
        let low = || 0u64;
        assert_eq!(c.select(&R("GET", "/api/x", vec![]), low), vec![0, 2]);
        assert_eq!(c.select(&R("POST", "/api", vec![]), low), vec![0, 1, 2]);
        assert_eq!(c.select(&R("GET", "/other", vec![]), low), vec![2]);
        // A draw of 51 (mod 100) fails the 50% mirror only.
        assert_eq!(c.select(&R("POST", "/api", vec![]), || 51), vec![0, 1]);
        assert!(
            Config::default()
                .select(&R("GET", "/", vec![]), low)
                .is_empty()
        );
    }
}
