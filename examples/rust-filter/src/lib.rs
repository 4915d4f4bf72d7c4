//! `rust-filter`: a weft filter (proxy-wasm, Rust). It adds a configured
//! header to every request.
//!
//! ```yaml
//! pluginConfig:
//!   header: x-hello     # default x-rust-filter
//!   value: world        # default on
//! ```

use serde::Deserialize;

/// The plugin configuration (`pluginConfig` in weft.yaml).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The request header to add.
    pub header: String,
    /// Its value.
    pub value: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header: "x-rust-filter".to_owned(),
            value: "on".to_owned(),
        }
    }
}

// The filter itself only exists in the .wasm (the proxy-wasm hostcalls
// are imports of the host).
#[cfg(target_arch = "wasm32")]
mod filter {
    use super::Config;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use std::rc::Rc;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(Root { config: Rc::new(Config::default()) })
        });
    }}

    struct Root {
        config: Rc<Config>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            match weft_sdk::config::load::<Config>() {
                Ok(config) => {
                    self.config = Rc::new(config);
                    true
                }
                // Logs "plugin NAME: invalid pluginConfig: FIELD: REASON"
                // at warn level and refuses the configuration.
                Err(e) => weft_sdk::config::report(&e),
            }
        }

        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Filter {
                config: self.config.clone(),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Filter {
        config: Rc<Config>,
    }

    impl Context for Filter {}

    impl HttpContext for Filter {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            self.add_http_request_header(&self.config.header, &self.config.value);
            Action::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn config_defaults_and_errors() {
        let c: Config = weft_sdk::config::parse(b"").unwrap();
        assert_eq!(c, Config::default());
        let c: Config = weft_sdk::config::parse(br#"{"header":"x-a","value":"1"}"#).unwrap();
        assert_eq!((c.header.as_str(), c.value.as_str()), ("x-a", "1"));
        let e = weft_sdk::config::parse::<Config>(br#"{"value":7}"#).unwrap_err();
        assert_eq!(e.path(), Some("value"));
    }
}
