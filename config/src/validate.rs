//! After parsing: resolving relative paths, then every semantic check.

use crate::error::{Problem, YamlPath};
use crate::model::{
    Cluster, ClusterTls, Config, LbPolicy, Listener, ListenerTls, ModuleSource, PluginSpec,
    Registry, ValueFrom,
};
use crate::units::{is_dns_name, is_header_name};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The directory relative paths in `file` are resolved against.
pub(crate) fn base_dir_of(file: &Path) -> PathBuf {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    match absolute.parent() {
        Some(dir) => dir.to_path_buf(),
        None => absolute,
    }
}

/// `base/p` for a relative `p`, without `.` components.
fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let mut out = base.to_path_buf();
    for c in p.components() {
        if c != Component::CurDir {
            out.push(c);
        }
    }
    out
}

/// Makes every local path absolute: TLS files, the access log, the cache
/// directory and local plugin modules (rewritten as `file:///abs` and
/// `oci-layout:///abs` urls).
pub(crate) fn resolve(config: &mut Config) {
    let base = config.base_dir.clone();
    let fix = |p: &mut PathBuf| *p = resolve_path(&base, p);
    for l in &mut config.listeners {
        if let Some(tls) = &mut l.tls {
            for c in &mut tls.certificates {
                fix(&mut c.cert);
                fix(&mut c.key);
            }
            tls.client_ca.as_mut().map(fix);
        }
    }
    for c in &mut config.clusters {
        if let Some(tls) = &mut c.tls {
            tls.ca.as_mut().map(fix);
            tls.cert.as_mut().map(fix);
            tls.key.as_mut().map(fix);
        }
    }
    if let Some(log) = &mut config.access_log {
        if log.path.as_deref() == Some(Path::new("-")) {
            log.path = None;
        }
        log.path.as_mut().map(fix);
    }
    config.cache_dir.as_mut().map(fix);
    config.plugins_dir.as_mut().map(fix);
    for r in &mut config.registries {
        r.password_file.as_mut().map(fix);
        r.ca.as_mut().map(fix);
    }
    for p in &mut config.plugins {
        match p.source() {
            ModuleSource::File(path) if !path.as_os_str().is_empty() => {
                p.url = format!("file://{}", resolve_path(&base, &path).display());
            }
            ModuleSource::OciLayout(path) if !path.as_os_str().is_empty() => {
                p.url = format!("oci-layout://{}", resolve_path(&base, &path).display());
            }
            _ => {}
        }
    }
}

/// Collects every semantic problem of a (resolved) configuration.
pub(crate) fn check(config: &Config) -> Vec<Problem> {
    let mut c = Checker::default();
    let root = YamlPath::default();
    if config.workers == Some(0) {
        c.problem(root.key("workers"), "must be at least 1");
    }
    if config.buffer_limit == 0 {
        c.problem(root.key("buffer_limit"), "must be at least 1 byte");
    }
    c.not_empty(root.key("node").key("name"), &config.node.name);
    c.not_empty(root.key("node").key("namespace"), &config.node.namespace);

    let clusters: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    let listeners: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();

    let mut addresses: HashMap<std::net::SocketAddr, String> = HashMap::new();
    if let Some(admin) = &config.admin {
        addresses.insert(admin.address, "the admin listener".to_owned());
    }
    c.unique_names("listener", root.key("listeners"), &listeners);
    for (i, l) in config.listeners.iter().enumerate() {
        let path = root.key("listeners").index(i);
        match addresses.get(&l.address) {
            Some(user) => c.problem(
                path.key("address"),
                format!("address {} is already used by {user}", l.address),
            ),
            None => {
                addresses.insert(l.address, format!("listener {:?}", l.name));
            }
        }
        check_listener(&mut c, &path, l, &clusters);
    }

    c.unique_names("cluster", root.key("clusters"), &clusters);
    for (i, cluster) in config.clusters.iter().enumerate() {
        check_cluster(&mut c, &root.key("clusters").index(i), cluster);
    }

    let plugins: Vec<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
    c.unique_names("plugin", root.key("plugins"), &plugins);
    for (i, plugin) in config.plugins.iter().enumerate() {
        check_plugin(&mut c, &root.key("plugins").index(i), plugin, &listeners);
    }

    let mut hosts: HashMap<&str, usize> = HashMap::new();
    for (i, r) in config.registries.iter().enumerate() {
        check_registry(&mut c, &root.key("registries").index(i), r);
        if let Some(first) = hosts.insert(r.host.as_str(), i) {
            c.problem(
                root.key("registries").index(i).key("host"),
                format!(
                    "registry {:?} is already configured at registries[{first}]",
                    r.host
                ),
            );
        }
    }
    c.problems
}

fn check_registry(c: &mut Checker, path: &YamlPath, r: &Registry) {
    let host = path.key("host");
    if r.host.is_empty() {
        c.problem(host, "must not be empty");
    } else if r.host.contains("://") || r.host.contains('/') || r.host.contains(char::is_whitespace)
    {
        c.problem(
            host,
            format!(
                "must be a host with an optional port, like \"registry.example:5000\", got {:?}",
                r.host
            ),
        );
    }
    match (&r.username, &r.password_file) {
        (Some(_), None) => c.problem(path.key("password_file"), "required when username is set"),
        (None, Some(_)) => c.problem(path.key("username"), "required when password_file is set"),
        (Some(user), Some(_)) if user.is_empty() => {
            c.problem(path.key("username"), "must not be empty")
        }
        _ => {}
    }
    if let Some(file) = &r.password_file {
        c.readable(path.key("password_file"), file, "password file");
    }
    if let Some(ca) = &r.ca {
        c.readable(path.key("ca"), ca, "CA file");
    }
}

fn check_listener(c: &mut Checker, path: &YamlPath, l: &Listener, clusters: &[&str]) {
    if let Some(name) = &l.default_cluster {
        c.known("cluster", path.key("default_cluster"), name, clusters);
    }
    if let Some(tls) = &l.tls {
        check_listener_tls(c, &path.key("tls"), tls);
    }
    let limits = path.key("limits");
    let x = &l.limits;
    c.at_least_1(
        limits.key("max_request_headers_size"),
        x.max_request_headers_size,
    );
    c.positive(
        limits.key("request_header_timeout"),
        x.request_header_timeout,
    );
    c.positive(limits.key("idle_timeout"), x.idle_timeout);
    c.at_least_1(limits.key("max_connections"), x.max_connections);
    c.at_least_1(
        limits.key("http2_max_concurrent_streams"),
        x.http2_max_concurrent_streams.into(),
    );
}

fn check_listener_tls(c: &mut Checker, path: &YamlPath, tls: &ListenerTls) {
    if tls.certificates.is_empty() {
        c.problem(
            path.key("certificates"),
            "at least one certificate is required",
        );
    }
    for (i, cert) in tls.certificates.iter().enumerate() {
        let p = path.key("certificates").index(i);
        c.readable(p.key("cert"), &cert.cert, "certificate file");
        c.readable(p.key("key"), &cert.key, "private key file");
        for (j, name) in cert.server_names.iter().enumerate() {
            let bare = name.strip_prefix("*.").unwrap_or(name);
            if !is_dns_name(bare) {
                c.problem(
                    p.key("server_names").index(j),
                    format!("{name:?} is not a valid DNS name"),
                );
            }
        }
    }
    match &tls.client_ca {
        Some(ca) => c.readable(path.key("client_ca"), ca, "CA file"),
        None if tls.require_client_cert => c.problem(
            path.key("client_ca"),
            "required when require_client_cert is true",
        ),
        None => {}
    }
}

fn check_cluster(c: &mut Checker, path: &YamlPath, cluster: &Cluster) {
    if cluster.endpoints.is_empty() {
        c.problem(path.key("endpoints"), "at least one endpoint is required");
    }
    for (i, e) in cluster.endpoints.iter().enumerate() {
        c.at_least_1(
            path.key("endpoints").index(i).key("weight"),
            e.weight.into(),
        );
    }
    match &cluster.hash_header {
        None if cluster.lb_policy == LbPolicy::RingHash => c.problem(
            path.key("hash_header"),
            "required when lb_policy is ring_hash",
        ),
        Some(h) if !is_header_name(h) => c.problem(
            path.key("hash_header"),
            format!("{h:?} is not a valid HTTP header name"),
        ),
        _ => {}
    }
    c.positive(path.key("connect_timeout"), cluster.connect_timeout);
    c.positive(path.key("dns_refresh_rate"), cluster.dns_refresh_rate);
    if let Some(hc) = &cluster.health_check {
        let p = path.key("health_check");
        if !hc.path.starts_with('/') {
            c.problem(
                p.key("path"),
                format!("must start with \"/\", got {:?}", hc.path),
            );
        }
        c.positive(p.key("interval"), hc.interval);
        c.positive(p.key("timeout"), hc.timeout);
        c.at_least_1(p.key("unhealthy_threshold"), hc.unhealthy_threshold.into());
        c.at_least_1(p.key("healthy_threshold"), hc.healthy_threshold.into());
    }
    if let Some(od) = &cluster.outlier_detection {
        let p = path.key("outlier_detection");
        c.at_least_1(p.key("consecutive_5xx"), od.consecutive_5xx.into());
        c.at_least_1(
            p.key("consecutive_connect_failures"),
            od.consecutive_connect_failures.into(),
        );
        c.positive(p.key("base_ejection_time"), od.base_ejection_time);
    }
    let cb = &cluster.circuit_breakers;
    let p = path.key("circuit_breakers");
    c.at_least_1(p.key("max_connections"), cb.max_connections.into());
    c.at_least_1(
        p.key("max_pending_requests"),
        cb.max_pending_requests.into(),
    );
    c.at_least_1(p.key("max_requests"), cb.max_requests.into());
    if let Some(tls) = &cluster.tls {
        check_cluster_tls(c, &path.key("tls"), tls);
    }
}

fn check_cluster_tls(c: &mut Checker, path: &YamlPath, tls: &ClusterTls) {
    match (&tls.cert, &tls.key) {
        (Some(_), None) => c.problem(path.key("key"), "required when cert is set"),
        (None, Some(_)) => c.problem(path.key("cert"), "required when key is set"),
        _ => {}
    }
    if let Some(ca) = &tls.ca {
        c.readable(path.key("ca"), ca, "CA file");
    }
    if let Some(cert) = &tls.cert {
        c.readable(path.key("cert"), cert, "certificate file");
    }
    if let Some(key) = &tls.key {
        c.readable(path.key("key"), key, "private key file");
    }
    if let Some(sni) = &tls.sni
        && sni.parse::<IpAddr>().is_err()
        && !is_dns_name(sni)
    {
        c.problem(path.key("sni"), format!("{sni:?} is not a valid DNS name"));
    }
}

fn check_plugin(c: &mut Checker, path: &YamlPath, p: &PluginSpec, listeners: &[&str]) {
    let url = path.key("url");
    match p.source() {
        _ if p.url.is_empty() => c.problem(url, "must not be empty"),
        ModuleSource::File(f) | ModuleSource::OciLayout(f) if f.as_os_str().is_empty() => {
            c.problem(url, format!("{:?} names no path", p.url))
        }
        ModuleSource::Oci(reference) if reference.is_empty() => {
            c.problem(url, format!("{:?} names no image", p.url))
        }
        ModuleSource::Http(_) if p.sha256.is_none() => {
            c.problem(path.key("sha256"), "required when url is http:// or https://")
        }
        ModuleSource::Unsupported(scheme) => c.problem(
            url,
            format!("unsupported url scheme \"{scheme}://\" (use file://, oci://, oci-layout://, http:// or https://)"),
        ),
        _ => {}
    }
    if let Some(sha) = &p.sha256
        && !(sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        c.problem(
            path.key("sha256"),
            format!("must be 64 lowercase hexadecimal characters, got {sha:?}"),
        );
    }
    if let Some(names) = &p.listeners {
        for (i, name) in names.iter().enumerate() {
            c.known("listener", path.key("listeners").index(i), name, listeners);
        }
    }
    let env = path.key("vmConfig").key("env");
    let mut seen = HashSet::new();
    for (i, e) in p.vm_config.env.iter().enumerate() {
        let ep = env.index(i);
        if e.name.is_empty() {
            c.problem(ep.key("name"), "must not be empty");
        } else if !seen.insert(e.name.as_str()) {
            c.problem(
                ep.key("name"),
                format!("duplicate environment variable {:?}", e.name),
            );
        }
        if e.value_from == ValueFrom::Host && !e.value.is_empty() {
            c.problem(ep.key("value"), "must be empty when valueFrom is HOST");
        }
    }
    let limits = path.key("limits");
    if p.limits.memory < 64 * 1024 {
        c.problem(
            limits.key("memory"),
            "must be at least 64KiB (one Wasm page)",
        );
    }
    c.positive(limits.key("callback_timeout"), p.limits.callback_timeout);
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, path: YamlPath, reason: impl Into<String>) {
        self.problems.push(Problem {
            path,
            reason: reason.into(),
        });
    }

    fn not_empty(&mut self, path: YamlPath, value: &str) {
        if value.is_empty() {
            self.problem(path, "must not be empty");
        }
    }

    fn at_least_1(&mut self, path: YamlPath, value: u64) {
        if value == 0 {
            self.problem(path, "must be at least 1");
        }
    }

    fn positive(&mut self, path: YamlPath, value: Duration) {
        if value.is_zero() {
            self.problem(path, "must be longer than 0s");
        }
    }

    /// Names must be non-empty and unique; `list` is the sequence's path.
    fn unique_names(&mut self, kind: &str, list: YamlPath, names: &[&str]) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            let path = list.index(i).key("name");
            if name.is_empty() {
                self.problem(path, "must not be empty");
                continue;
            }
            match first.get(name) {
                Some(j) => self.problem(
                    path,
                    format!("duplicate {kind} name {name:?} (also {list}[{j}])"),
                ),
                None => {
                    first.insert(name, i);
                }
            }
        }
    }

    /// `name` must be one of `known` (the names of the `kind`s defined).
    fn known(&mut self, kind: &str, path: YamlPath, name: &str, known: &[&str]) {
        if known.contains(&name) {
            return;
        }
        let defined = if known.is_empty() {
            format!("no {kind}s are defined")
        } else {
            let mut names: Vec<&str> = Vec::new();
            for n in known {
                if !names.contains(n) {
                    names.push(n);
                }
            }
            format!("{kind}s: {}", names.join(", "))
        };
        self.problem(path, format!("unknown {kind} {name:?} ({defined})"));
    }

    /// The file must exist, be a file and be readable.
    fn readable(&mut self, path: YamlPath, file: &Path, what: &str) {
        let result = std::fs::metadata(file).and_then(|m| {
            if m.is_dir() {
                Err(std::io::Error::other("it is a directory"))
            } else {
                std::fs::File::open(file).map(drop)
            }
        });
        if let Err(e) = result {
            self.problem(path, format!("cannot read {what} {}: {e}", file.display()));
        }
    }
}
