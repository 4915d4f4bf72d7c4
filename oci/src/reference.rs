//! Image references: `[oci://]REGISTRY/REPO[:TAG][@sha256:HEX]`.

use crate::error::FetchError;
use std::fmt;
use std::str::FromStr;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    inner: oci_client::Reference,
    /// Whether the text named a tag explicitly.
    explicit_tag: bool,
}

impl ImageRef {
    /// Parses a reference, with or without the `oci://` scheme.
    pub fn parse(text: &str) -> Result<ImageRef, FetchError> {
        let bare = text.strip_prefix("oci://").unwrap_or(text);
        let bad = |reason: String| FetchError::InvalidReference {
            reference: text.to_owned(),
            reason,
        };
        if bare.is_empty() {
            return Err(bad("names no image".to_owned()));
        }
        if let Some((_, digest)) = bare.split_once('@') {
            check_digest(digest).map_err(bad)?;
        }
        let inner = oci_client::Reference::from_str(bare).map_err(|e| bad(e.to_string()))?;
        let name_part = bare.split('@').next().unwrap_or(bare);
        let last = name_part.rsplit('/').next().unwrap_or(name_part);
        let explicit_tag = last.contains(':');
        Ok(ImageRef {
            inner,
            explicit_tag,
        })
    }

    /// The registry host (with port), as written (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The host actually contacted (`index.docker.io` for Docker Hub).
    pub fn resolved_registry(&self) -> &str {
        self.inner.resolve_registry()
    }

    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag (`latest` when neither a tag nor a digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The `sha256:…` digest, when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// Whether the reference floats on `latest` (no digest, tag `latest`
    /// or none): Istio's rule for the default pull policy `Always`.
    pub fn is_latest(&self) -> bool {
        self.digest().is_none() && self.tag().is_none_or(|t| t == "latest")
    }

    /// Whether the text named a tag explicitly.
    pub fn has_explicit_tag(&self) -> bool {
        self.explicit_tag
    }

    /// The same image pinned to `digest`.
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            inner: oci_client::Reference::with_digest(
                self.registry().to_owned(),
                self.repository().to_owned(),
                digest.to_owned(),
            ),
            explicit_tag: false,
        }
    }

    pub(crate) fn oci(&self) -> &oci_client::Reference {
        &self.inner
    }
}

impl FromStr for ImageRef {
    type Err = FetchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.whole())
    }
}

/// Checks `sha256:<64 lowercase hex>`.
pub(crate) fn check_digest(digest: &str) -> Result<&str, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("digest {digest:?} is not sha256:<hex>"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "digest {digest:?} must be sha256: followed by 64 lowercase hex characters"
        ));
    }
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_registry_repo_and_tag() {
        let r = ImageRef::parse("oci://127.0.0.1:5000/filters/rewrite:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "filters/rewrite");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), None);
        assert!(!r.is_latest());
        assert!(r.has_explicit_tag());
        assert_eq!(r.to_string(), "127.0.0.1:5000/filters/rewrite:v1");
    }

    #[test]
    fn parses_digests_and_latest() {
        let r = ImageRef::parse(&format!("ghcr.io/acme/f@{D}")).unwrap();
        assert_eq!(r.registry(), "ghcr.io");
        assert_eq!(r.digest(), Some(D));
        assert!(!r.is_latest());
        let l = ImageRef::parse("localhost:5000/f").unwrap();
        assert!(l.is_latest());
        assert!(!l.has_explicit_tag());
        assert!(
            ImageRef::parse("localhost:5000/f:latest")
                .unwrap()
                .is_latest()
        );
        let hub = ImageRef::parse("nginx:1").unwrap();
        assert_eq!(hub.registry(), "docker.io");
        assert_eq!(hub.resolved_registry(), "index.docker.io");
        assert_eq!(hub.repository(), "library/nginx");
    }

    #[test]
    fn refuses_bad_references_with_the_reason() {
        for bad in [
            "",
            "oci://",
            "r.io/Upper/Case:x",
            "r.io/f@sha256:abc",
            "r.io/f@md5:00",
        ] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid image reference"), "{bad}: {e}");
        }
        let e = ImageRef::parse("r.io/f@sha256:abc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 lowercase hex"), "{e}");
    }
}
