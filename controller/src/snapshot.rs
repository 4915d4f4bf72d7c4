//! Snapshots (what one proxy runs) and the incremental engine that keeps
//! one per workload up to date as plugins and workloads change.

use crate::crd::{WasmPlugin, WasmPluginSpec};
use crate::select::{PluginKey, Workload, WorkloadKey, compare, selects, to_plugin_spec};
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One accepted plugin version, shared by every snapshot holding it.
#[derive(Debug, PartialEq)]
pub struct Served {
    pub key: PluginKey,
    /// The accepted spec (selection and order come from it).
    pub spec: WasmPluginSpec,
    /// What the proxy receives.
    pub plugin: weft_config::PluginSpec,
    /// SHA-256 of `plugin`'s JSON.
    pub hash: [u8; 32],
}

impl Served {
    /// Converts and hashes a plugin's spec.
    pub fn new(key: PluginKey, spec: WasmPluginSpec) -> Served {
        let plugin = to_plugin_spec(&key, &spec);
        // A PluginSpec is plain data (string keys): its JSON encoding cannot fail.
        let json = serde_json::to_vec(&plugin).unwrap_or_default();
        Served {
            key,
            spec,
            plugin,
            hash: Sha256::digest(&json).into(),
        }
    }

    fn cmp_order(&self, other: &Served) -> std::cmp::Ordering {
        compare((&self.spec, &self.key), (&other.spec, &other.key))
    }
}

/// What one proxy runs: its plugins in chain order and a version that
/// changes exactly when their content or order does.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Hex SHA-256 (first 16 bytes) of the ordered plugins' content hashes.
    pub version: String,
    pub plugins: Vec<Arc<Served>>,
}

impl Snapshot {
    /// The snapshot of an ordered plugin list.
    pub fn new(plugins: Vec<Arc<Served>>) -> Snapshot {
        let mut h = Sha256::new();
        for p in &plugins {
            h.update(p.hash);
        }
        let digest = h.finalize();
        Snapshot {
            version: hex::encode(&digest[..16]),
            plugins,
        }
    }

    /// The proxy names of the plugins, in order.
    pub fn names(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .map(|p| p.plugin.name.as_str())
            .collect()
    }
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let plugins: Vec<&weft_config::PluginSpec> =
            self.plugins.iter().map(|p| &p.plugin).collect();
        let mut st = s.serialize_struct("Snapshot", 2)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("plugins", &plugins)?;
        st.end()
    }
}

/// The snapshot of workload `w`: the plugins of `plugins` that select it,
/// in chain order. Pure.
pub fn compute_snapshot<'a>(
    plugins: impl IntoIterator<Item = &'a Arc<Served>>,
    w: &Workload,
    root_ns: &str,
) -> Snapshot {
    let mut list: Vec<Arc<Served>> = plugins
        .into_iter()
        .filter(|p| selects(&p.spec, &p.key.namespace, w, root_ns))
        .cloned()
        .collect();
    list.sort_by(|a, b| a.cmp_order(b));
    Snapshot::new(list)
}

/// A change to the set of plugins.
#[derive(Clone, Debug)]
pub enum PluginChange {
    /// A plugin was added or updated.
    Upsert(Box<WasmPlugin>),
    /// A plugin was deleted.
    Delete(PluginKey),
    /// A new version of the plugin could not be read (e.g. a bad
    /// manifest); its last accepted version keeps serving.
    Unreadable {
        key: PluginKey,
        reasons: Vec<String>,
    },
}

/// A change to the set of workloads, from a workload source (Kubernetes
/// Pods); see [`crate::server::Hub::apply_workloads`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadChange {
    /// A workload appeared or changed (labels, Services, Gateway…).
    Upsert(Workload),
    /// A workload went away (its pod was deleted or stopped running).
    Remove(WorkloadKey),
}

/// What the engine knows of one plugin.
#[derive(Clone, Debug, Default)]
pub struct PluginState {
    /// The version proxies are sent (the last valid one), if any.
    pub served: Option<Arc<Served>>,
    /// metadata.generation of the latest version seen.
    pub generation: Option<i64>,
    /// Why the latest version was refused; empty: it was accepted.
    pub errors: Vec<String>,
}

struct WorkloadState {
    workload: Workload,
    snapshot: Snapshot,
}

/// Keeps every workload's snapshot current; each change reports the
/// workloads whose snapshot version changed (the only ones to push to).
///
/// A plugin whose new version is invalid keeps serving its last valid
/// version (dropping, say, an authz plugin because of a typo would open
/// the traffic it guards); a plugin never valid is not served at all.
pub struct Engine {
    root_ns: String,
    plugins: BTreeMap<PluginKey, PluginState>,
    workloads: BTreeMap<WorkloadKey, WorkloadState>,
}

impl Engine {
    /// An empty engine; plugins in `root_ns` apply to every namespace.
    pub fn new(root_ns: impl Into<String>) -> Engine {
        Engine {
            root_ns: root_ns.into(),
            plugins: BTreeMap::new(),
            workloads: BTreeMap::new(),
        }
    }

    pub fn root_namespace(&self) -> &str {
        &self.root_ns
    }

    /// Applies a plugin change; returns the workloads whose snapshot changed.
    pub fn apply(&mut self, change: PluginChange) -> BTreeSet<WorkloadKey> {
        let (key, new_served) = match change {
            PluginChange::Upsert(p) => {
                let key = PluginKey::of(&p);
                let errors = p.spec.validate(&key.namespace);
                let state = self.plugins.entry(key.clone()).or_default();
                state.generation = p.metadata.generation;
                if errors.is_empty() {
                    state.errors.clear();
                    let served = Served::new(key.clone(), p.spec);
                    if state.served.as_deref() == Some(&served) {
                        return BTreeSet::new();
                    }
                    (key, Some(Arc::new(served)))
                } else {
                    state.errors = errors;
                    return BTreeSet::new();
                }
            }
            PluginChange::Unreadable { key, reasons } => {
                self.plugins.entry(key).or_default().errors = reasons;
                return BTreeSet::new();
            }
            PluginChange::Delete(key) => (key, None),
        };
        let old = match &new_served {
            Some(s) => self
                .plugins
                .entry(key.clone())
                .or_default()
                .served
                .replace(s.clone()),
            None => self.plugins.remove(&key).and_then(|s| s.served),
        };
        self.replace_in_snapshots(&key, old.as_deref(), new_served)
    }

    fn replace_in_snapshots(
        &mut self,
        key: &PluginKey,
        old: Option<&Served>,
        new: Option<Arc<Served>>,
    ) -> BTreeSet<WorkloadKey> {
        let root = self.root_ns.as_str();
        let mut changed = BTreeSet::new();
        for (wk, ws) in self.workloads.iter_mut() {
            let was = old.is_some_and(|o| selects(&o.spec, &key.namespace, &ws.workload, root));
            let is = new
                .as_ref()
                .filter(|n| selects(&n.spec, &key.namespace, &ws.workload, root));
            if !was && is.is_none() {
                continue;
            }
            let mut list = std::mem::take(&mut ws.snapshot.plugins);
            list.retain(|p| p.key != *key);
            if let Some(n) = is {
                let at = list.partition_point(|p| p.cmp_order(n).is_lt());
                list.insert(at, n.clone());
            }
            let old_version = std::mem::take(&mut ws.snapshot.version);
            ws.snapshot = Snapshot::new(list);
            if ws.snapshot.version != old_version {
                changed.insert(wk.clone());
            }
        }
        changed
    }

    /// Adds or replaces a workload; returns whether its snapshot changed
    /// (always true for a new workload).
    pub fn upsert_workload(&mut self, w: Workload) -> bool {
        let snapshot = compute_snapshot(
            self.plugins.values().filter_map(|s| s.served.as_ref()),
            &w,
            &self.root_ns,
        );
        let key = w.key();
        let changed = self
            .workloads
            .get(&key)
            .is_none_or(|old| old.snapshot.version != snapshot.version);
        self.workloads.insert(
            key,
            WorkloadState {
                workload: w,
                snapshot,
            },
        );
        changed
    }

    /// Forgets a workload; returns whether it was known.
    pub fn remove_workload(&mut self, key: &WorkloadKey) -> bool {
        self.workloads.remove(key).is_some()
    }

    /// Recomputes every workload's snapshot from scratch.
    pub fn recompute_all(&mut self) {
        let served: Vec<&Arc<Served>> = self
            .plugins
            .values()
            .filter_map(|s| s.served.as_ref())
            .collect();
        for ws in self.workloads.values_mut() {
            ws.snapshot = compute_snapshot(served.iter().copied(), &ws.workload, &self.root_ns);
        }
    }

    /// The current snapshot of a workload.
    pub fn snapshot(&self, key: &WorkloadKey) -> Option<&Snapshot> {
        self.workloads.get(key).map(|w| &w.snapshot)
    }

    /// A known workload.
    pub fn workload(&self, key: &WorkloadKey) -> Option<&Workload> {
        self.workloads.get(key).map(|w| &w.workload)
    }

    /// Every plugin known, accepted or not.
    pub fn plugins(&self) -> impl Iterator<Item = (&PluginKey, &PluginState)> {
        self.plugins.iter()
    }

    /// One plugin's state.
    pub fn plugin(&self, key: &PluginKey) -> Option<&PluginState> {
        self.plugins.get(key)
    }

    /// The workloads whose snapshot holds the plugin.
    pub fn workloads_running(&self, key: &PluginKey) -> Vec<WorkloadKey> {
        self.workloads
            .iter()
            .filter(|(_, ws)| ws.snapshot.plugins.iter().any(|p| p.key == *key))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// How many workloads are known.
    pub fn workload_count(&self) -> usize {
        self.workloads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::DEFAULT_ROOT_NAMESPACE as ROOT;

    fn plugin(ns: &str, name: &str, spec: serde_json::Value) -> WasmPlugin {
        let mut spec = spec;
        if spec.get("url").is_none() {
            spec["url"] = serde_json::json!(format!("oci://r/{name}:1"));
        }
        let mut p = WasmPlugin::new(name, serde_json::from_value(spec).unwrap());
        p.metadata.namespace = Some(ns.to_owned());
        p
    }

    fn workload(ns: &str, name: &str, app: &str) -> Workload {
        Workload {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            labels: [("app".to_owned(), app.to_owned())].into(),
            ..Workload::default()
        }
    }

    fn key(ns: &str, name: &str) -> WorkloadKey {
        WorkloadKey {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        }
    }

    fn upsert(e: &mut Engine, p: WasmPlugin) -> Vec<String> {
        e.apply(PluginChange::Upsert(Box::new(p)))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn names(e: &Engine, ns: &str, name: &str) -> Vec<String> {
        e.snapshot(&key(ns, name))
            .unwrap()
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Three workloads: shop/a (app=a), shop/b (app=b), bank/c (app=a).
    fn engine() -> Engine {
        let mut e = Engine::new(ROOT);
        for w in [
            workload("shop", "a", "a"),
            workload("shop", "b", "b"),
            workload("bank", "c", "a"),
        ] {
            assert!(e.upsert_workload(w));
        }
        e
    }

    #[test]
    fn version_depends_on_content_and_order_only() {
        let w = workload("shop", "a", "a");
        let served = |name: &str, spec: serde_json::Value| {
            let p = plugin("shop", name, spec);
            Arc::new(Served::new(PluginKey::of(&p), p.spec))
        };
        let p1 = served("x", serde_json::json!({}));
        let p2 = served("y", serde_json::json!({}));
        let s1 = compute_snapshot([&p1, &p2], &w, ROOT);
        let s2 = compute_snapshot([&p2, &p1], &w, ROOT);
        assert_eq!(s1.version, s2.version, "input order does not matter");
        assert_eq!(s1.names(), ["shop.x", "shop.y"]);
        let p1b = served("x", serde_json::json!({"pluginConfig": {"a": 1}}));
        let s3 = compute_snapshot([&p1b, &p2], &w, ROOT);
        assert_ne!(s3.version, s1.version, "content matters");
        let p2b = served("y", serde_json::json!({"priority": 5}));
        let s4 = compute_snapshot([&p1, &p2b], &w, ROOT);
        assert_eq!(s4.names(), ["shop.y", "shop.x"]);
        assert_ne!(s4.version, s1.version);
        assert_eq!(compute_snapshot([], &w, ROOT).plugins.len(), 0);
        let json = serde_json::to_value(&s1).unwrap();
        assert_eq!(json["version"], s1.version.as_str());
        assert_eq!(json["plugins"][1]["name"], "shop.y");
        assert_eq!(json["plugins"][1]["url"], "oci://r/y:1");
    }

    #[test]
    fn a_change_touches_only_the_selected_workloads() {
        let mut e = engine();
        // selector app=a in shop: only shop/a
        assert_eq!(
            upsert(
                &mut e,
                plugin(
                    "shop",
                    "p",
                    serde_json::json!({"selector": {"matchLabels": {"app": "a"}}})
                )
            ),
            ["shop/a"]
        );
        assert_eq!(names(&e, "shop", "a"), ["shop.p"]);
        assert!(names(&e, "shop", "b").is_empty());
        // root namespace, app=a: shop/a and bank/c
        assert_eq!(
            upsert(
                &mut e,
                plugin(
                    ROOT,
                    "r",
                    serde_json::json!({"selector": {"matchLabels": {"app": "a"}}})
                )
            ),
            ["bank/c", "shop/a"]
        );
        // same content again: nothing
        assert!(
            upsert(
                &mut e,
                plugin(
                    ROOT,
                    "r",
                    serde_json::json!({"selector": {"matchLabels": {"app": "a"}}})
                )
            )
            .is_empty()
        );
        // moving the selector from a to b: both the old and the new workloads
        assert_eq!(
            upsert(
                &mut e,
                plugin(
                    "shop",
                    "p",
                    serde_json::json!({"selector": {"matchLabels": {"app": "b"}}})
                )
            ),
            ["shop/a", "shop/b"]
        );
        assert_eq!(names(&e, "shop", "a"), ["weft-system.r"]);
        assert_eq!(names(&e, "shop", "b"), ["shop.p"]);
        // a priority change reorders shop/a only
        upsert(
            &mut e,
            plugin(
                "shop",
                "q",
                serde_json::json!({"selector": {"matchLabels": {"app": "a"}}}),
            ),
        );
        assert_eq!(names(&e, "shop", "a"), ["shop.q", "weft-system.r"]);
        assert_eq!(
            upsert(
                &mut e,
                plugin(
                    ROOT,
                    "r",
                    serde_json::json!({"priority": 1, "selector": {"matchLabels": {"app": "a"}}})
                )
            ),
            ["bank/c", "shop/a"]
        );
        assert_eq!(names(&e, "shop", "a"), ["weft-system.r", "shop.q"]);
        // delete
        let changed = e.apply(PluginChange::Delete(PluginKey {
            namespace: "shop".into(),
            name: "q".into(),
        }));
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), [key("shop", "a")]);
        assert_eq!(names(&e, "shop", "a"), ["weft-system.r"]);
        let r = PluginKey {
            namespace: ROOT.into(),
            name: "r".into(),
        };
        assert_eq!(
            e.workloads_running(&r),
            [key("bank", "c"), key("shop", "a")]
        );
        // deleting an unknown plugin changes nothing
        assert!(
            e.apply(PluginChange::Delete(PluginKey {
                namespace: "x".into(),
                name: "y".into()
            }))
            .is_empty()
        );
    }

    #[test]
    fn an_invalid_update_keeps_the_last_valid_version() {
        let mut e = engine();
        upsert(
            &mut e,
            plugin("shop", "p", serde_json::json!({"priority": 3})),
        );
        let before = e.snapshot(&key("shop", "a")).unwrap().clone();
        // http url without sha256: refused
        let changed = upsert(
            &mut e,
            plugin("shop", "p", serde_json::json!({"url": "https://h/p.wasm"})),
        );
        assert!(changed.is_empty());
        assert_eq!(e.snapshot(&key("shop", "a")).unwrap(), &before);
        let st = e
            .plugin(&PluginKey {
                namespace: "shop".into(),
                name: "p".into(),
            })
            .unwrap();
        assert_eq!(st.errors, ["sha256: required for an http(s) url"]);
        assert_eq!(st.served.as_ref().unwrap().plugin.url, "oci://r/p:1");
        // a never-valid plugin is not served
        assert!(
            upsert(
                &mut e,
                plugin("shop", "bad", serde_json::json!({"url": "ftp://x"}))
            )
            .is_empty()
        );
        assert_eq!(names(&e, "shop", "a"), ["shop.p"]);
        // fixing it clears the errors and serves the new version
        assert_eq!(
            upsert(
                &mut e,
                plugin("shop", "p", serde_json::json!({"url": "oci://r/p:2"}))
            ),
            ["shop/a", "shop/b"]
        );
        let st = e
            .plugin(&PluginKey {
                namespace: "shop".into(),
                name: "p".into(),
            })
            .unwrap();
        assert!(st.errors.is_empty());
        // an unreadable new version is recorded, the served one kept
        let k = PluginKey {
            namespace: "shop".into(),
            name: "p".into(),
        };
        assert!(
            e.apply(PluginChange::Unreadable {
                key: k.clone(),
                reasons: vec!["spec.phase: unknown variant".into()]
            })
            .is_empty()
        );
        assert_eq!(
            e.plugin(&k).unwrap().errors,
            ["spec.phase: unknown variant"]
        );
        assert_eq!(
            e.plugin(&k).unwrap().served.as_ref().unwrap().plugin.url,
            "oci://r/p:2"
        );
    }

    #[test]
    fn workloads_get_their_snapshot_when_they_appear() {
        let mut e = Engine::new(ROOT);
        upsert(
            &mut e,
            plugin(
                "shop",
                "p",
                serde_json::json!({"selector": {"matchLabels": {"app": "a"}}}),
            ),
        );
        assert!(e.upsert_workload(workload("shop", "a", "a")));
        assert_eq!(names(&e, "shop", "a"), ["shop.p"]);
        // same labels again: unchanged
        assert!(!e.upsert_workload(workload("shop", "a", "a")));
        // relabelled: changed
        assert!(e.upsert_workload(workload("shop", "a", "b")));
        assert!(names(&e, "shop", "a").is_empty());
        assert!(e.remove_workload(&key("shop", "a")));
        assert!(e.snapshot(&key("shop", "a")).is_none());
    }

    #[test]
    fn incremental_updates_equal_a_full_recompute() {
        let mut e = Engine::new(ROOT);
        let apps = ["a", "b", "c"];
        for i in 0..30 {
            let ns = ["shop", "bank"][i % 2];
            e.upsert_workload(workload(ns, &format!("w{i}"), apps[i % 3]));
        }
        let phases = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"];
        // a deterministic sequence of adds, updates and deletes
        for step in 0..200usize {
            let ns = [ROOT, "shop", "bank"][step % 3];
            let name = format!("p{}", step % 17);
            if step % 7 == 6 {
                e.apply(PluginChange::Delete(PluginKey {
                    namespace: ns.into(),
                    name,
                }));
                continue;
            }
            let mut spec = serde_json::json!({
                "phase": phases[step % 4],
                "priority": (step % 5) as i32 - 2,
            });
            if step % 3 != 0 {
                spec["selector"] = serde_json::json!({"matchLabels": {"app": apps[step % 3]}});
            }
            let before: BTreeMap<_, _> = (0..30)
                .map(|i| {
                    let k = key(["shop", "bank"][i % 2], &format!("w{i}"));
                    let v = e.snapshot(&k).unwrap().version.clone();
                    (k, v)
                })
                .collect();
            let changed = e.apply(PluginChange::Upsert(Box::new(plugin(ns, &name, spec))));
            for (k, v) in &before {
                assert_eq!(
                    changed.contains(k),
                    e.snapshot(k).unwrap().version != *v,
                    "step {step}: {k}"
                );
            }
        }
        let incremental: Vec<Snapshot> = (0..30)
            .map(|i| {
                e.snapshot(&key(["shop", "bank"][i % 2], &format!("w{i}")))
                    .unwrap()
                    .clone()
            })
            .collect();
        e.recompute_all();
        for (i, s) in incremental.iter().enumerate() {
            let full = e
                .snapshot(&key(["shop", "bank"][i % 2], &format!("w{i}")))
                .unwrap();
            assert_eq!(full, s, "w{i}");
        }
        assert!(incremental.iter().any(|s| s.plugins.len() > 3));
    }
}
