//! Talking to OCI registries (on `oci-client`): push, pull and inspect
//! Wasm modules, with credentials, retries and a total timeout.

use crate::auth::{Credentials, DockerConfig};
use crate::error::FetchError;
use crate::media::{self, ArtifactFormat};
use crate::reference::ImageRef;
use crate::sha256_digest;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How to reach registries.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// weft.yaml's `registries` (plain HTTP, credentials, CA per host).
    pub registries: Vec<weft_config::Registry>,
    /// Docker `config.json` (None: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// More hosts to speak plain HTTP to (`--plain-http`).
    pub plain_http_hosts: Vec<String>,
    /// Attempts per registry call (transport errors, 429 and 5xx are retried).
    pub attempts: u32,
    /// First retry delay; doubled after each attempt.
    pub backoff: Duration,
    /// Upper bound of one operation, retries included.
    pub total_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            registries: Vec::new(),
            docker_config: None,
            plain_http_hosts: Vec::new(),
            attempts: 3,
            backoff: Duration::from_millis(200),
            total_timeout: Duration::from_secs(120),
        }
    }
}

/// The result of a push.
#[derive(Clone, Debug)]
pub struct PushOutcome {
    /// `sha256:…` of the manifest (what `@digest` references name).
    pub manifest_digest: String,
    /// `sha256:…` of the Wasm module.
    pub wasm_digest: String,
    /// The reference pinned to the manifest digest.
    pub pinned: String,
}

/// A module pulled from a registry.
#[derive(Clone, Debug)]
pub struct PulledModule {
    pub wasm: Vec<u8>,
    pub wasm_digest: String,
    pub manifest_digest: String,
    pub format: ArtifactFormat,
    pub config_media_type: String,
    pub layer_media_types: Vec<String>,
    pub annotations: BTreeMap<String, String>,
}

/// One layer of an inspected manifest.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    pub annotations: BTreeMap<String, String>,
}

/// What `weft inspect` shows.
#[derive(Clone, Debug)]
pub struct Inspection {
    pub reference: String,
    /// The index digest when the reference named a multi-platform index.
    pub index_digest: Option<String>,
    pub manifest_digest: String,
    pub media_type: String,
    pub config_media_type: String,
    pub config_digest: String,
    pub layers: Vec<LayerInfo>,
    pub annotations: BTreeMap<String, String>,
    /// Manifest + config + layers, in bytes.
    pub total_size: i64,
    /// Which Wasm format this is (None: not a Wasm image).
    pub format: Option<ArtifactFormat>,
    pub manifest_json: String,
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "reference:    {}", self.reference)?;
        if let Some(i) = &self.index_digest {
            writeln!(f, "index:        {i}")?;
        }
        writeln!(f, "digest:       {}", self.manifest_digest)?;
        writeln!(f, "media type:   {}", self.media_type)?;
        match self.format {
            Some(fmt_) => writeln!(f, "format:       {fmt_}")?,
            None => writeln!(f, "format:       not a Wasm module image")?,
        }
        writeln!(f, "size:         {} bytes", self.total_size)?;
        writeln!(
            f,
            "config:       {} {}",
            self.config_media_type, self.config_digest
        )?;
        writeln!(f, "layers:")?;
        for l in &self.layers {
            writeln!(f, "  - {} {} ({} bytes)", l.media_type, l.digest, l.size)?;
            for (k, v) in &l.annotations {
                writeln!(f, "      {k}: {v}")?;
            }
        }
        writeln!(f, "annotations:")?;
        for (k, v) in &self.annotations {
            writeln!(f, "  {k}: {v}")?;
        }
        Ok(())
    }
}

/// A registry client: one per settings; cheap to share by reference.
pub struct RegistryClient {
    client: Client,
    settings: ClientSettings,
    docker: DockerConfig,
    blob_downloads: AtomicU64,
}

/// Picks the Wasm entry of a multi-platform index: platform `wasi` /
/// `wasm`, else the only entry.
pub(crate) fn wasm_platform_resolver(entries: &[ImageIndexEntry]) -> Option<String> {
    entries
        .iter()
        .find(|e| {
            e.platform.as_ref().is_some_and(|p| {
                p.os.to_string().starts_with("wasi") || p.architecture.to_string() == "wasm"
            })
        })
        .or(match entries {
            [only] => Some(only),
            _ => None,
        })
        .map(|e| e.digest.clone())
}

const MANIFEST_TYPES: &[&str] = &[
    media::OCI_MANIFEST,
    media::DOCKER_MANIFEST,
    media::OCI_INDEX,
    media::DOCKER_MANIFEST_LIST,
];

impl RegistryClient {
    /// Builds a client; reads the Docker config and every `ca` file now.
    pub fn new(settings: ClientSettings) -> Result<RegistryClient, FetchError> {
        crate::install_crypto_provider();
        let docker = DockerConfig::load(settings.docker_config.as_deref())?;
        let mut plain: Vec<String> = settings.plain_http_hosts.clone();
        plain.extend(
            settings
                .registries
                .iter()
                .filter(|r| r.plain_http)
                .map(|r| r.host.clone()),
        );
        let mut roots = Vec::new();
        for r in &settings.registries {
            if let Some(ca) = &r.ca {
                let data = std::fs::read(ca).map_err(|source| FetchError::Io {
                    what: "registry CA file",
                    path: ca.clone(),
                    source,
                })?;
                roots.push(Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                });
            }
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            extra_root_certificates: roots,
            platform_resolver: Some(Box::new(wasm_platform_resolver)),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("weft/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let client = Client::try_from(config)
            .map_err(|e| FetchError::Settings(format!("cannot build the registry client: {e}")))?;
        Ok(RegistryClient {
            client,
            settings,
            docker,
            blob_downloads: AtomicU64::new(0),
        })
    }

    /// Blobs downloaded so far by this client.
    pub fn blob_downloads(&self) -> u64 {
        self.blob_downloads.load(Ordering::Relaxed)
    }

    /// The credentials for a registry host: the `registries` entry, then
    /// the Docker config, else none.
    pub fn credentials_for(&self, host: &str) -> Result<Option<Credentials>, FetchError> {
        if let Some(r) = self.settings.registries.iter().find(|r| r.host == host)
            && let (Some(user), Some(file)) = (&r.username, &r.password_file)
        {
            let text = std::fs::read_to_string(file).map_err(|source| FetchError::Io {
                what: "registry password file",
                path: file.clone(),
                source,
            })?;
            let password = text.lines().next().unwrap_or("").trim_end().to_owned();
            return Ok(Some(Credentials {
                username: user.clone(),
                password,
            }));
        }
        Ok(self.docker.credentials_for(host).cloned())
    }

    fn auth(&self, r: &ImageRef) -> Result<RegistryAuth, FetchError> {
        Ok(match self.credentials_for(r.registry())? {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        })
    }

    /// Runs `op` with retries (transport errors, 429, 5xx) and backoff,
    /// within the total timeout.
    async fn retry<T>(
        &self,
        r: &ImageRef,
        mut op: impl AsyncFnMut() -> Result<T, OciDistributionError>,
    ) -> Result<T, FetchError> {
        let reference = r.to_string();
        let attempts = self.settings.attempts.max(1);
        let body = async {
            let mut delay = self.settings.backoff;
            let mut attempt = 1;
            loop {
                match op().await {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        let (err, transient) = classify(r, e);
                        if !transient || attempt >= attempts {
                            return Err(err);
                        }
                        tracing::debug!(%reference, attempt, error = %err, "registry call failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        attempt += 1;
                    }
                }
            }
        };
        match tokio::time::timeout(self.settings.total_timeout, body).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                reference,
                after: self.settings.total_timeout,
            }),
        }
    }

    /// Pushes a Wasm module as a CNCF Wasm artifact. `annotations` are
    /// added to (and override) the defaults: title (`title`), version (the
    /// tag) and created (now).
    pub async fn push_wasm(
        &self,
        r: &ImageRef,
        wasm: &[u8],
        title: Option<&str>,
        extra_annotations: &BTreeMap<String, String>,
        progress: &ProgressBar,
    ) -> Result<PushOutcome, FetchError> {
        if !media::is_wasm(wasm) {
            return Err(FetchError::Format {
                reference: r.to_string(),
                reason: "the file is not a Wasm binary module (no \\0asm magic)".to_owned(),
            });
        }
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let wasm_digest = sha256_digest(wasm);
        let config = serde_json::json!({
            "created": created,
            "architecture": "wasm",
            "os": "wasip1",
            "layerDigests": [wasm_digest],
        });
        let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
        let config_digest = sha256_digest(&config_bytes);
        let mut annotations = BTreeMap::new();
        annotations.insert(media::ANNOTATION_CREATED.to_owned(), created);
        if let Some(t) = r.tag().filter(|_| r.digest().is_none()) {
            annotations.insert(media::ANNOTATION_VERSION.to_owned(), t.to_owned());
        }
        if let Some(t) = title {
            annotations.insert(media::ANNOTATION_TITLE.to_owned(), t.to_owned());
        }
        annotations.extend(extra_annotations.clone());
        let layer_annotations =
            title.map(|t| BTreeMap::from([(media::ANNOTATION_TITLE.to_owned(), t.to_owned())]));
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_owned()),
            config: OciDescriptor {
                media_type: media::WASM_CONFIG_V0.to_owned(),
                digest: config_digest.clone(),
                size: config_bytes.len() as i64,
                ..Default::default()
            },
            layers: vec![OciDescriptor {
                media_type: media::WASM_LAYER.to_owned(),
                digest: wasm_digest.clone(),
                size: wasm.len() as i64,
                annotations: layer_annotations,
                ..Default::default()
            }],
            subject: None,
            artifact_type: None,
            annotations: Some(annotations),
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        let manifest_digest = sha256_digest(&manifest_bytes);
        progress.set_length((wasm.len() + config_bytes.len() + manifest_bytes.len()) as u64);
        self.push_blobs_and_manifest(
            r,
            &[
                (wasm.to_vec(), wasm_digest.clone()),
                (config_bytes, config_digest),
            ],
            &manifest_bytes,
            media::OCI_MANIFEST,
            progress,
        )
        .await?;
        Ok(PushOutcome {
            pinned: r.with_digest(&manifest_digest).to_string(),
            manifest_digest,
            wasm_digest,
        })
    }

    /// Pushes blobs (bytes with their digests) and then a manifest (raw
    /// JSON of media type `manifest_media_type`); returns the manifest digest.
    pub async fn push_blobs_and_manifest(
        &self,
        r: &ImageRef,
        blobs: &[(Vec<u8>, String)],
        manifest: &[u8],
        manifest_media_type: &str,
        progress: &ProgressBar,
    ) -> Result<String, FetchError> {
        let auth = self.auth(r)?;
        let oci = r.oci();
        self.retry(r, async || {
            self.client.auth(oci, &auth, RegistryOperation::Push).await
        })
        .await?;
        for (data, digest) in blobs {
            let exists = self
                .retry(r, async || self.client.blob_exists(oci, digest).await)
                .await
                .unwrap_or(false);
            if exists {
                progress.inc(data.len() as u64);
            } else {
                self.push_blob(r, data, digest, progress).await?;
            }
        }
        let content_type =
            http::HeaderValue::from_str(manifest_media_type).map_err(|_| FetchError::Format {
                reference: r.to_string(),
                reason: format!("bad manifest media type {manifest_media_type:?}"),
            })?;
        self.retry(r, async || {
            self.client
                .push_manifest_raw(oci, manifest.to_vec(), content_type.clone())
                .await
        })
        .await?;
        progress.inc(manifest.len() as u64);
        Ok(sha256_digest(manifest))
    }

    /// Uploads one blob in chunks, advancing `progress` as they go.
    async fn push_blob(
        &self,
        r: &ImageRef,
        data: &[u8],
        digest: &str,
        progress: &ProgressBar,
    ) -> Result<(), FetchError> {
        const CHUNK: usize = 256 << 10;
        let oci = r.oci();
        let data = bytes::Bytes::copy_from_slice(data);
        let start = progress.position();
        self.retry(r, async || {
            progress.set_position(start);
            if data.is_empty() {
                return self
                    .client
                    .push_blob(oci, data.clone(), digest)
                    .await
                    .map(drop);
            }
            let chunks: Vec<bytes::Bytes> = (0..data.len())
                .step_by(CHUNK)
                .map(|i| data.slice(i..(i + CHUNK).min(data.len())))
                .collect();
            let bar = progress.clone();
            let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
                bar.inc(c.len() as u64);
                Ok(c)
            }));
            self.client
                .push_blob_stream(oci, stream, digest, Some(data.len() as u64))
                .await
                .map(drop)
        })
        .await
    }

    /// Resolves a reference to its image manifest (through an index when
    /// there is one) and the manifest's digest.
    pub async fn resolve(&self, r: &ImageRef) -> Result<(OciImageManifest, String), FetchError> {
        let auth = self.auth(r)?;
        let (manifest, digest) = self
            .retry(r, async || {
                self.client.pull_image_manifest(r.oci(), &auth).await
            })
            .await?;
        Ok((manifest, digest))
    }

    /// Pulls a module: resolves the manifest, detects its format, downloads
    /// and verifies the module layer.
    pub async fn pull(
        &self,
        r: &ImageRef,
        progress: &ProgressBar,
    ) -> Result<PulledModule, FetchError> {
        let (manifest, digest) = self.resolve(r).await?;
        self.pull_module(r, &manifest, &digest, progress).await
    }

    /// Downloads the module of an already resolved manifest.
    pub async fn pull_module(
        &self,
        r: &ImageRef,
        manifest: &OciImageManifest,
        manifest_digest: &str,
        progress: &ProgressBar,
    ) -> Result<PulledModule, FetchError> {
        let layer_types: Vec<&str> = manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        let Some((format, index)) = media::detect(&layer_types) else {
            return Err(FetchError::UnsupportedMediaTypes {
                reference: r.to_string(),
                config: manifest.config.media_type.clone(),
                layers: layer_types.iter().map(|s| s.to_string()).collect(),
            });
        };
        let layer = &manifest.layers[index];
        progress.set_length(layer.size.max(0) as u64);
        let blob = self.pull_blob(r, layer, progress).await?;
        let wasm = match format {
            ArtifactFormat::DockerCompat => {
                media::extract_plugin_wasm(&blob).map_err(|reason| FetchError::Format {
                    reference: r.to_string(),
                    reason,
                })?
            }
            _ => blob,
        };
        if !media::is_wasm(&wasm) {
            return Err(FetchError::Format {
                reference: r.to_string(),
                reason: format!("the {format} layer is not a Wasm binary module (no \\0asm magic)"),
            });
        }
        Ok(PulledModule {
            wasm_digest: sha256_digest(&wasm),
            wasm,
            manifest_digest: manifest_digest.to_owned(),
            format,
            config_media_type: manifest.config.media_type.clone(),
            layer_media_types: layer_types.iter().map(|s| s.to_string()).collect(),
            annotations: manifest.annotations.clone().unwrap_or_default(),
        })
    }

    async fn pull_blob(
        &self,
        r: &ImageRef,
        layer: &OciDescriptor,
        progress: &ProgressBar,
    ) -> Result<Vec<u8>, FetchError> {
        let oci = r.oci();
        let bytes = self
            .retry(r, async || {
                progress.set_position(0);
                let mut stream = self.client.pull_blob_stream(oci, layer).await?;
                let mut out = Vec::with_capacity(layer.size.clamp(0, 64 << 20) as usize);
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    progress.inc(chunk.len() as u64);
                    out.extend_from_slice(&chunk);
                }
                Ok(out)
            })
            .await?;
        self.blob_downloads.fetch_add(1, Ordering::Relaxed);
        let got = sha256_digest(&bytes);
        if got != layer.digest {
            return Err(FetchError::DigestMismatch {
                what: format!("{r}: layer"),
                expected: layer.digest.clone(),
                actual: got,
            });
        }
        Ok(bytes)
    }

    /// Describes a reference: manifest, media types, sizes, annotations.
    pub async fn inspect(&self, r: &ImageRef) -> Result<Inspection, FetchError> {
        let auth = self.auth(r)?;
        let (raw, digest) = self
            .retry(r, async || {
                self.client
                    .pull_manifest_raw(r.oci(), &auth, MANIFEST_TYPES)
                    .await
            })
            .await?;
        let value: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| FetchError::Format {
                reference: r.to_string(),
                reason: format!("the manifest is not JSON: {e}"),
            })?;
        let media_type = value["mediaType"].as_str().unwrap_or("").to_owned();
        let (index_digest, raw, digest) = if media_type == media::OCI_INDEX
            || media_type == media::DOCKER_MANIFEST_LIST
        {
            let entries: Vec<ImageIndexEntry> = serde_json::from_value(value["manifests"].clone())
                .map_err(|e| FetchError::Format {
                    reference: r.to_string(),
                    reason: format!("bad index: {e}"),
                })?;
            let chosen = wasm_platform_resolver(&entries).ok_or_else(|| FetchError::Format {
                reference: r.to_string(),
                reason: format!(
                    "the index has {} entries and none for platform wasi/wasm",
                    entries.len()
                ),
            })?;
            let pinned = r.with_digest(&chosen);
            let (raw2, digest2) = self
                .retry(r, async || {
                    self.client
                        .pull_manifest_raw(pinned.oci(), &auth, MANIFEST_TYPES)
                        .await
                })
                .await?;
            (Some(digest), raw2, digest2)
        } else {
            (None, raw, digest)
        };
        let manifest: OciImageManifest =
            serde_json::from_slice(&raw).map_err(|e| FetchError::Format {
                reference: r.to_string(),
                reason: format!("bad image manifest: {e}"),
            })?;
        let value: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        let layer_types: Vec<&str> = manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        Ok(Inspection {
            reference: r.to_string(),
            index_digest,
            manifest_digest: digest,
            media_type: value["mediaType"]
                .as_str()
                .unwrap_or(media::OCI_MANIFEST)
                .to_owned(),
            config_media_type: manifest.config.media_type.clone(),
            config_digest: manifest.config.digest.clone(),
            format: media::detect(&layer_types).map(|f| f.0),
            layers: manifest
                .layers
                .iter()
                .map(|l| LayerInfo {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                    annotations: l.annotations.clone().unwrap_or_default(),
                })
                .collect(),
            annotations: manifest.annotations.clone().unwrap_or_default(),
            total_size: raw.len() as i64
                + manifest.config.size
                + manifest.layers.iter().map(|l| l.size).sum::<i64>(),
            manifest_json: String::from_utf8_lossy(&raw).into_owned(),
        })
    }
}

/// Maps an `oci-client` error to ours, and says whether a retry may help.
fn classify(r: &ImageRef, e: OciDistributionError) -> (FetchError, bool) {
    let reference = r.to_string();
    let registry = r.registry().to_owned();
    match e {
        OciDistributionError::AuthenticationFailure(reason) => {
            (FetchError::Auth { registry, reason }, false)
        }
        OciDistributionError::UnauthorizedError { url } => (
            FetchError::Auth {
                registry,
                reason: format!("401 Unauthorized from {url} (check the credentials)"),
            },
            false,
        ),
        OciDistributionError::RegistryError { envelope, url } => {
            let denied = envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
            let busy = envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Toomanyrequests));
            if denied {
                (
                    FetchError::Auth {
                        registry,
                        reason: format!("{envelope} ({url})"),
                    },
                    false,
                )
            } else {
                (
                    FetchError::Registry {
                        reference,
                        reason: format!("{envelope} ({url})"),
                    },
                    busy,
                )
            }
        }
        OciDistributionError::ImageManifestNotFoundError(m) => (
            FetchError::Registry {
                reference,
                reason: format!("manifest not found: {m}"),
            },
            false,
        ),
        OciDistributionError::ServerError { code, url, message } => {
            let err = if code == 401 || code == 403 {
                FetchError::Auth {
                    registry,
                    reason: format!("HTTP {code} from {url}: {message}"),
                }
            } else {
                FetchError::Registry {
                    reference,
                    reason: format!("HTTP {code} from {url}: {}", message.trim()),
                }
            };
            (err, code >= 500 || code == 429)
        }
        OciDistributionError::RequestError(e) => {
            let mut reason = error_chain(&e);
            if reason.contains("InvalidContentType") {
                reason.push_str(&format!(
                    " (the registry seems to speak plain HTTP: mark {registry} plain_http in registries, or pass --plain-http)"
                ));
            }
            if e.is_connect() || e.is_timeout() || e.is_request() {
                (FetchError::Unreachable { reference, reason }, true)
            } else {
                (FetchError::Registry { reference, reason }, true)
            }
        }
        OciDistributionError::IoError(e) => (
            FetchError::Unreachable {
                reference,
                reason: e.to_string(),
            },
            true,
        ),
        OciDistributionError::DigestError(e) => (
            FetchError::Format {
                reference,
                reason: format!("digest verification failed: {e}"),
            },
            false,
        ),
        other => (
            FetchError::Registry {
                reference,
                reason: other.to_string(),
            },
            false,
        ),
    }
}

/// An error with its sources, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::manifest::Platform;

    fn entry(d: &str, os: &str, arch: &str) -> ImageIndexEntry {
        ImageIndexEntry {
            media_type: media::OCI_MANIFEST.into(),
            digest: d.into(),
            size: 1,
            platform: Some(
                serde_json::from_value::<Platform>(
                    serde_json::json!({"os": os, "architecture": arch}),
                )
                .unwrap(),
            ),
            annotations: None,
            artifact_type: None,
        }
    }

    #[test]
    fn picks_the_wasm_entry_of_an_index() {
        let e = [
            entry("a", "linux", "amd64"),
            entry("b", "wasip1", "wasm"),
            entry("c", "linux", "arm64"),
        ];
        assert_eq!(wasm_platform_resolver(&e).as_deref(), Some("b"));
        let only = [entry("z", "linux", "amd64")];
        assert_eq!(wasm_platform_resolver(&only).as_deref(), Some("z"));
        let none = [entry("a", "linux", "amd64"), entry("c", "linux", "arm64")];
        assert_eq!(wasm_platform_resolver(&none), None);
    }
}
