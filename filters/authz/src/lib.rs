//! `authz`: Istio's `RequestAuthentication` (JWT) and
//! `AuthorizationPolicy` (RBAC, with CUSTOM external authorization) as a
//! proxy-wasm filter.
//!
//! ```yaml
//! pluginConfig:
//!   jwtRules:
//!     - issuer: https://auth.example.com
//!       audiences: [ api ]
//!       jwksUri: http://auth.example.com/.well-known/jwks.json
//!       jwksCluster: auth              # weft: the cluster the JWKS is fetched through
//!       jwksRefreshInterval: 5m        # weft: default 5m
//!       jwksTimeout: 5s                # weft: default 5s
//!       fromHeaders: [ { name: Authorization, prefix: "Bearer " } ]
//!       fromParams: [ access_token ]
//!       outputClaimToHeaders: [ { header: x-user, claim: sub } ]
//!       forwardOriginalToken: false
//!       algorithms: [ RS256, ES256 ]   # weft: default all of RS256 RS384 ES256 EdDSA HS256
//!       clockSkew: 60s                 # weft: default 60s
//!     - issuer: local
//!       jwks: '{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}'
//!   policies:
//!     - name: ext-check
//!       action: CUSTOM
//!       provider: { cluster: authz-svc, path: /check, timeout: 500ms,
//!                   headersToForward: [ authorization, x-tenant ],
//!                   headersToUpstreamOnAllow: [ x-auth-user ], failOpen: false, statusOnError: 403 }
//!       rules: [ { to: [ { operation: { paths: [ "/admin/*" ] } } ] } ]
//!     - name: no-debug
//!       action: DENY
//!       rules: [ { to: [ { operation: { paths: [ "/debug*" ] } } ] } ]
//!     - name: frontends
//!       action: ALLOW
//!       rules:
//!         - from: [ { source: { principals: [ "cluster.local/ns/web/sa/frontend" ] } } ]
//!           to: [ { operation: { methods: [ GET ], paths: [ "/api/*" ] } } ]
//!         - from: [ { source: { requestPrincipals: [ "https://auth.example.com/*" ] } } ]
//!           when: [ { key: "request.auth.claims[groups]", values: [ admins ] } ]
//! ```
//!
//! **Authentication** (`jwtRules`, as Istio's `RequestAuthentication`):
//! - The token is the first found in the rules' locations (rules in order;
//!   each rule's `fromHeaders`, then its `fromParams`). A rule with neither
//!   looks in `Authorization: Bearer …` and the `access_token` query
//!   parameter. The token's `iss` picks the rule.
//! - No token: the request passes authentication without a request
//!   principal (policies decide). A token that is malformed, has an
//!   unconfigured issuer, an algorithm not in `algorithms` (or `none`), no
//!   matching key (`kid`, key type and the JWK's `alg`), a bad signature,
//!   `exp` in the past or `nbf` in the future (both beyond `clockSkew`), or
//!   no audience in `audiences` (when given) → **401** with
//!   `www-authenticate: Bearer realm="<scheme>://<host><path>",
//!   error="invalid_token"`, `x-weft-authz: unauthenticated` and a one-line
//!   body such as `Jwt is expired`.
//! - Keys: `jwks` (an inline JWKS JSON string) or `jwksUri`, fetched with a
//!   GET through the cluster `jwksCluster` (the URI gives `:authority` and
//!   `:path`), first at the root context's first tick, then every
//!   `jwksRefreshInterval`; a failed fetch is logged and retried every
//!   second while there are no keys (old keys stay in use otherwise).
//!   Usable keys: `RSA` (RS256, RS384), `EC` P-256 (ES256), `OKP` Ed25519
//!   (EdDSA) and `oct` (HS256); keys with `use` other than `sig` are skipped.
//! - A request whose token needs keys that are not fetched yet **waits**:
//!   it is paused and parked with the root context, which finishes it (401,
//!   403, external check, or resume) when the keys arrive, or answers
//!   **503** (`x-weft-authz: jwks-unavailable`) if that first fetch fails.
//! - A verified token: each `outputClaimToHeaders` claim (a name, or a
//!   dotted path into nested claims; lists joined with `,`, other
//!   non-strings as JSON) is set as a request header, and the header that
//!   carried the token is removed unless `forwardOriginalToken` (a query
//!   parameter is left in place). The request principal is `iss/sub`.
//!   Unlike Envoy, the headers named in any `outputClaimToHeaders` are
//!   removed from every request first, so a client cannot forge them.
//!
//! **Authorization** (`policies`, as Istio's `AuthorizationPolicy`):
//! - A policy matches when one of its `rules` does (no `rules`: never;
//!   `rules: [{}]`: always). A rule holds when one of its `from` (or none
//!   given), one of its `to` (or none given) and all of its `when` hold;
//!   within a `source`/`operation` all given fields must hold. Strings
//!   match exactly, by `prefix*`, `*suffix`, or `*` (present).
//! - Order: CUSTOM policies first, then DENY (first match → 403), then
//!   ALLOW (if any ALLOW policy exists, one must match, else 403). AUDIT
//!   policies change nothing; a match is logged at info level.
//! - `source.principals` / `namespaces`: the mTLS peer identity from the
//!   property `connection.uri_san_peer_certificate` with the `spiffe://`
//!   prefix removed, as Istio writes principals
//!   (`cluster.local/ns/default/sa/sleep`); the namespace is the segment
//!   after `ns/`. `requestPrincipals`: `iss/sub` of the verified JWT.
//!   `ipBlocks`: the peer address (`source.address`); `remoteIpBlocks`:
//!   the first `x-forwarded-for` hop (the client's own claim when it sent
//!   one — weft appends the peer), else the peer. CIDRs or single IPs.
//! - `operation`: `hosts` (`:authority`, case-insensitive, with or without
//!   its port), `methods`, `paths` (without the query), and their `not…`.
//! - `when` keys: `request.headers[name]`, `source.ip`, `remote.ip` (CIDR
//!   values), `source.namespace`, `source.principal`,
//!   `request.auth.principal`, `request.auth.audiences`,
//!   `request.auth.presenter`, `request.auth.claims[name]` (nested
//!   `[a][b]`; a list claim matches if any element does).
//! - Denied: **403**, `content-type: text/plain`, `x-weft-authz: denied`,
//!   body `RBAC: access denied: denied by policy "<name>" rule <i>` or
//!   `RBAC: access denied: no ALLOW policy matched`.
//! - CUSTOM (ext-authz over HTTP): the check request goes through
//!   `provider.cluster` with the request's method, `path` + the request's
//!   path, its authority, `content-length: 0` and the `headersToForward`
//!   (default `authorization`). A 2xx answer allows (replacing the
//!   request's `headersToUpstreamOnAllow` with the answer's) and the
//!   evaluation goes on; any other status is returned to the client with
//!   the answer's body (and its `content-type`, `www-authenticate`,
//!   `location`). No answer (timeout, connection failure, dispatch error)
//!   → `statusOnError` (default 403, fail closed), or go on when
//!   `failOpen: true`. `timeout` defaults to 1s. Several matching CUSTOM
//!   policies are asked one after the other, in order.
//!
//! Each VM (one per worker) fetches and refreshes its own copy of a
//! remote JWKS. Not supported: Istio's `selector`/`targetRef` (the
//! plugin's listeners decide where it applies), `ports`/`notPorts`,
//! `fromCookies`, `outputPayloadToHeader`, `when` keys other than those
//! listed, and sending the request body to the CUSTOM provider.

pub mod config;
pub mod engine;
pub mod jwt;
pub mod policy;

/// The root context's tick period while a `jwksUri` is configured (the
/// granularity of JWKS fetches and retries).
pub const TICK: std::time::Duration = std::time::Duration::from_millis(200);

/// Delay before fetching again after a failed JWKS fetch.
pub const JWKS_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Builds the request attributes from what the host exposes.
pub fn attributes(
    headers: Vec<(String, String)>,
    source_address: Option<&str>,
    peer_uri_san: Option<&str>,
) -> engine::Flow {
    use policy::parse_ip;
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let full_path = get(":path");
    let path = full_path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let source_ip = source_address.and_then(parse_ip);
    let remote_ip = headers
        .iter()
        .find(|(k, _)| k == "x-forwarded-for")
        .and_then(|(_, v)| v.split(',').next())
        .and_then(parse_ip)
        .or(source_ip);
    let principal = peer_uri_san
        .filter(|s| !s.is_empty())
        .map(|s| s.strip_prefix("spiffe://").unwrap_or(s).to_owned());
    let scheme = match get(":scheme") {
        s if s.is_empty() => "http".to_owned(),
        s => s,
    };
    engine::Flow {
        attrs: policy::Attributes {
            method: get(":method"),
            path,
            host: get(":authority").to_ascii_lowercase(),
            headers,
            source_ip,
            remote_ip,
            principal,
        },
        full_path,
        scheme,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;

#[cfg(target_arch = "wasm32")]
mod filter {
    use crate::config::{Config, Jwks};
    use crate::engine::{Flow, Reply, Step, jwks_unavailable};
    use crate::jwt::KeySet;
    use crate::{JWKS_RETRY, TICK, attributes};
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    use std::time::{Duration, UNIX_EPOCH};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
            Box::new(Root {
                id,
                config: Rc::new(Config::default()),
                shared: Rc::new(RefCell::new(Shared::default())),
            })
        });
    }}

    /// A request parked until its jwtRule's keys arrive.
    struct Parked {
        id: u32,
        rule: usize,
        flow: Flow,
    }

    /// An external check the root context dispatched for a parked request.
    struct RootCall {
        id: u32,
        policy: usize,
        flow: Flow,
    }

    #[derive(Default)]
    struct Shared {
        /// Fetched keys per jwtRule (`None`: inline or not fetched yet).
        keys: Vec<Option<KeySet>>,
        /// When each remote JWKS is due (ns since the epoch; 0: now).
        due: Vec<u64>,
        /// JWKS fetches in flight: token → jwtRule.
        fetching: HashMap<u32, usize>,
        /// Failed fetches in a row per jwtRule (for quieter logs).
        failures: Vec<u64>,
        parked: Vec<Parked>,
        root_calls: HashMap<u32, RootCall>,
    }

    fn now_nanos() -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64)
    }

    fn log(level: LogLevel, text: &str) {
        hostcalls::log(level, text).ok();
    }

    fn send(reply: &Reply) {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        hostcalls::send_http_response(reply.status, headers, Some(&reply.body)).ok();
    }

    /// Applies the header changes of an allowed request (effective
    /// context: the request's).
    fn apply_allow(flow: &Flow, audit: &[String]) {
        for name in &flow.remove {
            hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None).ok();
        }
        for (k, v) in &flow.set {
            hostcalls::set_map_value(MapType::HttpRequestHeaders, k, Some(v)).ok();
        }
        for name in audit {
            log(
                LogLevel::Info,
                &format!(
                    "authz: AUDIT policy {name:?} matched {} {}",
                    flow.attrs.method, flow.attrs.path
                ),
            );
        }
    }

    /// Dispatches the check request of CUSTOM policy `policy`; `None` when
    /// the dispatch itself failed (say, an unknown cluster).
    fn dispatch_check(config: &Config, flow: &Flow, policy: usize) -> Option<u32> {
        let provider = config.policies[policy].provider.as_ref()?;
        let headers = flow.call_headers(provider);
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match hostcalls::dispatch_http_call(&provider.cluster, refs, None, vec![], provider.timeout)
        {
            Ok(token) => Some(token),
            Err(e) => {
                log(
                    LogLevel::Warn,
                    &format!(
                        "authz: policy {:?}: cannot call cluster {:?}: {e:?}",
                        config.policies[policy].name, provider.cluster
                    ),
                );
                None
            }
        }
    }

    /// The answer of the HTTP call being delivered: status (none if the
    /// call failed), headers and body.
    fn call_answer(body_size: usize) -> (Option<u32>, Vec<(String, String)>, Vec<u8>) {
        let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse().ok());
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        (status, headers, body)
    }

    struct Root {
        id: u32,
        config: Rc<Config>,
        shared: Rc<RefCell<Shared>>,
    }

    impl Root {
        fn fetch_due(&self) {
            let now = now_nanos();
            for (i, rule) in self.config.jwt_rules.iter().enumerate() {
                let Jwks::Remote(remote) = &rule.jwks else {
                    continue;
                };
                {
                    let shared = self.shared.borrow();
                    if shared.due[i] > now || shared.fetching.values().any(|r| *r == i) {
                        continue;
                    }
                }
                let sent = hostcalls::dispatch_http_call(
                    &remote.cluster,
                    vec![
                        (":method", "GET"),
                        (":path", &remote.path),
                        (":authority", &remote.authority),
                        ("accept", "application/json"),
                    ],
                    None,
                    vec![],
                    remote.timeout,
                );
                let mut shared = self.shared.borrow_mut();
                match sent {
                    Ok(token) => {
                        shared.fetching.insert(token, i);
                    }
                    Err(e) => {
                        drop(shared);
                        self.jwks_failed(
                            i,
                            now,
                            &format!("cannot call cluster {:?}: {e:?}", remote.cluster),
                        );
                    }
                }
            }
        }

        /// A failed fetch of rule `i`: logged (the first failure in a
        /// row, then every 60th), retried after [`JWKS_RETRY`]; with no
        /// keys at all, the requests waiting for them get 503.
        fn jwks_failed(&self, i: usize, now: u64, why: &str) {
            let failures = {
                let mut shared = self.shared.borrow_mut();
                shared.failures[i] += 1;
                shared.failures[i]
            };
            if failures == 1 || failures % 60 == 0 {
                let uri = match &self.config.jwt_rules[i].jwks {
                    Jwks::Remote(r) => r.uri.as_str(),
                    Jwks::Inline(_) => "",
                };
                log(
                    LogLevel::Warn,
                    &format!(
                        "authz: jwtRules[{i}]: fetching {uri} failed ({failures} in a row): {why}"
                    ),
                );
            }
            let waiting: Vec<Parked> = {
                let mut shared = self.shared.borrow_mut();
                shared.due[i] = now + JWKS_RETRY.as_nanos() as u64;
                if shared.keys[i].is_some() {
                    return;
                }
                let (waiting, keep) = std::mem::take(&mut shared.parked)
                    .into_iter()
                    .partition(|p| p.rule == i);
                shared.parked = keep;
                waiting
            };
            let reply = jwks_unavailable(&self.config.jwt_rules[i].issuer);
            for p in waiting {
                if hostcalls::set_effective_context(p.id).is_ok() {
                    send(&reply);
                }
            }
            hostcalls::set_effective_context(self.id).ok();
        }

        /// Carries a parked request (or one back from a check the root
        /// made) through `step`.
        fn drive(&self, id: u32, mut flow: Flow, mut step: Step) {
            loop {
                if hostcalls::set_effective_context(id).is_err() {
                    return;
                }
                match step {
                    Step::Reply(reply) => {
                        send(&reply);
                        return;
                    }
                    Step::Proceed { audit } => {
                        apply_allow(&flow, &audit);
                        hostcalls::resume_http_request().ok();
                        return;
                    }
                    Step::NeedKeys(rule) => {
                        self.shared
                            .borrow_mut()
                            .parked
                            .push(Parked { id, rule, flow });
                        return;
                    }
                    Step::Call { policy } => match dispatch_check(&self.config, &flow, policy) {
                        Some(token) => {
                            self.shared
                                .borrow_mut()
                                .root_calls
                                .insert(token, RootCall { id, policy, flow });
                            return;
                        }
                        None => step = flow.on_answer(&self.config, policy, None, &[], &[]),
                    },
                }
            }
        }
    }

    impl Context for Root {
        fn on_http_call_response(&mut self, token: u32, _h: usize, body_size: usize, _t: usize) {
            let (status, headers, body) = call_answer(body_size);
            let fetched = self.shared.borrow_mut().fetching.remove(&token);
            if let Some(i) = fetched {
                let now = now_nanos();
                let rule = &self.config.jwt_rules[i];
                let parsed = match status {
                    Some(200) => KeySet::parse(&body),
                    Some(s) => Err(format!("status {s}")),
                    None => Err("no answer".into()),
                };
                match parsed {
                    Ok(keys) => {
                        let waiting: Vec<Parked> = {
                            let mut shared = self.shared.borrow_mut();
                            shared.keys[i] = Some(keys);
                            shared.failures[i] = 0;
                            if let Jwks::Remote(r) = &rule.jwks {
                                shared.due[i] = now + r.refresh.as_nanos() as u64;
                            }
                            let (waiting, keep) = std::mem::take(&mut shared.parked)
                                .into_iter()
                                .partition(|p| p.rule == i);
                            shared.parked = keep;
                            waiting
                        };
                        let secs = now / 1_000_000_000;
                        for mut p in waiting {
                            let step = {
                                let shared = self.shared.borrow();
                                p.flow.authenticate(&self.config, &shared.keys, secs)
                            };
                            self.drive(p.id, p.flow, step);
                        }
                    }
                    Err(e) => self.jwks_failed(i, now, &e),
                }
                hostcalls::set_effective_context(self.id).ok();
                return;
            }
            let call = self.shared.borrow_mut().root_calls.remove(&token);
            if let Some(mut c) = call {
                let step = c
                    .flow
                    .on_answer(&self.config, c.policy, status, &headers, &body);
                self.drive(c.id, c.flow, step);
                hostcalls::set_effective_context(self.id).ok();
            }
        }
    }

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            let raw = self.get_plugin_configuration().unwrap_or_default();
            match Config::parse(&raw) {
                Ok(c) => {
                    let n = c.jwt_rules.len();
                    let remote = c
                        .jwt_rules
                        .iter()
                        .any(|r| matches!(r.jwks, Jwks::Remote(_)));
                    self.config = Rc::new(c);
                    *self.shared.borrow_mut() = Shared {
                        keys: vec![None; n],
                        due: vec![0; n],
                        failures: vec![0; n],
                        ..Shared::default()
                    };
                    hostcalls::set_tick_period(if remote { TICK } else { Duration::ZERO }).ok();
                    true
                }
                Err(e) => {
                    log(
                        LogLevel::Error,
                        &format!("authz: invalid pluginConfig: {e}"),
                    );
                    false
                }
            }
        }

        fn on_tick(&mut self) {
            self.fetch_due();
        }

        fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Stream {
                id,
                config: self.config.clone(),
                shared: self.shared.clone(),
                flow: None,
                calling: None,
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
        /// The request's state while it is checked here.
        flow: Option<Flow>,
        /// The CUSTOM policy whose check is in flight (token, policy).
        calling: Option<(u32, usize)>,
        /// Handed to the root context to wait for keys.
        parked: bool,
    }

    impl Drop for Stream {
        fn drop(&mut self) {
            if self.parked
                && let Ok(mut shared) = self.shared.try_borrow_mut()
            {
                let id = self.id;
                shared.parked.retain(|p| p.id != id);
                shared.root_calls.retain(|_, c| c.id != id);
            }
        }
    }

    impl Stream {
        /// Performs `step` on this (effective) stream.
        fn perform(&mut self, mut flow: Flow, mut step: Step) -> Action {
            loop {
                match step {
                    Step::Reply(reply) => {
                        send(&reply);
                        return Action::Pause;
                    }
                    Step::Proceed { audit } => {
                        apply_allow(&flow, &audit);
                        return Action::Continue;
                    }
                    Step::NeedKeys(rule) => {
                        self.parked = true;
                        self.shared.borrow_mut().parked.push(Parked {
                            id: self.id,
                            rule,
                            flow,
                        });
                        return Action::Pause;
                    }
                    Step::Call { policy } => match dispatch_check(&self.config, &flow, policy) {
                        Some(token) => {
                            self.calling = Some((token, policy));
                            self.flow = Some(flow);
                            return Action::Pause;
                        }
                        None => step = flow.on_answer(&self.config, policy, None, &[], &[]),
                    },
                }
            }
        }
    }

    impl Context for Stream {
        fn on_http_call_response(&mut self, token: u32, _h: usize, body_size: usize, _t: usize) {
            let Some((expected, policy)) = self.calling.take() else {
                return;
            };
            let Some(mut flow) = self.flow.take() else {
                return;
            };
            if expected != token {
                return;
            }
            let (status, headers, body) = call_answer(body_size);
            let step = flow.on_answer(&self.config, policy, status, &headers, &body);
            if self.perform(flow, step) == Action::Continue {
                self.resume_http_request();
            }
        }
    }

    fn text_property(path: &[&str]) -> Option<String> {
        hostcalls::get_property(path.to_vec())
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
    }

    impl HttpContext for Stream {
        fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
            if self.config.jwt_rules.is_empty() && self.config.policies.is_empty() {
                return Action::Continue;
            }
            let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
            let source = text_property(&["source", "address"]);
            let peer = text_property(&["connection", "uri_san_peer_certificate"]);
            let mut flow = attributes(headers, source.as_deref(), peer.as_deref());
            let now = now_nanos() / 1_000_000_000;
            let step = {
                let shared = self.shared.borrow();
                flow.authenticate(&self.config, &shared.keys, now)
            };
            self.perform(flow, step)
        }
    }
}
