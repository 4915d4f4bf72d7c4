//! The proxy's entry point: fetch a plugin's module from its source,
//! verify it, and cache it.

use crate::cache::{Cache, CacheOptions, ManifestRecord, RefRecord, unix_now};
use crate::error::FetchError;
use crate::layout::{self, LayoutRef};
use crate::reference::ImageRef;
use crate::registry::{ClientSettings, PulledModule, RegistryClient, error_chain};
use crate::sha256_digest;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use weft_config::{ImagePullPolicy, ModuleSource};

/// How a [`ModuleFetcher`] works.
#[derive(Clone, Debug)]
pub struct FetchSettings {
    /// The module cache's directory (None: [`crate::default_cache_dir`]`/oci`).
    pub cache_dir: Option<PathBuf>,
    pub cache: CacheOptions,
    /// weft.yaml's `registries`.
    pub registries: Vec<weft_config::Registry>,
    /// Docker `config.json` (None: `$DOCKER_CONFIG`, else `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// Attempts, backoff and total timeout of registry and HTTP calls.
    pub attempts: u32,
    pub backoff: Duration,
    pub total_timeout: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        let c = ClientSettings::default();
        FetchSettings {
            cache_dir: None,
            cache: CacheOptions::default(),
            registries: Vec::new(),
            docker_config: None,
            attempts: c.attempts,
            backoff: c.backoff,
            total_timeout: c.total_timeout,
        }
    }
}

impl FetchSettings {
    /// Settings for a configuration: its `registries`, and the module cache
    /// under `cache_dir` (the `--cache-dir` override, else the config's
    /// `cache_dir`, else the default) + `/oci`.
    pub fn from_config(config: &weft_config::Config, cache_dir: Option<PathBuf>) -> FetchSettings {
        FetchSettings {
            cache_dir: cache_dir
                .or_else(|| config.cache_dir.clone())
                .map(|d| d.join("oci")),
            registries: config.registries.clone(),
            ..FetchSettings::default()
        }
    }

    /// The module cache directory these settings use.
    pub fn module_cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| crate::default_cache_dir().join("oci"))
    }
}

/// A fetched module.
#[derive(Clone, Debug)]
pub struct FetchedModule {
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// Where it came from (`oci://…@sha256:…`, `file://…`, …) for logs and `/plugins`.
    pub source_desc: String,
    /// Served from the cache without downloading.
    pub from_cache: bool,
    /// Something the operator should know, e.g. that the registry was
    /// unreachable and a cached copy is served.
    pub note: Option<String>,
}

/// Counters of a fetcher (since it was created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Module blobs downloaded from registries and HTTP servers.
    pub downloads: u64,
    /// Manifests resolved at a registry.
    pub resolutions: u64,
    /// Fetches served from the cache without asking the registry.
    pub cache_hits: u64,
    /// Failed pulls served from the cache instead.
    pub fallbacks: u64,
}

/// Fetches modules; clone it freely (it is an `Arc`). Its futures may run
/// on a current-thread runtime.
#[derive(Clone)]
pub struct ModuleFetcher {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache,
    registry: RegistryClient,
    http: reqwest::Client,
    settings: FetchSettings,
    inflight: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    http_downloads: AtomicU64,
    resolutions: AtomicU64,
    cache_hits: AtomicU64,
    fallbacks: AtomicU64,
}

/// `sha256` as written in the config (hex, maybe `sha256:`-prefixed) → hex.
fn pin_hex(pin: &str) -> String {
    pin.strip_prefix("sha256:")
        .unwrap_or(pin)
        .to_ascii_lowercase()
}

fn check_pin(source_desc: &str, bytes: &[u8], pin: Option<&str>) -> Result<String, FetchError> {
    let digest = sha256_digest(bytes);
    if let Some(p) = pin {
        let want = pin_hex(p);
        if digest[7..] != want {
            return Err(FetchError::PinMismatch {
                source_desc: source_desc.to_owned(),
                expected: format!("sha256:{want}"),
                actual: digest,
            });
        }
    }
    Ok(digest)
}

fn format_time(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{unix}s after the epoch"))
}

impl ModuleFetcher {
    /// Opens the cache and builds the clients.
    pub fn new(settings: FetchSettings) -> Result<ModuleFetcher, FetchError> {
        crate::install_crypto_provider();
        let cache = Cache::open(settings.module_cache_dir(), settings.cache.clone())?;
        let registry = RegistryClient::new(ClientSettings {
            registries: settings.registries.clone(),
            docker_config: settings.docker_config.clone(),
            plain_http_hosts: Vec::new(),
            attempts: settings.attempts,
            backoff: settings.backoff,
            total_timeout: settings.total_timeout,
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(settings.total_timeout)
            .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Settings(format!("cannot build the HTTP client: {e}")))?;
        Ok(ModuleFetcher {
            inner: Arc::new(Inner {
                cache,
                registry,
                http,
                settings,
                inflight: parking_lot::Mutex::new(HashMap::new()),
                http_downloads: AtomicU64::new(0),
                resolutions: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
            }),
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    pub fn stats(&self) -> FetchStats {
        let i = &self.inner;
        FetchStats {
            downloads: i.registry.blob_downloads() + i.http_downloads.load(Ordering::Relaxed),
            resolutions: i.resolutions.load(Ordering::Relaxed),
            cache_hits: i.cache_hits.load(Ordering::Relaxed),
            fallbacks: i.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Fetches a plugin's module (its `url`, `sha256` and `imagePullPolicy`).
    pub async fn fetch_plugin(
        &self,
        spec: &weft_config::PluginSpec,
    ) -> Result<FetchedModule, FetchError> {
        self.fetch(
            &spec.source(),
            spec.sha256.as_deref(),
            spec.image_pull_policy,
        )
        .await
    }

    /// Fetches a module from its source, checks the `sha256` pin (hex of
    /// the Wasm bytes), and caches remote modules. See the crate doc for the
    /// pull policies and the fallback to the cache.
    pub async fn fetch(
        &self,
        source: &ModuleSource,
        sha256: Option<&str>,
        policy: ImagePullPolicy,
    ) -> Result<FetchedModule, FetchError> {
        match source {
            ModuleSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| FetchError::Io {
                    what: "module file",
                    path: path.clone(),
                    source,
                })?;
                let desc = format!("file://{}", path.display());
                let digest = check_pin(&desc, &bytes, sha256)?;
                Ok(FetchedModule {
                    bytes,
                    digest,
                    source_desc: desc,
                    from_cache: false,
                    note: None,
                })
            }
            ModuleSource::OciLayout(path) => {
                let r = LayoutRef::parse(path);
                let pulled = layout::read(&r)?;
                let desc = format!("{r} ({})", pulled.manifest_digest);
                let digest = check_pin(&desc, &pulled.wasm, sha256)?;
                Ok(FetchedModule {
                    bytes: pulled.wasm,
                    digest,
                    source_desc: desc,
                    from_cache: false,
                    note: None,
                })
            }
            ModuleSource::Http(url) => {
                let Some(pin) = sha256 else {
                    return Err(FetchError::MissingSha256 { url: url.clone() });
                };
                self.coalesced(url, self.fetch_http(url, pin, policy)).await
            }
            ModuleSource::Oci(text) => {
                let r = ImageRef::parse(text)?;
                self.coalesced(&r.to_string(), self.fetch_oci(&r, sha256, policy))
                    .await
            }
            ModuleSource::Unsupported(scheme) => Err(FetchError::Unsupported(format!(
                "url scheme \"{scheme}://\" (use file://, oci://, oci-layout://, http:// or https://)"
            ))),
        }
    }

    /// Runs `work` while holding the key's lock: concurrent fetches of one
    /// reference wait for the first and then find the cache filled.
    async fn coalesced<T>(&self, key: &str, work: impl Future<Output = T>) -> T {
        let lock = {
            let mut map = self.inner.inflight.lock();
            map.entry(key.to_owned()).or_default().clone()
        };
        let result = {
            let _guard = lock.lock().await;
            work.await
        };
        let mut map = self.inner.inflight.lock();
        if Arc::strong_count(&lock) == 2 {
            map.remove(key);
        }
        result
    }

    fn cached_module(
        &self,
        desc: String,
        bytes: Vec<u8>,
        digest: String,
        note: Option<String>,
    ) -> FetchedModule {
        if note.is_none() {
            self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        FetchedModule {
            bytes,
            digest,
            source_desc: desc,
            from_cache: true,
            note,
        }
    }

    async fn fetch_oci(
        &self,
        r: &ImageRef,
        pin: Option<&str>,
        policy: ImagePullPolicy,
    ) -> Result<FetchedModule, FetchError> {
        let cache = &self.inner.cache;
        let key = r.to_string();
        let always = match policy {
            ImagePullPolicy::Always => true,
            ImagePullPolicy::IfNotPresent => false,
            ImagePullPolicy::Unspecified => r.is_latest(),
        };
        let cached = cache.get_ref(&key).unwrap_or_else(|e| {
            tracing::warn!(reference = %key, error = %e, "ignoring a corrupt cache record");
            None
        });
        if !always {
            if let Some(p) = pin {
                let digest = format!("sha256:{}", pin_hex(p));
                if let Some(bytes) = cache.get_blob(&digest)? {
                    return Ok(self.cached_module(
                        format!("oci://{key} ({digest})"),
                        bytes,
                        digest,
                        None,
                    ));
                }
            }
            if let Some(rec) = &cached {
                let fresh = r.digest().is_some()
                    || rec.is_fresh_at(cache.options().tag_ttl, SystemTime::now());
                if fresh && let Some(bytes) = cache.get_blob(&rec.wasm_digest)? {
                    let desc = format!("oci://{}", r.with_digest(&rec.manifest_digest));
                    let digest = check_pin(&desc, &bytes, pin)?;
                    return Ok(self.cached_module(desc, bytes, digest, None));
                }
            }
        }
        match self.pull_oci(r).await {
            Ok((wasm, wasm_digest, manifest_digest, downloaded)) => {
                let desc = format!("oci://{}", r.with_digest(&manifest_digest));
                let digest = check_pin(&desc, &wasm, pin)?;
                cache.put_ref(&RefRecord {
                    reference: key,
                    manifest_digest,
                    wasm_digest,
                    resolved_at: unix_now(),
                })?;
                Ok(FetchedModule {
                    bytes: wasm,
                    digest,
                    source_desc: desc,
                    from_cache: !downloaded,
                    note: None,
                })
            }
            Err(e) if e.is_remote_failure() => {
                let Some(rec) = cached else { return Err(e) };
                let Some(bytes) = cache.get_blob(&rec.wasm_digest)? else {
                    return Err(e);
                };
                let desc = format!("oci://{}", r.with_digest(&rec.manifest_digest));
                let digest = check_pin(&desc, &bytes, pin)?;
                let note = format!(
                    "{e}; serving cached {digest} (manifest {}) pulled at {}",
                    rec.manifest_digest,
                    format_time(rec.resolved_at)
                );
                tracing::warn!(reference = %r, "{note}");
                self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
                Ok(self.cached_module(desc, bytes, digest, Some(note)))
            }
            Err(e) => Err(e),
        }
    }

    /// Resolves the manifest and downloads the module unless the cache has
    /// it: (wasm, wasm digest, manifest digest, downloaded).
    async fn pull_oci(&self, r: &ImageRef) -> Result<(Vec<u8>, String, String, bool), FetchError> {
        let cache = &self.inner.cache;
        let (manifest, manifest_digest) = self.inner.registry.resolve(r).await?;
        self.inner.resolutions.fetch_add(1, Ordering::Relaxed);
        if let Ok(Some(rec)) = cache.get_manifest(&manifest_digest)
            && let Some(bytes) = cache.get_blob(&rec.wasm_digest)?
        {
            return Ok((bytes, rec.wasm_digest, manifest_digest, false));
        }
        let pulled: PulledModule = self
            .inner
            .registry
            .pull_module(r, &manifest, &manifest_digest, &ProgressBar::hidden())
            .await?;
        let wasm_digest = cache.put_blob(&pulled.wasm)?;
        cache.put_manifest(&ManifestRecord {
            manifest_digest: manifest_digest.clone(),
            format: pulled.format,
            config_media_type: pulled.config_media_type,
            layer_media_types: pulled.layer_media_types,
            wasm_digest: wasm_digest.clone(),
            annotations: pulled.annotations,
        })?;
        Ok((pulled.wasm, wasm_digest, manifest_digest, true))
    }

    async fn fetch_http(
        &self,
        url: &str,
        pin: &str,
        policy: ImagePullPolicy,
    ) -> Result<FetchedModule, FetchError> {
        let cache = &self.inner.cache;
        let digest = format!("sha256:{}", pin_hex(pin));
        let cached = cache.get_blob(&digest).ok().flatten();
        if policy != ImagePullPolicy::Always
            && let Some(bytes) = cached
        {
            return Ok(self.cached_module(url.to_owned(), bytes, digest, None));
        }
        match self.download(url).await {
            Ok(bytes) => {
                self.inner.http_downloads.fetch_add(1, Ordering::Relaxed);
                let got = check_pin(url, &bytes, Some(pin))?;
                cache.put_blob(&bytes)?;
                Ok(FetchedModule {
                    bytes,
                    digest: got,
                    source_desc: url.to_owned(),
                    from_cache: false,
                    note: None,
                })
            }
            Err(e) => match cache.get_blob(&digest)? {
                Some(bytes) => {
                    let note = format!("{e}; serving cached {digest}");
                    tracing::warn!(%url, "{note}");
                    self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
                    Ok(self.cached_module(url.to_owned(), bytes, digest, Some(note)))
                }
                None => Err(e),
            },
        }
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let s = &self.inner.settings;
        let http_err = |reason: String| FetchError::Http {
            url: url.to_owned(),
            reason,
        };
        let mut delay = s.backoff;
        let attempts = s.attempts.max(1);
        let work = async {
            let mut attempt = 1;
            loop {
                let result: Result<(), (FetchError, bool)> =
                    match self.inner.http.get(url).send().await {
                        Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                            Ok(b) => return Ok(b.to_vec()),
                            Err(e) => Err((http_err(error_chain(&e)), true)),
                        },
                        Ok(resp) => {
                            let code = resp.status();
                            Err((
                                http_err(format!("HTTP {code}")),
                                code.is_server_error() || code.as_u16() == 429,
                            ))
                        }
                        Err(e) => Err((http_err(error_chain(&e)), true)),
                    };
                if let Err((e, transient)) = result {
                    if !transient || attempt >= attempts {
                        return Err(e);
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
            }
        };
        match tokio::time::timeout(s.total_timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(http_err(format!(
                "gave up after {:?} (total timeout)",
                s.total_timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher(dir: &std::path::Path) -> ModuleFetcher {
        ModuleFetcher::new(FetchSettings {
            cache_dir: Some(dir.join("cache")),
            docker_config: Some(dir.join("no-docker-config.json")),
            ..FetchSettings::default()
        })
        .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn files_are_read_and_pins_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wasm");
        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        let f = fetcher(dir.path());
        let src = ModuleSource::File(path.clone());
        let want = sha256_digest(b"\0asm\x01\0\0\0");
        let m = f
            .fetch(&src, Some(&want[7..]), ImagePullPolicy::Unspecified)
            .await
            .unwrap();
        assert_eq!(m.digest, want);
        assert!(!m.from_cache);
        let wrong = "0".repeat(64);
        let e = f
            .fetch(&src, Some(&wrong), ImagePullPolicy::Unspecified)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(&wrong) && e.contains(&want), "{e}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_needs_a_pin_and_unknown_schemes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = fetcher(dir.path());
        let e = f
            .fetch(
                &ModuleSource::Http("http://127.0.0.1:9/m.wasm".into()),
                None,
                ImagePullPolicy::Unspecified,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::MissingSha256 { .. }), "{e}");
        let e = f
            .fetch(
                &ModuleSource::Unsupported("ftp".into()),
                None,
                ImagePullPolicy::Unspecified,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("ftp://"), "{e}");
    }
}
