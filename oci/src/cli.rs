//! The `weft push|pull|inspect|cache` commands; `weft`'s `main` parses the
//! arguments and calls these.

use crate::cache::{Cache, PruneReport};
use crate::error::FetchError;
use crate::reference::ImageRef;
use crate::registry::{ClientSettings, Inspection, PulledModule, PushOutcome, RegistryClient};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Options shared by the registry commands.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Speak plain HTTP to the image's registry (ORAS's `--plain-http`).
    pub plain_http: bool,
    /// Docker `config.json` with credentials.
    pub registry_config: Option<PathBuf>,
    /// A weft.yaml whose `registries` apply.
    pub config: Option<PathBuf>,
}

impl RegistryOptions {
    fn client(&self, r: &ImageRef) -> Result<RegistryClient, FetchError> {
        let registries = match &self.config {
            Some(path) => {
                weft_config::load(path)
                    .map_err(|e| FetchError::Settings(format!("{}: {e}", path.display())))?
                    .registries
            }
            None => Vec::new(),
        };
        RegistryClient::new(ClientSettings {
            registries,
            docker_config: self.registry_config.clone(),
            plain_http_hosts: if self.plain_http {
                vec![r.registry().to_owned(), r.resolved_registry().to_owned()]
            } else {
                Vec::new()
            },
            ..ClientSettings::default()
        })
    }
}

/// A byte progress bar on a terminal (stderr), hidden otherwise.
pub fn progress_bar(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Parses `--annotation KEY=VALUE` arguments.
pub fn parse_annotations(pairs: &[String]) -> Result<BTreeMap<String, String>, FetchError> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(FetchError::Argument(format!(
                "annotation {p:?} must be KEY=VALUE"
            ))),
        })
        .collect()
}

/// `weft push FILE.wasm oci://REGISTRY/REPO:TAG`.
pub async fn push(
    opts: &RegistryOptions,
    file: &Path,
    target: &str,
    annotations: &[String],
) -> Result<PushOutcome, FetchError> {
    let r = ImageRef::parse(target)?;
    let annotations = parse_annotations(annotations)?;
    let wasm = std::fs::read(file).map_err(|source| FetchError::Io {
        what: "module file",
        path: file.to_path_buf(),
        source,
    })?;
    let title = file.file_name().and_then(|n| n.to_str());
    let bar = progress_bar("push");
    let out = opts
        .client(&r)?
        .push_wasm(&r, &wasm, title, &annotations, &bar)
        .await;
    bar.finish_and_clear();
    out
}

/// `weft pull oci://… -o FILE`: writes the module atomically.
pub async fn pull(
    opts: &RegistryOptions,
    source: &str,
    output: &Path,
) -> Result<PulledModule, FetchError> {
    let r = ImageRef::parse(source)?;
    let bar = progress_bar("pull");
    let pulled = opts.client(&r)?.pull(&r, &bar).await;
    bar.finish_and_clear();
    let pulled = pulled?;
    let io = |source| FetchError::Io {
        what: "output file",
        path: output.to_path_buf(),
        source,
    };
    let tmp = output.with_file_name(format!(
        ".{}.weft-tmp-{}",
        output
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("module"),
        std::process::id()
    ));
    std::fs::write(&tmp, &pulled.wasm).map_err(io)?;
    std::fs::rename(&tmp, output).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    Ok(pulled)
}

/// `weft inspect oci://…`.
pub async fn inspect(opts: &RegistryOptions, source: &str) -> Result<Inspection, FetchError> {
    let r = ImageRef::parse(source)?;
    opts.client(&r)?.inspect(&r).await
}

/// The module cache under a weft cache directory (`DIR/oci`), or the default.
pub fn open_cache(cache_dir: Option<&Path>) -> Result<Cache, FetchError> {
    let dir = cache_dir.map_or_else(crate::default_cache_dir, Path::to_path_buf);
    Ok(Cache::open(dir.join("oci"), Default::default())?)
}

/// `weft cache ls`: one line per blob, most recently used first.
pub fn cache_ls(cache_dir: Option<&Path>) -> Result<String, FetchError> {
    let cache = open_cache(cache_dir)?;
    let mut out = String::new();
    let entries = cache.ls()?;
    for e in &entries {
        let when = chrono::DateTime::<chrono::Utc>::from(e.last_used)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        out.push_str(&format!(
            "{}  {:>10}  {}  {}\n",
            e.digest,
            e.size,
            when,
            e.references.join(",")
        ));
    }
    out.push_str(&format!(
        "{} module(s), {} bytes in {}\n",
        entries.len(),
        entries.iter().map(|e| e.size).sum::<u64>(),
        cache.root().display()
    ));
    Ok(out)
}

/// `weft cache prune [--max-size N]`: evicts least recently used modules
/// until at most `max_bytes` remain (everything when 0).
pub fn cache_prune(cache_dir: Option<&Path>, max_bytes: u64) -> Result<PruneReport, FetchError> {
    Ok(open_cache(cache_dir)?.prune(max_bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_are_key_value_pairs() {
        let a = parse_annotations(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(a["a"], "1");
        assert_eq!(a["b"], "x=y");
        assert_eq!(a["c"], "");
        let e = parse_annotations(&["novalue".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"novalue\" must be KEY=VALUE"), "{e}");
        assert!(parse_annotations(&["=v".into()]).is_err());
    }
}
