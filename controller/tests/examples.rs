//! The manifests in examples/k8s: every document parses, the WasmPlugins
//! are valid and their pluginConfigs are accepted by the built-in filters'
//! own parsers, the RBAC is least privilege, and the weft.yaml inside
//! gateway.yaml's ConfigMap is a valid weft configuration.

use serde::Deserialize;
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};
use weft_controller::crd::WasmPlugin;
use weft_controller::select::PluginKey;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/k8s")
}

/// The documents of a manifest file (empty documents skipped).
fn docs(file: &str) -> Vec<Value> {
    let path = dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{} {}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn every_manifest_is_known_and_parses() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "controller.yaml",
            "crd.yaml",
            "gateway.yaml",
            "rbac.yaml",
            "wasmplugins.yaml"
        ]
    );
    assert_eq!(
        kinds(&docs("crd.yaml")),
        ["CustomResourceDefinition wasmplugins.extensions.weft.dev"]
    );
    assert_eq!(
        kinds(&docs("rbac.yaml")),
        [
            "Namespace weft-system",
            "ServiceAccount weft-controller",
            "ClusterRole weft-controller",
            "ClusterRoleBinding weft-controller"
        ]
    );
    assert_eq!(
        kinds(&docs("controller.yaml")),
        ["Deployment weft-controller", "Service weft-controller"]
    );
    assert_eq!(
        kinds(&docs("gateway.yaml")),
        [
            "Namespace shop",
            "ConfigMap weft-gateway",
            "Deployment weft-gateway",
            "Service edge"
        ]
    );
    for d in docs("wasmplugins.yaml") {
        assert_eq!(d["kind"], "WasmPlugin");
    }
}

#[test]
fn the_controller_runs_in_kubernetes_mode_behind_its_service() {
    let d = docs("controller.yaml");
    let deploy: k8s_openapi::api::apps::v1::Deployment =
        serde_yaml_ng::from_value(d[0].clone()).unwrap();
    let pod = deploy.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("weft-controller"));
    let c = &pod.containers[0];
    let args = c.args.as_deref().unwrap();
    assert_eq!(
        &args[..4],
        ["run", "--kubernetes", "--listen", "0.0.0.0:15010"]
    );
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 15010);
    let svc: k8s_openapi::api::core::v1::Service = serde_yaml_ng::from_value(d[1].clone()).unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.ports.unwrap()[0].port, 15010);
    assert_eq!(
        spec.selector,
        pod_labels(&deploy_from(&d[0])),
        "the Service selects the controller's pods"
    );
}

fn deploy_from(v: &Value) -> k8s_openapi::api::apps::v1::Deployment {
    serde_yaml_ng::from_value(v.clone()).unwrap()
}

fn pod_labels(
    d: &k8s_openapi::api::apps::v1::Deployment,
) -> Option<std::collections::BTreeMap<String, String>> {
    d.spec.as_ref()?.template.metadata.as_ref()?.labels.clone()
}

#[test]
fn rbac_is_least_privilege() {
    let d = docs("rbac.yaml");
    let role: k8s_openapi::api::rbac::v1::ClusterRole =
        serde_yaml_ng::from_value(d[2].clone()).unwrap();
    let mut grants: Vec<String> = role
        .rules
        .unwrap()
        .iter()
        .flat_map(|r| {
            let groups = r.api_groups.clone().unwrap_or_default();
            let resources = r.resources.clone().unwrap_or_default();
            let verbs = r.verbs.clone();
            groups.into_iter().flat_map(move |g| {
                let verbs = verbs.clone();
                resources
                    .clone()
                    .into_iter()
                    .map(move |res| format!("{g}/{res}: {}", verbs.join(",")))
            })
        })
        .collect();
    grants.sort();
    assert_eq!(
        grants,
        [
            "/namespaces: get,list,watch",
            "/pods: get,list,watch",
            "/services: get,list,watch",
            "extensions.weft.dev/wasmplugins/status: patch,update",
            "extensions.weft.dev/wasmplugins: get,list,watch",
        ]
    );
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding =
        serde_yaml_ng::from_value(d[3].clone()).unwrap();
    assert_eq!(binding.role_ref.name, "weft-controller");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "weft-controller", Some("weft-system"))
    );
}

#[test]
fn the_gateway_config_is_a_valid_weft_config_naming_its_pod() {
    let d = docs("gateway.yaml");
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_yaml_ng::from_value(d[1].clone()).unwrap();
    let text = cm.data.unwrap()["weft.yaml"].clone();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("weft.yaml");
    std::fs::write(&file, &text).unwrap();
    // What `weft run` sees with the downward API's WEFT_NODE_NAME and
    // WEFT_NODE_NAMESPACE.
    let node = weft_config::NodeOverride {
        name: Some("weft-gateway-7d9f-abcde".into()),
        namespace: Some("shop".into()),
    };
    let config = weft_config::load_with(&file, &node).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.node.name, "weft-gateway-7d9f-abcde");
    assert_eq!(config.node.namespace, "shop");
    assert_eq!(
        config
            .node
            .labels
            .get(weft_controller::select::GATEWAY_NAME_LABEL)
            .map(String::as_str),
        Some("edge")
    );
    let clusters: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(clusters, ["web-v1", "web-v2", "shadow", "auth"]);

    let deploy = deploy_from(&d[2]);
    let labels = pod_labels(&deploy).unwrap();
    assert_eq!(labels[weft_controller::select::GATEWAY_NAME_LABEL], "edge");
    let pod = deploy.spec.unwrap().template.spec.unwrap();
    let args = pod.containers[0].args.clone().unwrap();
    assert_eq!(
        args,
        [
            "run",
            "--config",
            "/etc/weft/weft.yaml",
            "--controller",
            "http://weft-controller.weft-system:15010"
        ]
    );
    // the node's identity comes from the downward API
    let fields: Vec<String> = pod.containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| {
            let f = e.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
            format!("{}={}", e.name, f.field_path)
        })
        .collect();
    assert_eq!(
        fields,
        [
            "WEFT_NODE_NAME=metadata.name",
            "WEFT_NODE_NAMESPACE=metadata.namespace"
        ]
    );
}

/// The sample plugins: valid, and each pluginConfig accepted by the real
/// filter's parser (the cluster names exist in the gateway's config).
#[test]
fn the_sample_wasmplugins_configure_the_real_filters() {
    let plugins: Vec<WasmPlugin> = docs("wasmplugins.yaml")
        .into_iter()
        .map(|d| serde_yaml_ng::from_value(d).unwrap())
        .collect();
    let mut seen = Vec::new();
    for p in &plugins {
        let key = PluginKey::of(p);
        assert_eq!(
            p.spec.validate(&key.namespace),
            Vec::<String>::new(),
            "{key}"
        );
        let filter = p.spec.url.rsplit('/').next().unwrap();
        let filter = filter.split(':').next().unwrap();
        assert_eq!(
            p.spec.url,
            format!("oci://registry.example/weft/filters/{filter}:0.1.0"),
            "{key}"
        );
        let config = serde_json::to_vec(&p.spec.plugin_config).unwrap();
        let parsed = match filter {
            "router" => weft_filter_router::config::Config::parse(&config).map(|_| ()),
            "authz" => weft_filter_authz::config::Config::parse(&config).map(|_| ()),
            "fault" => weft_filter_fault::config::Config::parse(&config).map(|_| ()),
            "mirror" => weft_filter_mirror::config::Config::parse(&config).map(|_| ()),
            "header-rewrite" => {
                weft_filter_header_rewrite::config::Config::parse(&config).map(|_| ())
            }
            other => panic!("{key}: unknown filter {other}"),
        };
        parsed.unwrap_or_else(|e| panic!("{key}: pluginConfig refused by {filter}: {e}"));
        seen.push(filter.to_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        ["authz", "fault", "header-rewrite", "mirror", "router"]
    );
}

#[test]
fn a_bad_plugin_config_is_refused_by_the_filter_parsers() {
    // the check above can fail: the parsers refuse what they do not know
    let bad = br#"{"rules": [{"requestHeaderModifier": {"set": [{"nme": "x"}]}}]}"#;
    assert!(weft_filter_header_rewrite::config::Config::parse(bad).is_err());
    let bad = br#"{"rules": [{"abort": {"httpStatus": 999}}]}"#;
    assert!(weft_filter_fault::config::Config::parse(bad).is_err());
}
