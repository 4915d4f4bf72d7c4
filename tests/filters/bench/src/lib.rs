//! A minimal filter for the host's benchmarks: reads three request headers
//! and adds one, reads the status and adds a response header, and rewrites
//! a buffered request body in place.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { seen: 0 }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    seen: usize,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        for name in [":path", "user-agent", "accept"] {
            self.seen += self.get_http_request_header(name).map_or(0, |v| v.len());
        }
        self.add_http_request_header("x-bench", "1");
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        if !eos {
            return Action::Pause;
        }
        if let Some(mut body) = self.get_http_request_body(0, size) {
            body.make_ascii_uppercase();
            self.set_http_request_body(0, size, &body);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        self.seen += self
            .get_http_response_header(":status")
            .map_or(0, |v| v.len());
        self.add_http_response_header("x-bench-seen", if self.seen > 0 { "1" } else { "0" });
        Action::Continue
    }
}
