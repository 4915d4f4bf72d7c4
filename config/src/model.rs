//! The configuration model: the types serde reads the file into (and the
//! JSON Schema is generated from), holding typed, defaulted values.

use crate::units::{ByteSizeSchema, DurationSchema, HostPort, byte_size, duration};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// A weft configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(title = "weft configuration")]
pub struct Config {
    /// The admin listener (health, readiness, metrics, config dump). None: no admin listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
    /// Worker threads; default: the number of CPUs. At least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub workers: Option<usize>,
    /// This proxy's identity, handed to plugins as node metadata.
    pub node: Node,
    /// The JSON access log. None: no access log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
    /// How long in-flight requests may finish after a shutdown or reload.
    #[serde(with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub drain_timeout: Duration,
    /// Per-stream body buffer limit, in bytes.
    #[serde(with = "byte_size")]
    #[schemars(with = "ByteSizeSchema")]
    pub buffer_limit: u64,
    /// Directory for cached modules and compiled code (weft extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// A directory of `kind: WasmPlugin` manifests whose plugins apply to
    /// this proxy (its `node` namespace and labels) and are added to
    /// `plugins`; edits reload like the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins_dir: Option<PathBuf>,
    /// Where the proxy accepts connections.
    pub listeners: Vec<Listener>,
    /// Upstream services.
    pub clusters: Vec<Cluster>,
    /// Wasm plugins (Istio WasmPlugin fields).
    pub plugins: Vec<PluginSpec>,
    /// OCI registries: transport and credentials for `oci://` plugin urls (weft extension).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<Registry>,
    /// The file this configuration was read from ("" when built in code).
    #[serde(skip)]
    pub(crate) file: PathBuf,
    /// The directory relative paths were resolved against.
    #[serde(skip)]
    pub(crate) base_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            admin: None,
            workers: None,
            node: Node::default(),
            access_log: None,
            drain_timeout: Duration::from_secs(10),
            buffer_limit: MIB,
            cache_dir: None,
            plugins_dir: None,
            listeners: Vec::new(),
            clusters: Vec::new(),
            plugins: Vec::new(),
            registries: Vec::new(),
            file: PathBuf::new(),
            base_dir: PathBuf::new(),
        }
    }
}

impl Config {
    /// The config file's directory (absolute), against which relative
    /// paths (TLS files, plugin modules, access log) were resolved.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The file this configuration was read from, as given to
    /// [`Config::from_yaml_str`] or [`crate::load`].
    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The `registries` entry for an OCI registry host (`host[:port]`).
    pub fn registry(&self, host: &str) -> Option<&Registry> {
        self.registries.iter().find(|r| r.host == host)
    }
}

/// How weft reaches one OCI registry (weft extension).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The registry's host, with its port when not the default, e.g. `127.0.0.1:5000` or `ghcr.io`.
    pub host: String,
    /// Speak plain HTTP to this registry instead of HTTPS (testing and local registries only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
    /// User name for basic or token authentication; requires `password_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the password or token (its first line); requires `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM file of CA certificates trusted for this registry's HTTPS, in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// The admin listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Socket address, e.g. 127.0.0.1:9901.
    pub address: SocketAddr,
}

/// The proxy's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            name: "weft".to_owned(),
            namespace: "default".to_owned(),
            labels: BTreeMap::new(),
        }
    }
}

/// The JSON access log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLog {
    pub enabled: bool,
    /// The log file; absent or "-": standard output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            enabled: true,
            path: None,
        }
    }
}

/// A listener: where the proxy accepts HTTP/1.1 and HTTP/2 connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique listener name.
    pub name: String,
    /// Socket address, e.g. 0.0.0.0:8080.
    pub address: SocketAddr,
    /// The cluster requests go to unless a plugin picks another; must name a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cluster: Option<String>,
    /// Terminate TLS on this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    #[serde(default)]
    pub limits: ListenerLimits,
}

/// Server-side TLS of a listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Certificates served, picked by SNI; one without server_names is the default.
    pub certificates: Vec<TlsCertificate>,
    /// CA bundle (PEM) to verify client certificates with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs client_ca).
    #[serde(default)]
    pub require_client_cert: bool,
}

/// A certificate chain and its private key (PEM files).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// SNI names this certificate is served for; empty: the default certificate.
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// Connection and request limits of a listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerLimits {
    /// Largest request header block, in bytes.
    #[serde(with = "byte_size")]
    #[schemars(with = "ByteSizeSchema")]
    pub max_request_headers_size: u64,
    /// Time allowed to receive a request's headers.
    #[serde(with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub request_header_timeout: Duration,
    /// Idle connections are closed after this long.
    #[serde(with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub idle_timeout: Duration,
    /// Open connections allowed on the listener.
    pub max_connections: u64,
    pub http2_max_concurrent_streams: u32,
    pub http2_max_pending_reset_streams: u32,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_request_headers_size: 60 * KIB,
            request_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_connections: 10_000,
            http2_max_concurrent_streams: 100,
            http2_max_pending_reset_streams: 20,
        }
    }
}

/// An upstream service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Unique cluster name.
    pub name: String,
    /// Upstream hosts: "host:port" strings or { address, weight } objects.
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub lb_policy: LbPolicy,
    /// Request header hashed by ring_hash (required for ring_hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_header: Option<String>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default = "default_connect_timeout", with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub connect_timeout: Duration,
    /// How often DNS names of endpoints are resolved again.
    #[serde(default = "default_dns_refresh_rate", with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub dns_refresh_rate: Duration,
    /// Active HTTP health checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Passive health checking: ejects failing endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(default)]
    pub circuit_breakers: CircuitBreakers,
    /// TLS to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClusterTls>,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_dns_refresh_rate() -> Duration {
    Duration::from_secs(5)
}

/// An upstream host. In the file: `"host:port"` or
/// `{ address: "host:port", weight: 3 }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address (IPv6 without brackets) or DNS name.
    pub host: String,
    pub port: u16,
    /// Load-balancing weight, at least 1 (default 1).
    pub weight: u32,
}

impl Endpoint {
    /// `host:port` (`[v6]:port` for IPv6 addresses).
    pub fn address(&self) -> String {
        HostPort {
            host: self.host.clone(),
            port: self.port,
        }
        .to_string()
    }
}

/// The object form of an endpoint.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EndpointObject {
    address: HostPort,
    /// Load-balancing weight, at least 1.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 1))]
    weight: u32,
}

fn default_weight() -> u32 {
    1
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Endpoint", 2)?;
        st.serialize_field("address", &self.address())?;
        st.serialize_field("weight", &self.weight)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Endpoint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an endpoint: \"host:port\" or { address: \"host:port\", weight: N }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Endpoint, E> {
                let hp = HostPort::parse(v).map_err(E::custom)?;
                Ok(Endpoint {
                    host: hp.host,
                    port: hp.port,
                    weight: default_weight(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Endpoint, A::Error> {
                let o = EndpointObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Endpoint {
                    host: o.address.host,
                    port: o.address.port,
                    weight: o.weight,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Endpoint {
    fn schema_name() -> Cow<'static, str> {
        "Endpoint".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let address = generator.subschema_for::<HostPort>();
        let object = generator.subschema_for::<EndpointObject>();
        json_schema!({
            "description": "An upstream host: \"host:port\" or { address: \"host:port\", weight: N }.",
            "anyOf": [address, object],
        })
    }
}

/// How a cluster picks an endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    Random,
    /// Consistent hashing of the hash_header value.
    RingHash,
}

/// The HTTP version spoken to a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http1,
    /// HTTP/2 (prior knowledge over plain TCP, ALPN over TLS).
    Http2,
}

/// Active HTTP health checking of a cluster's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Request path, e.g. /healthz; a 2xx answer is healthy.
    pub path: String,
    #[serde(default = "default_hc_interval", with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub interval: Duration,
    #[serde(default = "default_hc_timeout", with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub timeout: Duration,
    /// Failed checks in a row before an endpoint is unhealthy.
    #[serde(default = "default_unhealthy_threshold")]
    #[schemars(range(min = 1))]
    pub unhealthy_threshold: u32,
    /// Passed checks in a row before an endpoint is healthy again.
    #[serde(default = "default_healthy_threshold")]
    #[schemars(range(min = 1))]
    pub healthy_threshold: u32,
}

fn default_hc_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_hc_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_unhealthy_threshold() -> u32 {
    3
}

fn default_healthy_threshold() -> u32 {
    2
}

/// Passive health checking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierDetection {
    /// 5xx answers in a row that eject an endpoint.
    #[schemars(range(min = 1))]
    pub consecutive_5xx: u32,
    /// Connection failures in a row that eject an endpoint.
    #[schemars(range(min = 1))]
    pub consecutive_connect_failures: u32,
    /// How long an ejection lasts (the first time).
    #[serde(with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub base_ejection_time: Duration,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_connect_failures: 5,
            base_ejection_time: Duration::from_secs(30),
        }
    }
}

/// Limits on a cluster's upstream traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakers {
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    #[schemars(range(min = 1))]
    pub max_pending_requests: u32,
    #[schemars(range(min = 1))]
    pub max_requests: u32,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        CircuitBreakers {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
        }
    }
}

/// TLS to a cluster's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    /// CA bundle (PEM) to verify the upstream with; default: the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Server name sent and verified; default: the endpoint host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Client certificate chain (PEM), with key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), with cert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Do not verify the upstream certificate (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A Wasm plugin, with Istio's WasmPlugin field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Unique plugin name.
    pub name: String,
    /// The module: file://, oci://, oci-layout://, http:// or https:// (a bare path is a file).
    pub url: String,
    /// SHA-256 of the module, 64 lowercase hex characters; required for http(s) urls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, rename = "imagePullPolicy")]
    pub image_pull_policy: ImagePullPolicy,
    /// Root id handed to the module (default "").
    #[serde(
        default,
        rename = "pluginName",
        skip_serializing_if = "Option::is_none"
    )]
    pub plugin_name: Option<String>,
    #[serde(default)]
    pub phase: Phase,
    /// Order within a phase: higher runs first.
    #[serde(default)]
    pub priority: i32,
    #[serde(default, rename = "failStrategy")]
    pub fail_strategy: FailStrategy,
    /// The plugin's configuration (any value), handed to it as JSON. Absent: null.
    #[serde(
        default,
        rename = "pluginConfig",
        skip_serializing_if = "serde_json::Value::is_null"
    )]
    pub plugin_config: serde_json::Value,
    #[serde(default, rename = "vmConfig")]
    pub vm_config: VmConfig,
    /// The listeners that run this plugin; default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Vec<String>>,
    /// Istio's `match`: the traffic the plugin applies to, by listener
    /// port; empty: all. weft serves inbound (SERVER) traffic, so a
    /// selector whose mode is CLIENT only never matches.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficSelector>,
    #[serde(default)]
    pub limits: PluginLimits,
}

/// One entry of a plugin's `match` (Istio's `TrafficSelector`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficSelector {
    #[serde(default)]
    pub mode: TrafficMode,
    /// Listener ports; empty: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSelector>,
}

impl TrafficSelector {
    /// Whether a `match` list selects traffic arriving on `port` (an empty
    /// list selects everything).
    pub fn select(list: &[TrafficSelector], port: u16) -> bool {
        list.is_empty()
            || list.iter().any(|t| {
                t.mode != TrafficMode::Client
                    && (t.ports.is_empty() || t.ports.iter().any(|p| p.number == port))
            })
    }
}

/// Istio's `WorkloadMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TrafficMode {
    #[default]
    #[serde(rename = "CLIENT_AND_SERVER")]
    ClientAndServer,
    #[serde(rename = "CLIENT")]
    Client,
    #[serde(rename = "SERVER")]
    Server,
}

/// A port of a `match`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    pub number: u16,
}

impl PluginSpec {
    /// Whether the plugin's `match` selects traffic arriving on `port`.
    pub fn applies_to_port(&self, port: u16) -> bool {
        TrafficSelector::select(&self.traffic, port)
    }

    /// The plugin's environment: `INLINE` variables with their value,
    /// `HOST` variables with the value of the proxy's own environment
    /// variable of that name (skipped when it is not set).
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.vm_config
            .env
            .iter()
            .filter_map(|e| match e.value_from {
                ValueFrom::Inline => Some((e.name.clone(), e.value.clone())),
                ValueFrom::Host => std::env::var(&e.name).ok().map(|v| (e.name.clone(), v)),
            })
            .collect()
    }

    /// Where the module comes from, parsed from `url`.
    pub fn source(&self) -> ModuleSource {
        ModuleSource::parse(&self.url)
    }
}

/// A plugin module's location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleSource {
    /// A local file (`file://` or a bare path).
    File(PathBuf),
    /// An OCI image reference, without the scheme.
    Oci(String),
    /// A local OCI image layout directory.
    OciLayout(PathBuf),
    /// An `http://` or `https://` URL (the whole URL).
    Http(String),
    /// A scheme weft does not support (the scheme, without `://`).
    Unsupported(String),
}

impl ModuleSource {
    pub(crate) fn parse(url: &str) -> ModuleSource {
        match url.split_once("://") {
            None => ModuleSource::File(PathBuf::from(url)),
            Some(("file", rest)) => ModuleSource::File(PathBuf::from(rest)),
            Some(("oci", rest)) => ModuleSource::Oci(rest.to_owned()),
            Some(("oci-layout", rest)) => ModuleSource::OciLayout(PathBuf::from(rest)),
            Some(("http" | "https", _)) => ModuleSource::Http(url.to_owned()),
            Some((scheme, _)) => ModuleSource::Unsupported(scheme.to_owned()),
        }
    }
}

/// When to fetch a remote module again (Istio's PullPolicy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImagePullPolicy {
    /// IfNotPresent, except Always for an OCI `latest` tag.
    #[default]
    #[serde(rename = "UNSPECIFIED_POLICY")]
    Unspecified,
    IfNotPresent,
    Always,
}

/// Where in the filter chain a plugin runs (Istio's PluginPhase).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    #[serde(rename = "AUTHN")]
    Authn,
    #[serde(rename = "AUTHZ")]
    Authz,
    #[serde(rename = "STATS")]
    Stats,
    /// After the others.
    #[default]
    #[serde(rename = "UNSPECIFIED_PHASE")]
    Unspecified,
}

impl Phase {
    /// Position in the chain: AUTHN 0, AUTHZ 1, STATS 2, UNSPECIFIED_PHASE 3.
    pub fn rank(self) -> u8 {
        match self {
            Phase::Authn => 0,
            Phase::Authz => 1,
            Phase::Stats => 2,
            Phase::Unspecified => 3,
        }
    }
}

/// What happens when a plugin fails to load or traps (Istio's FailStrategy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FailStrategy {
    /// Fail the request (or refuse the configuration).
    #[default]
    #[serde(rename = "FAIL_CLOSE")]
    FailClose,
    /// Skip the plugin.
    #[serde(rename = "FAIL_OPEN")]
    FailOpen,
}

/// The plugin VM's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VmConfig {
    /// Environment variables of the module.
    pub env: Vec<EnvVar>,
}

/// An environment variable of a plugin's VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    /// The value, for valueFrom INLINE.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, rename = "valueFrom")]
    pub value_from: ValueFrom,
}

/// Where an environment variable's value comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ValueFrom {
    /// `value`.
    #[default]
    #[serde(rename = "INLINE")]
    Inline,
    /// The proxy's own environment variable of the same name.
    #[serde(rename = "HOST")]
    Host,
}

/// Resource limits of a plugin (weft extension).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Linear memory limit of each VM, in bytes.
    #[serde(with = "byte_size")]
    #[schemars(with = "ByteSizeSchema")]
    pub memory: u64,
    /// Longest time one callback into the module may run.
    #[serde(with = "duration")]
    #[schemars(with = "DurationSchema")]
    pub callback_timeout: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory: 64 * MIB,
            callback_timeout: Duration::from_millis(100),
        }
    }
}

/// The plugins in chain order: by phase rank, then priority (highest
/// first), then namespace and name (see `tie_key`).
pub fn plugin_order(plugins: &[PluginSpec]) -> Vec<&PluginSpec> {
    let mut ordered: Vec<&PluginSpec> = plugins.iter().collect();
    ordered.sort_by(|a, b| {
        a.phase
            .rank()
            .cmp(&b.phase.rank())
            .then(b.priority.cmp(&a.priority))
            .then_with(|| tie_key(&a.name).cmp(&tie_key(&b.name)))
    });
    ordered
}

/// The last tie-break: a controller's `namespace.name` compares by
/// namespace, then name, as the controller orders them (`a.x` before
/// `a-b.y`); a name without a dot is its own key.
fn tie_key(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or((name, ""))
}
