//! A test filter for `weft-sdk`: on request headers it writes the `weft.*`
//! properties through the SDK's setters and reports, as `x-sdk-*` request
//! headers, what the SDK's typed attribute readers return (`{:?}` of each
//! result); on response headers it reports `response.code`. Its
//! configuration (`{"greeting": "..."}`, unknown fields refused) goes
//! through `weft_sdk::config`.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use serde::Deserialize;
    use std::time::Duration;
    use weft_sdk::attributes as a;
    use weft_sdk::weft::{self, RetryOn, RetryPolicy};

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Config {
        greeting: String,
    }

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(Root { greeting: String::new() })
        });
    }}

    struct Root {
        greeting: String,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            match weft_sdk::config::load::<Config>() {
                Ok(c) => {
                    self.greeting = c.greeting;
                    true
                }
                Err(e) => weft_sdk::config::report(&e),
            }
        }

        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Probe {
                greeting: self.greeting.clone(),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Probe {
        greeting: String,
    }

    impl Context for Probe {}

    impl Probe {
        fn report(&self, name: &str, value: String) {
            self.set_http_request_header(&format!("x-sdk-{name}"), Some(&value));
        }
    }

    impl HttpContext for Probe {
        fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
            self.report("greeting", self.greeting.clone());
            let set = [
                weft::set_cluster("from-sdk"),
                weft::set_route_name("sdk-route"),
                weft::set_timeout(Duration::from_millis(1500)),
                weft::set_retry_policy(&RetryPolicy {
                    attempts: 2,
                    per_try_timeout: Some(Duration::from_millis(300)),
                    retry_on: vec![RetryOn::FiveXx],
                    codes: vec![502],
                }),
            ];
            self.report("set", format!("{set:?}"));
            self.report("cluster", format!("{:?}", weft::cluster()));
            self.report("route", format!("{:?}", weft::route_name()));
            self.report("path", format!("{:?}", a::request_path()));
            self.report("url-path", format!("{:?}", a::request_url_path()));
            self.report("query", format!("{:?}", a::request_query()));
            self.report("method", format!("{:?}", a::request_method()));
            self.report("host", format!("{:?}", a::request_host()));
            self.report("id", format!("{:?}", a::request_id()));
            self.report("protocol", format!("{:?}", a::request_protocol()));
            self.report("header", format!("{:?}", a::request_header("x-in")));
            self.report(
                "time",
                format!("{:?}", a::request_time().map(|t| t.is_some())),
            );
            self.report("source", format!("{:?}", a::source_address()));
            self.report("source-port", format!("{:?}", a::source_port()));
            self.report("dest-port", format!("{:?}", a::destination_port()));
            self.report("connection-id", format!("{:?}", a::connection_id()));
            self.report("mtls", format!("{:?}", a::connection_mtls()));
            self.report("peer", format!("{:?}", a::peer_uri_san()));
            self.report("upstream", format!("{:?}", a::upstream_address()));
            self.report("plugin", format!("{:?}", a::plugin_name()));
            self.report("node", format!("{:?}", a::node_name()));
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
            self.set_http_response_header(
                "x-sdk-status",
                Some(&format!("{:?}", a::response_code())),
            );
            Action::Continue
        }
    }
}
