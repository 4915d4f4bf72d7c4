//! `router`: a Gateway API `HTTPRoute` spec as a proxy-wasm filter. It
//! picks the rule that matches a request (by Gateway API precedence), a
//! backend among the rule's weighted `backendRefs`, and tells the proxy
//! through `weft.*` properties; or it answers locally (redirect, direct
//! response, 404/500/503).
//!
//! ```yaml
//! pluginConfig:
//!   hostnames: [ api.example.com, "*.api.example.com" ]   # empty: any host
//!   rules:
//!     - name: checkout                  # default: rules[N]
//!       matches:                        # default: one PathPrefix /
//!         - path: { type: PathPrefix, value: /checkout }
//!           method: POST
//!           headers: [ { name: x-canary, value: "yes" } ]
//!       backendRefs:                    # weighted random choice
//!         - { name: checkout-v1, weight: 90 }
//!         - { name: checkout-v2, weight: 10 }
//!       filters:
//!         - type: URLRewrite
//!           urlRewrite:
//!             hostname: checkout.internal
//!             path: { type: ReplacePrefixMatch, replacePrefixMatch: /v1/checkout }
//!       timeouts: { request: 10s, backendRequest: 2s }
//!       retry:                          # weft extension
//!         attempts: 3                   # tries in all, the first included
//!         perTryTimeout: 1s             # default: timeouts.backendRequest
//!         retryOn: [ connect-failure, reset, retriable-status-codes ]
//!         codes: [ 503 ]
//!     - matches: [ { path: { type: Exact, value: /old } } ]
//!       filters:
//!         - type: RequestRedirect
//!           requestRedirect: { scheme: https, path: { type: ReplaceFullPath, replaceFullPath: /new }, statusCode: 301 }
//!     - matches: [ { path: { type: Exact, value: /healthz } } ]
//!       directResponse: { status: 200, body: "ok\n" }
//! ```
//!
//! **Hostnames**: exact, or `*.example.com` (one or more leading labels,
//! not `example.com` itself), against the `:authority` host without its
//! port, case-insensitively. A host that matches none: 404
//! `no route for this host`.
//!
//! **Precedence** among the matches of all rules that hold: an `Exact`
//! path beats a `PathPrefix`; a longer prefix beats a shorter; a method
//! match beats none; more header matches, then more query-parameter
//! matches win; then rule order, then match order. A `RegularExpression`
//! path ranks like `PathPrefix /`. No match: 404 `no matching route`.
//!
//! **The chosen rule**: `directResponse` answers with its status and body;
//! a `RequestRedirect` answers with `location` (scheme, host, port and
//! path default to the request's; the port is dropped when it is the
//! scheme's well-known one, and set to it when only `scheme` is given; the
//! query is kept); otherwise a backend is drawn with probability
//! weight/total (weight defaults to 1; 0 is never chosen): no `backendRefs`
//! → 500 `no backend`, all weights 0 → 503. `URLRewrite` then sets
//! `:authority` (`hostname`) and `:path` (`ReplaceFullPath`, or
//! `ReplacePrefixMatch` replacing the matched prefix segment-wise; the
//! query is kept). `ReplacePrefixMatch` needs every match of its rule to
//! be a `PathPrefix` (a match without a path counts as `PathPrefix /`).
//! Other filter types are refused: header changes are the header-rewrite
//! filter's job.
//!
//! **Properties written** (UTF-8 text), for a forwarded request:
//!
//! | property | value |
//! | --- | --- |
//! | `weft.cluster` | the chosen `backendRefs[].name` |
//! | `weft.route.name` | the rule's `name`, else `rules[N]` (N from 0) |
//! | `weft.timeout_ms` | `timeouts.request` in ms (`0` = none), when set |
//! | `weft.retry.attempts` | `retry.attempts`, when `retry` is set |
//! | `weft.retry.per_try_timeout_ms` | `retry.perTryTimeout`, else `timeouts.backendRequest`, in ms, when either is set |
//! | `weft.retry.on` | e.g. `5xx,reset`, when `retry` is set |
//! | `weft.retry.codes` | e.g. `502,503`, when `retry.codes` is set |
//!
//! A local reply from a matched rule (redirect, direct response, 500, 503)
//! writes only `weft.route.name`; a 404 writes nothing.
//!
//! **Retry**: `attempts` 1 to 10 (the proxy's cap). `retryOn` is a list of
//! `5xx`, `reset`, `connect-failure`, `retriable-status-codes`; when it is
//! absent it defaults to `5xx,reset,connect-failure`, or to
//! `reset,connect-failure,retriable-status-codes` when `codes` is given.
//! `codes` (400–599) implies `retriable-status-codes` (added to
//! `weft.retry.on` if missing); `retriable-status-codes` without `codes`
//! is an error.
//!
//! **Durations** are Gateway API durations: up to four groups of 1–5
//! digits with `h`, `m`, `s` or `ms` (`500ms`, `10s`, `1m`, `1h30m`).
//! `backendRequest` and `perTryTimeout` must not exceed a non-zero
//! `request`.
//!
//! An invalid configuration is refused at `on_configure` with the log line
//! `router: invalid pluginConfig: <field>: <reason>`.

pub mod config;
pub mod rng;
pub mod route;

#[cfg(test)]
mod tests;

#[cfg(target_arch = "wasm32")]
mod filter {
    use crate::config::Config;
    use crate::rng::Rng;
    use crate::route::{Incoming, Outcome};
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use std::cell::RefCell;
    use std::rc::Rc;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(Root { config: Rc::new(Config::default()), rng: None })
        });
    }}

    struct Root {
        config: Rc<Config>,
        /// One generator per VM, seeded at the first configure.
        rng: Option<Rc<RefCell<Rng>>>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            if self.rng.is_none() {
                let seed = getrandom::u64().unwrap_or_else(|_| {
                    self.get_current_time()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(0)
                });
                self.rng = Some(Rc::new(RefCell::new(Rng::new(seed))));
            }
            let raw = self.get_plugin_configuration().unwrap_or_default();
            match Config::parse(&raw) {
                Ok(c) => {
                    self.config = Rc::new(c);
                    true
                }
                Err(e) => {
                    proxy_wasm::hostcalls::log(
                        LogLevel::Error,
                        &format!("router: invalid pluginConfig: {e}"),
                    )
                    .ok();
                    false
                }
            }
        }

        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Stream {
                config: self.config.clone(),
                rng: self
                    .rng
                    .clone()
                    .unwrap_or_else(|| Rc::new(RefCell::new(Rng::new(0)))),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Stream {
        config: Rc<Config>,
        rng: Rc<RefCell<Rng>>,
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

    impl HttpContext for Stream {
        fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
            let method = self.get_http_request_header(":method").unwrap_or_default();
            let path = self.get_http_request_header(":path").unwrap_or_default();
            let authority = self
                .get_http_request_header(":authority")
                .or_else(|| self.get_http_request_header("host"))
                .unwrap_or_default();
            let scheme = self.get_http_request_header(":scheme").unwrap_or_default();
            let decision = {
                let view = View(self, method, path);
                let incoming = Incoming {
                    request: &view,
                    authority: &authority,
                    scheme: &scheme,
                };
                self.config.decide(&incoming, &mut self.rng.borrow_mut())
            };
            for (path, value) in &decision.properties {
                self.set_property(path.to_vec(), Some(value.as_bytes()));
            }
            match decision.outcome {
                Outcome::Forward { authority, path } => {
                    if let Some(a) = authority {
                        self.set_http_request_header(":authority", Some(&a));
                    }
                    if let Some(p) = path {
                        self.set_http_request_header(":path", Some(&p));
                    }
                    Action::Continue
                }
                Outcome::Reply {
                    status,
                    headers,
                    body,
                } => {
                    let headers: Vec<(&str, &str)> =
                        headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    self.send_http_response(
                        u32::from(status),
                        headers,
                        (!body.is_empty()).then_some(body.as_bytes()),
                    );
                    Action::Pause
                }
            }
        }
    }
}
