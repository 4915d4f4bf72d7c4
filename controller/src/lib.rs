//! weft-controller: weft's control plane. It turns `WasmPlugin` resources
//! into the plugin list each weft proxy runs, and streams that list to the
//! proxies.
//!
//! # Model
//!
//! - **Plugins** are [`crd::WasmPlugin`] resources (`extensions.weft.dev/
//!   v1alpha1`, namespaced), with Istio's WasmPlugin spec fields. The
//!   schema refuses what it can (enums, a required `url`, the `sha256`
//!   pattern, port ranges, `selector` xor `targetRefs` as a CEL rule);
//!   [`crd::WasmPluginSpec::validate`] names every other problem.
//! - **Workloads** ([`select::Workload`]) are the proxies' identities:
//!   namespace, name, labels, and the Services and Gateway that select
//!   them. A streaming proxy's workload comes from its `node` block.
//! - **Selection** ([`select::selects`]) is pure: a plugin in the root
//!   namespace (default `weft-system`) applies to every namespace, others
//!   to their own; `targetRefs` pick a Gateway's or Service's workloads,
//!   `selector.matchLabels` picks by labels, neither picks every workload
//!   in scope. **Order** on a proxy: phase (AUTHN, AUTHZ, STATS, then
//!   UNSPECIFIED_PHASE), priority (highest first), then namespace and name.
//! - **Conversion** ([`select::to_plugin_spec`]): the proxy receives a
//!   `weft_config::PluginSpec` named `namespace.name`; `pluginName` stays
//!   the root id handed to the module, as in Istio.
//! - **Snapshots** ([`snapshot::Snapshot`]): one per workload, its ordered
//!   plugins and a version hashing their content. The
//!   [`snapshot::Engine`] keeps them current: a change to one plugin
//!   touches only the workloads its old or new version selects and
//!   reports those whose version changed, the only proxies pushed to. An
//!   invalid new version of a plugin keeps its last valid one serving.
//! - **Debouncing** ([`debounce::debounce`]): changes are batched until
//!   100 ms pass without one, at most 1 s after the first (both
//!   configurable), as istiod does.
//! - **Sources**: [`dir::DirSource`] reads manifests from a directory and
//!   polls it; a bad file or document (wrong kind, a field of the wrong
//!   type, an unknown field, an invalid spec) is reported (file, document
//!   index, reason) without dropping the other plugins. The Kubernetes
//!   source ([`kubernetes`], `run --kubernetes`) watches WasmPlugins, Pods
//!   and Services in every namespace with `kube::runtime` watchers and
//!   feeds the same [`snapshot::PluginChange`]s, plus
//!   [`snapshot::WorkloadChange`]s from pods (labels, service account, IP,
//!   the Services selecting them, the Gateway of their `gateway-name`
//!   label); a proxy's pod, when known, is its workload.
//! - **Serving** ([`server`]): `POST /v1/stream` (newline-delimited JSON
//!   over HTTP/2 or HTTP/1.1): the proxy sends its node identity, then
//!   ACK/NACK reports; the controller sends the full snapshot at connect
//!   and a new one only when that proxy's snapshot changes. `GET /status`
//!   shows each plugin's status (`Accepted`, `Ready`, proxies loaded and
//!   failed, last errors) and `GET /metrics` Prometheus metrics. In
//!   Kubernetes mode the same status is merge-patched onto each
//!   WasmPlugin's `status` subresource when it changes
//!   ([`kubernetes::status_patch`]).

pub mod crd;
pub mod debounce;
pub mod dir;
pub mod kubernetes;
pub mod select;
pub mod server;
pub mod snapshot;
