//! The `WasmPlugin` custom resource (`extensions.weft.dev/v1alpha1`), with
//! Istio's WasmPlugin spec fields, its status, and the checks the schema
//! cannot express ([`WasmPluginSpec::validate`]).

use kube::core::crd::CustomResourceExt;
use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// API group of the resource.
pub const GROUP: &str = "extensions.weft.dev";
/// API version of the resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of a manifest.
pub const API_VERSION: &str = "extensions.weft.dev/v1alpha1";
/// `kind` of a manifest.
pub const KIND: &str = "WasmPlugin";

/// A Wasm plugin and the workloads it applies to (Istio's WasmPlugin spec).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "extensions.weft.dev",
    version = "v1alpha1",
    kind = "WasmPlugin",
    namespaced,
    derive = "PartialEq",
    status = "WasmPluginStatus",
    shortname = "wp",
    category = "weft",
    doc = "A proxy-wasm plugin run by the weft proxies it selects.",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".spec.phase"}"#,
    printcolumn = r#"{"name":"Priority","type":"integer","jsonPath":".spec.priority"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"proxies that loaded the plugin / proxies selected","jsonPath":".status.ready"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!(has(self.selector) && has(self.targetRefs))").message("selector and targetRefs are mutually exclusive"))]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    /// Workloads selected by their labels; absent (with no targetRefs): every workload in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Gateways or Services whose workloads run the plugin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,
    /// The module: oci://, http://, https://, file:// or a bare path.
    #[schemars(length(min = 1))]
    pub url: String,
    /// SHA-256 of the module, 64 lowercase hex characters; required for http(s) urls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-f0-9]{64}$"))]
    pub sha256: Option<String>,
    /// When to fetch the module again.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Name of the pull secret for the OCI registry (carried, not yet used by weft).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// The plugin's configuration, handed to it as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub plugin_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// Root id handed to the module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    /// Where in the filter chain the plugin runs.
    #[serde(default)]
    pub phase: PluginPhase,
    /// Order within a phase: higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// What happens when the plugin fails to load or traps.
    #[serde(default)]
    pub fail_strategy: FailStrategy,
    /// The plugin VM's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<VmConfig>,
    /// Traffic the plugin applies to; empty: all.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<TrafficSelector>,
    /// The kind of plugin; weft runs HTTP plugins only.
    #[serde(default, rename = "type")]
    pub type_: PluginType,
}

/// Schema of `pluginConfig`: any JSON object, kept as is.
fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The plugin's configuration, handed to it as JSON.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Workloads selected by labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a workload must all carry (with these values).
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// A Gateway or Service whose workloads are selected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API group: gateway.networking.k8s.io for a Gateway, "" or core for a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub kind: TargetKind,
    /// Name of the Gateway or Service.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Must be the plugin's own namespace when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What a target reference names.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum TargetKind {
    Gateway,
    Service,
}

/// When to fetch a remote module again (Istio's PullPolicy).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum PullPolicy {
    #[default]
    #[serde(rename = "UNSPECIFIED_POLICY")]
    Unspecified,
    IfNotPresent,
    Always,
}

/// Where in the chain a plugin runs (Istio's PluginPhase).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum PluginPhase {
    #[default]
    #[serde(rename = "UNSPECIFIED_PHASE")]
    Unspecified,
    #[serde(rename = "AUTHN")]
    Authn,
    #[serde(rename = "AUTHZ")]
    Authz,
    #[serde(rename = "STATS")]
    Stats,
}

/// What happens when a plugin fails (Istio's FailStrategy).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum FailStrategy {
    #[default]
    #[serde(rename = "FAIL_CLOSE")]
    FailClose,
    #[serde(rename = "FAIL_OPEN")]
    FailOpen,
}

/// The kind of plugin. Istio's NETWORK plugins are not supported by weft
/// and are refused by the schema.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum PluginType {
    /// HTTP.
    #[default]
    #[serde(rename = "UNSPECIFIED_PLUGIN_TYPE")]
    Unspecified,
    #[serde(rename = "HTTP")]
    Http,
}

/// The plugin VM's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VmConfig {
    /// Environment variables of the module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// An environment variable of the plugin's VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[schemars(length(min = 1))]
    pub name: String,
    /// The value, for valueFrom INLINE.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default)]
    pub value_from: ValueFrom,
}

/// Where an environment variable's value comes from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ValueFrom {
    #[default]
    #[serde(rename = "INLINE")]
    Inline,
    #[serde(rename = "HOST")]
    Host,
}

/// Traffic a plugin applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrafficSelector {
    #[serde(default)]
    pub mode: WorkloadMode,
    /// Ports the plugin applies to; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSelector>,
}

/// Direction of traffic (Istio's WorkloadMode).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum WorkloadMode {
    #[default]
    #[serde(rename = "CLIENT_AND_SERVER")]
    ClientAndServer,
    #[serde(rename = "CLIENT")]
    Client,
    #[serde(rename = "SERVER")]
    Server,
}

/// A port number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PortSelector {
    #[schemars(range(min = 1, max = 65535))]
    pub number: u32,
}

/// What the controller and the proxies report about a plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted` (the spec is valid) and `Ready` (every selected proxy loaded it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Proxies that loaded the plugin / proxies selected, e.g. "3/4".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Proxies selected by the plugin.
    #[serde(default)]
    pub proxies_total: u32,
    /// Proxies that loaded the plugin's current version.
    #[serde(default)]
    pub proxies_loaded: u32,
    /// Proxies that refused or failed to load it.
    #[serde(default)]
    pub proxies_failed: u32,
    /// The latest errors proxies reported, one per proxy (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_errors: Vec<ProxyError>,
}

/// A condition of a plugin's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted` or `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time the status last changed (set by the writer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// An error a proxy reported for a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProxyError {
    /// The proxy, as namespace/name.
    pub proxy: String,
    pub message: String,
}

impl WasmPluginSpec {
    /// The problems the schema cannot catch, one reason each; `plugin_ns`
    /// is the plugin's own namespace. Empty: the spec is valid.
    pub fn validate(&self, plugin_ns: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if self.selector.is_some() && !self.target_refs.is_empty() {
            errs.push("selector and targetRefs are mutually exclusive".to_owned());
        }
        if self.url.trim().is_empty() {
            errs.push("url: must not be empty".to_owned());
        }
        let scheme = self.url.split_once("://").map(|(s, _)| s);
        match scheme {
            None | Some("file" | "oci" | "oci-layout") => {}
            Some("http" | "https") if self.sha256.is_none() => {
                errs.push("sha256: required for an http(s) url".to_owned());
            }
            Some("http" | "https") => {}
            Some(other) => errs.push(format!(
                "url: unsupported scheme {other:?} (oci, http, https, file, oci-layout)"
            )),
        }
        if let Some(sha) = &self.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            errs.push(format!(
                "sha256: {sha:?} is not 64 lowercase hex characters"
            ));
        }
        if let Some(sel) = &self.selector {
            for (k, v) in &sel.match_labels {
                if k.is_empty() {
                    errs.push(format!("selector.matchLabels: empty key (value {v:?})"));
                }
            }
        }
        for (i, t) in self.target_refs.iter().enumerate() {
            if t.name.is_empty() {
                errs.push(format!("targetRefs[{i}].name: must not be empty"));
            }
            if let Some(ns) = &t.namespace
                && ns != plugin_ns
            {
                errs.push(format!(
                    "targetRefs[{i}].namespace: {ns:?} differs from the plugin's namespace {plugin_ns:?}"
                ));
            }
            let group = t.group.as_deref().unwrap_or("");
            let ok = match t.kind {
                TargetKind::Gateway => matches!(group, "" | "gateway.networking.k8s.io"),
                TargetKind::Service => matches!(group, "" | "core"),
            };
            if !ok {
                errs.push(format!(
                    "targetRefs[{i}].group: {group:?} is not a group of kind {:?}",
                    t.kind
                ));
            }
        }
        if let Some(vm) = &self.vm_config {
            let mut seen = BTreeSet::new();
            for (i, e) in vm.env.iter().enumerate() {
                if e.name.is_empty() {
                    errs.push(format!("vmConfig.env[{i}].name: must not be empty"));
                } else if !seen.insert(e.name.as_str()) {
                    errs.push(format!("vmConfig.env[{i}].name: {:?} is repeated", e.name));
                }
                if e.value_from == ValueFrom::Host && !e.value.is_empty() {
                    errs.push(format!(
                        "vmConfig.env[{i}].value: must be empty with valueFrom HOST"
                    ));
                }
            }
        }
        for (i, m) in self.match_.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for (j, p) in m.ports.iter().enumerate() {
                if !(1..=65535).contains(&p.number) {
                    errs.push(format!(
                        "match[{i}].ports[{j}].number: {} is not in 1..=65535",
                        p.number
                    ));
                } else if !seen.insert(p.number) {
                    errs.push(format!(
                        "match[{i}].ports[{j}].number: {} is repeated",
                        p.number
                    ));
                }
            }
        }
        errs
    }
}

impl WasmPlugin {
    /// The plugin's namespace ("default" when the manifest has none).
    pub fn namespace_or_default(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The plugin's name ("" when the manifest has none).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
}

/// The CustomResourceDefinition, as YAML (what `weft-controller crd` prints).
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&WasmPlugin::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/k8s/crd.yaml");

    #[test]
    fn examples_crd_yaml_is_the_generated_crd() {
        let file = std::fs::read_to_string(CRD_FILE).unwrap();
        let generated = crd_yaml().unwrap();
        assert!(
            file == generated,
            "examples/k8s/crd.yaml is stale: run `cargo run -p weft-controller -- crd > examples/k8s/crd.yaml`"
        );
    }

    #[test]
    fn crd_identity_subresource_and_columns() {
        let crd = serde_json::to_value(WasmPlugin::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "wasmplugins.extensions.weft.dev");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let v = &crd["spec"]["versions"][0];
        assert_eq!(v["name"], VERSION);
        assert!(v["subresources"]["status"].is_object());
        let cols: Vec<&str> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(cols, ["URL", "Phase", "Priority", "Ready", "Age"]);
        let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["required"], serde_json::json!(["url"]));
        assert_eq!(
            spec["properties"]["phase"]["enum"],
            serde_json::json!(["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"])
        );
        assert_eq!(
            spec["properties"]["failStrategy"]["enum"],
            serde_json::json!(["FAIL_CLOSE", "FAIL_OPEN"])
        );
        assert_eq!(spec["properties"]["sha256"]["pattern"], "^[a-f0-9]{64}$");
        let port = &spec["properties"]["match"]["items"]["properties"]["ports"]["items"]["properties"]
            ["number"];
        assert_eq!(
            (port["minimum"].as_f64(), port["maximum"].as_f64()),
            (Some(1.0), Some(65535.0))
        );
        assert_eq!(
            spec["properties"]["pluginConfig"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert!(
            spec["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .unwrap()
                .contains("targetRefs")
        );
    }

    const ISTIO_STYLE: &str = r#"
apiVersion: extensions.weft.dev/v1alpha1
kind: WasmPlugin
metadata:
  name: openid-connect
  namespace: istio-ingress
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  url: oci://private-registry:5000/openid-connect/openid:latest
  imagePullPolicy: IfNotPresent
  imagePullSecret: private-registry-pull-secret
  phase: AUTHN
  priority: 10
  failStrategy: FAIL_OPEN
  pluginConfig:
    openid_server: authn
    openid_realm: ingress
  vmConfig:
    env:
    - name: POD_NAME
      valueFrom: HOST
    - name: TRUST_DOMAIN
      value: "cluster.local"
  match:
  - mode: SERVER
    ports:
    - number: 8080
  type: HTTP
"#;

    #[test]
    fn reads_an_istio_style_manifest() {
        let p: WasmPlugin = serde_yaml_ng::from_str(ISTIO_STYLE).unwrap();
        assert_eq!(p.name(), "openid-connect");
        assert_eq!(p.namespace_or_default(), "istio-ingress");
        let s = &p.spec;
        assert_eq!(s.phase, PluginPhase::Authn);
        assert_eq!(s.priority, 10);
        assert_eq!(s.fail_strategy, FailStrategy::FailOpen);
        assert_eq!(s.image_pull_policy, PullPolicy::IfNotPresent);
        assert_eq!(s.type_, PluginType::Http);
        assert_eq!(s.match_[0].mode, WorkloadMode::Server);
        assert_eq!(s.match_[0].ports[0].number, 8080);
        let env = &s.vm_config.as_ref().unwrap().env;
        assert_eq!(env[0].value_from, ValueFrom::Host);
        assert_eq!(env[1].value, "cluster.local");
        assert_eq!(s.plugin_config.as_ref().unwrap()["openid_realm"], "ingress");
        assert_eq!(s.validate("istio-ingress"), Vec::<String>::new());
    }

    #[test]
    fn bad_enums_and_missing_url_are_refused_when_read() {
        for (bad, why) in [
            ("phase: LATE", "unknown variant"),
            ("failStrategy: MAYBE", "unknown variant"),
            ("type: NETWORK", "unknown variant"),
            ("targetRefs: [{kind: Pod, name: x}]", "unknown variant"),
            ("match: [{mode: SIDEWAYS}]", "unknown variant"),
            (
                "vmConfig: {env: [{name: A, valueFrom: FILE}]}",
                "unknown variant",
            ),
            ("priority: high", "invalid type"),
        ] {
            let yaml = format!("url: oci://r/p:1\n{bad}\n");
            let err = serde_yaml_ng::from_str::<WasmPluginSpec>(&yaml).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
        let err = serde_yaml_ng::from_str::<WasmPluginSpec>("phase: AUTHN\n").unwrap_err();
        assert!(err.to_string().contains("missing field `url`"), "{err}");
    }

    fn spec(yaml: &str) -> WasmPluginSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn validate_names_every_problem() {
        let https_ok = format!("url: https://h/p.wasm\nsha256: {}", "0f".repeat(32));
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("url: oci://r/p:1", vec![]),
            ("url: /var/lib/p.wasm", vec![]),
            ("url: file:///p.wasm", vec![]),
            (&https_ok, vec![]),
            ("url: '  '", vec!["url: must not be empty"]),
            (
                "url: https://h/p.wasm",
                vec!["sha256: required for an http(s) url"],
            ),
            (
                "url: ftp://h/p.wasm",
                vec!["url: unsupported scheme \"ftp\""],
            ),
            (
                "url: oci://r/p:1\nsha256: ABC",
                vec!["sha256: \"ABC\" is not 64 lowercase hex characters"],
            ),
            (
                "url: oci://r/p:1\nselector: {matchLabels: {a: b}}\ntargetRefs: [{kind: Gateway, name: gw}]",
                vec!["selector and targetRefs are mutually exclusive"],
            ),
            (
                "url: oci://r/p:1\nselector: {matchLabels: {'': b}}",
                vec!["selector.matchLabels: empty key"],
            ),
            (
                "url: oci://r/p:1\ntargetRefs: [{kind: Gateway, name: ''}]",
                vec!["targetRefs[0].name: must not be empty"],
            ),
            (
                "url: oci://r/p:1\ntargetRefs: [{kind: Gateway, name: gw, namespace: other}]",
                vec![
                    "targetRefs[0].namespace: \"other\" differs from the plugin's namespace \"shop\"",
                ],
            ),
            (
                "url: oci://r/p:1\ntargetRefs: [{kind: Service, name: s, group: gateway.networking.k8s.io}]",
                vec![
                    "targetRefs[0].group: \"gateway.networking.k8s.io\" is not a group of kind Service",
                ],
            ),
            (
                "url: oci://r/p:1\ntargetRefs: [{kind: Gateway, name: gw, group: gateway.networking.k8s.io}]",
                vec![],
            ),
            (
                "url: oci://r/p:1\nvmConfig: {env: [{name: A, value: x}, {name: A}, {name: ''}, {name: H, valueFrom: HOST, value: v}]}",
                vec![
                    "vmConfig.env[1].name: \"A\" is repeated",
                    "vmConfig.env[2].name: must not be empty",
                    "vmConfig.env[3].value: must be empty with valueFrom HOST",
                ],
            ),
            (
                "url: oci://r/p:1\nmatch: [{ports: [{number: 80}, {number: 80}, {number: 0}, {number: 70000}]}]",
                vec![
                    "match[0].ports[1].number: 80 is repeated",
                    "match[0].ports[2].number: 0 is not in 1..=65535",
                    "match[0].ports[3].number: 70000 is not in 1..=65535",
                ],
            ),
        ];
        for (yaml, want) in cases {
            let got = spec(yaml).validate("shop");
            assert_eq!(got.len(), want.len(), "{yaml}: {got:?}");
            for (g, w) in got.iter().zip(&want) {
                assert!(g.starts_with(w), "{yaml}: got {g:?}, want {w:?}");
            }
        }
    }

    #[test]
    fn manifests_round_trip() {
        let p: WasmPlugin = serde_yaml_ng::from_str(ISTIO_STYLE).unwrap();
        let back: WasmPlugin =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
