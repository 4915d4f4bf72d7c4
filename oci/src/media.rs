//! Media types, and telling which Wasm image format a manifest is.

use std::io::Read;

/// CNCF Wasm OCI artifact: config media type.
pub const WASM_CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";
/// CNCF Wasm OCI artifact: the module layer.
pub const WASM_LAYER: &str = "application/wasm";
/// Istio's OCI variant: the module layer.
pub const ISTIO_WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// Istio's OCI variant: config media type.
pub const ISTIO_WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Layer media types of a tar (maybe gzipped) filesystem layer.
pub const TAR_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// Standard annotation keys.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Which Wasm image format a manifest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ArtifactFormat {
    /// The CNCF Wasm OCI artifact (`application/wasm` layer).
    CncfWasm,
    /// Istio's OCI variant (`application/vnd.module.wasm.content.layer.v1+wasm`).
    IstioOci,
    /// Istio's Docker-compatible variant: one tar/tar.gz layer holding `plugin.wasm`.
    DockerCompat,
}

impl std::fmt::Display for ArtifactFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArtifactFormat::CncfWasm => "CNCF Wasm artifact",
            ArtifactFormat::IstioOci => "Istio Wasm OCI image",
            ArtifactFormat::DockerCompat => {
                "Docker-compatible Wasm image (plugin.wasm in a tar layer)"
            }
        })
    }
}

/// Detects the format from the layer media types (config media types vary
/// between producers and are not needed to tell the formats apart);
/// returns it with the index of the layer holding the module, or `None`
/// when the manifest is none of the three formats.
pub fn detect(layer_media_types: &[&str]) -> Option<(ArtifactFormat, usize)> {
    if let Some(i) = layer_media_types.iter().position(|m| *m == WASM_LAYER) {
        return Some((ArtifactFormat::CncfWasm, i));
    }
    if let Some(i) = layer_media_types
        .iter()
        .position(|m| *m == ISTIO_WASM_LAYER)
    {
        return Some((ArtifactFormat::IstioOci, i));
    }
    if let [only] = layer_media_types
        && TAR_LAYERS.contains(only)
    {
        return Some((ArtifactFormat::DockerCompat, 0));
    }
    None
}

/// Whether bytes start with the Wasm binary magic `\0asm`.
pub fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

/// Reads `plugin.wasm` out of a tar layer, gzipped or not (detected from
/// the gzip magic).
pub fn extract_plugin_wasm(layer: &[u8]) -> Result<Vec<u8>, String> {
    let reader: Box<dyn Read + '_> = if layer.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(layer))
    } else {
        Box::new(layer)
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| format!("layer is not a tar archive: {e}"))?;
    let mut names = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("layer is not a valid tar archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("tar entry with a bad path: {e}"))?
            .into_owned();
        let clean: Vec<_> = path
            .components()
            .filter(|c| {
                !matches!(
                    c,
                    std::path::Component::CurDir | std::path::Component::RootDir
                )
            })
            .collect();
        if clean.len() == 1 && clean[0].as_os_str() == "plugin.wasm" {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read plugin.wasm from the layer: {e}"))?;
            return Ok(bytes);
        }
        if names.len() < 10 {
            names.push(path.display().to_string());
        }
    }
    Err(format!(
        "the tar layer holds no plugin.wasm at its root (found: [{}])",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(name: &str, data: &[u8], gzip: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        let raw = b.into_inner().unwrap();
        if !gzip {
            return raw;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn detects_each_format() {
        assert_eq!(detect(&[WASM_LAYER]), Some((ArtifactFormat::CncfWasm, 0)));
        assert_eq!(
            detect(&["x/other", ISTIO_WASM_LAYER]),
            Some((ArtifactFormat::IstioOci, 1))
        );
        assert_eq!(
            detect(&["application/vnd.docker.image.rootfs.diff.tar.gzip"]),
            Some((ArtifactFormat::DockerCompat, 0))
        );
        assert_eq!(
            detect(&[
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar+gzip"
            ]),
            None,
            "a multi-layer container image is not a plugin"
        );
        assert_eq!(detect(&["text/plain"]), None);
        assert_eq!(detect(&[]), None);
    }

    #[test]
    fn extracts_plugin_wasm_from_tar_and_tar_gz() {
        let wasm = b"\0asm\x01\0\0\0";
        assert_eq!(
            extract_plugin_wasm(&tar_with("plugin.wasm", wasm, false)).unwrap(),
            wasm
        );
        assert_eq!(
            extract_plugin_wasm(&tar_with("./plugin.wasm", wasm, true)).unwrap(),
            wasm
        );
        let e = extract_plugin_wasm(&tar_with("other.wasm", wasm, true)).unwrap_err();
        assert!(
            e.contains("no plugin.wasm") && e.contains("other.wasm"),
            "{e}"
        );
        let e = extract_plugin_wasm(&tar_with("dir/plugin.wasm", wasm, false)).unwrap_err();
        assert!(e.contains("no plugin.wasm"), "{e}");
        assert!(is_wasm(wasm));
        assert!(!is_wasm(b"PK\x03\x04"));
    }
}
