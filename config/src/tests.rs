use super::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("weft-config-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn touch(&self, names: &[&str]) {
        for name in names {
            std::fs::write(self.0.join(name), "-----BEGIN TEST-----\n").expect("write a temp file");
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write a temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const FULL: &str = r#"
admin: { address: 127.0.0.1:9901 }
workers: 2
node: { name: edge-1, namespace: prod, labels: { app: edge } }
access_log: { path: logs/access.json }
drain_timeout: 15s
buffer_limit: 64KiB
listeners:
  - name: public
    address: 127.0.0.1:8080
    default_cluster: echo
    tls:
      certificates:
        - { cert: server.pem, key: server.key }
        - { cert: ./server.pem, key: server.key, server_names: [a.example.com, "*.b.example.com"] }
      client_ca: ca.pem
      require_client_cert: true
    limits: { max_request_headers_size: 32KiB, idle_timeout: 1m, max_connections: 5 }
  - name: internal
    address: "[::1]:8081"
clusters:
  - name: echo
    endpoints: [ "127.0.0.1:9000", { address: "echo.internal:9001", weight: 3 } ]
    lb_policy: ring_hash
    hash_header: x-user
    protocol: http2
    connect_timeout: 250ms
    health_check: { path: /healthz }
    outlier_detection: { consecutive_5xx: 7 }
    circuit_breakers: { max_requests: 10 }
    tls: { ca: ca.pem, sni: echo.internal, cert: client.pem, key: client.key }
  - name: plain
    endpoints: [ "[::1]:9002" ]
plugins:
  - name: probe
    url: file://probe.wasm
    sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    imagePullPolicy: Always
    pluginName: probe-root
    phase: AUTHN
    priority: 10
    failStrategy: FAIL_OPEN
    pluginConfig: { greeting: hello, list: [1, 2], nested: { on: true } }
    vmConfig: { env: [ { name: MODE, value: strict }, { name: HOME, valueFrom: HOST } ] }
    listeners: [ public ]
    limits: { memory: 32MiB, callback_timeout: 1.5s }
  - name: remote
    url: https://example.com/filter.wasm
    sha256: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
"#;

fn full_dir() -> TempDir {
    let dir = TempDir::new("full");
    dir.touch(&[
        "server.pem",
        "server.key",
        "ca.pem",
        "client.pem",
        "client.key",
    ]);
    dir
}

fn parse(dir: &TempDir, src: &str) -> Result<Config, ConfigErrors> {
    Config::from_yaml_str(src, &dir.path().join("weft.yaml"))
}

/// Parses `src` (as `weft.yaml`, relative to the working directory) and
/// returns the error text.
fn errors(src: &str) -> String {
    match Config::from_yaml_str(src, Path::new("weft.yaml")) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_full_example_parses_with_every_value_and_default() {
    let dir = full_dir();
    let d = dir.path();
    let c = parse(&dir, FULL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.base_dir(), d);
    assert_eq!(c.file(), d.join("weft.yaml"));
    assert_eq!(
        c.admin.as_ref().map(|a| a.address.to_string()).as_deref(),
        Some("127.0.0.1:9901")
    );
    assert_eq!(c.workers, Some(2));
    assert_eq!(c.node.name, "edge-1");
    assert_eq!(c.node.namespace, "prod");
    assert_eq!(c.node.labels.get("app").map(String::as_str), Some("edge"));
    let log = c.access_log.as_ref().expect("access_log");
    assert!(log.enabled);
    assert_eq!(
        log.path.as_deref(),
        Some(d.join("logs/access.json").as_path())
    );
    assert_eq!(c.drain_timeout, Duration::from_secs(15));
    assert_eq!(c.buffer_limit, 64 * 1024);
    assert_eq!(c.cache_dir, None);

    let public = &c.listeners[0];
    assert_eq!(public.name, "public");
    assert_eq!(public.address.to_string(), "127.0.0.1:8080");
    assert_eq!(public.default_cluster.as_deref(), Some("echo"));
    let tls = public.tls.as_ref().expect("listener tls");
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[0].cert, d.join("server.pem"));
    assert_eq!(tls.certificates[0].key, d.join("server.key"));
    assert!(tls.certificates[0].server_names.is_empty());
    assert_eq!(
        tls.certificates[1].cert,
        d.join("server.pem"),
        "./ is dropped"
    );
    assert_eq!(
        tls.certificates[1].server_names,
        ["a.example.com", "*.b.example.com"]
    );
    assert_eq!(tls.client_ca.as_deref(), Some(d.join("ca.pem").as_path()));
    assert!(tls.require_client_cert);
    let limits = &public.limits;
    assert_eq!(limits.max_request_headers_size, 32 * 1024);
    assert_eq!(limits.request_header_timeout, Duration::from_secs(10));
    assert_eq!(limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(limits.max_connections, 5);
    assert_eq!(limits.http2_max_concurrent_streams, 100);
    assert_eq!(limits.http2_max_pending_reset_streams, 20);
    let internal = &c.listeners[1];
    assert_eq!(internal.address.to_string(), "[::1]:8081");
    assert_eq!(internal.default_cluster, None);
    assert_eq!(internal.tls, None);
    assert_eq!(internal.limits, ListenerLimits::default());
    assert_eq!(internal.limits.max_request_headers_size, 60 * 1024);
    assert_eq!(internal.limits.idle_timeout, Duration::from_secs(300));
    assert_eq!(internal.limits.max_connections, 10_000);

    let echo = c.cluster("echo").expect("echo");
    assert_eq!(
        echo.endpoints,
        [
            Endpoint {
                host: "127.0.0.1".into(),
                port: 9000,
                weight: 1
            },
            Endpoint {
                host: "echo.internal".into(),
                port: 9001,
                weight: 3
            },
        ]
    );
    assert_eq!(echo.lb_policy, LbPolicy::RingHash);
    assert_eq!(echo.hash_header.as_deref(), Some("x-user"));
    assert_eq!(echo.protocol, Protocol::Http2);
    assert_eq!(echo.connect_timeout, Duration::from_millis(250));
    assert_eq!(echo.dns_refresh_rate, Duration::from_secs(5));
    let hc = echo.health_check.as_ref().expect("health_check");
    assert_eq!(hc.path, "/healthz");
    assert_eq!(hc.interval, Duration::from_secs(5));
    assert_eq!(hc.timeout, Duration::from_secs(1));
    assert_eq!((hc.unhealthy_threshold, hc.healthy_threshold), (3, 2));
    let od = echo.outlier_detection.as_ref().expect("outlier_detection");
    assert_eq!(
        (od.consecutive_5xx, od.consecutive_connect_failures),
        (7, 5)
    );
    assert_eq!(od.base_ejection_time, Duration::from_secs(30));
    let cb = &echo.circuit_breakers;
    assert_eq!(
        (cb.max_connections, cb.max_pending_requests, cb.max_requests),
        (1024, 1024, 10)
    );
    let tls = echo.tls.as_ref().expect("cluster tls");
    assert_eq!(tls.ca.as_deref(), Some(d.join("ca.pem").as_path()));
    assert_eq!(tls.sni.as_deref(), Some("echo.internal"));
    assert_eq!(tls.cert.as_deref(), Some(d.join("client.pem").as_path()));
    assert_eq!(tls.key.as_deref(), Some(d.join("client.key").as_path()));
    assert!(!tls.insecure_skip_verify);
    let plain = c.cluster("plain").expect("plain");
    assert_eq!(plain.endpoints[0].host, "::1");
    assert_eq!(plain.endpoints[0].address(), "[::1]:9002");
    assert_eq!(plain.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(plain.protocol, Protocol::Http1);
    assert_eq!(plain.connect_timeout, Duration::from_secs(1));
    assert_eq!(plain.health_check, None);
    assert_eq!(plain.outlier_detection, None);
    assert_eq!(plain.circuit_breakers, CircuitBreakers::default());
    assert_eq!(plain.tls, None);

    let probe = c.plugin("probe").expect("probe");
    assert_eq!(
        probe.url,
        format!("file://{}", d.join("probe.wasm").display())
    );
    assert_eq!(probe.source(), ModuleSource::File(d.join("probe.wasm")));
    assert_eq!(
        probe.sha256.as_deref(),
        Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );
    assert_eq!(probe.image_pull_policy, ImagePullPolicy::Always);
    assert_eq!(probe.plugin_name.as_deref(), Some("probe-root"));
    assert_eq!(probe.phase, Phase::Authn);
    assert_eq!(probe.priority, 10);
    assert_eq!(probe.fail_strategy, FailStrategy::FailOpen);
    assert_eq!(
        probe.plugin_config,
        serde_json::json!({ "greeting": "hello", "list": [1, 2], "nested": { "on": true } })
    );
    assert_eq!(
        probe.vm_config.env,
        [
            EnvVar {
                name: "MODE".into(),
                value: "strict".into(),
                value_from: ValueFrom::Inline
            },
            EnvVar {
                name: "HOME".into(),
                value: String::new(),
                value_from: ValueFrom::Host
            },
        ]
    );
    assert_eq!(probe.listeners.as_deref(), Some(&["public".to_owned()][..]));
    assert_eq!(probe.limits.memory, 32 << 20);
    assert_eq!(probe.limits.callback_timeout, Duration::from_millis(1500));
    let remote = c.plugin("remote").expect("remote");
    assert_eq!(
        remote.source(),
        ModuleSource::Http("https://example.com/filter.wasm".into())
    );
    assert_eq!(remote.image_pull_policy, ImagePullPolicy::Unspecified);
    assert_eq!(remote.plugin_name, None);
    assert_eq!(remote.phase, Phase::Unspecified);
    assert_eq!(remote.priority, 0);
    assert_eq!(remote.fail_strategy, FailStrategy::FailClose);
    assert_eq!(remote.plugin_config, serde_json::Value::Null);
    assert!(remote.vm_config.env.is_empty());
    assert_eq!(remote.listeners, None);
    assert_eq!(remote.limits.memory, 64 << 20);
    assert_eq!(remote.limits.callback_timeout, Duration::from_millis(100));
}

#[test]
fn top_level_defaults() {
    for src in ["", "# nothing\n", "~\n", "{}\n"] {
        let c =
            Config::from_yaml_str(src, Path::new("weft.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.admin, None);
        assert_eq!(c.workers, None);
        assert_eq!(c.node.name, "weft");
        assert_eq!(c.node.namespace, "default");
        assert!(c.node.labels.is_empty());
        assert_eq!(c.access_log, None);
        assert_eq!(c.drain_timeout, Duration::from_secs(10));
        assert_eq!(c.buffer_limit, 1 << 20);
        assert!(c.listeners.is_empty() && c.clusters.is_empty() && c.plugins.is_empty());
    }
}

#[test]
fn access_log_dash_or_absent_means_stdout() {
    for src in ["access_log: {}\n", "access_log: { path: \"-\" }\n"] {
        let c = Config::from_yaml_str(src, Path::new("/etc/weft/weft.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.access_log,
            Some(AccessLog {
                enabled: true,
                path: None
            })
        );
    }
    let c = Config::from_yaml_str(
        "access_log: { enabled: false, path: /var/log/w.json }\n",
        Path::new("w.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.access_log,
        Some(AccessLog {
            enabled: false,
            path: Some("/var/log/w.json".into())
        })
    );
}

#[test]
fn plugin_urls_are_resolved_against_the_config_directory() {
    let src = "plugins:\n  - { name: a, url: file://rel/a.wasm }\n  - { name: b, url: b.wasm }\n  - { name: c, url: /abs/c.wasm }\n  - { name: d, url: \"file:///abs/d.wasm\" }\n  - { name: e, url: oci://ghcr.io/x/y:1 }\n  - { name: f, url: oci-layout://layout }\n";
    let c = Config::from_yaml_str(src, Path::new("/etc/weft/weft.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let urls: Vec<&str> = c.plugins.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "file:///etc/weft/rel/a.wasm",
            "file:///etc/weft/b.wasm",
            "file:///abs/c.wasm",
            "file:///abs/d.wasm",
            "oci://ghcr.io/x/y:1",
            "oci-layout:///etc/weft/layout",
        ]
    );
    assert_eq!(
        c.plugins[4].source(),
        ModuleSource::Oci("ghcr.io/x/y:1".into())
    );
    assert_eq!(
        c.plugins[5].source(),
        ModuleSource::OciLayout("/etc/weft/layout".into())
    );
}

#[test]
fn a_relative_config_file_resolves_against_the_working_directory() {
    let c = Config::from_yaml_str(
        "plugins: [{ name: a, url: a.wasm }]\n",
        Path::new("conf/weft.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(c.base_dir(), cwd.join("conf"));
    assert_eq!(
        c.plugins[0].source(),
        ModuleSource::File(cwd.join("conf/a.wasm"))
    );
}

#[test]
fn unknown_field() {
    let err = errors("listeners:\n  - name: x\n    address: 127.0.0.1:80\n    bogus: 1\n");
    assert_eq!(
        err,
        "weft.yaml:4: listeners[0].bogus: unknown field `bogus`, expected one of `name`, `address`, `default_cluster`, `tls`, `limits`"
    );
    let err = errors("plugins:\n  - name: x\n    url: a.wasm\n    plugin_config: {}\n");
    assert!(
        err.starts_with("weft.yaml:4: plugins[0].plugin_config: unknown field `plugin_config`"),
        "{err}"
    );
    let err = errors("typo: 1\n");
    assert!(
        err.starts_with("weft.yaml:1: typo: unknown field `typo`, expected one of `admin`"),
        "{err}"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors("workers: many\n"),
        "weft.yaml:1: workers: invalid type: string \"many\", expected usize"
    );
    assert_eq!(
        errors("listeners: { name: x }\n"),
        "weft.yaml:1: listeners: invalid type: map, expected a sequence"
    );
    assert_eq!(
        errors("listeners:\n  - name: x\n    address: nope\n"),
        "weft.yaml:3: listeners[0].address: invalid socket address syntax"
    );
    assert_eq!(
        errors("clusters:\n  - name: c\n    endpoints: [7]\n"),
        "weft.yaml:3: clusters[0].endpoints[0]: invalid type: integer `7`, expected an endpoint: \"host:port\" or { address: \"host:port\", weight: N }"
    );
    assert_eq!(
        errors("clusters:\n  - name: c\n    endpoints: [\"c\"]\n"),
        "weft.yaml:3: clusters[0].endpoints[0]: invalid address \"c\": expected host:port"
    );
    assert_eq!(
        errors(
            "clusters:\n  - name: c\n    endpoints: [{ address: \"c:1\", weight: 2, zone: a }]\n"
        ),
        "weft.yaml:3: clusters[0].endpoints[0].zone: unknown field `zone`, expected `address` or `weight`"
    );
    assert_eq!(
        errors("plugins:\n  - { name: p, url: a.wasm, phase: EARLY }\n"),
        "weft.yaml:2: plugins[0].phase: unknown variant `EARLY`, expected one of `AUTHN`, `AUTHZ`, `STATS`, `UNSPECIFIED_PHASE`"
    );
    assert_eq!(
        errors("buffer_limit: 1.5MiB\n"),
        "weft.yaml:1: buffer_limit: invalid byte size \"1.5MiB\": expected an integer number of bytes, optionally followed by B, KB, MB, GB, KiB, MiB or GiB"
    );
}

#[test]
fn a_yaml_syntax_error_has_a_line() {
    let err = errors("workers: 1\nnode: { name: a\nlisteners: []\n");
    assert!(err.starts_with("weft.yaml:3: "), "{err}");
    let err = errors("workers: 1\nworkers: 2\n");
    assert_eq!(err, "weft.yaml:2: workers: duplicate field `workers`");
    let err = errors("listeners:\n  - name: a\n    address: 127.0.0.1:1\n    name: b\n");
    assert_eq!(
        err,
        "weft.yaml:4: listeners[0].name: duplicate field `name`"
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        errors("clusters:\n  - name: c\n    endpoints: [\"c:1\"]\n    connect_timeout: 5 sec\n"),
        "weft.yaml:4: clusters[0].connect_timeout: invalid duration \"5 sec\": expected a number followed by ms, s, m or h"
    );
    assert_eq!(
        errors("drain_timeout: 10\n"),
        "weft.yaml:1: drain_timeout: invalid duration \"10\": expected a number followed by ms, s, m or h"
    );
}

#[test]
fn duplicate_names() {
    let err = errors(
        "listeners:\n  - { name: a, address: 127.0.0.1:1 }\n  - { name: a, address: 127.0.0.1:2 }\nclusters:\n  - { name: c, endpoints: [\"h:1\"] }\n  - { name: c, endpoints: [\"h:1\"] }\nplugins:\n  - { name: p, url: p.wasm }\n  - { name: p, url: q.wasm }\n",
    );
    assert_eq!(
        err,
        "weft.yaml:3: listeners[1].name: duplicate listener name \"a\" (also listeners[0])\n\
         weft.yaml:6: clusters[1].name: duplicate cluster name \"c\" (also clusters[0])\n\
         weft.yaml:9: plugins[1].name: duplicate plugin name \"p\" (also plugins[0])"
    );
}

#[test]
fn duplicate_addresses() {
    let err = errors(
        "admin: { address: 127.0.0.1:9901 }\nlisteners:\n  - { name: a, address: 127.0.0.1:9901 }\n  - { name: b, address: 127.0.0.1:1 }\n  - { name: c, address: 127.0.0.1:1 }\n",
    );
    assert_eq!(
        err,
        "weft.yaml:3: listeners[0].address: address 127.0.0.1:9901 is already used by the admin listener\n\
         weft.yaml:5: listeners[2].address: address 127.0.0.1:1 is already used by listener \"b\""
    );
}

#[test]
fn unknown_default_cluster() {
    let src = "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    default_cluster: nope\nclusters:\n  - { name: c1, endpoints: [\"h:1\"] }\n  - { name: c2, endpoints: [\"h:1\"] }\n";
    assert_eq!(
        errors(src),
        "weft.yaml:4: listeners[0].default_cluster: unknown cluster \"nope\" (clusters: c1, c2)"
    );
    let src = "listeners:\n  - { name: a, address: 127.0.0.1:1, default_cluster: nope }\n";
    assert_eq!(
        errors(src),
        "weft.yaml:2: listeners[0].default_cluster: unknown cluster \"nope\" (no clusters are defined)"
    );
}

#[test]
fn unknown_plugin_listener() {
    let src = "listeners:\n  - { name: public, address: 127.0.0.1:1 }\nplugins:\n  - name: p\n    url: p.wasm\n    listeners:\n      - public\n      - private\n";
    assert_eq!(
        errors(src),
        "weft.yaml:8: plugins[0].listeners[1]: unknown listener \"private\" (listeners: public)"
    );
}

#[test]
fn ring_hash_without_hash_header() {
    let src = "clusters:\n  - name: c\n    endpoints: [\"h:1\"]\n    lb_policy: ring_hash\n";
    assert_eq!(
        errors(src),
        "weft.yaml:2: clusters[0].hash_header: required when lb_policy is ring_hash"
    );
    let src = "clusters:\n  - { name: c, endpoints: [\"h:1\"], lb_policy: ring_hash, hash_header: \"bad header\" }\n";
    assert_eq!(
        errors(src),
        "weft.yaml:2: clusters[0].hash_header: \"bad header\" is not a valid HTTP header name"
    );
}

#[test]
fn endpoint_problems() {
    let src = "clusters:\n  - name: c\n    endpoints: []\n  - name: d\n    endpoints:\n      - h:1\n      - { address: \"h:2\", weight: 0 }\n";
    assert_eq!(
        errors(src),
        "weft.yaml:3: clusters[0].endpoints: at least one endpoint is required\n\
         weft.yaml:7: clusters[1].endpoints[1].weight: must be at least 1"
    );
}

#[test]
fn bad_sha256() {
    for bad in [
        "abc",
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        let src = format!("plugins:\n  - name: p\n    url: p.wasm\n    sha256: {bad}\n");
        assert_eq!(
            errors(&src),
            format!(
                "weft.yaml:4: plugins[0].sha256: must be 64 lowercase hexadecimal characters, got {bad:?}"
            )
        );
    }
}

#[test]
fn http_url_without_sha256() {
    for url in ["http://x/p.wasm", "https://x/p.wasm"] {
        let src = format!("plugins:\n  - name: p\n    url: {url}\n");
        assert_eq!(
            errors(&src),
            "weft.yaml:2: plugins[0].sha256: required when url is http:// or https://"
        );
    }
}

#[test]
fn unsupported_url_scheme() {
    let src = "plugins:\n  - name: p\n    url: ftp://x/p.wasm\n";
    assert_eq!(
        errors(src),
        "weft.yaml:3: plugins[0].url: unsupported url scheme \"ftp://\" (use file://, oci://, oci-layout://, http:// or https://)"
    );
}

#[test]
fn unreadable_certificate_files() {
    let dir = TempDir::new("certs");
    dir.touch(&["server.key"]);
    std::fs::create_dir(dir.path().join("ca-dir")).expect("mkdir");
    let file = dir.path().join("weft.yaml");
    let src = "listeners:\n  - name: tls\n    address: 127.0.0.1:1\n    tls:\n      certificates: [{ cert: missing.pem, key: server.key }]\n      client_ca: ca-dir\n";
    let err = Config::from_yaml_str(src, &file)
        .expect_err("missing cert")
        .to_string();
    let d = dir.path().display();
    assert_eq!(
        err,
        format!(
            "{f}:5: listeners[0].tls.certificates[0].cert: cannot read certificate file {d}/missing.pem: No such file or directory (os error 2)\n\
             {f}:6: listeners[0].tls.client_ca: cannot read CA file {d}/ca-dir: it is a directory",
            f = file.display()
        )
    );
}

#[test]
fn cluster_tls_cert_and_key_go_together() {
    let dir = TempDir::new("cluster-tls");
    dir.touch(&["client.pem", "client.key"]);
    let src = "clusters:\n  - name: a\n    endpoints: [\"h:1\"]\n    tls: { cert: client.pem }\n  - name: b\n    endpoints: [\"h:1\"]\n    tls:\n      key: client.key\n";
    let err = parse(&dir, src).expect_err("cert without key").to_string();
    let f = dir.path().join("weft.yaml");
    assert_eq!(
        err,
        format!(
            "{f}:4: clusters[0].tls.key: required when cert is set\n{f}:8: clusters[1].tls.cert: required when key is set",
            f = f.display()
        )
    );
}

#[test]
fn zero_values_are_refused() {
    let src = "workers: 0\nbuffer_limit: 0\nclusters:\n  - name: c\n    endpoints: [\"h:1\"]\n    connect_timeout: 0s\n    health_check: { path: healthz, unhealthy_threshold: 0, healthy_threshold: 0 }\n    circuit_breakers: { max_requests: 0 }\nplugins:\n  - { name: p, url: p.wasm, limits: { memory: 1KiB, callback_timeout: 0ms } }\n";
    assert_eq!(
        errors(src),
        "weft.yaml:1: workers: must be at least 1\n\
         weft.yaml:2: buffer_limit: must be at least 1 byte\n\
         weft.yaml:6: clusters[0].connect_timeout: must be longer than 0s\n\
         weft.yaml:7: clusters[0].health_check.path: must start with \"/\", got \"healthz\"\n\
         weft.yaml:7: clusters[0].health_check.unhealthy_threshold: must be at least 1\n\
         weft.yaml:7: clusters[0].health_check.healthy_threshold: must be at least 1\n\
         weft.yaml:8: clusters[0].circuit_breakers.max_requests: must be at least 1\n\
         weft.yaml:10: plugins[0].limits.memory: must be at least 64KiB (one Wasm page)\n\
         weft.yaml:10: plugins[0].limits.callback_timeout: must be longer than 0s"
    );
}

#[test]
fn env_problems() {
    let src = "plugins:\n  - name: p\n    url: p.wasm\n    vmConfig:\n      env:\n        - { name: A, value: x }\n        - { name: A, value: y }\n        - { name: H, value: z, valueFrom: HOST }\n        - { name: \"\" }\n";
    assert_eq!(
        errors(src),
        "weft.yaml:7: plugins[0].vmConfig.env[1].name: duplicate environment variable \"A\"\n\
         weft.yaml:8: plugins[0].vmConfig.env[2].value: must be empty when valueFrom is HOST\n\
         weft.yaml:9: plugins[0].vmConfig.env[3].name: must not be empty"
    );
}

#[test]
fn multiple_errors_are_reported_together() {
    let src = "\
workers: 0
listeners:
  - name: public
    address: 127.0.0.1:8080
    default_cluster: missing
  - name: public
    address: 127.0.0.1:8081
clusters:
  - name: c
    endpoints: [\"h:1\"]
    lb_policy: ring_hash
plugins:
  - name: p
    url: https://example.com/p.wasm
    listeners: [private]
";
    let errs = Config::from_yaml_str(src, Path::new("weft.yaml")).expect_err("errors");
    assert_eq!(errs.len(), 6, "{errs}");
    assert_eq!(
        errs.to_string(),
        "weft.yaml:1: workers: must be at least 1\n\
         weft.yaml:5: listeners[0].default_cluster: unknown cluster \"missing\" (clusters: c)\n\
         weft.yaml:6: listeners[1].name: duplicate listener name \"public\" (also listeners[0])\n\
         weft.yaml:9: clusters[0].hash_header: required when lb_policy is ring_hash\n\
         weft.yaml:13: plugins[0].sha256: required when url is http:// or https://\n\
         weft.yaml:15: plugins[0].listeners[0]: unknown listener \"private\" (listeners: public)"
    );
    let first = &errs.errors[0];
    assert_eq!(first.file, Path::new("weft.yaml"));
    assert_eq!(first.path, "workers");
    assert_eq!(first.line, Some(1));
    assert_eq!(first.reason, "must be at least 1");
}

#[test]
fn load_reads_the_file_or_names_it() {
    let dir = full_dir();
    let file = dir.write("weft.yaml", FULL);
    let c = load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listeners.len(), 2);
    let missing = dir.path().join("missing.yaml");
    let err = load(&missing).expect_err("missing file").to_string();
    assert_eq!(
        err,
        format!(
            "{}: cannot read the configuration file: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn validate_checks_a_config_changed_in_code() {
    let dir = full_dir();
    let mut c = parse(&dir, FULL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.validate(), Ok(()));
    c.workers = Some(0);
    c.listeners[0].default_cluster = Some("gone".into());
    let err = c.validate().expect_err("invalid").to_string();
    let f = dir.path().join("weft.yaml");
    assert_eq!(
        err,
        format!(
            "{f}: workers: must be at least 1\n{f}: listeners[0].default_cluster: unknown cluster \"gone\" (clusters: echo, plain)",
            f = f.display()
        )
    );
}

#[test]
fn plugins_are_ordered_by_phase_then_priority_then_name() {
    let src = "plugins:\n\
  - { name: z-last, url: a.wasm }\n\
  - { name: stats, url: a.wasm, phase: STATS }\n\
  - { name: authz-low, url: a.wasm, phase: AUTHZ, priority: -1 }\n\
  - { name: authz-b, url: a.wasm, phase: AUTHZ, priority: 5 }\n\
  - { name: authz-a, url: a.wasm, phase: AUTHZ, priority: 5 }\n\
  - { name: authn, url: a.wasm, phase: AUTHN }\n\
  - { name: a-unspecified, url: a.wasm, phase: UNSPECIFIED_PHASE, priority: 1 }\n";
    let c = Config::from_yaml_str(src, Path::new("w.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let order: Vec<&str> = plugin_order(&c.plugins)
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "authn",
            "authz-a",
            "authz-b",
            "authz-low",
            "stats",
            "a-unspecified",
            "z-last"
        ]
    );
    assert_eq!(
        [Phase::Authn, Phase::Authz, Phase::Stats, Phase::Unspecified].map(Phase::rank),
        [0, 1, 2, 3]
    );
}

#[test]
fn env_pairs_resolve_host_values() {
    // Cargo sets CARGO_PKG_NAME for test binaries.
    let src = "plugins:\n  - name: p\n    url: p.wasm\n    vmConfig:\n      env:\n        - { name: MODE, value: strict }\n        - { name: CARGO_PKG_NAME, valueFrom: HOST }\n        - { name: WEFT_CONFIG_TEST_UNSET_VARIABLE, valueFrom: HOST }\n        - { name: EMPTY }\n";
    let c = Config::from_yaml_str(src, Path::new("w.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.plugins[0].env_pairs(),
        [
            ("MODE".to_owned(), "strict".to_owned()),
            ("CARGO_PKG_NAME".to_owned(), "weft-config".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]
    );
}

#[test]
fn redacted_json_hides_secrets_and_shows_key_paths() {
    let dir = full_dir();
    let src = FULL.replace(
        "pluginConfig: { greeting: hello, list: [1, 2], nested: { on: true } }",
        "pluginConfig: { greeting: hello, auth: { password: hunter2, api_token: t0k }, headers: [{ name: Authorization, value: Bearer x }, { name: x-seen, value: y }] }",
    );
    let src = src.replace(
        "{ name: MODE, value: strict }",
        "{ name: DB_SECRET, value: s3cr3t }",
    );
    let c = parse(&dir, &src).unwrap_or_else(|e| panic!("{e}"));
    let dump = c.redacted_json();
    let text = dump.to_string();
    for secret in ["hunter2", "t0k", "Bearer x", "s3cr3t"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let probe = &dump["plugins"][0];
    assert_eq!(probe["pluginConfig"]["auth"]["password"], REDACTED);
    assert_eq!(probe["pluginConfig"]["auth"]["api_token"], REDACTED);
    assert_eq!(probe["pluginConfig"]["headers"][0]["value"], REDACTED);
    assert_eq!(probe["pluginConfig"]["headers"][1]["value"], "y");
    assert_eq!(probe["pluginConfig"]["greeting"], "hello");
    assert_eq!(probe["vmConfig"]["env"][0]["name"], "DB_SECRET");
    assert_eq!(probe["vmConfig"]["env"][0]["value"], REDACTED);
    let key = dir.path().join("server.key");
    assert_eq!(
        dump["listeners"][0]["tls"]["certificates"][0]["key"],
        key.display().to_string()
    );
    assert_eq!(
        dump["clusters"][0]["tls"]["key"],
        dir.path().join("client.key").display().to_string()
    );
    // Defaults and typed values are rendered in the file's syntax.
    assert_eq!(dump["listeners"][0]["name"], "public");
    assert_eq!(dump["drain_timeout"], "15s");
    assert_eq!(dump["buffer_limit"], 65536);
    assert_eq!(dump["clusters"][0]["connect_timeout"], "250ms");
    assert_eq!(
        dump["clusters"][0]["endpoints"][1],
        serde_json::json!({ "address": "echo.internal:9001", "weight": 3 })
    );
    assert_eq!(dump["clusters"][1]["dns_refresh_rate"], "5s");
    assert_eq!(dump["listeners"][1]["limits"]["idle_timeout"], "5m");
    assert_eq!(dump["plugins"][1]["failStrategy"], "FAIL_CLOSE");
}

#[test]
fn the_serialized_model_parses_back_to_itself() {
    let dir = full_dir();
    let c = parse(&dir, FULL).unwrap_or_else(|e| panic!("{e}"));
    let yaml = serde_yaml_ng::to_string(&c).expect("serialize");
    let again = parse(&dir, &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(again, c);
}

#[test]
fn the_committed_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("weft.schema.json");
    let generated = serde_json::to_string_pretty(&json_schema()).expect("schema") + "\n";
    if std::env::var_os("WEFT_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write weft.schema.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; regenerate it with WEFT_BLESS=1 cargo test -p weft-config",
        path.display()
    );
}

#[test]
fn the_schema_describes_the_file() {
    let schema = json_schema();
    let props = &schema["properties"];
    for key in [
        "admin",
        "workers",
        "node",
        "access_log",
        "drain_timeout",
        "buffer_limit",
        "listeners",
        "clusters",
        "plugins",
    ] {
        assert!(props.get(key).is_some(), "{key} missing from the schema");
    }
    assert_eq!(schema["additionalProperties"], false);
    let plugin = &schema["$defs"]["PluginSpec"]["properties"];
    for key in [
        "imagePullPolicy",
        "pluginName",
        "failStrategy",
        "pluginConfig",
        "vmConfig",
    ] {
        assert!(plugin.get(key).is_some(), "{key} missing from PluginSpec");
    }
    assert_eq!(
        schema["$defs"]["Cluster"]["properties"]["connect_timeout"]["default"],
        "1s"
    );
}

#[test]
fn registries_are_read_resolved_and_checked() {
    let dir = TempDir::new("registries");
    dir.touch(&["registry.pass", "registry-ca.pem"]);
    let src = "registries:\n  - { host: \"127.0.0.1:5000\", plain_http: true }\n  - { host: ghcr.io, username: ci, password_file: registry.pass, ca: registry-ca.pem }\n";
    let c = parse(&dir, src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.registries.len(), 2);
    assert!(c.registry("127.0.0.1:5000").is_some_and(|r| r.plain_http));
    let ghcr = c.registry("ghcr.io").expect("ghcr.io entry");
    assert!(!ghcr.plain_http);
    assert_eq!(ghcr.username.as_deref(), Some("ci"));
    assert_eq!(
        ghcr.password_file.as_deref(),
        Some(dir.path().join("registry.pass").as_path())
    );
    assert_eq!(
        ghcr.ca.as_deref(),
        Some(dir.path().join("registry-ca.pem").as_path())
    );

    let src = "registries:\n  - { host: \"https://r.io/x\" }\n  - { host: r.io, username: u }\n  - { host: r.io, password_file: /nonexistent/pass }\n";
    let text = errors(src);
    assert!(
        text.contains("registries[0].host: must be a host with an optional port"),
        "{text}"
    );
    assert!(
        text.contains("registries[1].password_file: required when username is set"),
        "{text}"
    );
    assert!(
        text.contains("registries[2].username: required when password_file is set"),
        "{text}"
    );
    assert!(
        text.contains("registries[2].password_file:") && text.contains("/nonexistent/pass"),
        "{text}"
    );
    assert!(
        text.contains(
            "registries[2].host: registry \"r.io\" is already configured at registries[1]"
        ),
        "{text}"
    );
}

#[test]
fn the_command_line_names_the_node() {
    let d = std::env::temp_dir().join(format!("weft-node-override-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let file = d.join("weft.yaml");
    std::fs::write(
        &file,
        "node: { name: from-file, namespace: a, labels: { app: x } }\n",
    )
    .unwrap();
    let c = crate::load_with(
        &file,
        &crate::NodeOverride {
            name: Some("pod-7".into()),
            namespace: Some("shop".into()),
        },
    )
    .unwrap();
    assert_eq!(
        (c.node.name.as_str(), c.node.namespace.as_str()),
        ("pod-7", "shop")
    );
    assert_eq!(c.node.labels.get("app").map(String::as_str), Some("x"));
    let c = crate::load(&file).unwrap();
    assert_eq!(c.node.name, "from-file");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_plugin_match_selects_listener_ports() {
    let spec = |yaml: &str| -> crate::PluginSpec {
        serde_yaml_ng::from_str(&format!("{{ name: p, url: file:///p.wasm, {yaml} }}")).unwrap()
    };
    assert!(spec("").applies_to_port(8080));
    let server = spec("match: [ { mode: SERVER, ports: [ { number: 8080 } ] } ]");
    assert!(server.applies_to_port(8080));
    assert!(!server.applies_to_port(8443));
    assert!(spec("match: [ { ports: [ { number: 1 } ] }, { mode: SERVER } ]").applies_to_port(9));
    assert!(!spec("match: [ { mode: CLIENT } ]").applies_to_port(8080));
    assert!(
        serde_yaml_ng::from_str::<crate::PluginSpec>(
            "{ name: p, url: x, match: [ { mode: SIDEWAYS } ] }"
        )
        .is_err()
    );
}

#[test]
fn equal_plugins_order_by_namespace_then_name_like_the_controller() {
    let spec = |name: &str| -> crate::PluginSpec {
        serde_yaml_ng::from_str(&format!("{{ name: {name}, url: file:///p.wasm }}")).unwrap()
    };
    let plugins = [spec("a-b.y"), spec("a.x"), spec("b"), spec("a.a")];
    let order: Vec<&str> = crate::plugin_order(&plugins)
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(order, ["a.a", "a.x", "a-b.y", "b"]);
}
