//! The directory source: WasmPlugin manifests read from YAML files
//! (several documents per file allowed) and watched by polling.

use crate::crd::{API_VERSION, KIND, WasmPlugin};
use crate::select::PluginKey;
use crate::snapshot::PluginChange;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A bad file or document. `document` counts from 0; `None`: the whole file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocError {
    pub file: PathBuf,
    pub document: Option<usize>,
    pub reason: String,
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(i) => write!(f, "{}: document {i}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// The directory itself could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading directory {dir}: {source}")]
pub struct DirError {
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What one file holds.
#[derive(Clone, Debug, Default)]
pub struct FileContent {
    /// The plugins read.
    pub plugins: Vec<WasmPlugin>,
    /// Documents that name a plugin but could not be read as one.
    pub unreadable: Vec<(PluginKey, Vec<String>)>,
    pub errors: Vec<DocError>,
    /// The file is not valid YAML: its plugins are those of its last good read.
    pub kept_previous: bool,
}

/// Reads the WasmPlugin manifests of one file's text.
pub fn parse_file(file: &Path, text: &str) -> FileContent {
    use serde::Deserialize;
    let mut out = FileContent::default();
    let err = |document, reason: String| DocError {
        file: file.to_owned(),
        document,
        reason,
    };
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml_ng::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(err(Some(i), format!("not YAML: {e}")));
                out.kept_previous = true;
                // the rest of the stream cannot be split reliably
                break;
            }
        };
        if value.is_null() {
            continue; // an empty document, e.g. after a trailing `---`
        }
        let kind = value.get("kind").and_then(|v| v.as_str());
        let api = value.get("apiVersion").and_then(|v| v.as_str());
        if kind != Some(KIND) || api != Some(API_VERSION) {
            out.errors.push(err(
                Some(i),
                format!(
                    "kind {:?}, apiVersion {:?}: expected kind {KIND}, apiVersion {API_VERSION}",
                    kind.unwrap_or(""),
                    api.unwrap_or("")
                ),
            ));
            continue;
        }
        let meta = value.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(|v| v.as_str());
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            out.errors
                .push(err(Some(i), "metadata.name: missing".to_owned()));
            continue;
        };
        let key = PluginKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let mut unknown = Vec::new();
        let strict = serde_ignored::deserialize::<_, _, WasmPlugin>(value.clone(), |path| {
            let path = path.to_string();
            // checked above; kube's type does not keep them
            if path != "apiVersion" && path != "kind" {
                unknown.push(path);
            }
        });
        if strict.is_ok() && !unknown.is_empty() {
            // refused, as `kubectl apply` (strict field validation) refuses them
            let reasons: Vec<String> = unknown
                .iter()
                .map(|p| format!("{p}: unknown field"))
                .collect();
            for r in &reasons {
                out.errors.push(err(Some(i), format!("{key}: {r}")));
            }
            out.unreadable.push((key, reasons));
            continue;
        }
        match serde_path_to_error::deserialize::<_, WasmPlugin>(value) {
            Ok(p) => {
                let reasons = p.spec.validate(&key.namespace);
                if reasons.is_empty() {
                    out.plugins.push(p);
                } else {
                    for r in &reasons {
                        out.errors.push(err(Some(i), format!("{key}: spec.{r}")));
                    }
                    out.unreadable.push((key, reasons));
                }
            }
            Err(e) => {
                let reason = format!("{}: {}", e.path(), e.inner());
                out.errors.push(err(Some(i), format!("{key}: {reason}")));
                out.unreadable.push((key, vec![reason]));
            }
        }
    }
    out
}

/// Everything a directory holds, merged.
#[derive(Clone, Debug, Default)]
pub struct DirContent {
    pub plugins: BTreeMap<PluginKey, WasmPlugin>,
    pub unreadable: BTreeMap<PluginKey, Vec<String>>,
    pub errors: Vec<DocError>,
}

impl DirContent {
    /// The changes that turn `prev` into `self`.
    pub fn changes_from(&self, prev: &DirContent) -> Vec<PluginChange> {
        let mut changes = Vec::new();
        for (k, p) in &self.plugins {
            if prev.plugins.get(k) != Some(p) || prev.unreadable.contains_key(k) {
                changes.push(PluginChange::Upsert(Box::new(p.clone())));
            }
        }
        for (k, reasons) in &self.unreadable {
            if prev.unreadable.get(k) != Some(reasons) {
                changes.push(PluginChange::Unreadable {
                    key: k.clone(),
                    reasons: reasons.clone(),
                });
            }
        }
        for k in prev.plugins.keys().chain(prev.unreadable.keys()) {
            if !self.plugins.contains_key(k) && !self.unreadable.contains_key(k) {
                changes.push(PluginChange::Delete(k.clone()));
            }
        }
        changes.dedup_by(
            |a, b| matches!((a, b), (PluginChange::Delete(x), PluginChange::Delete(y)) if x == y),
        );
        changes
    }
}

/// A watched directory: [`DirSource::poll`] re-reads the files whose
/// modification time or size changed (and notices added and removed ones).
pub struct DirSource {
    dir: PathBuf,
    files: BTreeMap<PathBuf, (Option<SystemTime>, u64, FileContent)>,
    content: DirContent,
}

impl DirSource {
    pub fn new(dir: impl Into<PathBuf>) -> DirSource {
        DirSource {
            dir: dir.into(),
            files: BTreeMap::new(),
            content: DirContent::default(),
        }
    }

    /// The current content.
    pub fn content(&self) -> &DirContent {
        &self.content
    }

    /// Looks at the directory again; `Some(changes)` when something
    /// changed (the changes may be empty, e.g. a new error only).
    pub fn poll(&mut self) -> Result<Option<Vec<PluginChange>>, DirError> {
        let io = |source| DirError {
            dir: self.dir.clone(),
            source,
        };
        let mut seen = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            let is_yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if !is_yaml {
                continue;
            }
            match entry.metadata() {
                Ok(m) if m.is_file() => {
                    seen.insert(path, (m.modified().ok(), m.len()));
                }
                _ => {}
            }
        }
        let mut dirty = self.files.len() != seen.len()
            || self.files.keys().zip(seen.keys()).any(|(a, b)| a != b);
        let mut files = BTreeMap::new();
        for (path, (mtime, len)) in seen {
            let prev = self.files.remove(&path);
            let unchanged = prev
                .as_ref()
                .is_some_and(|(t, l, _)| *t == mtime && *l == len && mtime.is_some());
            let content = match prev {
                Some((_, _, c)) if unchanged => c,
                prev => {
                    dirty = true;
                    let mut c = match std::fs::read_to_string(&path) {
                        Ok(text) => parse_file(&path, &text),
                        Err(e) => FileContent {
                            errors: vec![DocError {
                                file: path.clone(),
                                document: None,
                                reason: format!("cannot read: {e}"),
                            }],
                            kept_previous: true,
                            ..FileContent::default()
                        },
                    };
                    if c.kept_previous
                        && let Some((_, _, p)) = prev
                    {
                        c.plugins = p.plugins;
                        c.unreadable.extend(p.unreadable);
                    }
                    c
                }
            };
            files.insert(path, (mtime, len, content));
        }
        self.files = files;
        if !dirty {
            return Ok(None);
        }
        let mut next = DirContent::default();
        for (path, (_, _, c)) in &self.files {
            next.errors.extend(c.errors.iter().cloned());
            for p in &c.plugins {
                let key = PluginKey::of(p);
                if next.plugins.contains_key(&key) || next.unreadable.contains_key(&key) {
                    next.errors.push(DocError {
                        file: path.clone(),
                        document: None,
                        reason: format!("{key}: defined more than once; this copy is ignored"),
                    });
                } else {
                    next.plugins.insert(key, p.clone());
                }
            }
            for (key, reasons) in &c.unreadable {
                if !next.plugins.contains_key(key) {
                    next.unreadable.insert(key.clone(), reasons.clone());
                }
            }
        }
        let changes = next.changes_from(&self.content);
        self.content = next;
        Ok(Some(changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn doc(ns: &str, name: &str, extra: &str) -> String {
        format!(
            "apiVersion: extensions.weft.dev/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  url: oci://r/{name}:1\n{extra}"
        )
    }

    /// Writes a file and moves its modification time forward, so a
    /// rewrite within the file system's time granularity is still seen.
    fn write(dir: &Path, file: &str, text: &str, tick: u64) {
        let path = dir.join(file);
        fs::write(&path, text).unwrap();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + tick);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    fn keys(c: &DirContent) -> Vec<String> {
        c.plugins.keys().map(ToString::to_string).collect()
    }

    #[test]
    fn several_documents_and_errors_naming_file_and_index() {
        let text = [
            doc("shop", "a", ""),
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n".to_owned(),
            doc("shop", "b", "  phase: LATE\n"),
            doc("shop", "c", "  url: https://h/p.wasm\n").replace("  url: oci://r/c:1\n", ""),
            "apiVersion: extensions.weft.dev/v1alpha1\nkind: WasmPlugin\nspec: {url: x}\n"
                .to_owned(),
            doc("bank", "d", "  priority: 4\n"),
            doc("shop", "e", "  selectr: {matchLabels: {app: a}}\n"),
            String::new(),
        ]
        .join("---\n");
        let f = Path::new("/plugins/all.yaml");
        let c = parse_file(f, &text);
        let names: Vec<String> = c
            .plugins
            .iter()
            .map(|p| PluginKey::of(p).to_string())
            .collect();
        assert_eq!(names, ["shop/a", "bank/d"]);
        let errs: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(
            errs[0].starts_with("/plugins/all.yaml: document 1: kind \"ConfigMap\""),
            "{}",
            errs[0]
        );
        assert!(
            errs[1].starts_with(
                "/plugins/all.yaml: document 2: shop/b: spec.phase: unknown variant `LATE`"
            ),
            "{}",
            errs[1]
        );
        assert_eq!(
            errs[2],
            "/plugins/all.yaml: document 3: shop/c: spec.sha256: required for an http(s) url"
        );
        assert_eq!(
            errs[3],
            "/plugins/all.yaml: document 4: metadata.name: missing"
        );
        assert_eq!(
            errs[4],
            "/plugins/all.yaml: document 6: shop/e: spec.selectr: unknown field"
        );
        let unreadable: Vec<String> = c.unreadable.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(unreadable, ["shop/b", "shop/c", "shop/e"]);
        assert!(!c.kept_previous);
    }

    #[test]
    fn a_namespace_less_manifest_is_in_default() {
        let text = doc("x", "a", "").replace("  namespace: x\n", "");
        let c = parse_file(Path::new("f.yaml"), &text);
        assert_eq!(PluginKey::of(&c.plugins[0]).to_string(), "default/a");
    }

    #[test]
    fn polling_sees_additions_edits_removals_and_keeps_good_plugins() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "one.yaml", &doc("shop", "a", ""), 1);
        write(
            d,
            "two.yml",
            &[doc("shop", "b", ""), doc("shop", "c", "")].join("---\n"),
            1,
        );
        write(d, "notes.txt", "not a manifest", 1);
        let mut src = DirSource::new(d);
        let changes = src.poll().unwrap().unwrap();
        assert_eq!(changes.len(), 3);
        assert_eq!(keys(src.content()), ["shop/a", "shop/b", "shop/c"]);
        assert!(src.content().errors.is_empty());
        // nothing changed
        assert!(src.poll().unwrap().is_none());

        // an edit of one document: one upsert
        write(
            d,
            "two.yml",
            &[doc("shop", "b", "  priority: 9\n"), doc("shop", "c", "")].join("---\n"),
            2,
        );
        let changes = src.poll().unwrap().unwrap();
        assert!(
            matches!(&changes[..], [PluginChange::Upsert(p)] if p.spec.priority == 9),
            "{changes:?}"
        );

        // a bad document: reported, the others (and its last good version) kept
        write(
            d,
            "two.yml",
            &[doc("shop", "b", "  phase: LATE\n"), doc("shop", "c", "")].join("---\n"),
            3,
        );
        let changes = src.poll().unwrap().unwrap();
        assert!(
            matches!(&changes[..], [PluginChange::Unreadable { key, .. }] if key.name == "b"),
            "{changes:?}"
        );
        assert_eq!(keys(src.content()), ["shop/a", "shop/c"]);
        let errs: Vec<String> = src
            .content()
            .errors
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].contains("two.yml: document 0: shop/b: spec.phase"),
            "{}",
            errs[0]
        );

        // a file that is not YAML at all: error, its plugins kept as they were
        write(d, "two.yml", "a: [unclosed\n", 4);
        let changes = src.poll().unwrap().unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(keys(src.content()), ["shop/a", "shop/c"]);
        assert!(
            src.content().errors[0]
                .to_string()
                .contains("two.yml: document 0: not YAML")
        );

        // removing a file deletes its plugins
        fs::remove_file(d.join("one.yaml")).unwrap();
        let changes = src.poll().unwrap().unwrap();
        assert!(
            matches!(&changes[..], [PluginChange::Delete(k)] if k.name == "a"),
            "{changes:?}"
        );

        // the same plugin in two files: the first file wins, the second is named
        write(d, "zz.yaml", &doc("shop", "c", "  priority: 1\n"), 5);
        src.poll().unwrap();
        assert_eq!(
            src.content().plugins[&PluginKey {
                namespace: "shop".into(),
                name: "c".into()
            }]
                .spec
                .priority,
            0
        );
        let errs: Vec<String> = src
            .content()
            .errors
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errs.iter()
                .any(|e| e.contains("zz.yaml: shop/c: defined more than once")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let mut src = DirSource::new("/nonexistent/weft-plugins");
        let err = src.poll().unwrap_err().to_string();
        assert!(
            err.starts_with("reading directory /nonexistent/weft-plugins: "),
            "{err}"
        );
    }

    #[test]
    fn the_k8s_example_plugins_are_valid() {
        let f = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/k8s/wasmplugins.yaml"
        ));
        let c = parse_file(f, &std::fs::read_to_string(f).unwrap());
        assert!(c.errors.is_empty(), "{:#?}", c.errors);
        let names: Vec<String> = c
            .plugins
            .iter()
            .map(|p| PluginKey::of(p).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "weft-system/header-rewrite",
                "shop/authz",
                "shop/fault",
                "shop/router",
                "shop/mirror"
            ]
        );
    }
}
