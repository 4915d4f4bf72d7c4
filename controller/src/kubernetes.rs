//! The Kubernetes source: watchers on WasmPlugins, Pods and Services (all
//! namespaces) feed the same [`PluginChange`]s and [`WorkloadChange`]s as
//! the directory source, and a status writer patches each WasmPlugin's
//! `status` subresource with what [`Hub::status`] shows.
//!
//! The Kubernetes-facing layer is thin: [`start`] runs `kube::runtime`
//! watchers and hands their events to pure translators
//! ([`PluginTracker`], [`WorkloadIndex`], [`workload_from_pod`],
//! [`status_patch`]), which hold all the logic and are table-tested.
//!
//! - A **Pod** is a workload when it is `Running`, has an IP and is not
//!   being deleted ([`pod_is_workload`]); readiness is not required, since
//!   a proxy may only become ready once it has its plugins. Its workload:
//!   namespace/name, labels, service account, IP, the Services of its
//!   namespace whose selector its labels satisfy, and the Gateway its
//!   [`GATEWAY_NAME_LABEL`] label names.
//! - A **proxy** still identifies itself by its `node` block; when a pod of
//!   that namespace/name is known, the pod's workload is used (labels,
//!   Services), not the node block's labels.
//! - **Relists** (a watcher's `Init … InitDone`) are diffed against what
//!   was known: objects missing from the new list are deleted.
//! - **Status**: after a change settles, each WasmPlugin whose status
//!   differs from the one on the server gets one JSON merge patch on
//!   `/status` (fields that disappeared are set to `null`);
//!   `lastTransitionTime` of a condition changes only when its `status`
//!   does.

use crate::crd::{Condition, WasmPlugin, WasmPluginStatus};
use crate::debounce::{DebounceConfig, debounce};
use crate::select::{GATEWAY_NAME_LABEL, PluginKey, Workload, WorkloadKey};
use crate::server::Hub;
use crate::snapshot::{PluginChange, WorkloadChange};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A Kubernetes call that failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// Patching a WasmPlugin's status failed.
    #[error("patching the status of WasmPlugin {plugin}: {source}")]
    PatchStatus {
        plugin: PluginKey,
        #[source]
        source: kube::Error,
    },
}

/// Whether a pod counts as a workload: phase `Running`, an IP, and no
/// deletion under way.
pub fn pod_is_workload(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.pod_ip.as_deref())
            .is_some_and(|ip| !ip.is_empty())
}

/// Whether a Service's selector (namespace `svc_ns`) selects a pod with
/// `labels` in `pod_ns`: same namespace, a non-empty selector, and every
/// selector pair among the labels (a Service without a selector selects
/// no pod, as in Kubernetes).
pub fn selector_selects(
    selector: &BTreeMap<String, String>,
    svc_ns: &str,
    pod_ns: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    svc_ns == pod_ns
        && !selector.is_empty()
        && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The workload of a pod, without its Services; `None` when the pod is
/// not a workload ([`pod_is_workload`]) or has no name.
fn pod_workload(pod: &Pod) -> Option<Workload> {
    if !pod_is_workload(pod) {
        return None;
    }
    let name = pod.metadata.name.clone().filter(|n| !n.is_empty())?;
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    Some(Workload {
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        name,
        gateway: labels.get(GATEWAY_NAME_LABEL).cloned(),
        labels,
        service_account: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        ip: pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default(),
        services: Vec::new(),
    })
}

/// A Service's namespace, name and selector.
fn service_entry(svc: &Service) -> Option<((String, String), BTreeMap<String, String>)> {
    let name = svc.metadata.name.clone().filter(|n| !n.is_empty())?;
    let ns = svc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    Some(((ns, name), selector))
}

/// The workload a pod is, with the names of the `services` that select
/// it (sorted); `None` when the pod is not a workload.
pub fn workload_from_pod(pod: &Pod, services: &[Service]) -> Option<Workload> {
    let mut w = pod_workload(pod)?;
    let entries: BTreeMap<_, _> = services.iter().filter_map(service_entry).collect();
    w.services = services_of(&entries, &w);
    Some(w)
}

type ServiceMap = BTreeMap<(String, String), BTreeMap<String, String>>;

fn services_of(services: &ServiceMap, w: &Workload) -> Vec<String> {
    services
        .range((w.namespace.clone(), String::new())..)
        .take_while(|((ns, _), _)| *ns == w.namespace)
        .filter(|((ns, _), sel)| selector_selects(sel, ns, &w.namespace, &w.labels))
        .map(|((_, name), _)| name.clone())
        .collect()
}

/// Turns WasmPlugin watch events into [`PluginChange`]s, remembering which
/// plugins exist so that a relist deletes those that vanished, and the
/// status each one carries on the server (see [`StatusBook`]).
#[derive(Default)]
pub struct PluginTracker {
    known: BTreeSet<PluginKey>,
    relist: Option<BTreeSet<PluginKey>>,
    book: Arc<StatusBook>,
}

impl PluginTracker {
    /// A tracker recording the plugins' server-side status in `book`.
    pub fn new(book: Arc<StatusBook>) -> PluginTracker {
        PluginTracker {
            book,
            ..PluginTracker::default()
        }
    }

    /// The plugin changes one watch event means.
    pub fn plugin_change_from_event(&mut self, ev: Event<WasmPlugin>) -> Vec<PluginChange> {
        match ev {
            Event::Init => {
                self.relist = Some(BTreeSet::new());
                Vec::new()
            }
            Event::InitApply(p) => {
                if let Some(seen) = self.relist.as_mut() {
                    seen.insert(PluginKey::of(&p));
                }
                vec![self.upsert(p)]
            }
            Event::Apply(p) => vec![self.upsert(p)],
            Event::InitDone => {
                let seen = self.relist.take().unwrap_or_default();
                let gone: Vec<PluginKey> = self.known.difference(&seen).cloned().collect();
                gone.into_iter().map(|k| self.delete(k)).collect()
            }
            Event::Delete(p) => vec![self.delete(PluginKey::of(&p))],
        }
    }

    fn upsert(&mut self, p: WasmPlugin) -> PluginChange {
        let key = PluginKey::of(&p);
        self.known.insert(key.clone());
        self.book.observed(key, p.status.clone());
        PluginChange::Upsert(Box::new(p))
    }

    fn delete(&mut self, key: PluginKey) -> PluginChange {
        self.known.remove(&key);
        self.book.forget(&key);
        PluginChange::Delete(key)
    }
}

/// Keeps the pods and Services seen and turns their watch events into
/// [`WorkloadChange`]s: only workloads that changed (a Service change
/// recomputes the workloads of its namespace).
#[derive(Default)]
pub struct WorkloadIndex {
    workloads: BTreeMap<WorkloadKey, Workload>,
    services: ServiceMap,
    pod_relist: Option<BTreeMap<WorkloadKey, Workload>>,
    svc_relist: Option<ServiceMap>,
}

impl WorkloadIndex {
    /// The workload changes a Pod watch event means.
    pub fn pod_event(&mut self, ev: Event<Pod>) -> Vec<WorkloadChange> {
        match ev {
            Event::Init => {
                self.pod_relist = Some(BTreeMap::new());
                Vec::new()
            }
            Event::InitApply(pod) => {
                if let (Some(buf), Some(w)) = (self.pod_relist.as_mut(), pod_workload(&pod)) {
                    buf.insert(w.key(), w);
                }
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.pod_relist.take().unwrap_or_default();
                let mut out: Vec<WorkloadChange> = self
                    .workloads
                    .keys()
                    .filter(|k| !listed.contains_key(*k))
                    .cloned()
                    .collect::<Vec<_>>()
                    .into_iter()
                    .filter_map(|k| self.remove(&k))
                    .collect();
                out.extend(listed.into_values().filter_map(|w| self.put(w)));
                out
            }
            Event::Apply(pod) => match pod_workload(&pod) {
                Some(w) => self.put(w).into_iter().collect(),
                None => self.remove(&key_of_pod(&pod)).into_iter().collect(),
            },
            Event::Delete(pod) => self.remove(&key_of_pod(&pod)).into_iter().collect(),
        }
    }

    /// The workload changes a Service watch event means.
    pub fn service_event(&mut self, ev: Event<Service>) -> Vec<WorkloadChange> {
        match ev {
            Event::Init => {
                self.svc_relist = Some(ServiceMap::new());
                Vec::new()
            }
            Event::InitApply(svc) => {
                if let (Some(buf), Some((k, sel))) = (self.svc_relist.as_mut(), service_entry(&svc))
                {
                    buf.insert(k, sel);
                }
                Vec::new()
            }
            Event::InitDone => {
                self.services = self.svc_relist.take().unwrap_or_default();
                self.refresh(None)
            }
            Event::Apply(svc) => match service_entry(&svc) {
                Some((k, sel)) => {
                    if self.services.get(&k) == Some(&sel) {
                        return Vec::new();
                    }
                    let ns = k.0.clone();
                    self.services.insert(k, sel);
                    self.refresh(Some(&ns))
                }
                None => Vec::new(),
            },
            Event::Delete(svc) => match service_entry(&svc) {
                Some((k, _)) if self.services.remove(&k).is_some() => self.refresh(Some(&k.0)),
                _ => Vec::new(),
            },
        }
    }

    /// The workloads known, by key.
    pub fn workloads(&self) -> &BTreeMap<WorkloadKey, Workload> {
        &self.workloads
    }

    /// Stores a workload (its Services recomputed); a change when it is new
    /// or differs.
    fn put(&mut self, mut w: Workload) -> Option<WorkloadChange> {
        w.services = services_of(&self.services, &w);
        let key = w.key();
        if self.workloads.get(&key) == Some(&w) {
            return None;
        }
        self.workloads.insert(key, w.clone());
        Some(WorkloadChange::Upsert(w))
    }

    fn remove(&mut self, key: &WorkloadKey) -> Option<WorkloadChange> {
        self.workloads
            .remove(key)
            .map(|_| WorkloadChange::Remove(key.clone()))
    }

    /// Recomputes the Services of the workloads (of one namespace, or all).
    fn refresh(&mut self, ns: Option<&str>) -> Vec<WorkloadChange> {
        let mut out = Vec::new();
        for w in self.workloads.values_mut() {
            if ns.is_some_and(|ns| ns != w.namespace) {
                continue;
            }
            let services = services_of(&self.services, w);
            if services != w.services {
                w.services = services;
                out.push(WorkloadChange::Upsert(w.clone()));
            }
        }
        out
    }
}

fn key_of_pod(pod: &Pod) -> WorkloadKey {
    WorkloadKey {
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        name: pod.metadata.name.clone().unwrap_or_default(),
    }
}

/// The status each WasmPlugin carries on the API server, as last seen in a
/// watch event or written by the status writer; an entry exists for every
/// WasmPlugin that exists.
#[derive(Default)]
pub struct StatusBook {
    seen: Mutex<BTreeMap<PluginKey, Option<WasmPluginStatus>>>,
}

impl StatusBook {
    fn observed(&self, key: PluginKey, status: Option<WasmPluginStatus>) {
        self.seen.lock().insert(key, status);
    }

    fn forget(&self, key: &PluginKey) {
        self.seen.lock().remove(key);
    }

    fn written(&self, key: &PluginKey, status: WasmPluginStatus) {
        if let Some(s) = self.seen.lock().get_mut(key) {
            *s = Some(status);
        }
    }

    /// The status on the server of a WasmPlugin that exists (`Some(None)`:
    /// it has none yet); `None` when it does not exist.
    pub fn get(&self, key: &PluginKey) -> Option<Option<WasmPluginStatus>> {
        self.seen.lock().get(key).cloned()
    }
}

/// The current time as Kubernetes writes it (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", now).unwrap_or_default()
}

/// The status to write: `new` with each condition's `lastTransitionTime`
/// kept from `old` when the condition of the same type had the same
/// `status`, else `now`.
pub fn with_transition_times(
    old: Option<&WasmPluginStatus>,
    new: &WasmPluginStatus,
    now: &str,
) -> WasmPluginStatus {
    let mut out = new.clone();
    for c in &mut out.conditions {
        let before: Option<&Condition> =
            old.and_then(|o| o.conditions.iter().find(|oc| oc.type_ == c.type_));
        c.last_transition_time = match before {
            Some(b) if b.status == c.status && b.last_transition_time.is_some() => {
                b.last_transition_time.clone()
            }
            _ => Some(now.to_owned()),
        };
    }
    out
}

/// The JSON merge patch (`{"status": …}`) that turns the WasmPlugin status
/// `old` (what the server has) into `new` (what [`Hub::status`] computed),
/// with transition times set ([`with_transition_times`]); fields of `old`
/// that `new` lacks are set to `null`. `None` when nothing differs.
pub fn status_patch(
    old: Option<&WasmPluginStatus>,
    new: &WasmPluginStatus,
    now: &str,
) -> Option<serde_json::Value> {
    let target = with_transition_times(old, new, now);
    if old == Some(&target) {
        return None;
    }
    let mut body = serde_json::to_value(&target).ok()?;
    if let (Some(o), Some(map)) = (
        old.and_then(|o| serde_json::to_value(o).ok()),
        body.as_object_mut(),
    ) && let Some(om) = o.as_object()
    {
        for k in om.keys() {
            map.entry(k.clone()).or_insert(serde_json::Value::Null);
        }
    }
    Some(serde_json::json!({ "status": body }))
}

/// Settings of the Kubernetes source.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// Only pods with these labels are workloads (a label selector, e.g.
    /// `weft.dev/proxy=true`); `None`: every pod.
    pub pod_selector: Option<String>,
    /// Batching of changes once the first lists are in.
    pub debounce: DebounceConfig,
    /// How long the status writer waits for changes to settle.
    pub status_quiet: Duration,
    /// How long the status writer waits before retrying failed patches.
    pub status_retry: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            pod_selector: None,
            debounce: DebounceConfig::default(),
            status_quiet: Duration::from_millis(500),
            status_retry: Duration::from_secs(5),
        }
    }
}

/// One translated change.
enum Change {
    Plugin(PluginChange),
    Workload(WorkloadChange),
}

/// Applies a batch: plugin changes, then workload changes (the final
/// snapshots depend only on the final sets, not on the interleaving).
fn apply(hub: &Hub, batch: Vec<Change>) {
    let (mut plugins, mut workloads) = (Vec::new(), Vec::new());
    for c in batch {
        match c {
            Change::Plugin(p) => plugins.push(p),
            Change::Workload(w) => workloads.push(w),
        }
    }
    let mut changed = 0;
    if !plugins.is_empty() {
        changed += hub.apply(plugins).len();
    }
    if !workloads.is_empty() {
        changed += hub.apply_workloads(workloads).len();
    }
    tracing::debug!(workloads = changed, "snapshots changed");
}

/// Starts the watchers, the debounced applier and the status writer on the
/// current runtime. The returned receiver fires once the first list of
/// every watched kind has been applied to `hub` (before it, changes are
/// applied at once; after it, debounced). The tasks run until the runtime
/// stops.
pub fn start(client: Client, hub: Arc<Hub>, opts: KubeOptions) -> oneshot::Receiver<()> {
    let book = Arc::new(StatusBook::default());
    let (synced_tx, synced_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel::<Vec<Change>>(256);
    let (btx, mut brx) = mpsc::channel::<Vec<Vec<Change>>>(4);
    tokio::spawn(debounce(opts.debounce, rx, btx));
    let applier = hub.clone();
    tokio::spawn(async move {
        while let Some(batch) = brx.recv().await {
            apply(&applier, batch.into_iter().flatten().collect());
        }
    });
    tokio::spawn(watch_all(
        client.clone(),
        hub.clone(),
        book.clone(),
        opts.pod_selector.clone(),
        tx,
        synced_tx,
    ));
    tokio::spawn(write_status(
        client,
        hub,
        book,
        opts.status_quiet,
        opts.status_retry,
    ));
    synced_rx
}

enum Watched {
    Plugin(Box<Event<WasmPlugin>>),
    Pod(Box<Event<Pod>>),
    Service(Box<Event<Service>>),
}

async fn watch_all(
    client: Client,
    hub: Arc<Hub>,
    book: Arc<StatusBook>,
    pod_selector: Option<String>,
    tx: mpsc::Sender<Vec<Change>>,
    synced: oneshot::Sender<()>,
) {
    let mut pod_cfg = watcher::Config::default();
    if let Some(sel) = &pod_selector {
        pod_cfg = pod_cfg.labels(sel);
    }
    let plugins = watcher::watcher(
        Api::<WasmPlugin>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(|e| Watched::Plugin(Box::new(e)));
    let pods = watcher::watcher(Api::<Pod>::all(client.clone()), pod_cfg)
        .default_backoff()
        .map_ok(|e| Watched::Pod(Box::new(e)));
    let services = watcher::watcher(Api::<Service>::all(client), watcher::Config::default())
        .default_backoff()
        .map_ok(|e| Watched::Service(Box::new(e)));
    let mut events =
        futures_util::stream::select_all([plugins.boxed(), pods.boxed(), services.boxed()]);
    let mut plugin_tracker = PluginTracker::new(book);
    let mut index = WorkloadIndex::default();
    // plugins, pods, services: first list done
    let mut listed = [false; 3];
    let mut synced = Some(synced);
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!("kubernetes watch: {e}");
                continue;
            }
        };
        let (slot, done, changes): (usize, bool, Vec<Change>) = match ev {
            Watched::Plugin(e) => (
                0,
                matches!(*e, Event::InitDone),
                plugin_tracker
                    .plugin_change_from_event(*e)
                    .into_iter()
                    .map(Change::Plugin)
                    .collect(),
            ),
            Watched::Pod(e) => (
                1,
                matches!(*e, Event::InitDone),
                index
                    .pod_event(*e)
                    .into_iter()
                    .map(Change::Workload)
                    .collect(),
            ),
            Watched::Service(e) => (
                2,
                matches!(*e, Event::InitDone),
                index
                    .service_event(*e)
                    .into_iter()
                    .map(Change::Workload)
                    .collect(),
            ),
        };
        if synced.is_some() {
            apply(&hub, changes);
            listed[slot] |= done;
            if listed.iter().all(|l| *l)
                && let Some(s) = synced.take()
            {
                tracing::info!(
                    workloads = index.workloads().len(),
                    "kubernetes: first lists applied"
                );
                let _ = s.send(());
            }
        } else if !changes.is_empty() && tx.send(changes).await.is_err() {
            return;
        }
    }
}

/// Patches one WasmPlugin's status subresource with a JSON merge patch.
pub async fn patch_status(
    client: &Client,
    key: &PluginKey,
    patch: &serde_json::Value,
) -> Result<(), KubeError> {
    let api = Api::<WasmPlugin>::namespaced(client.clone(), &key.namespace);
    api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(|source| KubeError::PatchStatus {
            plugin: key.clone(),
            source,
        })
}

async fn write_status(
    client: Client,
    hub: Arc<Hub>,
    book: Arc<StatusBook>,
    quiet: Duration,
    retry: Duration,
) {
    let mut changes = hub.status_changes();
    let mut failed = false;
    loop {
        if failed {
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                () = tokio::time::sleep(retry) => {}
            }
        } else if changes.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(quiet).await;
        changes.borrow_and_update();
        failed = false;
        let now = now_rfc3339();
        for (name, new) in hub.status().plugins {
            let Some((ns, n)) = name.split_once('/') else {
                continue;
            };
            let key = PluginKey {
                namespace: ns.to_owned(),
                name: n.to_owned(),
            };
            // only WasmPlugins that exist on the server
            let Some(old) = book.get(&key) else {
                continue;
            };
            let Some(patch) = status_patch(old.as_ref(), &new, &now) else {
                continue;
            };
            match patch_status(&client, &key, &patch).await {
                Ok(()) => book.written(&key, with_transition_times(old.as_ref(), &new, &now)),
                Err(e) => {
                    tracing::warn!("{e}");
                    failed = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
