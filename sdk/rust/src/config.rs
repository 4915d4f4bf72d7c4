//! The plugin configuration (`pluginConfig`, handed to the filter as JSON
//! bytes) parsed into the filter's own `serde` type.
//!
//! Errors name the field path, as serde_path_to_error reports it
//! (`rules[0].backendRefs[1].weight: invalid type: string "x", expected
//! i64`), so a bad `weft.yaml` points at its own mistake. An empty (or
//! all-whitespace) configuration is read as `{}`: a struct whose fields all
//! have defaults accepts a plugin with no `pluginConfig`.

use proxy_wasm::types::{BufferType, LogLevel};
use serde::de::DeserializeOwned;

/// A plugin configuration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The JSON is malformed or does not fit the type. `path` is the field
    /// path (`.` for the document itself).
    #[error("invalid pluginConfig: {}{message}", path_prefix(.path))]
    Invalid { path: String, message: String },
    /// The host did not hand over the configuration buffer.
    #[error("cannot read pluginConfig: the host answered {status}")]
    Host { status: String },
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl ConfigError {
    /// The field path of an [`ConfigError::Invalid`] error.
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { path, .. } => Some(path),
            ConfigError::Host { .. } => None,
        }
    }
}

/// Parses configuration bytes (JSON) into `T`. Pure: usable in host-side
/// unit tests of a filter's configuration.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| ConfigError::Invalid {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    de.end().map_err(|e| ConfigError::Invalid {
        path: ".".into(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Reads the plugin configuration from the host (`proxy_get_buffer` of the
/// plugin configuration) and parses it into `T`. Call it from
/// `RootContext::on_configure`.
pub fn load<T: DeserializeOwned>() -> Result<T, ConfigError> {
    let bytes = proxy_wasm::hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .map_err(|status| ConfigError::Host {
            status: format!("{status:?}"),
        })?
        .unwrap_or_default();
    parse(&bytes)
}

/// The log line [`report`] writes: `plugin NAME: invalid pluginConfig: …`.
pub fn report_line(plugin_name: &str, err: &ConfigError) -> String {
    format!("plugin {plugin_name}: {err}")
}

/// Logs a configuration error at warn level, naming the plugin (its
/// `plugin_name` property), and returns `false` — the value
/// `on_configure` returns to refuse the configuration:
///
/// ```ignore
/// fn on_configure(&mut self, _: usize) -> bool {
///     match weft_sdk::config::load::<Config>() {
///         Ok(c) => { self.config = c; true }
///         Err(e) => weft_sdk::config::report(&e),
///     }
/// }
/// ```
pub fn report(err: &ConfigError) -> bool {
    let name = crate::attributes::plugin_name()
        .ok()
        .flatten()
        .unwrap_or_else(|| "(unnamed)".to_owned());
    // Nothing more to do if the host refuses the log line itself.
    let _ = proxy_wasm::hostcalls::log(LogLevel::Warn, &report_line(&name, err));
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Config {
        #[serde(default)]
        header: String,
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        weight: u32,
    }

    #[test]
    fn parses_into_the_type() {
        let c: Config = parse(br#"{"header":"x-a","rules":[{"weight":3}]}"#).unwrap();
        assert_eq!(c.header, "x-a");
        assert_eq!(c.rules, vec![Rule { weight: 3 }]);
    }

    #[test]
    fn empty_configuration_is_an_empty_object() {
        let c: Config = parse(b"").unwrap();
        assert_eq!(c, Config::default());
        let c: Config = parse(b"  \n").unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = parse::<Config>(br#"{"rules":[{"weight":1},{"weight":"heavy"}]}"#).unwrap_err();
        assert_eq!(e.path(), Some("rules[1].weight"));
        let text = e.to_string();
        assert!(
            text.starts_with("invalid pluginConfig: rules[1].weight: invalid type: string"),
            "{text}"
        );
        let e = parse::<Config>(br#"{"hedaer":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `hedaer`"), "{e}");
    }

    #[test]
    fn malformed_json_and_trailing_data_are_errors() {
        let e = parse::<Config>(b"{").unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e:?}");
        let e = parse::<Config>(b"{} x").unwrap_err();
        assert!(e.to_string().contains("trailing characters"), "{e}");
    }

    #[test]
    fn report_line_names_the_plugin() {
        let e = parse::<Config>(br#"{"rules":[{"weight":-1}]}"#).unwrap_err();
        let line = report_line("my-filter", &e);
        assert!(
            line.starts_with("plugin my-filter: invalid pluginConfig: rules[0].weight: "),
            "{line}"
        );
    }
}
