//! Errors, and finding the line of a YAML path in the source text.

use serde::Serialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a configuration file.
///
/// Displays as `FILE:LINE: PATH: REASON` (`:LINE` when the line is known,
/// `PATH: ` when the problem is not about the whole document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", Line(self))]
pub struct ConfigError {
    /// The config file, as given by the caller.
    pub file: PathBuf,
    /// YAML path of the offending value, e.g. `listeners[0].default_cluster`;
    /// empty for problems with the whole file.
    pub path: String,
    /// 1-based line of the value (or of its closest enclosing value present
    /// in the file), when known.
    pub line: Option<usize>,
    pub reason: String,
}

struct Line<'a>(&'a ConfigError);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.file.display())?;
        if let Some(line) = e.line {
            write!(f, ":{line}")?;
        }
        if !e.path.is_empty() {
            write!(f, ": {}", e.path)?;
        }
        write!(f, ": {}", e.reason)
    }
}

/// Every problem found in a configuration file; displays one line each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", Lines(&self.errors))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors { errors: vec![e] }
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// One step of a YAML path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(Cow<'static, str>),
    Index(usize),
}

/// A YAML path, built while validating.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    pub fn key(&self, k: &'static str) -> YamlPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(Cow::Borrowed(k)));
        p
    }

    pub fn index(&self, i: usize) -> YamlPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A semantic problem before it is tied to a file and line.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    pub path: YamlPath,
    pub reason: String,
}

impl Problem {
    pub fn into_error(self, file: &Path, source: Option<&str>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            path: self.path.to_string(),
            line: source.and_then(|src| locate(src, &self.path.0)),
            reason: self.reason,
        }
    }
}

/// A parse error (syntax, unknown field, wrong type, bad value).
pub(crate) fn parse_error(
    file: &Path,
    src: &str,
    e: serde_path_to_error::Error<serde_yaml_ng::Error>,
) -> ConfigError {
    let mut segs: Vec<Seg> = e
        .path()
        .iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(Cow::Owned(key.clone()))),
            _ => None,
        })
        .collect();
    let inner = e.into_inner();
    let location = inner.location();
    let mut line = location.as_ref().map(|l| l.line());
    let mut reason = inner.to_string();
    // serde_yaml_ng appends the position and prefixes its own path (the
    // full path or, for unknown fields, the enclosing value's); both are
    // reported separately.
    if let Some(l) = &location {
        reason = reason.replacen(
            &format!(" at line {} column {}", l.line(), l.column()),
            "",
            1,
        );
    }
    let path = YamlPath(segs.clone()).to_string();
    if let Some((prefix, rest)) = reason.split_once(": ")
        && !prefix.is_empty()
        && !prefix.contains(' ')
        && path.starts_with(prefix)
    {
        reason = rest.to_owned();
    }
    // serde reports a duplicate key at its map; point at the second one.
    if let Some(key) = reason
        .strip_prefix("duplicate field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        segs.push(Seg::Key(Cow::Owned(key.to_owned())));
        line = locate_nth(src, &segs, 2).or(line);
    }
    ConfigError {
        file: file.to_path_buf(),
        path: YamlPath(segs).to_string(),
        line,
        reason,
    }
}

/// The 1-based line of the value at `path` in `src`, or of the closest
/// enclosing value present.
///
/// serde_yaml_ng gives positions only with errors, so this walks the
/// document to the value and fails there on purpose; the error carries
/// the position of the event it failed on.
pub(crate) fn locate(src: &str, path: &[Seg]) -> Option<usize> {
    locate_nth(src, path, 1)
}

/// [`locate`], at the `nth` (1-based) occurrence of the last key.
fn locate_nth(src: &str, path: &[Seg], nth: usize) -> Option<usize> {
    let de = serde_yaml_ng::Deserializer::from_str(src);
    match (Locate { path, nth }).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| l.line()),
    }
}

struct Locate<'p> {
    path: &'p [Seg],
    nth: usize,
}

const HERE: &str = "located";

impl<'de> DeserializeSeed<'de> for Locate<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locate<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    // Scalars: the default visit_* methods fail, which is what is wanted.

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let [Seg::Key(want), rest @ ..] = self.path {
            // The last step fails on the key itself: its line is the one
            // people look for (a block value starts on the next line).
            let mut seen = 0;
            loop {
                let last = rest.is_empty() && seen + 1 >= self.nth;
                match map.next_key_seed(Key {
                    want,
                    fail_on_match: last,
                })? {
                    None => break,
                    Some(true) if !rest.is_empty() => {
                        return map.next_value_seed(Locate {
                            path: rest,
                            nth: self.nth,
                        });
                    }
                    Some(matched) => {
                        seen += usize::from(matched);
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        Err(de::Error::custom(HERE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let [Seg::Index(want), rest @ ..] = self.path {
            for _ in 0..*want {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Err(de::Error::custom(HERE));
                }
            }
            seq.next_element_seed(Locate {
                path: rest,
                nth: self.nth,
            })?;
        }
        Err(de::Error::custom(HERE))
    }
}

/// Reads a map key: whether it is `want` (failing there if asked to).
struct Key<'p> {
    want: &'p str,
    fail_on_match: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match v == self.want {
            true if self.fail_on_match => Err(E::custom(HERE)),
            matched => Ok(matched),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_values_and_their_closest_parent() {
        let src = "a: 1\nlist:\n  - name: x\n  - name: y\n    deep: { k: v }\nlast: [1, 2]\n";
        let p = |segs: &[Seg]| locate(src, segs);
        assert_eq!(p(&[Seg::Key("a".into())]), Some(1));
        assert_eq!(p(&[Seg::Key("list".into())]), Some(2));
        assert_eq!(p(&[Seg::Key("list".into()), Seg::Index(0)]), Some(3));
        assert_eq!(
            p(&[
                Seg::Key("list".into()),
                Seg::Index(1),
                Seg::Key("name".into())
            ]),
            Some(4)
        );
        assert_eq!(
            p(&[
                Seg::Key("list".into()),
                Seg::Index(1),
                Seg::Key("deep".into()),
                Seg::Key("k".into())
            ]),
            Some(5)
        );
        assert_eq!(
            p(&[
                Seg::Key("list".into()),
                Seg::Index(1),
                Seg::Key("missing".into())
            ]),
            Some(4)
        );
        assert_eq!(p(&[Seg::Key("last".into()), Seg::Index(1)]), Some(6));
        assert_eq!(p(&[Seg::Key("nope".into())]), Some(1));
        let dup = "a: 1\nb: 2\na: 3\n";
        assert_eq!(locate_nth(dup, &[Seg::Key("a".into())], 2), Some(3));
    }

    #[test]
    fn displays_file_line_path_reason() {
        let e = ConfigError {
            file: "weft.yaml".into(),
            path: "listeners[0].name".into(),
            line: Some(3),
            reason: "bad".into(),
        };
        assert_eq!(e.to_string(), "weft.yaml:3: listeners[0].name: bad");
        let e = ConfigError {
            line: None,
            path: String::new(),
            ..e
        };
        assert_eq!(e.to_string(), "weft.yaml: bad");
    }
}
