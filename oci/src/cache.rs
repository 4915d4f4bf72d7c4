//! The on-disk module cache: content-addressed blobs, manifest records and
//! reference resolutions, written atomically, bounded in size (LRU).

use crate::error::CacheError;
use crate::media::ArtifactFormat;
use crate::reference::check_digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Cache limits.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Upper bound of the blobs' total size, in bytes; least recently used
    /// blobs are evicted beyond it (the blob just written always stays).
    pub max_bytes: u64,
    /// How long a tag's resolution to a digest is trusted under `IfNotPresent`.
    pub tag_ttl: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            max_bytes: 1 << 30,
            tag_ttl: Duration::from_secs(300),
        }
    }
}

/// What is known about one pulled manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// `sha256:…` of the manifest.
    pub manifest_digest: String,
    pub format: ArtifactFormat,
    pub config_media_type: String,
    pub layer_media_types: Vec<String>,
    /// `sha256:…` of the Wasm module (a blob of this cache).
    pub wasm_digest: String,
    pub annotations: BTreeMap<String, String>,
}

/// A reference's resolution to a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefRecord {
    /// The reference as written (`registry/repo:tag` or `…@sha256:…`).
    pub reference: String,
    pub manifest_digest: String,
    pub wasm_digest: String,
    /// Seconds since the Unix epoch when the registry last answered for it.
    pub resolved_at: u64,
}

impl RefRecord {
    /// Whether the resolution is younger than `ttl` at `now`.
    pub fn is_fresh_at(&self, ttl: Duration, now: SystemTime) -> bool {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        now.saturating_sub(self.resolved_at) < ttl.as_secs()
    }
}

/// One cached blob, for `weft cache ls`.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheEntry {
    /// `sha256:…`
    pub digest: String,
    pub size: u64,
    pub last_used: SystemTime,
    /// References resolved to this blob.
    pub references: Vec<String>,
}

/// What a prune removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PruneReport {
    pub removed: Vec<String>,
    pub freed_bytes: u64,
    pub remaining_bytes: u64,
}

/// The cache under one directory. Safe to share between threads; the
/// files are the only state, so it survives restarts.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    options: CacheOptions,
    tmp_seq: AtomicU64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn ref_key(reference: &str) -> String {
    crate::sha256_digest(reference.as_bytes())[7..].to_owned()
}

impl Cache {
    /// Opens (creating) a cache directory.
    pub fn open(root: impl Into<PathBuf>, options: CacheOptions) -> Result<Cache, CacheError> {
        let root = root.into();
        for sub in ["blobs/sha256", "manifests/sha256", "refs", "tmp"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(Cache {
            root,
            options,
            tmp_seq: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, CacheError> {
        let hex = check_digest(digest).map_err(|_| CacheError::BadDigest {
            digest: digest.to_owned(),
        })?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Writes `bytes` to `path` through a temporary file and a rename.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        let tmp = self.root.join("tmp").join(format!(
            "{}.{}.{}",
            std::process::id(),
            self.tmp_seq.fetch_add(1, Ordering::Relaxed),
            path.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        ));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io(path))
    }

    /// Stores a blob under its sha256 and returns `sha256:<hex>`, then
    /// evicts least recently used blobs beyond the size bound.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, CacheError> {
        let digest = crate::sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        if path.exists() {
            touch(&path);
        } else {
            self.write_atomic(&path, bytes)?;
        }
        self.evict_to(self.options.max_bytes, Some(&digest))?;
        Ok(digest)
    }

    /// Reads a blob (verifying its digest; a corrupt blob is removed and
    /// reported missing) and marks it used.
    pub fn get_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.blob_path(digest)?;
        match fs::read(&path) {
            Ok(bytes) => {
                if crate::sha256_digest(&bytes) != digest {
                    tracing::warn!(blob = %path.display(), "corrupt cached blob removed");
                    let _ = fs::remove_file(&path);
                    return Ok(None);
                }
                touch(&path);
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    pub fn put_manifest(&self, record: &ManifestRecord) -> Result<(), CacheError> {
        let hex = check_digest(&record.manifest_digest).map_err(|_| CacheError::BadDigest {
            digest: record.manifest_digest.clone(),
        })?;
        let path = self.root.join("manifests/sha256").join(hex);
        let json = serde_json::to_vec_pretty(record).unwrap_or_default();
        self.write_atomic(&path, &json)
    }

    pub fn get_manifest(&self, digest: &str) -> Result<Option<ManifestRecord>, CacheError> {
        let Ok(hex) = check_digest(digest) else {
            return Ok(None);
        };
        read_json(&self.root.join("manifests/sha256").join(hex))
    }

    pub fn put_ref(&self, record: &RefRecord) -> Result<(), CacheError> {
        let path = self
            .root
            .join("refs")
            .join(format!("{}.json", ref_key(&record.reference)));
        let json = serde_json::to_vec_pretty(record).unwrap_or_default();
        self.write_atomic(&path, &json)
    }

    /// The last resolution of a reference, if any.
    pub fn get_ref(&self, reference: &str) -> Result<Option<RefRecord>, CacheError> {
        read_json(
            &self
                .root
                .join("refs")
                .join(format!("{}.json", ref_key(reference))),
        )
    }

    fn blobs(&self) -> Result<Vec<(String, PathBuf, u64, SystemTime)>, CacheError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if !meta.is_file() || name.len() != 64 {
                continue;
            }
            let used = meta.modified().unwrap_or(UNIX_EPOCH);
            out.push((format!("sha256:{name}"), entry.path(), meta.len(), used));
        }
        Ok(out)
    }

    fn refs(&self) -> Vec<(PathBuf, RefRecord)> {
        let dir = self.root.join("refs");
        let Ok(rd) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter_map(|e| {
                let p = e.path();
                read_json::<RefRecord>(&p).ok().flatten().map(|r| (p, r))
            })
            .collect()
    }

    /// Total size of the blobs, in bytes.
    pub fn size(&self) -> Result<u64, CacheError> {
        Ok(self.blobs()?.iter().map(|b| b.2).sum())
    }

    /// Every cached blob, most recently used first.
    pub fn ls(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let refs = self.refs();
        let mut out: Vec<CacheEntry> = self
            .blobs()?
            .into_iter()
            .map(|(digest, _, size, last_used)| CacheEntry {
                references: refs
                    .iter()
                    .filter(|(_, r)| r.wasm_digest == digest)
                    .map(|(_, r)| r.reference.clone())
                    .collect(),
                digest,
                size,
                last_used,
            })
            .collect();
        out.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.digest.cmp(&b.digest)));
        Ok(out)
    }

    /// Evicts least recently used blobs until at most `max_bytes` remain
    /// (0 empties the cache), with the records that pointed to them.
    pub fn prune(&self, max_bytes: u64) -> Result<PruneReport, CacheError> {
        self.evict_to(max_bytes, None)
    }

    fn evict_to(&self, max_bytes: u64, keep: Option<&str>) -> Result<PruneReport, CacheError> {
        let mut blobs = self.blobs()?;
        let mut total: u64 = blobs.iter().map(|b| b.2).sum();
        let mut report = PruneReport::default();
        if total > max_bytes {
            blobs.sort_by(|a, b| a.3.cmp(&b.3).then(a.0.cmp(&b.0)));
            for (digest, path, size, _) in blobs {
                if total <= max_bytes {
                    break;
                }
                if keep == Some(digest.as_str()) {
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => {
                        total -= size;
                        report.freed_bytes += size;
                        report.removed.push(digest);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= size,
                    Err(e) => return Err(io(&path)(e)),
                }
            }
        }
        if !report.removed.is_empty() {
            for (path, r) in self.refs() {
                if report.removed.contains(&r.wasm_digest) {
                    let _ = fs::remove_file(path);
                }
            }
            let mdir = self.root.join("manifests/sha256");
            if let Ok(rd) = fs::read_dir(&mdir) {
                for e in rd.filter_map(Result::ok) {
                    if let Ok(Some(m)) = read_json::<ManifestRecord>(&e.path())
                        && report.removed.contains(&m.wasm_digest)
                    {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
            tracing::info!(
                removed = report.removed.len(),
                freed = report.freed_bytes,
                "cache eviction"
            );
        }
        report.remaining_bytes = total;
        Ok(report)
    }
}

/// Marks a file used now (its modification time is the LRU clock).
fn touch(path: &Path) {
    if let Ok(f) = fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, CacheError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CacheError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(max: u64) -> CacheOptions {
        CacheOptions {
            max_bytes: max,
            tag_ttl: Duration::from_secs(60),
        }
    }

    fn set_used(cache: &Cache, digest: &str, secs_ago: u64) {
        let p = cache.blob_path(digest).unwrap();
        let f = fs::File::options().append(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
            .unwrap();
    }

    #[test]
    fn blobs_are_content_addressed_and_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), opts(1 << 20)).unwrap();
        let d = cache.put_blob(b"\0asm one").unwrap();
        assert_eq!(d, crate::sha256_digest(b"\0asm one"));
        let on_disk = dir.path().join("blobs/sha256").join(&d[7..]);
        assert_eq!(fs::read(&on_disk).unwrap(), b"\0asm one");
        assert_eq!(cache.get_blob(&d).unwrap().unwrap(), b"\0asm one");
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no temporary file is left behind"
        );
        // A corrupted blob is detected and dropped, not served.
        fs::write(&on_disk, b"tampered").unwrap();
        assert_eq!(cache.get_blob(&d).unwrap(), None);
        assert!(!on_disk.exists());
        assert!(matches!(
            cache.get_blob("md5:00"),
            Err(CacheError::BadDigest { .. })
        ));
    }

    #[test]
    fn evicts_least_recently_used_beyond_the_size_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), opts(250)).unwrap();
        let a = cache.put_blob(&[b'a'; 100]).unwrap();
        let b = cache.put_blob(&[b'b'; 100]).unwrap();
        set_used(&cache, &a, 30);
        set_used(&cache, &b, 20);
        cache.get_blob(&a).unwrap().unwrap(); // a is now the most recent
        cache
            .put_ref(&RefRecord {
                reference: "r/b:1".into(),
                manifest_digest: a.clone(),
                wasm_digest: b.clone(),
                resolved_at: unix_now(),
            })
            .unwrap();
        let c = cache.put_blob(&[b'c'; 100]).unwrap();
        assert!(cache.has_blob(&a), "recently used a stays");
        assert!(!cache.has_blob(&b), "least recently used b is evicted");
        assert!(cache.has_blob(&c), "the new blob stays");
        assert_eq!(
            cache.get_ref("r/b:1").unwrap(),
            None,
            "b's reference goes with it"
        );
        assert_eq!(cache.size().unwrap(), 200);
        let ls = cache.ls().unwrap();
        assert_eq!(ls.len(), 2);
        let report = cache.prune(0).unwrap();
        assert_eq!(report.removed.len(), 2);
        assert_eq!(report.freed_bytes, 200);
        assert!(cache.ls().unwrap().is_empty());
    }

    #[test]
    fn a_blob_larger_than_the_bound_is_still_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), opts(10)).unwrap();
        let big = cache.put_blob(&[7u8; 50]).unwrap();
        assert!(cache.has_blob(&big));
    }

    #[test]
    fn tag_resolutions_expire_after_the_ttl() {
        let r = RefRecord {
            reference: "r/x:v1".into(),
            manifest_digest: crate::sha256_digest(b"m"),
            wasm_digest: crate::sha256_digest(b"w"),
            resolved_at: 1_000,
        };
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let ttl = Duration::from_secs(60);
        assert!(r.is_fresh_at(ttl, at(1_000)));
        assert!(r.is_fresh_at(ttl, at(1_059)));
        assert!(!r.is_fresh_at(ttl, at(1_060)));
        assert!(!r.is_fresh_at(Duration::ZERO, at(1_000)));
    }

    #[test]
    fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (d, m) = {
            let cache = Cache::open(dir.path(), opts(1 << 20)).unwrap();
            let d = cache.put_blob(b"\0asm persisted").unwrap();
            let m = ManifestRecord {
                manifest_digest: crate::sha256_digest(b"manifest"),
                format: ArtifactFormat::CncfWasm,
                config_media_type: crate::media::WASM_CONFIG_V0.into(),
                layer_media_types: vec![crate::media::WASM_LAYER.into()],
                wasm_digest: d.clone(),
                annotations: BTreeMap::from([("k".into(), "v".into())]),
            };
            cache.put_manifest(&m).unwrap();
            cache
                .put_ref(&RefRecord {
                    reference: "r/x:v1".into(),
                    manifest_digest: m.manifest_digest.clone(),
                    wasm_digest: d.clone(),
                    resolved_at: 42,
                })
                .unwrap();
            (d, m)
        };
        let cache = Cache::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!(cache.get_blob(&d).unwrap().unwrap(), b"\0asm persisted");
        assert_eq!(cache.get_manifest(&m.manifest_digest).unwrap(), Some(m));
        let r = cache.get_ref("r/x:v1").unwrap().unwrap();
        assert_eq!((r.wasm_digest.as_str(), r.resolved_at), (d.as_str(), 42));
        assert_eq!(cache.ls().unwrap()[0].references, vec!["r/x:v1".to_owned()]);
    }
}
