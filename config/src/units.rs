//! Value syntaxes of the file: durations (`250ms`, `1.5s`), byte sizes
//! (`64KiB`, `1048576`) and endpoint addresses (`host:port`), with their
//! serde adapters and JSON Schemas.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

const DURATION_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h)$";
const BYTE_SIZE_PATTERN: &str = r"^[0-9]+(B|KB|MB|GB|KiB|MiB|GiB)?$";

/// Parses `250ms`, `5s`, `1.5s`, `1m`, `1h`.
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
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits_only(whole)
        || !digits_only(fraction)
        || (number.contains('.') && fraction.is_empty())
    {
        return Err(invalid());
    }
    let too_large = || format!("invalid duration {text:?}: too large");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_large)?;
    // Fraction digits beyond nanosecond precision are dropped.
    let mut scale = unit_nanos;
    for digit in fraction.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos = nanos.saturating_add(u128::from(digit - b'0') * scale);
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_large())?;
    // The remainder is below 10^9, so it fits.
    let sub = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// Formats a duration in the syntax [`parse_duration`] reads, with the
/// largest unit that represents it exactly.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    const MS: u128 = 1_000_000;
    const S: u128 = 1_000 * MS;
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [("h", 3600 * S), ("m", 60 * S), ("s", S), ("ms", MS)] {
        if nanos.is_multiple_of(size) {
            return format!("{}{unit}", nanos / size);
        }
    }
    let fraction = format!("{:09}", d.subsec_nanos());
    format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
}

/// Parses `1048576`, `64KiB`, `1MiB`, `1GiB`, `10KB`, `1MB`, `1GB`, `512B`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid byte size {text:?}: expected an integer number of bytes, optionally followed by B, KB, MB, GB, KiB, MiB or GiB"
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(invalid()),
    };
    if number.is_empty() {
        return Err(invalid());
    }
    let too_large = || format!("invalid byte size {text:?}: too large");
    let n: u64 = number.parse().map_err(|_| too_large())?;
    n.checked_mul(multiplier).ok_or_else(too_large)
}

/// serde adapter: durations as strings.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string such as \"250ms\", \"5s\", \"1m\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// serde adapter: byte sizes as integers or strings with a unit.
pub mod byte_size {
    use super::*;

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte size: an integer or a string such as \"64KiB\" or \"1MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("invalid byte size {v}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                parse_byte_size(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// JSON Schema of a duration string.
pub struct DurationSchema;

impl JsonSchema for DurationSchema {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: a number followed by ms, s, m or h, e.g. \"250ms\", \"1.5s\", \"5m\".",
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

/// JSON Schema of a byte size.
pub struct ByteSizeSchema;

impl JsonSchema for ByteSizeSchema {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes: an integer, or a string with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. \"64KiB\".",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": BYTE_SIZE_PATTERN },
            ],
        })
    }
}

/// A `host:port` address; the host is an IP address or a DNS name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// An IP address (IPv6 without brackets) or a DNS name.
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid address {text:?}: {why}");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| invalid("expected [ipv6]:port"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("the part in brackets is not an IPv6 address"));
            }
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| invalid("expected host:port"))?;
            if host.contains(':') {
                return Err(invalid("write IPv6 addresses in brackets, as [::1]:8080"));
            }
            if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
                return Err(invalid("the host is neither an IP address nor a DNS name"));
            }
            (host, port)
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HostPort;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address \"host:port\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HostPort, E> {
                HostPort::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for HostPort {
    fn schema_name() -> Cow<'static, str> {
        "HostPort".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An address host:port, where host is an IP address ([::1] for IPv6) or a DNS name.",
            "type": "string",
        })
    }
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`,
/// 1 to 63 characters each, not starting or ending with `-`.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An HTTP header name (an RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "5 sec",
            "5",
            "",
            "s",
            "1.s",
            ".5s",
            "-1s",
            "1.2.3s",
            "5S",
            "1d",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration("5 sec").unwrap_err(),
            "invalid duration \"5 sec\": expected a number followed by ms, s, m or h"
        );
        for text in ["0s", "250ms", "5s", "1m", "1h", "90s", "1500ms", "0.0005s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("1024"), Ok(1024));
        assert_eq!(parse_byte_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_byte_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("10KB"), Ok(10_000));
        assert_eq!(parse_byte_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_byte_size("7B"), Ok(7));
        for bad in [
            "",
            "KiB",
            "1 MiB",
            "1mib",
            "1.5MiB",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert!(parse_byte_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        let hp = HostPort::parse("127.0.0.1:9000").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("127.0.0.1", 9000));
        let hp = HostPort::parse("echo.svc.cluster.local:80").unwrap();
        assert_eq!(hp.host, "echo.svc.cluster.local");
        let hp = HostPort::parse("[::1]:443").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("::1", 443));
        assert_eq!(hp.to_string(), "[::1]:443");
        for bad in [
            "nope",
            "host:",
            ":80",
            "::1:80",
            "a b:80",
            "host:0",
            "host:70000",
            "[x]:80",
            "-a:1",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad}");
        }
    }
}
