//! State that plugins share across VMs and worker threads: key-value
//! shared data with compare-and-swap, shared queues, and metrics. This is
//! the host's only cross-worker state; it is touched only when a filter
//! calls the matching hostcall, never on a stream's ordinary path.

use crate::abi::Status;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio::sync::mpsc::UnboundedSender;

/// Everything shared between all VMs of one process.
/// Shared data of one vm id: key → (value, CAS token).
type DataMap = HashMap<Vec<u8>, (Vec<u8>, u32)>;

#[derive(Default)]
pub struct SharedState {
    data: Mutex<HashMap<String, DataMap>>,
    queues: Mutex<Queues>,
    pub metrics: MetricsRegistry,
}

#[derive(Default)]
struct Queues {
    next_id: u32,
    by_name: HashMap<(String, String), u32>,
    queues: HashMap<u32, Queue>,
}

struct Queue {
    items: VecDeque<Vec<u8>>,
    /// Wakes the VM that registered the queue (`proxy_on_queue_ready`).
    owner: Option<UnboundedSender<u32>>,
}

impl SharedState {
    /// `proxy_get_shared_data`: the value and its CAS token.
    pub fn get(&self, vm_id: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.data
            .lock()
            .get(vm_id)
            .and_then(|m| m.get(key))
            .cloned()
    }

    /// `proxy_set_shared_data`: a non-zero `cas` must match the current token.
    pub fn set(&self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Result<(), Status> {
        let mut data = self.data.lock();
        let map = data.entry(vm_id.to_owned()).or_default();
        match map.get_mut(key) {
            Some((v, token)) => {
                if cas != 0 && cas != *token {
                    return Err(Status::CasMismatch);
                }
                *v = value.to_vec();
                *token = token.wrapping_add(1).max(1);
            }
            None => {
                if cas != 0 {
                    return Err(Status::CasMismatch);
                }
                map.insert(key.to_vec(), (value.to_vec(), 1));
            }
        }
        Ok(())
    }

    /// `proxy_register_shared_queue`: the caller becomes the queue's owner.
    pub fn register_queue(&self, vm_id: &str, name: &str, owner: UnboundedSender<u32>) -> u32 {
        let mut q = self.queues.lock();
        let key = (vm_id.to_owned(), name.to_owned());
        if let Some(id) = q.by_name.get(&key).copied() {
            if let Some(queue) = q.queues.get_mut(&id) {
                queue.owner = Some(owner);
            }
            return id;
        }
        q.next_id += 1;
        let id = q.next_id;
        q.by_name.insert(key, id);
        q.queues.insert(
            id,
            Queue {
                items: VecDeque::new(),
                owner: Some(owner),
            },
        );
        id
    }

    /// `proxy_resolve_shared_queue`.
    pub fn resolve_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queues
            .lock()
            .by_name
            .get(&(vm_id.to_owned(), name.to_owned()))
            .copied()
    }

    /// `proxy_enqueue_shared_queue`.
    pub fn enqueue(&self, id: u32, value: &[u8]) -> Result<(), Status> {
        let mut q = self.queues.lock();
        let queue = q.queues.get_mut(&id).ok_or(Status::NotFound)?;
        queue.items.push_back(value.to_vec());
        if let Some(owner) = &queue.owner
            && owner.send(id).is_err()
        {
            queue.owner = None;
        }
        Ok(())
    }

    /// `proxy_dequeue_shared_queue`.
    pub fn dequeue(&self, id: u32) -> Result<Vec<u8>, Status> {
        let mut q = self.queues.lock();
        let queue = q.queues.get_mut(&id).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }
}

/// Kind of a filter-defined metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Histogram bucket upper bounds (the values filters record are unitless;
/// these suit milliseconds and byte counts alike).
pub const HISTOGRAM_BOUNDS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 60000,
];

/// One filter-defined metric, shared by every VM of the plugin.
#[derive(Debug)]
pub struct Metric {
    pub plugin: String,
    pub name: String,
    pub kind: MetricKind,
    value: AtomicI64,
    buckets: [AtomicU64; HISTOGRAM_BOUNDS.len() + 1],
    sum: AtomicU64,
}

impl Metric {
    fn new(plugin: &str, name: &str, kind: MetricKind) -> Self {
        Metric {
            plugin: plugin.to_owned(),
            name: name.to_owned(),
            kind,
            value: AtomicI64::new(0),
            buckets: Default::default(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn increment(&self, offset: i64) -> Result<(), Status> {
        match self.kind {
            MetricKind::Counter if offset < 0 => Err(Status::BadArgument),
            MetricKind::Counter | MetricKind::Gauge => {
                self.value.fetch_add(offset, Ordering::Relaxed);
                Ok(())
            }
            MetricKind::Histogram => Err(Status::BadArgument),
        }
    }

    pub fn record(&self, value: u64) {
        match self.kind {
            MetricKind::Counter | MetricKind::Gauge => {
                self.value.store(value as i64, Ordering::Relaxed)
            }
            MetricKind::Histogram => {
                let idx = HISTOGRAM_BOUNDS
                    .iter()
                    .position(|b| value <= *b)
                    .unwrap_or(HISTOGRAM_BOUNDS.len());
                self.buckets[idx].fetch_add(1, Ordering::Relaxed);
                self.sum.fetch_add(value, Ordering::Relaxed);
            }
        }
    }

    /// Current value of a counter or gauge; histograms have none.
    pub fn get(&self) -> Result<u64, Status> {
        match self.kind {
            MetricKind::Histogram => Err(Status::BadArgument),
            _ => Ok(self.value.load(Ordering::Relaxed) as u64),
        }
    }

    /// Counter/gauge value, or for a histogram the per-bucket counts
    /// (not cumulative) and the sum.
    pub fn histogram(&self) -> (Vec<u64>, u64) {
        (
            self.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            self.sum.load(Ordering::Relaxed),
        )
    }
}

/// All filter-defined metrics of the process, keyed by plugin and name.
#[derive(Default)]
pub struct MetricsRegistry {
    metrics: Mutex<HashMap<(String, String), Arc<Metric>>>,
}

impl MetricsRegistry {
    /// Defines (or finds) a metric; the same name with another kind is refused.
    pub fn define(
        &self,
        plugin: &str,
        name: &str,
        kind: MetricKind,
    ) -> Result<Arc<Metric>, Status> {
        let mut m = self.metrics.lock();
        let entry = m
            .entry((plugin.to_owned(), name.to_owned()))
            .or_insert_with(|| Arc::new(Metric::new(plugin, name, kind)));
        if entry.kind != kind {
            return Err(Status::BadArgument);
        }
        Ok(entry.clone())
    }

    /// Every metric, sorted by plugin then name.
    pub fn snapshot(&self) -> Vec<Arc<Metric>> {
        let mut all: Vec<_> = self.metrics.lock().values().cloned().collect();
        all.sort_by(|a, b| (&a.plugin, &a.name).cmp(&(&b.plugin, &b.name)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_semantics() {
        let s = SharedState::default();
        assert!(s.get("vm", b"k").is_none());
        assert_eq!(s.set("vm", b"k", b"a", 5), Err(Status::CasMismatch));
        s.set("vm", b"k", b"a", 0).unwrap();
        let (v, cas) = s.get("vm", b"k").unwrap();
        assert_eq!(v, b"a");
        s.set("vm", b"k", b"b", cas).unwrap();
        assert_eq!(s.set("vm", b"k", b"c", cas), Err(Status::CasMismatch));
        assert!(s.get("other", b"k").is_none());
    }

    #[test]
    fn queues() {
        let s = SharedState::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let id = s.register_queue("vm", "q", tx);
        assert_eq!(s.resolve_queue("vm", "q"), Some(id));
        assert_eq!(s.resolve_queue("vm", "nope"), None);
        assert_eq!(s.dequeue(id), Err(Status::Empty));
        s.enqueue(id, b"x").unwrap();
        assert_eq!(rx.try_recv().unwrap(), id);
        assert_eq!(s.dequeue(id).unwrap(), b"x");
        assert_eq!(s.enqueue(99, b"x"), Err(Status::NotFound));
    }

    #[test]
    fn metrics() {
        let r = MetricsRegistry::default();
        let c = r.define("p", "c", MetricKind::Counter).unwrap();
        c.increment(2).unwrap();
        assert_eq!(c.increment(-1), Err(Status::BadArgument));
        assert_eq!(
            r.define("p", "c", MetricKind::Counter)
                .unwrap()
                .get()
                .unwrap(),
            2
        );
        assert!(r.define("p", "c", MetricKind::Gauge).is_err());
        let h = r.define("p", "h", MetricKind::Histogram).unwrap();
        h.record(3);
        h.record(70000);
        let (b, sum) = h.histogram();
        assert_eq!(b.iter().sum::<u64>(), 2);
        assert_eq!(sum, 70003);
    }
}
