//! The filter's configuration: parsed and validated completely at
//! `on_configure`, errors naming the field.

use serde::Deserialize;
use weft_filter_match::{HttpRouteMatch, Matcher};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(default, rename = "match")]
    matches: Option<HttpRouteMatch>,
    #[serde(default)]
    request_header_modifier: Option<RawModifier>,
    #[serde(default)]
    response_header_modifier: Option<RawModifier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModifier {
    #[serde(default)]
    set: Vec<NameValue>,
    #[serde(default)]
    add: Vec<NameValue>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameValue {
    name: String,
    value: String,
}

/// A piece of a header value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Property(Vec<String>),
}

#[derive(Debug, Default)]
pub struct Modifier {
    pub set: Vec<(String, Vec<Part>)>,
    pub add: Vec<(String, Vec<Part>)>,
    pub remove: Vec<String>,
}

#[derive(Debug)]
pub struct Rule {
    pub matcher: Matcher,
    pub request: Option<Modifier>,
    pub response: Option<Modifier>,
}

#[derive(Debug, Default)]
pub struct Config {
    pub rules: Vec<Rule>,
}

/// Parses `%{a.b}` templates.
pub fn template(field: &str, s: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("%{") {
        if i > 0 {
            parts.push(Part::Text(rest[..i].to_owned()));
        }
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("{field}: unclosed %{{ in {s:?}"))?;
        let name = &after[..end];
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(format!("{field}: bad property name {name:?} in {s:?}"));
        }
        parts.push(Part::Property(name.split('.').map(str::to_owned).collect()));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

fn valid_header_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn modifier(at: &str, raw: RawModifier) -> Result<Modifier, String> {
    let pairs = |list: Vec<NameValue>, what: &str| -> Result<Vec<(String, Vec<Part>)>, String> {
        list.into_iter()
            .enumerate()
            .map(|(i, nv)| {
                let field = format!("{at}.{what}[{i}]");
                if !valid_header_name(&nv.name) {
                    return Err(format!(
                        "{field}.name: {:?} is not a valid header name",
                        nv.name
                    ));
                }
                if nv.value.contains(['\r', '\n']) {
                    return Err(format!("{field}.value: must not contain CR or LF"));
                }
                Ok((
                    nv.name.to_ascii_lowercase(),
                    template(&format!("{field}.value"), &nv.value)?,
                ))
            })
            .collect()
    };
    let set = pairs(raw.set, "set")?;
    let add = pairs(raw.add, "add")?;
    for (i, n) in raw.remove.iter().enumerate() {
        if !valid_header_name(n) {
            return Err(format!(
                "{at}.remove[{i}]: {n:?} is not a valid header name"
            ));
        }
    }
    Ok(Modifier {
        set,
        add,
        remove: raw.remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
    })
}

impl Config {
    /// Parses and validates; the error names the field and the reason.
    pub fn parse(raw: &[u8]) -> Result<Config, String> {
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
            if r.request_header_modifier.is_none() && r.response_header_modifier.is_none() {
                return Err(format!(
                    "{at}: needs requestHeaderModifier or responseHeaderModifier"
                ));
            }
            let request = r
                .request_header_modifier
                .map(|m| modifier(&format!("{at}.requestHeaderModifier"), m))
                .transpose()?;
            let response = r
                .response_header_modifier
                .map(|m| modifier(&format!("{at}.responseHeaderModifier"), m))
                .transpose()?;
            rules.push(Rule {
                matcher,
                request,
                response,
            });
        }
        Ok(Config { rules })
    }
}

/// Renders a property value as text: integers (8-byte little-endian, as
/// Envoy encodes `source.port`, `response.code`…) as decimal.
pub fn property_text(path: &[String], v: &[u8]) -> String {
    let numeric = matches!(
        path.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["source", "port"]
            | ["destination", "port"]
            | ["upstream", "port"]
            | ["response", "code"]
            | ["request", "size"]
            | ["response", "size"]
            | ["connection", "id"]
    );
    if numeric && let Ok(b) = <[u8; 8]>::try_from(v) {
        return i64::from_le_bytes(b).to_string();
    }
    String::from_utf8_lossy(v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            template("f", "id=%{request.id};x").unwrap(),
            vec![
                Part::Text("id=".into()),
                Part::Property(vec!["request".into(), "id".into()]),
                Part::Text(";x".into())
            ]
        );
        assert_eq!(
            template("f", "%{a").unwrap_err(),
            "f: unclosed %{ in \"%{a\""
        );
        assert!(template("f", "%{}").is_err());
    }

    #[test]
    fn valid_config() {
        let c = Config::parse(
            br#"{"rules":[{"match":{"path":{"type":"PathPrefix","value":"/api"}},
                "requestHeaderModifier":{"set":[{"name":"X-Env","value":"prod"}],"remove":["x-debug"]},
                "responseHeaderModifier":{"add":[{"name":"x-id","value":"%{request.id}"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].request.as_ref().unwrap().set[0].0, "x-env");
    }

    #[test]
    fn every_invalid_field_is_named() {
        let cases: [(&str, &str); 7] = [
            (r#"{"rulez":[]}"#, "unknown field `rulez`"),
            (
                r#"{"rules":[{"requestHeaderModifier":{"set":[{"name":"bad name","value":"v"}]}}]}"#,
                "rules[0].requestHeaderModifier.set[0].name: \"bad name\" is not a valid header name",
            ),
            (
                r#"{"rules":[{"requestHeaderModifier":{"set":[{"name":"x","value":"a\nb"}]}}]}"#,
                "rules[0].requestHeaderModifier.set[0].value: must not contain CR or LF",
            ),
            (
                r#"{"rules":[{"requestHeaderModifier":{"remove":["a b"]}}]}"#,
                "rules[0].requestHeaderModifier.remove[0]: \"a b\" is not a valid header name",
            ),
            (
                r#"{"rules":[{}]}"#,
                "rules[0]: needs requestHeaderModifier or responseHeaderModifier",
            ),
            (
                r#"{"rules":[{"match":{"path":{"value":"nope"}},"requestHeaderModifier":{}}]}"#,
                "rules[0].match.path.value: must start with '/' (got \"nope\")",
            ),
            (
                r#"{"rules":[{"requestHeaderModifier":{"set":[{"name":"x"}]}}]}"#,
                "rules[0].requestHeaderModifier.set[0]: missing field `value`",
            ),
        ];
        for (json, want) in cases {
            let err = Config::parse(json.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{json}\n got: {err}\nwant: {want}");
        }
    }

    #[test]
    fn integer_properties_render_as_numbers() {
        let port = vec!["source".to_string(), "port".to_string()];
        assert_eq!(property_text(&port, &8080i64.to_le_bytes()), "8080");
        assert_eq!(
            property_text(&["request".into(), "id".into()], b"abc"),
            "abc"
        );
    }
}
