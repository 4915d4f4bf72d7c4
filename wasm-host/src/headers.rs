//! Header maps as filters see them: HTTP/2-style pseudo headers
//! (`:method`, `:path`, `:authority`, `:scheme`, `:status`) followed by the
//! regular headers, kept in an [`http::HeaderMap`] so the proxy hands them to
//! hyper without copying.

use crate::abi::{Status, serialize_pairs};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;

/// One header map of a stream (request/response headers or trailers).
#[derive(Clone, Debug, Default)]
pub struct HeaderBlock {
    pseudo: Vec<(&'static str, Bytes)>,
    /// The regular headers.
    pub map: HeaderMap,
}

const PSEUDO: [&str; 6] = [
    ":method",
    ":scheme",
    ":authority",
    ":path",
    ":status",
    ":protocol",
];

fn pseudo_name(key: &[u8]) -> Option<&'static str> {
    PSEUDO
        .iter()
        .copied()
        .find(|p| p.as_bytes().eq_ignore_ascii_case(key))
}

impl HeaderBlock {
    pub fn new(map: HeaderMap) -> Self {
        HeaderBlock {
            pseudo: Vec::new(),
            map,
        }
    }

    /// Sets a pseudo header such as `:path`.
    pub fn set_pseudo(&mut self, name: &'static str, value: impl Into<Bytes>) {
        let value = value.into();
        match self.pseudo.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.pseudo.push((name, value)),
        }
    }

    /// The value of a pseudo header, e.g. `pseudo(":path")`.
    pub fn pseudo(&self, name: &str) -> Option<&Bytes> {
        self.pseudo.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The value of a pseudo header as UTF-8, if valid.
    pub fn pseudo_str(&self, name: &str) -> Option<&str> {
        self.pseudo(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Number of entries, pseudo headers included.
    pub fn len(&self) -> usize {
        self.pseudo.len() + self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries, pseudo headers first, as the ABI lists them.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pseudo
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_ref()))
            .chain(
                self.map
                    .iter()
                    .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
            )
    }

    /// The map in the ABI's serialized pairs format.
    pub fn serialize(&self) -> Vec<u8> {
        serialize_pairs(|| self.iter())
    }

    /// A value by name; several values of one name are joined with `,`
    /// as Envoy does.
    pub fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        if key.first() == Some(&b':') {
            let name = pseudo_name(key)?;
            return self.pseudo(name).map(|v| Cow::Borrowed(v.as_ref()));
        }
        let name = HeaderName::from_bytes(key).ok()?;
        let mut values = self.map.get_all(&name).iter();
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first.as_bytes())),
            Some(second) => {
                let mut joined = first.as_bytes().to_vec();
                joined.push(b',');
                joined.extend_from_slice(second.as_bytes());
                for v in values {
                    joined.push(b',');
                    joined.extend_from_slice(v.as_bytes());
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    fn parse(key: &[u8], value: &[u8]) -> Result<(HeaderName, HeaderValue), Status> {
        let name = HeaderName::from_bytes(key).map_err(|_| Status::BadArgument)?;
        let value = HeaderValue::from_bytes(value).map_err(|_| Status::BadArgument)?;
        Ok((name, value))
    }

    /// Adds a value, keeping existing ones.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), Status> {
        if key.first() == Some(&b':') {
            let name = pseudo_name(key).ok_or(Status::BadArgument)?;
            self.set_pseudo(name, Bytes::copy_from_slice(value));
            return Ok(());
        }
        let (name, value) = Self::parse(key, value)?;
        self.map.append(name, value);
        Ok(())
    }

    /// Replaces every value of a name with one value.
    pub fn replace(&mut self, key: &[u8], value: &[u8]) -> Result<(), Status> {
        if key.first() == Some(&b':') {
            return self.add(key, value);
        }
        let (name, value) = Self::parse(key, value)?;
        self.map.insert(name, value);
        Ok(())
    }

    /// Removes every value of a name.
    pub fn remove(&mut self, key: &[u8]) {
        if key.first() == Some(&b':') {
            if let Some(name) = pseudo_name(key) {
                self.pseudo.retain(|(n, _)| *n != name);
            }
            return;
        }
        if let Ok(name) = HeaderName::from_bytes(key) {
            self.map.remove(name);
        }
    }

    /// Replaces the whole map with the given pairs.
    pub fn set_all(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<(), Status> {
        let mut next = HeaderBlock::default();
        for (k, v) in pairs {
            next.add(k, v)?;
        }
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_come_first_and_values_join() {
        let mut h = HeaderBlock::default();
        h.set_pseudo(":path", "/x");
        h.add(b"a", b"1").unwrap();
        h.add(b"A", b"2").unwrap();
        let keys: Vec<_> = h.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(keys[0], b":path");
        assert_eq!(h.get(b"a").unwrap().as_ref(), b"1,2");
        assert_eq!(h.len(), 3);
        h.replace(b"a", b"3").unwrap();
        assert_eq!(h.get(b"a").unwrap().as_ref(), b"3");
        h.remove(b":path");
        assert!(h.get(b":path").is_none());
        assert_eq!(h.add(b"bad name", b"v"), Err(Status::BadArgument));
        assert_eq!(h.add(b"ok", b"bad\r\nvalue"), Err(Status::BadArgument));
        assert_eq!(h.add(b":nope", b"v"), Err(Status::BadArgument));
    }
}
