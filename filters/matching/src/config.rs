//! Helpers every filter's `on_configure` needs: reading the JSON
//! `pluginConfig` with errors that name the field, and durations.

use serde::de::DeserializeOwned;
use std::time::Duration;

/// Deserializes a filter's `pluginConfig` (JSON). An error names the field
/// path (`rules[0].match.path: unknown field ...`); the position in the
/// JSON the proxy made of the YAML means nothing to the user and is left
/// out.
pub fn from_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        let inner = match inner.rfind(" at line ") {
            Some(i) if inner[i..].contains(" column ") => inner[..i].to_owned(),
            _ => inner,
        };
        if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}

/// Parses `250ms`, `1.5s`, `1m`, `1h` (the syntax of weft's own config).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid duration {text:?}: expected a number followed by ms, s, m or h");
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || number.ends_with('.') {
        return Err(invalid());
    }
    let too_large = || format!("invalid duration {text:?}: too large");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_large)?;
    let mut scale = unit_nanos;
    for d in fraction.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos += u128::from(d - b'0') * scale;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("250ms").unwrap(), ms(250));
        assert_eq!(parse_duration("5s").unwrap(), ms(5000));
        assert_eq!(parse_duration("1.5s").unwrap(), ms(1500));
        assert_eq!(parse_duration("1m").unwrap(), ms(60_000));
        assert_eq!(parse_duration("2h").unwrap(), ms(7_200_000));
        assert_eq!(
            parse_duration("0.25ms").unwrap(),
            Duration::from_micros(250)
        );
        for bad in [
            "", "5", "s", "5x", "1.s", ".5s", "-1s", "1 s", "5 s", "1m30s", "5S", "5d",
        ] {
            assert_eq!(
                parse_duration(bad).unwrap_err(),
                format!("invalid duration {bad:?}: expected a number followed by ms, s, m or h"),
            );
        }
        assert!(
            parse_duration("99999999999999999999999h")
                .unwrap_err()
                .ends_with("too large")
        );
    }

    #[test]
    fn config_errors_name_the_field_without_json_positions() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct C {
            rules: Vec<R>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct R {
            name: String,
        }
        let e = from_json::<C>(br#"{"rules":[{"name":"a"},{"nme":"b"}]}"#).unwrap_err();
        assert!(e.starts_with("rules[1].nme: unknown field `nme`"), "{e}");
        assert!(!e.contains(" at line "), "{e}");
        let e = from_json::<C>(b"42").unwrap_err();
        assert!(e.starts_with("invalid type: integer `42`"), "{e}");
    }
}
