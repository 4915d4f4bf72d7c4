//! Reading a module from a local OCI image layout directory
//! (`oci-layout://PATH[:TAG|@sha256:HEX]`).

use crate::error::FetchError;
use crate::media::{self, ArtifactFormat};
use crate::reference::check_digest;
use crate::registry::PulledModule;
use crate::sha256_digest;
use oci_client::manifest::{ImageIndexEntry, OciImageManifest};
use std::path::{Path, PathBuf};

/// A location in an OCI layout: the directory and which image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutRef {
    pub dir: PathBuf,
    /// Matched against the `org.opencontainers.image.ref.name` annotation.
    pub tag: Option<String>,
    /// A manifest (or index) digest of `index.json`.
    pub digest: Option<String>,
}

impl LayoutRef {
    /// Splits `PATH[:TAG|@sha256:HEX]`. A path that is itself an existing
    /// directory is taken whole (so directories with `:` work).
    pub fn parse(path: &Path) -> LayoutRef {
        let text = path.to_string_lossy();
        if path.is_dir() {
            return LayoutRef {
                dir: path.to_path_buf(),
                tag: None,
                digest: None,
            };
        }
        if let Some((dir, digest)) = text.rsplit_once('@')
            && digest.starts_with("sha256:")
        {
            return LayoutRef {
                dir: PathBuf::from(dir),
                tag: None,
                digest: Some(digest.to_owned()),
            };
        }
        let last_sep = text.rfind('/').map_or(0, |i| i + 1);
        match text[last_sep..].rfind(':') {
            Some(i) => LayoutRef {
                dir: PathBuf::from(&text[..last_sep + i]),
                tag: Some(text[last_sep + i + 1..].to_owned()),
                digest: None,
            },
            None => LayoutRef {
                dir: path.to_path_buf(),
                tag: None,
                digest: None,
            },
        }
    }
}

impl std::fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci-layout://{}", self.dir.display())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn err(dir: &Path, reason: impl Into<String>) -> FetchError {
    FetchError::Layout {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a blob of the layout, verifying its digest.
fn blob(dir: &Path, digest: &str) -> Result<Vec<u8>, FetchError> {
    let hex = check_digest(digest).map_err(|reason| err(dir, reason))?;
    let path = dir.join("blobs").join("sha256").join(hex);
    let bytes = std::fs::read(&path).map_err(|e| err(dir, format!("blob {digest}: {e}")))?;
    let got = sha256_digest(&bytes);
    if got != digest {
        return Err(FetchError::DigestMismatch {
            what: format!("OCI layout {} blob", dir.display()),
            expected: digest.to_owned(),
            actual: got,
        });
    }
    Ok(bytes)
}

#[derive(serde::Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<ImageIndexEntry>,
}

fn parse_index(dir: &Path, bytes: &[u8], what: &str) -> Result<Vec<ImageIndexEntry>, FetchError> {
    serde_json::from_slice::<Index>(bytes)
        .map(|i| i.manifests)
        .map_err(|e| err(dir, format!("{what} is not a valid image index: {e}")))
}

/// Reads the module a layout reference names.
pub fn read(r: &LayoutRef) -> Result<PulledModule, FetchError> {
    let dir = &r.dir;
    let marker = std::fs::read(dir.join("oci-layout")).map_err(|e| {
        err(
            dir,
            format!("no oci-layout file ({e}); not an OCI image layout"),
        )
    })?;
    let marker: serde_json::Value = serde_json::from_slice(&marker)
        .map_err(|e| err(dir, format!("oci-layout is not JSON: {e}")))?;
    if marker["imageLayoutVersion"].as_str().is_none() {
        return Err(err(dir, "oci-layout has no imageLayoutVersion"));
    }
    let index =
        std::fs::read(dir.join("index.json")).map_err(|e| err(dir, format!("index.json: {e}")))?;
    let entries = parse_index(dir, &index, "index.json")?;
    let ref_name = |e: &ImageIndexEntry| {
        e.annotations
            .as_ref()
            .and_then(|a| a.get(media::ANNOTATION_REF_NAME))
            .cloned()
    };
    let entry = match (&r.tag, &r.digest) {
        (_, Some(d)) => entries.iter().find(|e| &e.digest == d),
        (Some(t), None) => entries.iter().find(|e| {
            ref_name(e)
                .is_some_and(|n| &n == t || n.rsplit_once(':').is_some_and(|(_, tag)| tag == t))
        }),
        (None, None) => match entries.as_slice() {
            [only] => Some(only),
            _ => None,
        },
    };
    let Some(entry) = entry else {
        let names: Vec<String> = entries
            .iter()
            .map(|e| ref_name(e).unwrap_or_else(|| e.digest.clone()))
            .collect();
        return Err(err(
            dir,
            format!(
                "index.json has no image {} (it has: [{}])",
                r.tag.as_deref().or(r.digest.as_deref()).map_or(
                    "(none named and more than one present)".to_owned(),
                    |s| format!("{s:?}")
                ),
                names.join(", ")
            ),
        ));
    };
    let mut digest = entry.digest.clone();
    let mut bytes = blob(dir, &digest)?;
    if entry.media_type == media::OCI_INDEX || entry.media_type == media::DOCKER_MANIFEST_LIST {
        let nested = parse_index(dir, &bytes, &format!("index {digest}"))?;
        let chosen = crate::registry::wasm_platform_resolver(&nested)
            .ok_or_else(|| err(dir, format!("index {digest} has no wasi/wasm entry")))?;
        bytes = blob(dir, &chosen)?;
        digest = chosen;
    }
    let manifest: OciImageManifest = serde_json::from_slice(&bytes).map_err(|e| {
        err(
            dir,
            format!("manifest {digest} is not an image manifest: {e}"),
        )
    })?;
    let layer_types: Vec<String> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.clone())
        .collect();
    let types: Vec<&str> = layer_types.iter().map(String::as_str).collect();
    let Some((format, i)) = media::detect(&types) else {
        return Err(FetchError::UnsupportedMediaTypes {
            reference: r.to_string(),
            config: manifest.config.media_type.clone(),
            layers: layer_types,
        });
    };
    let layer = blob(dir, &manifest.layers[i].digest)?;
    let wasm = match format {
        ArtifactFormat::DockerCompat => {
            media::extract_plugin_wasm(&layer).map_err(|e| err(dir, e))?
        }
        _ => layer,
    };
    if !media::is_wasm(&wasm) {
        return Err(err(
            dir,
            "the module layer is not a Wasm binary module (no \\0asm magic)",
        ));
    }
    Ok(PulledModule {
        wasm_digest: sha256_digest(&wasm),
        wasm,
        manifest_digest: digest,
        format,
        config_media_type: manifest.config.media_type.clone(),
        layer_media_types: layer_types,
        annotations: manifest.annotations.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a blob into a layout by hand and returns its digest.
    fn put(dir: &Path, bytes: &[u8]) -> String {
        let d = sha256_digest(bytes);
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
        d
    }

    fn layout(dir: &Path, wasm: &[u8], layer_type: &str) -> String {
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let layer = put(dir, wasm);
        let config = put(dir, b"{}");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::WASM_CONFIG_V0, "digest": config, "size": 2},
            "layers": [{"mediaType": layer_type, "digest": layer, "size": wasm.len()}],
            "annotations": {"org.opencontainers.image.title": "f.wasm"}
        }))
        .unwrap();
        let m = put(dir, &manifest);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": media::OCI_MANIFEST, "digest": m, "size": manifest.len(),
                           "annotations": {media::ANNOTATION_REF_NAME: "v1"}}]
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        m
    }

    #[test]
    fn parses_layout_references() {
        let r = LayoutRef::parse(Path::new("/no/such/dir:v1"));
        assert_eq!(
            (r.dir.as_path(), r.tag.as_deref()),
            (Path::new("/no/such/dir"), Some("v1"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = LayoutRef::parse(Path::new(&format!("/x/y@{d}")));
        assert_eq!(
            (r.dir.as_path(), r.digest.as_deref()),
            (Path::new("/x/y"), Some(d.as_str()))
        );
        let r = LayoutRef::parse(Path::new("/a:b/c"));
        assert_eq!((r.dir.as_path(), r.tag), (Path::new("/a:b/c"), None));
    }

    #[test]
    fn reads_a_module_by_tag_digest_or_alone() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = b"\0asm\x01\0\0\0";
        let m = layout(dir.path(), wasm, media::WASM_LAYER);
        let by_tag = read(&LayoutRef::parse(Path::new(&format!(
            "{}:v1",
            dir.path().display()
        ))))
        .unwrap();
        assert_eq!(by_tag.wasm, wasm);
        assert_eq!(by_tag.manifest_digest, m);
        assert_eq!(by_tag.format, ArtifactFormat::CncfWasm);
        assert_eq!(
            by_tag.annotations["org.opencontainers.image.title"],
            "f.wasm"
        );
        let alone = read(&LayoutRef::parse(dir.path())).unwrap();
        assert_eq!(alone.wasm_digest, sha256_digest(wasm));
        let by_digest = read(&LayoutRef {
            dir: dir.path().to_path_buf(),
            tag: None,
            digest: Some(m),
        })
        .unwrap();
        assert_eq!(by_digest.wasm, wasm);
        let missing = read(&LayoutRef {
            dir: dir.path().to_path_buf(),
            tag: Some("v2".into()),
            digest: None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("no image \"v2\"") && missing.contains("[v1]"),
            "{missing}"
        );
    }

    #[test]
    fn refuses_tampered_blobs_and_foreign_media_types() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = b"\0asm\x01\0\0\0";
        layout(dir.path(), wasm, "text/plain");
        let e = read(&LayoutRef::parse(dir.path())).unwrap_err().to_string();
        assert!(
            e.contains("text/plain") && e.contains(media::WASM_CONFIG_V0),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path(), wasm, media::WASM_LAYER);
        let layer = dir
            .path()
            .join("blobs/sha256")
            .join(&sha256_digest(wasm)[7..]);
        std::fs::write(&layer, b"\0asm tampered").unwrap();
        let e = read(&LayoutRef::parse(dir.path())).unwrap_err().to_string();
        assert!(e.contains("digest mismatch"), "{e}");
        let e = read(&LayoutRef::parse(&dir.path().join("nope")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an OCI image layout"), "{e}");
    }
}
