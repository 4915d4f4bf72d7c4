//! `header-rewrite`: Gateway API `RequestHeaderModifier` and
//! `ResponseHeaderModifier` (`set`, `add`, `remove`) as a proxy-wasm
//! filter. Every rule whose optional `match` holds applies, in order.
//! Values may read properties with `%{request.id}`-style templates.
//!
//! ```yaml
//! pluginConfig:
//!   rules:
//!     - match: { path: { type: PathPrefix, value: /api } }
//!       requestHeaderModifier:
//!         set: [ { name: x-env, value: prod } ]
//!         add: [ { name: x-request-from, value: "%{source.address}" } ]
//!         remove: [ x-debug ]
//!       responseHeaderModifier:
//!         set: [ { name: x-route, value: "%{weft.route.name}" } ]
//! ```

pub mod config;

#[cfg(target_arch = "wasm32")]
mod filter {
    use crate::config::{Config, Modifier, Part};
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use std::rc::Rc;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: Rc::new(Config::default()) }) });
    }}

    struct Root {
        config: Rc<Config>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            let raw = self.get_plugin_configuration().unwrap_or_default();
            match Config::parse(&raw) {
                Ok(c) => {
                    self.config = Rc::new(c);
                    true
                }
                Err(e) => {
                    proxy_wasm::hostcalls::log(
                        LogLevel::Error,
                        &format!("header-rewrite: invalid pluginConfig: {e}"),
                    )
                    .ok();
                    false
                }
            }
        }

        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Stream {
                config: self.config.clone(),
                matched: Vec::new(),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Stream {
        config: Rc<Config>,
        matched: Vec<usize>,
    }

    impl Context for Stream {}

    struct View<'a>(&'a Stream, String, String);

    impl weft_filter_match::Request for View<'_> {
        fn method(&self) -> &str {
            &self.1
        }
        fn path(&self) -> &str {
            &self.2
        }
        fn header(&self, name: &str) -> Option<String> {
            self.0.get_http_request_header(name)
        }
    }

    fn render(ctx: &dyn Context, parts: &[Part]) -> String {
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Property(path) => {
                    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
                    if let Some(v) = ctx.get_property(segs) {
                        out.push_str(&crate::config::property_text(path, &v));
                    }
                }
            }
        }
        out
    }

    impl Stream {
        fn apply(&self, m: &Modifier, request: bool) {
            for (name, value) in &m.set {
                let v = render(self, value);
                if request {
                    self.set_http_request_header(name, Some(&v));
                } else {
                    self.set_http_response_header(name, Some(&v));
                }
            }
            for (name, value) in &m.add {
                let v = render(self, value);
                if request {
                    self.add_http_request_header(name, &v);
                } else {
                    self.add_http_response_header(name, &v);
                }
            }
            for name in &m.remove {
                if request {
                    self.set_http_request_header(name, None);
                } else {
                    self.set_http_response_header(name, None);
                }
            }
        }
    }

    impl HttpContext for Stream {
        fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
            let method = self.get_http_request_header(":method").unwrap_or_default();
            let path = self.get_http_request_header(":path").unwrap_or_default();
            let view = View(self, method, path);
            let matched: Vec<usize> = self
                .config
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.matcher.matches(&view))
                .map(|(i, _)| i)
                .collect();
            for &i in &matched {
                if let Some(m) = &self.config.rules[i].request {
                    self.apply(m, true);
                }
            }
            self.matched = matched;
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
            for &i in &self.matched {
                if let Some(m) = &self.config.rules[i].response {
                    self.apply(m, false);
                }
            }
            Action::Continue
        }
    }
}
