//! The configuration model of weft, shared by the proxy (`weft run
//! --config weft.yaml`) and its tooling: parsing YAML into typed,
//! defaulted values, validating it (every problem reported with file,
//! line and YAML path), the redacted JSON dump and the JSON Schema.
//!
//! The file's shape (every top-level key is optional):
//!
//! ```yaml
//! admin: { address: 127.0.0.1:9901 }
//! workers: 2
//! node: { name: edge-1, namespace: default, labels: { app: edge } }
//! access_log: { path: /var/log/weft.json }
//! drain_timeout: 10s
//! buffer_limit: 1MiB
//! listeners:
//!   - { name: public, address: 127.0.0.1:8080, default_cluster: echo }
//! clusters:
//!   - { name: echo, endpoints: ["127.0.0.1:9000", { address: "echo.internal:9001", weight: 3 }] }
//! plugins:                    # Istio WasmPlugin field names
//!   - { name: probe, url: file://probe.wasm, phase: AUTHN, pluginConfig: { greeting: hello } }
//! registries:                 # for oci:// urls: transport and credentials per registry host
//!   - { host: "127.0.0.1:5000", plain_http: true, username: ci, password_file: registry.pass }
//! plugins_dir: plugins.d      # kind: WasmPlugin manifests that apply to this node (see [`wasmplugin`])
//! ```
//!
//! Durations are written `250ms`, `1.5s`, `1m`, `1h`; byte sizes as
//! integers or `64KiB`, `1MiB`, `10MB`.

mod error;
mod model;
mod units;
mod validate;
pub mod wasmplugin;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, ConfigErrors};
pub use model::{
    AccessLog, Admin, CircuitBreakers, Cluster, ClusterTls, Config, Endpoint, EnvVar, FailStrategy,
    HealthCheck, ImagePullPolicy, LbPolicy, Listener, ListenerLimits, ListenerTls, ModuleSource,
    Node, OutlierDetection, Phase, PluginLimits, PluginSpec, PortSelector, Protocol, Registry,
    TlsCertificate, TrafficMode, TrafficSelector, ValueFrom, VmConfig, plugin_order,
};
pub use units::{format_duration, parse_byte_size, parse_duration};

use std::path::Path;

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &NodeOverride::default())
}

/// The proxy's identity given on its command line (`weft run --node-name
/// --node-namespace`, e.g. from the Kubernetes downward API), over the
/// file's `node` block; applied before `plugins_dir` selects plugins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeOverride {
    pub name: Option<String>,
    pub namespace: Option<String>,
}

/// [`load`], with the node's name and namespace overridden.
pub fn load_with(path: &Path, node: &NodeOverride) -> Result<Config, ConfigErrors> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        path: String::new(),
        line: None,
        reason: format!("cannot read the configuration file: {e}"),
    })?;
    Config::from_yaml_str_with(&src, path, node)
}

impl Config {
    /// Parses and validates YAML text read from `file`: relative paths
    /// are resolved against `file`'s directory, and TLS files must be
    /// readable. An empty document is the default configuration.
    pub fn from_yaml_str(src: &str, file: &Path) -> Result<Config, ConfigErrors> {
        Self::from_yaml_str_with(src, file, &NodeOverride::default())
    }

    /// [`Config::from_yaml_str`], with the node's name and namespace
    /// overridden.
    pub fn from_yaml_str_with(
        src: &str,
        file: &Path,
        node: &NodeOverride,
    ) -> Result<Config, ConfigErrors> {
        let de = serde_yaml_ng::Deserializer::from_str(src);
        let parsed: Option<Config> =
            serde_path_to_error::deserialize(de).map_err(|e| error::parse_error(file, src, e))?;
        let mut config = parsed.unwrap_or_default();
        if let Some(name) = &node.name {
            config.node.name = name.clone();
        }
        if let Some(namespace) = &node.namespace {
            config.node.namespace = namespace.clone();
        }
        config.file = file.to_path_buf();
        config.base_dir = validate::base_dir_of(file);
        validate::resolve(&mut config);
        let problems = validate::check(&config);
        if problems.is_empty() {
            config.add_plugins_dir()?;
            Ok(config)
        } else {
            let mut errors: Vec<ConfigError> = problems
                .into_iter()
                .map(|p| p.into_error(file, Some(src)))
                .collect();
            // In file order; problems without a line stay last, in check order.
            errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
            Err(ConfigErrors { errors })
        }
    }

    /// Adds the plugins of `plugins_dir` that apply to this node.
    fn add_plugins_dir(&mut self) -> Result<(), ConfigErrors> {
        let Some(dir) = self.plugins_dir.clone() else {
            return Ok(());
        };
        let as_errors = |errors: Vec<wasmplugin::ManifestError>| ConfigErrors {
            errors: errors
                .into_iter()
                .map(|e| ConfigError {
                    file: e.file,
                    path: e
                        .document
                        .map(|d| format!("document {d}"))
                        .unwrap_or_default(),
                    line: None,
                    reason: e.reason,
                })
                .collect(),
        };
        let found = wasmplugin::load_dir(&dir, &self.node).map_err(as_errors)?;
        let mut errors = Vec::new();
        for p in found {
            let problem = if self.plugins.iter().any(|q| q.name == p.name) {
                Some(format!(
                    "plugin {} is also defined in {}",
                    p.name,
                    self.file.display()
                ))
            } else {
                p.listeners
                    .iter()
                    .flatten()
                    .find(|l| !self.listeners.iter().any(|x| &x.name == *l))
                    .map(|l| format!("plugin {}: spec.listeners: unknown listener {l}", p.name))
            };
            match problem {
                Some(reason) => errors.push(wasmplugin::ManifestError {
                    file: dir.clone(),
                    document: None,
                    reason,
                }),
                None => self.plugins.push(p),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(as_errors(errors))
        }
    }

    /// Checks the configuration again (e.g. one built or changed in
    /// code). Relative paths are taken relative to the working directory;
    /// errors carry no line numbers.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let problems = validate::check(self);
        if problems.is_empty() {
            return Ok(());
        }
        let errors = problems
            .into_iter()
            .map(|p| p.into_error(&self.file, None))
            .collect();
        Err(ConfigErrors { errors })
    }

    /// The configuration as JSON for the admin config dump: every value
    /// (defaults included, durations as strings, paths resolved), with the
    /// values of secret-looking fields (password, secret, token, ...) and
    /// of `{ name, value }` entries with such names replaced by
    /// `"<redacted>"`. Key files are shown by path; their contents are
    /// never read into the model.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_else(
            |e| serde_json::json!({ "error": format!("cannot render the configuration: {e}") }),
        );
        redact(&mut value);
        value
    }
}

/// The placeholder of redacted values.
pub const REDACTED: &str = "<redacted>";

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "apikey",
        "api_key",
        "api-key",
        "authorization",
    ]
    .iter()
    .any(|s| name.contains(s))
}

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let named_secret = map
                .get("name")
                .and_then(|n| n.as_str())
                .is_some_and(is_secret_name);
            for (key, v) in map.iter_mut() {
                if is_secret_name(key) || (named_secret && key == "value") {
                    *v = serde_json::Value::String(REDACTED.to_owned());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The JSON Schema (draft 2020-12) of the configuration file, generated
/// from the same types the file is parsed into.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(Config).to_value()
}
