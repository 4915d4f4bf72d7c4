//! `plugins_dir:` — `kind: WasmPlugin` manifests (the controller's CRD,
//! Istio's field names) read from a directory by a standalone proxy, so the
//! same manifests configure a gateway with or without the controller.
//!
//! Each `*.yaml`/`*.yml` file may hold several documents. A WasmPlugin
//! applies to this proxy when it is in the proxy's namespace (`node.namespace`)
//! or in the root namespace (`weft-system`), and its `selector.matchLabels`
//! (if any) are all among `node.labels`; a `targetRefs` entry of kind
//! `Gateway` matches the node label `gateway.networking.k8s.io/gateway-name`
//! (a standalone proxy has no Services, so `Service` references never
//! match). The plugin is named `namespace.name`, as the controller names it;
//! the rest of its `spec` is a [`PluginSpec`] (`url`, `sha256`,
//! `imagePullPolicy`, `pluginName`, `phase`, `priority`, `failStrategy`,
//! `pluginConfig`, `vmConfig`), relative file paths taken from the
//! directory. Every problem names the file, the document and the reason.

use crate::model::{ModuleSource, Node, PluginSpec};
use std::path::{Path, PathBuf};

/// The namespace whose plugins apply to every proxy.
pub const ROOT_NAMESPACE: &str = "weft-system";
/// The pod label that names the Gateway a proxy serves.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
const API_VERSION: &str = "extensions.weft.dev/v1alpha1";

/// A problem with one manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{reason}", file.display(), document.map(|d| format!("document {d}: ")).unwrap_or_default())]
pub struct ManifestError {
    pub file: PathBuf,
    /// 1-based, when the problem is in one document.
    pub document: Option<usize>,
    pub reason: String,
}

/// The plugins of `dir` that apply to `node`, in file-name then document
/// order (the proxy orders them by phase and priority).
pub fn load_dir(dir: &Path, node: &Node) -> Result<Vec<PluginSpec>, Vec<ManifestError>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![ManifestError {
            file: dir.to_path_buf(),
            document: None,
            reason: format!("cannot read the plugins directory: {e}"),
        }]
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut plugins = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(ManifestError {
                    file: file.clone(),
                    document: None,
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let (found, problems) = parse_manifests(&text, &file, dir, node);
        plugins.extend(found);
        errors.extend(problems);
    }
    let mut seen = std::collections::HashSet::new();
    for p in &plugins {
        if !seen.insert(p.name.clone()) {
            errors.push(ManifestError {
                file: dir.to_path_buf(),
                document: None,
                reason: format!("plugin {} is defined twice", p.name),
            });
        }
    }
    if errors.is_empty() {
        Ok(plugins)
    } else {
        Err(errors)
    }
}

/// A fingerprint of the manifests in `dir` (names, sizes, modification
/// times), to notice edits.
pub fn dir_fingerprint(dir: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut list: Vec<_> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((e.file_name(), m.len(), m.modified().ok()))
            })
            .collect();
        list.sort();
        list.hash(&mut h);
    }
    h.finish()
}

/// The WasmPlugins of one file that apply to `node`, and the problems.
pub fn parse_manifests(
    text: &str,
    file: &Path,
    base: &Path,
    node: &Node,
) -> (Vec<PluginSpec>, Vec<ManifestError>) {
    let mut plugins = Vec::new();
    let mut errors = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let err = |reason: String| ManifestError {
            file: file.to_path_buf(),
            document: Some(i + 1),
            reason,
        };
        let value: serde_json::Value = match serde::Deserialize::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                errors.push(err(format!("not valid YAML: {e}")));
                continue;
            }
        };
        if value.is_null() {
            continue; // an empty document
        }
        match manifest(value, base, node) {
            Ok(Some(p)) => plugins.push(p),
            Ok(None) => {}
            Err(reason) => errors.push(err(reason)),
        }
    }
    (plugins, errors)
}

/// One document: `Ok(None)` when it does not apply to this proxy.
fn manifest(
    mut value: serde_json::Value,
    base: &Path,
    node: &Node,
) -> Result<Option<PluginSpec>, String> {
    let str_at =
        |v: &serde_json::Value, key: &str| v.get(key).and_then(|x| x.as_str()).map(str::to_owned);
    match (str_at(&value, "apiVersion"), str_at(&value, "kind")) {
        (Some(a), Some(k)) if a == API_VERSION && k == "WasmPlugin" => {}
        (a, k) => {
            return Err(format!(
                "not a WasmPlugin: apiVersion {:?}, kind {:?} (expected {API_VERSION}, WasmPlugin)",
                a.unwrap_or_default(),
                k.unwrap_or_default()
            ));
        }
    }
    let metadata = value.get("metadata").cloned().unwrap_or_default();
    let name = str_at(&metadata, "name")
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name: required")?;
    let namespace = str_at(&metadata, "namespace").unwrap_or_else(|| "default".to_owned());
    let Some(spec) = value.get_mut("spec").and_then(|s| s.as_object_mut()) else {
        return Err("spec: required (an object)".into());
    };
    // Selection fields: decided here, not part of the proxy's plugin spec.
    let selector = spec.remove("selector");
    let target_refs = spec.remove("targetRefs");
    spec.remove("imagePullSecret");
    if let Some(t) = spec.remove("type")
        && !matches!(t.as_str(), Some("HTTP") | Some("UNSPECIFIED_PLUGIN_TYPE"))
    {
        return Err(format!("spec.type: {t} is not supported (HTTP)"));
    }
    if namespace != node.namespace && namespace != ROOT_NAMESPACE {
        return Ok(None);
    }
    if let Some(sel) = &selector {
        let labels = sel.get("matchLabels").and_then(|l| l.as_object());
        for (k, v) in labels.into_iter().flatten() {
            let want = v
                .as_str()
                .ok_or(format!("spec.selector.matchLabels.{k}: must be a string"))?;
            if node.labels.get(k).map(String::as_str) != Some(want) {
                return Ok(None);
            }
        }
    }
    if let Some(refs) = target_refs.as_ref().and_then(|r| r.as_array())
        && !refs.is_empty()
    {
        let gateway = node.labels.get(GATEWAY_NAME_LABEL);
        let hit = refs.iter().any(|r| {
            str_at(r, "kind").as_deref() == Some("Gateway") && str_at(r, "name").as_ref() == gateway
        });
        if !hit {
            return Ok(None);
        }
    }
    spec.insert("name".into(), format!("{namespace}.{name}").into());
    let spec = serde_json::Value::Object(spec.clone());
    let mut plugin: PluginSpec = serde_path_to_error::deserialize(spec)
        .map_err(|e| format!("spec.{}: {}", e.path(), e.inner()))?;
    if plugin.url.is_empty() {
        return Err("spec.url: required".into());
    }
    match plugin.source() {
        ModuleSource::File(p) if p.is_relative() => {
            plugin.url = format!("file://{}", base.join(p).display());
        }
        ModuleSource::OciLayout(p) if p.is_relative() => {
            plugin.url = format!("oci-layout://{}", base.join(p).display());
        }
        ModuleSource::Unsupported(scheme) => {
            return Err(format!("spec.url: unsupported scheme {scheme:?}"));
        }
        _ => {}
    }
    Ok(Some(plugin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn node(ns: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            name: "edge".into(),
            namespace: ns.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn doc(ns: &str, name: &str, extra: &str) -> String {
        format!(
            "apiVersion: extensions.weft.dev/v1alpha1\nkind: WasmPlugin\nmetadata: {{ name: {name}, namespace: {ns} }}\nspec:\n  url: oci://r.example/f:1\n{extra}"
        )
    }

    fn names(text: &str, n: &Node) -> (Vec<String>, Vec<String>) {
        let (p, e) = parse_manifests(text, Path::new("p.yaml"), Path::new("/d"), n);
        (
            p.into_iter().map(|p| p.name).collect(),
            e.into_iter().map(|e| e.to_string()).collect(),
        )
    }

    #[test]
    fn selection_by_namespace_labels_and_gateway() {
        let n = node("shop", &[("app", "edge"), (GATEWAY_NAME_LABEL, "gw")]);
        let text = [
            doc("shop", "mine", ""),
            doc("weft-system", "root", ""),
            doc("other", "theirs", ""),
            doc(
                "shop",
                "labelled",
                "  selector: { matchLabels: { app: edge } }\n",
            ),
            doc(
                "shop",
                "wrong-label",
                "  selector: { matchLabels: { app: api } }\n",
            ),
            doc(
                "shop",
                "gateway",
                "  targetRefs: [ { kind: Gateway, name: gw } ]\n",
            ),
            doc(
                "shop",
                "other-gateway",
                "  targetRefs: [ { kind: Gateway, name: x } ]\n",
            ),
            doc(
                "shop",
                "service",
                "  targetRefs: [ { kind: Service, name: gw } ]\n",
            ),
        ]
        .join("---\n");
        let (found, errors) = names(&text, &n);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            found,
            [
                "shop.mine",
                "weft-system.root",
                "shop.labelled",
                "shop.gateway"
            ]
        );
    }

    #[test]
    fn the_spec_becomes_a_plugin_spec() {
        let text = doc(
            "default",
            "rw",
            "  phase: AUTHZ\n  priority: 7\n  failStrategy: FAIL_OPEN\n  pluginName: root\n  pluginConfig: { a: 1 }\n  vmConfig: { env: [ { name: MODE, value: strict } ] }\n  type: HTTP\n  match: [ { mode: SERVER } ]\n",
        );
        let (p, e) = parse_manifests(
            &text,
            Path::new("p.yaml"),
            Path::new("/d"),
            &node("default", &[]),
        );
        assert!(e.is_empty(), "{e:?}");
        let p = &p[0];
        assert_eq!(p.name, "default.rw");
        assert_eq!(p.priority, 7);
        assert_eq!(p.plugin_name.as_deref(), Some("root"));
        assert_eq!(p.plugin_config, serde_json::json!({ "a": 1 }));
        assert_eq!(p.vm_config.env[0].name, "MODE");
        let local = doc("default", "local", "").replace("oci://r.example/f:1", "filters/x.wasm");
        let (p, _) = parse_manifests(
            &local,
            Path::new("p.yaml"),
            Path::new("/d"),
            &node("default", &[]),
        );
        assert_eq!(p[0].url, "file:///d/filters/x.wasm");
    }

    #[test]
    fn every_problem_names_the_file_the_document_and_the_reason() {
        let n = node("default", &[]);
        let text = [
            "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n".to_owned(),
            doc("default", "typo", "  priorty: 3\n"),
            doc("default", "bad-type", "  type: NETWORK\n"),
            "apiVersion: extensions.weft.dev/v1alpha1\nkind: WasmPlugin\nmetadata: { namespace: default }\nspec: { url: oci://r/f:1 }\n".to_owned(),
            doc("default", "ftp", "").replace("oci://r.example/f:1", "ftp://x/y"),
        ]
        .join("---\n");
        let (found, errors) = names(&text, &n);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(
            errors[0].starts_with("p.yaml: document 1: not a WasmPlugin"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("document 2: spec.priorty: unknown field"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("document 3: spec.type: \"NETWORK\" is not supported"),
            "{}",
            errors[2]
        );
        assert!(
            errors[3].contains("document 4: metadata.name: required"),
            "{}",
            errors[3]
        );
        assert!(
            errors[4].contains("document 5: spec.url: unsupported scheme \"ftp\""),
            "{}",
            errors[4]
        );
    }

    #[test]
    fn a_directory_is_read_in_file_order_and_duplicates_are_refused() {
        let dir = std::env::temp_dir().join(format!("weft-plugins-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.yaml"), doc("default", "second", "")).unwrap();
        std::fs::write(dir.join("a.yml"), doc("default", "first", "")).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
        let before = dir_fingerprint(&dir);
        let n = node("default", &[]);
        let names: Vec<_> = load_dir(&dir, &n)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["default.first", "default.second"]);
        std::fs::write(dir.join("c.yaml"), doc("default", "first", "")).unwrap();
        assert_ne!(
            dir_fingerprint(&dir),
            before,
            "a new file changes the fingerprint"
        );
        let errors = load_dir(&dir, &n).unwrap_err();
        assert!(
            errors[0].reason.contains("default.first is defined twice"),
            "{errors:?}"
        );
        let missing = load_dir(&dir.join("nope"), &n).unwrap_err();
        assert!(
            missing[0]
                .reason
                .contains("cannot read the plugins directory")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
