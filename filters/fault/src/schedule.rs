//! Delayed streams, shared by the root context (which resumes them from
//! its tick) and the HTTP contexts (which park themselves here).

use crate::config::AbortKind;

/// What happens to a stream when its delay is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Resume the request.
    Resume,
    /// Answer with an abort (a delay followed by an abort, as in Istio).
    Abort(AbortKind),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u32,
    since: u64,
    due: u64,
    then: Then,
}

/// Paused streams with their due times, in nanoseconds of the host clock
/// (the only clock proxy-wasm offers is the wall clock).
#[derive(Debug, Default)]
pub struct Schedule {
    entries: Vec<Entry>,
}

impl Schedule {
    /// Parks stream `id`, paused at `now`, for `delay` nanoseconds.
    pub fn add(&mut self, id: u32, now: u64, delay: u64, then: Then) {
        self.cancel(id);
        self.entries.push(Entry {
            id,
            since: now,
            due: now.saturating_add(delay),
            then,
        });
    }

    /// Forgets stream `id` (it ended while paused).
    pub fn cancel(&mut self, id: u32) {
        self.entries.retain(|e| e.id != id);
    }

    /// Removes and returns the streams due at `now`, earliest first. Should
    /// the wall clock step back before a stream's pause, the stream is due
    /// at once rather than delayed by the step.
    pub fn take_due(&mut self, now: u64) -> Vec<(u32, Then)> {
        let mut due: Vec<Entry> = Vec::new();
        self.entries.retain(|e| {
            if e.due <= now || now < e.since {
                due.push(*e);
                false
            } else {
                true
            }
        });
        due.sort_by_key(|e| e.due);
        due.into_iter().map(|e| (e.id, e.then)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_come_due_in_order_and_only_once() {
        let mut s = Schedule::default();
        s.add(7, 0, 300, Then::Resume);
        s.add(8, 50, 50, Then::Abort(AbortKind::Http(503)));
        s.add(9, 0, 200, Then::Resume);
        assert!(s.take_due(99).is_empty());
        assert_eq!(
            s.take_due(250),
            vec![(8, Then::Abort(AbortKind::Http(503))), (9, Then::Resume)]
        );
        assert_eq!(s.len(), 1);
        assert!(s.take_due(250).is_empty());
        assert_eq!(s.take_due(u64::MAX), vec![(7, Then::Resume)]);
        assert!(s.is_empty());
    }

    #[test]
    fn cancel_and_re_add() {
        let mut s = Schedule::default();
        s.add(1, 0, 10, Then::Resume);
        s.add(2, 0, 10, Then::Resume);
        s.cancel(1);
        s.cancel(42);
        s.add(2, 0, 50, Then::Resume);
        assert_eq!(s.len(), 1);
        assert!(s.take_due(10).is_empty());
        assert_eq!(s.take_due(50), vec![(2, Then::Resume)]);
    }

    #[test]
    fn a_clock_step_back_releases_rather_than_extends() {
        let mut s = Schedule::default();
        s.add(1, 1_000, 500, Then::Resume);
        s.add(2, 1_000, u64::MAX, Then::Resume);
        assert!(s.take_due(1_200).is_empty());
        assert_eq!(s.take_due(900), vec![(1, Then::Resume), (2, Then::Resume)]);
    }
}
