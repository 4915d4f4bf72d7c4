//! `fault`: Istio's `HTTPFaultInjection` as a proxy-wasm filter — delay
//! and/or abort requests, each with a percentage. The first rule whose
//! optional `match` (a Gateway API `HTTPRouteMatch`) holds applies; later
//! rules are not looked at.
//!
//! ```yaml
//! pluginConfig:
//!   rules:
//!     - match: { path: { type: PathPrefix, value: /ratings }, headers: [ { name: x-chaos, value: "on" } ] }
//!       delay: { fixedDelay: 1.5s, percentage: { value: 10 } }
//!       abort: { httpStatus: 503, percentage: { value: 5 } }
//!     - match: { path: { type: PathPrefix, value: /grpc.health.v1.Health } }
//!       abort: { grpcStatus: UNAVAILABLE }          # or a number 0–16
//!     - delay: { fixedDelay: 250ms }                # everything else; percentage defaults to 100
//! ```
//!
//! - `delay.fixedDelay`: `250ms`, `1.5s`, `1m`, `1h` (1ms–24h). The request
//!   is paused at its headers and resumed by the root context's tick (see
//!   below); other requests are never held.
//! - `abort`: exactly one of `httpStatus` (200–599) or `grpcStatus` (a code
//!   name, case-insensitive, or 0–16). An HTTP abort answers `status` with
//!   `content-type: text/plain`, `x-weft-fault: abort` and the body
//!   `fault filter abort\n`; a gRPC abort answers HTTP 200 with
//!   `content-type: application/grpc`, `grpc-status: <code>`,
//!   `grpc-message: fault filter abort` and `x-weft-fault: abort`.
//! - `percentage.value`: 0–100 (a fraction such as 0.1 is fine), default
//!   100. The delay and the abort are drawn independently; when both hit,
//!   the abort is answered after the delay, as Istio does.
//! - A request that was delayed and then proxied carries
//!   `x-weft-fault: delay` on its response.
//!
//! Scheduling: a delayed stream returns `Pause` from its request headers
//! and is parked, with its due time on the host clock, in a schedule the
//! root context shares with the HTTP contexts. While anything is parked
//! the root context ticks every [`TICK`] (the tick is switched on by the
//! first parked stream and off by the tick that empties the schedule); each
//! tick makes every due stream the effective context and resumes it (or
//! sends its abort). A delay therefore lasts `fixedDelay` plus at most one
//! tick period (plus the host's scheduling latency). A stream that ends
//! while parked is dropped from the schedule. Random draws come from a
//! SplitMix64 generator seeded from the host clock at configure time.

pub mod config;
pub mod sample;
pub mod schedule;

/// The tick period while delayed streams are pending, and so the
/// granularity of delays.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(10);

#[cfg(target_arch = "wasm32")]
mod filter {
    use crate::TICK;
    use crate::config::{Config, abort_response};
    use crate::sample::Rng;
    use crate::schedule::{Schedule, Then};
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, UNIX_EPOCH};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
            Box::new(Root {
                id,
                config: Rc::new(Config::default()),
                shared: Rc::new(RefCell::new(Shared {
                    schedule: Schedule::default(),
                    ticking: false,
                    rng: Rng::new(0),
                })),
            })
        });
    }}

    /// What the root context and the HTTP contexts share (one VM is one
    /// thread, so `Rc<RefCell<…>>` is enough).
    struct Shared {
        schedule: Schedule,
        ticking: bool,
        rng: Rng,
    }

    fn now_nanos() -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64)
    }

    /// Answers the effective context's request with an abort.
    fn send_abort(kind: crate::config::AbortKind) {
        let (status, headers, body) = abort_response(kind);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = (!body.is_empty()).then_some(body);
        hostcalls::send_http_response(status, headers, body).ok();
    }

    struct Root {
        id: u32,
        config: Rc<Config>,
        shared: Rc<RefCell<Shared>>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            let raw = self.get_plugin_configuration().unwrap_or_default();
            match Config::parse(&raw) {
                Ok(c) => {
                    self.config = Rc::new(c);
                    self.shared.borrow_mut().rng =
                        Rng::new(now_nanos() ^ (u64::from(self.id) << 32));
                    true
                }
                Err(e) => {
                    hostcalls::log(
                        LogLevel::Error,
                        &format!("fault: invalid pluginConfig: {e}"),
                    )
                    .ok();
                    false
                }
            }
        }

        fn on_tick(&mut self) {
            let due = self.shared.borrow_mut().schedule.take_due(now_nanos());
            for (id, then) in &due {
                // A stream the host no longer knows is skipped (it is
                // dropped from the schedule when its context is deleted).
                if hostcalls::set_effective_context(*id).is_err() {
                    continue;
                }
                match *then {
                    Then::Resume => {
                        hostcalls::resume_http_request().ok();
                    }
                    Then::Abort(kind) => send_abort(kind),
                }
            }
            if !due.is_empty() {
                hostcalls::set_effective_context(self.id).ok();
            }
            let mut shared = self.shared.borrow_mut();
            if shared.schedule.is_empty() && shared.ticking {
                shared.ticking = false;
                hostcalls::set_tick_period(Duration::ZERO).ok();
            }
        }

        fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Stream {
                id,
                config: self.config.clone(),
                shared: self.shared.clone(),
                delayed: false,
                parked: false,
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Stream {
        id: u32,
        config: Rc<Config>,
        shared: Rc<RefCell<Shared>>,
        /// Delayed and then proxied: the response says so.
        delayed: bool,
        /// In the schedule (until its tick or its end).
        parked: bool,
    }

    impl Context for Stream {}

    impl Drop for Stream {
        fn drop(&mut self) {
            if self.parked
                && let Ok(mut shared) = self.shared.try_borrow_mut()
            {
                shared.schedule.cancel(self.id);
            }
        }
    }

    struct View<'a>(&'a Stream, String, String);

    impl weft_filter_match::Request for View<'_> {
        fn method(&self) -> &str {
            &self.1
        }
        fn path(&self) -> &str {
            &self.2
        }
        fn header(&self, name: &str) -> Option<String> {
            // Not UTF-8: no value to match.
            self.0
                .get_http_request_header_bytes(name)
                .and_then(|v| String::from_utf8(v).ok())
        }
    }

    impl HttpContext for Stream {
        fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
            if self.config.rules.is_empty() {
                return Action::Continue;
            }
            let text = |name: &str| {
                self.get_http_request_header_bytes(name)
                    .and_then(|v| String::from_utf8(v).ok())
                    .unwrap_or_default()
            };
            let view = View(self, text(":method"), text(":path"));
            let Some(rule) = self.config.select(&view) else {
                return Action::Continue;
            };
            let decision = {
                let mut shared = self.shared.borrow_mut();
                let (d, a) = (shared.rng.next_u64(), shared.rng.next_u64());
                rule.decide(d, a)
            };
            match (decision.delay, decision.abort) {
                (None, None) => Action::Continue,
                (None, Some(kind)) => {
                    send_abort(kind);
                    Action::Pause
                }
                (Some(delay), abort) => {
                    let then = abort.map_or(Then::Resume, Then::Abort);
                    let mut shared = self.shared.borrow_mut();
                    shared
                        .schedule
                        .add(self.id, now_nanos(), delay.as_nanos() as u64, then);
                    if !shared.ticking {
                        shared.ticking = true;
                        hostcalls::set_tick_period(TICK).ok();
                    }
                    self.parked = true;
                    self.delayed = then == Then::Resume;
                    Action::Pause
                }
            }
        }

        fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
            if self.delayed {
                self.set_http_response_header("x-weft-fault", Some("delay"));
            }
            Action::Continue
        }
    }
}
