//! Which plugins apply to which workload, in which order, and what the
//! proxy is sent for each: pure functions.

use crate::crd::{self, PluginPhase, TargetKind, WasmPlugin, WasmPluginSpec};
use serde::{Deserialize, Serialize};
use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;

/// The namespace whose plugins apply to every namespace, by default.
pub const DEFAULT_ROOT_NAMESPACE: &str = "weft-system";

/// Label Kubernetes Gateway implementations put on a gateway's pods,
/// naming the Gateway; a proxy reporting it is that Gateway's workload.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// A proxy's workload: where it runs and what selects it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub ip: String,
    /// Services (in the workload's namespace) that select this workload.
    pub services: Vec<String>,
    /// The Gateway (in the workload's namespace) this workload implements.
    pub gateway: Option<String>,
}

impl Workload {
    /// The workload's key, `namespace/name`.
    pub fn key(&self) -> WorkloadKey {
        WorkloadKey {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// The workload of a proxy from its `node` block: namespace, name and
    /// labels; its gateway from the [`GATEWAY_NAME_LABEL`] label.
    pub fn from_node(node: &weft_config::Node) -> Workload {
        Workload {
            namespace: node.namespace.clone(),
            name: node.name.clone(),
            labels: node.labels.clone(),
            gateway: node.labels.get(GATEWAY_NAME_LABEL).cloned(),
            ..Workload::default()
        }
    }
}

/// A workload's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A plugin's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PluginKey {
    pub namespace: String,
    pub name: String,
}

impl PluginKey {
    pub fn of(p: &WasmPlugin) -> PluginKey {
        PluginKey {
            namespace: p.namespace_or_default().to_owned(),
            name: p.name().to_owned(),
        }
    }

    /// The name the proxy knows the plugin by: `namespace.name` (see
    /// [`to_plugin_spec`]).
    pub fn proxy_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for PluginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Whether a plugin in `plugin_ns` may apply to a workload in
/// `workload_ns`: plugins in the root namespace apply everywhere, others
/// only in their own namespace.
pub fn in_scope(plugin_ns: &str, workload_ns: &str, root_ns: &str) -> bool {
    plugin_ns == root_ns || plugin_ns == workload_ns
}

/// Whether the plugin `spec` in `plugin_ns` selects workload `w`.
///
/// Rules, in order: out of scope ([`in_scope`]) → no. With `targetRefs`:
/// yes when one of them names the workload's Gateway (`kind: Gateway`) or
/// one of its Services (`kind: Service`), in the reference's namespace
/// (default: the plugin's). With `selector`: yes when the workload carries
/// every `matchLabels` pair. Neither: every workload in scope.
pub fn selects(spec: &WasmPluginSpec, plugin_ns: &str, w: &Workload, root_ns: &str) -> bool {
    if !in_scope(plugin_ns, &w.namespace, root_ns) {
        return false;
    }
    if !spec.target_refs.is_empty() {
        return spec.target_refs.iter().any(|t| {
            let ns = t.namespace.as_deref().unwrap_or(plugin_ns);
            ns == w.namespace
                && match t.kind {
                    TargetKind::Gateway => w.gateway.as_deref() == Some(t.name.as_str()),
                    TargetKind::Service => w.services.contains(&t.name),
                }
        });
    }
    match &spec.selector {
        Some(sel) => sel
            .match_labels
            .iter()
            .all(|(k, v)| w.labels.get(k) == Some(v)),
        None => true,
    }
}

/// Position of a phase in the chain: AUTHN 0, AUTHZ 1, STATS 2,
/// UNSPECIFIED_PHASE 3 (after the others).
pub fn phase_rank(p: PluginPhase) -> u8 {
    match p {
        PluginPhase::Authn => 0,
        PluginPhase::Authz => 1,
        PluginPhase::Stats => 2,
        PluginPhase::Unspecified => 3,
    }
}

/// The sort key of a plugin on a proxy: phase rank, priority (highest
/// first), then namespace and name.
pub fn order_key(
    phase: PluginPhase,
    priority: i32,
    key: &PluginKey,
) -> (u8, Reverse<i32>, &str, &str) {
    (
        phase_rank(phase),
        Reverse(priority),
        key.namespace.as_str(),
        key.name.as_str(),
    )
}

/// Compares two plugins by chain order (see [`order_key`]).
pub fn compare(a: (&WasmPluginSpec, &PluginKey), b: (&WasmPluginSpec, &PluginKey)) -> Ordering {
    order_key(a.0.phase, a.0.priority, a.1).cmp(&order_key(b.0.phase, b.0.priority, b.1))
}

/// The plugins of `plugins` that select `w`, in chain order.
pub fn select_ordered<'a>(
    plugins: &'a [WasmPlugin],
    w: &Workload,
    root_ns: &str,
) -> Vec<&'a WasmPlugin> {
    let mut out: Vec<(&WasmPlugin, PluginKey)> = plugins
        .iter()
        .filter(|p| selects(&p.spec, p.namespace_or_default(), w, root_ns))
        .map(|p| (p, PluginKey::of(p)))
        .collect();
    out.sort_by(|a, b| compare((&a.0.spec, &a.1), (&b.0.spec, &b.1)));
    out.into_iter().map(|(p, _)| p).collect()
}

/// The plugin as the proxy receives it.
///
/// Naming: the proxy's plugin `name` is `namespace.name` (unique on a
/// proxy, since a namespace holds no `.`, and readable in the proxy's
/// `/plugins` and metrics); `pluginName` stays what it is in Istio, the
/// root id handed to the module. `selector`, `targetRefs` and `match` are
/// consumed by the controller (selection) and not sent; `imagePullSecret`
/// is not sent (weft pulls with its own credentials).
pub fn to_plugin_spec(key: &PluginKey, spec: &WasmPluginSpec) -> weft_config::PluginSpec {
    use weft_config::{FailStrategy, ImagePullPolicy, Phase, ValueFrom};
    weft_config::PluginSpec {
        name: key.proxy_name(),
        url: spec.url.clone(),
        sha256: spec.sha256.clone(),
        image_pull_policy: match spec.image_pull_policy {
            crd::PullPolicy::Unspecified => ImagePullPolicy::Unspecified,
            crd::PullPolicy::IfNotPresent => ImagePullPolicy::IfNotPresent,
            crd::PullPolicy::Always => ImagePullPolicy::Always,
        },
        plugin_name: spec.plugin_name.clone(),
        phase: match spec.phase {
            PluginPhase::Authn => Phase::Authn,
            PluginPhase::Authz => Phase::Authz,
            PluginPhase::Stats => Phase::Stats,
            PluginPhase::Unspecified => Phase::Unspecified,
        },
        priority: spec.priority,
        fail_strategy: match spec.fail_strategy {
            crd::FailStrategy::FailClose => FailStrategy::FailClose,
            crd::FailStrategy::FailOpen => FailStrategy::FailOpen,
        },
        plugin_config: spec
            .plugin_config
            .clone()
            .map_or(serde_json::Value::Null, serde_json::Value::Object),
        vm_config: weft_config::VmConfig {
            env: spec
                .vm_config
                .iter()
                .flat_map(|vm| vm.env.iter())
                .map(|e| weft_config::EnvVar {
                    name: e.name.clone(),
                    value: e.value.clone(),
                    value_from: match e.value_from {
                        crd::ValueFrom::Inline => ValueFrom::Inline,
                        crd::ValueFrom::Host => ValueFrom::Host,
                    },
                })
                .collect(),
        },
        listeners: None,
        traffic: spec
            .match_
            .iter()
            .map(|m| weft_config::TrafficSelector {
                mode: match m.mode {
                    crd::WorkloadMode::ClientAndServer => weft_config::TrafficMode::ClientAndServer,
                    crd::WorkloadMode::Client => weft_config::TrafficMode::Client,
                    crd::WorkloadMode::Server => weft_config::TrafficMode::Server,
                },
                ports: m
                    .ports
                    .iter()
                    .filter_map(|p| u16::try_from(p.number).ok())
                    .map(|number| weft_config::PortSelector { number })
                    .collect(),
            })
            .collect(),
        limits: weft_config::PluginLimits::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{TargetRef, WorkloadSelector};

    fn spec() -> WasmPluginSpec {
        serde_json::from_value(serde_json::json!({"url": "oci://r/p:1"})).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn workload(ns: &str, name: &str, l: &[(&str, &str)]) -> Workload {
        Workload {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            labels: labels(l),
            services: vec!["web".to_owned()],
            gateway: Some("edge".to_owned()),
            ..Workload::default()
        }
    }

    fn with_selector(l: &[(&str, &str)]) -> WasmPluginSpec {
        WasmPluginSpec {
            selector: Some(WorkloadSelector {
                match_labels: labels(l),
            }),
            ..spec()
        }
    }

    fn with_ref(kind: TargetKind, name: &str, ns: Option<&str>) -> WasmPluginSpec {
        WasmPluginSpec {
            target_refs: vec![TargetRef {
                group: None,
                kind,
                name: name.to_owned(),
                namespace: ns.map(str::to_owned),
            }],
            ..spec()
        }
    }

    #[test]
    fn selection_rules() {
        let root = DEFAULT_ROOT_NAMESPACE;
        let w = workload("shop", "gw-1", &[("app", "gw"), ("tier", "edge")]);
        // (case, spec, plugin namespace, selected?)
        let cases: Vec<(&str, WasmPluginSpec, &str, bool)> = vec![
            ("no selector, same namespace: all", spec(), "shop", true),
            ("no selector, other namespace", spec(), "bank", false),
            (
                "no selector, root namespace: all namespaces",
                spec(),
                root,
                true,
            ),
            (
                "selector subset matches",
                with_selector(&[("app", "gw")]),
                "shop",
                true,
            ),
            (
                "selector all labels match",
                with_selector(&[("app", "gw"), ("tier", "edge")]),
                "shop",
                true,
            ),
            (
                "selector value differs",
                with_selector(&[("app", "api")]),
                "shop",
                false,
            ),
            (
                "selector label missing",
                with_selector(&[("app", "gw"), ("zone", "a")]),
                "shop",
                false,
            ),
            ("empty selector: all", with_selector(&[]), "shop", true),
            (
                "selector in root namespace",
                with_selector(&[("app", "gw")]),
                root,
                true,
            ),
            (
                "selector matches but other namespace",
                with_selector(&[("app", "gw")]),
                "bank",
                false,
            ),
            (
                "targetRef Gateway by name",
                with_ref(TargetKind::Gateway, "edge", None),
                "shop",
                true,
            ),
            (
                "targetRef other Gateway",
                with_ref(TargetKind::Gateway, "inner", None),
                "shop",
                false,
            ),
            (
                "targetRef Service by name",
                with_ref(TargetKind::Service, "web", None),
                "shop",
                true,
            ),
            (
                "targetRef other Service",
                with_ref(TargetKind::Service, "api", None),
                "shop",
                false,
            ),
            (
                "targetRef kind matters",
                with_ref(TargetKind::Service, "edge", None),
                "shop",
                false,
            ),
            (
                "targetRef explicit same namespace",
                with_ref(TargetKind::Gateway, "edge", Some("shop")),
                "shop",
                true,
            ),
            (
                "targetRef in root names root's gateway",
                with_ref(TargetKind::Gateway, "edge", None),
                root,
                false,
            ),
            (
                "targetRef from other namespace",
                with_ref(TargetKind::Gateway, "edge", None),
                "bank",
                false,
            ),
        ];
        for (case, s, ns, want) in cases {
            assert_eq!(selects(&s, ns, &w, root), want, "{case}");
        }
    }

    #[test]
    fn target_refs_any_of_several_matches() {
        let mut s = with_ref(TargetKind::Gateway, "inner", None);
        s.target_refs
            .extend(with_ref(TargetKind::Service, "web", None).target_refs);
        assert!(selects(
            &s,
            "shop",
            &workload("shop", "w", &[]),
            DEFAULT_ROOT_NAMESPACE
        ));
        let no_gateway = Workload {
            gateway: None,
            services: vec![],
            ..workload("shop", "w", &[])
        };
        assert!(!selects(&s, "shop", &no_gateway, DEFAULT_ROOT_NAMESPACE));
    }

    #[test]
    fn root_namespace_is_configurable() {
        let w = workload("shop", "w", &[]);
        assert!(selects(&spec(), "mesh", &w, "mesh"));
        assert!(!selects(&spec(), DEFAULT_ROOT_NAMESPACE, &w, "mesh"));
        assert!(in_scope("mesh", "anything", "mesh"));
        assert!(!in_scope("a", "b", "mesh"));
    }

    fn plugin(ns: &str, name: &str, phase: PluginPhase, priority: i32) -> WasmPlugin {
        let mut p = WasmPlugin::new(
            name,
            WasmPluginSpec {
                phase,
                priority,
                ..spec()
            },
        );
        p.metadata.namespace = Some(ns.to_owned());
        p
    }

    #[test]
    fn order_is_phase_then_priority_then_namespace_and_name() {
        let plugins = vec![
            plugin("shop", "unspec", PluginPhase::Unspecified, 100),
            plugin("shop", "stats", PluginPhase::Stats, 0),
            plugin("shop", "authz-low", PluginPhase::Authz, -5),
            plugin("shop", "authz-high", PluginPhase::Authz, 10),
            plugin("shop", "authn", PluginPhase::Authn, 0),
            plugin("shop", "b-tie", PluginPhase::Authz, 0),
            plugin("shop", "a-tie", PluginPhase::Authz, 0),
            plugin(DEFAULT_ROOT_NAMESPACE, "a-tie", PluginPhase::Authz, 0),
            plugin("other", "ignored", PluginPhase::Authn, 0),
        ];
        let w = workload("shop", "w", &[]);
        let names: Vec<String> = select_ordered(&plugins, &w, DEFAULT_ROOT_NAMESPACE)
            .iter()
            .map(|p| PluginKey::of(p).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "shop/authn",
                "shop/authz-high",
                "shop/a-tie",
                "shop/b-tie",
                "weft-system/a-tie",
                "shop/authz-low",
                "shop/stats",
                "shop/unspec",
            ]
        );
    }

    #[test]
    fn conversion_to_the_proxy_spec() {
        let s: WasmPluginSpec = serde_json::from_value(serde_json::json!({
            "url": "https://example.invalid/p.wasm",
            "sha256": "ab".repeat(32),
            "imagePullPolicy": "Always",
            "pluginName": "root-id",
            "phase": "AUTHZ",
            "priority": 7,
            "failStrategy": "FAIL_OPEN",
            "pluginConfig": {"k": [1, 2]},
            "vmConfig": {"env": [{"name": "A", "value": "1"}, {"name": "HOME", "valueFrom": "HOST"}]},
            "selector": {"matchLabels": {"app": "x"}},
            "match": [{"mode": "SERVER", "ports": [{"number": 8443}]}],
        }))
        .unwrap();
        let key = PluginKey {
            namespace: "shop".to_owned(),
            name: "auth".to_owned(),
        };
        let p = to_plugin_spec(&key, &s);
        assert!(p.applies_to_port(8443));
        assert!(!p.applies_to_port(8080), "match reaches the proxy");
        assert_eq!(p.name, "shop.auth");
        assert_eq!(p.plugin_name.as_deref(), Some("root-id"));
        assert_eq!(p.url, s.url);
        assert_eq!(p.sha256, s.sha256);
        assert_eq!(p.image_pull_policy, weft_config::ImagePullPolicy::Always);
        assert_eq!(p.phase, weft_config::Phase::Authz);
        assert_eq!(p.priority, 7);
        assert_eq!(p.fail_strategy, weft_config::FailStrategy::FailOpen);
        assert_eq!(p.plugin_config, serde_json::json!({"k": [1, 2]}));
        assert_eq!(p.vm_config.env.len(), 2);
        assert_eq!(p.vm_config.env[1].value_from, weft_config::ValueFrom::Host);
        assert_eq!(p.listeners, None);
        // an absent pluginConfig is null on the proxy
        assert_eq!(
            to_plugin_spec(&key, &spec()).plugin_config,
            serde_json::Value::Null
        );
        // the proxy reads what the controller sends
        let yaml = serde_json::to_string(&p).unwrap();
        let back: weft_config::PluginSpec = serde_json::from_str(&yaml).unwrap();
        assert_eq!(back, p);
    }

    /// The order the controller gives a workload, and the order the proxy
    /// gives the same plugins as specs.
    fn both_orders(plugins: &[WasmPlugin], w: &Workload) -> (Vec<String>, Vec<String>) {
        let ours = select_ordered(plugins, w, DEFAULT_ROOT_NAMESPACE)
            .iter()
            .map(|p| PluginKey::of(p).proxy_name())
            .collect();
        let specs: Vec<weft_config::PluginSpec> = plugins
            .iter()
            .map(|p| to_plugin_spec(&PluginKey::of(p), &p.spec))
            .collect();
        let theirs = weft_config::plugin_order(&specs)
            .iter()
            .map(|p| p.name.clone())
            .collect();
        (ours, theirs)
    }

    #[test]
    fn proxy_order_agrees_with_controller_order() {
        let plugins = vec![
            plugin("shop", "z", PluginPhase::Authz, 1),
            plugin("shop", "a", PluginPhase::Authz, 1),
            plugin(DEFAULT_ROOT_NAMESPACE, "m", PluginPhase::Authz, 1),
            plugin("shop", "s", PluginPhase::Stats, 9),
        ];
        let (ours, theirs) = both_orders(&plugins, &workload("shop", "w", &[]));
        assert_eq!(ours, theirs);

        // A namespace that extends the root namespace's name: the proxy
        // compares namespaces, not the joined names.
        let ns = format!("{DEFAULT_ROOT_NAMESPACE}-x");
        let plugins = vec![
            plugin(&ns, "n", PluginPhase::Authz, 1),
            plugin(DEFAULT_ROOT_NAMESPACE, "m", PluginPhase::Authz, 1),
        ];
        let (ours, theirs) = both_orders(&plugins, &workload(&ns, "w", &[]));
        assert_eq!(ours, theirs);
        assert_eq!(ours[0], format!("{DEFAULT_ROOT_NAMESPACE}.m"));
    }

    #[test]
    fn workload_from_a_proxy_node() {
        let node = weft_config::Node {
            name: "gw-1".to_owned(),
            namespace: "shop".to_owned(),
            labels: labels(&[("app", "gw"), (GATEWAY_NAME_LABEL, "edge")]),
        };
        let w = Workload::from_node(&node);
        assert_eq!(w.key().to_string(), "shop/gw-1");
        assert_eq!(w.gateway.as_deref(), Some("edge"));
        assert_eq!(w.labels, node.labels);
        assert!(selects(
            &with_ref(TargetKind::Gateway, "edge", None),
            "shop",
            &w,
            DEFAULT_ROOT_NAMESPACE
        ));
    }
}
