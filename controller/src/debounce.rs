//! Batches bursts of changes before they are pushed, like istiod's
//! debouncing: after the first event, wait until no new event came for
//! `quiet`, but never longer than `max` after the first one.

use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// How long to wait before pushing a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebounceConfig {
    /// Push once no event came for this long (default 100 ms).
    pub quiet: Duration,
    /// Push at the latest this long after the batch's first event (default 1 s).
    pub max: Duration,
}

impl Default for DebounceConfig {
    fn default() -> Self {
        DebounceConfig {
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// Reads events from `rx` and sends them to `out` in batches (in arrival
/// order). Returns when `rx` is closed (after sending the pending batch)
/// or `out` is.
pub async fn debounce<T>(
    cfg: DebounceConfig,
    mut rx: mpsc::Receiver<T>,
    out: mpsc::Sender<Vec<T>>,
) {
    while let Some(first) = rx.recv().await {
        let start = Instant::now();
        let mut last = start;
        let mut batch = vec![first];
        let closed = loop {
            let deadline = (last + cfg.quiet).min(start + cfg.max);
            tokio::select! {
                biased;
                () = sleep_until(deadline) => break false,
                ev = rx.recv() => match ev {
                    Some(e) => {
                        batch.push(e);
                        last = Instant::now();
                    }
                    None => break true,
                },
            }
        };
        if out.send(batch).await.is_err() || closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(cfg: DebounceConfig) -> (mpsc::Sender<u32>, mpsc::Receiver<Vec<u32>>) {
        let (tx, rx) = mpsc::channel(64);
        let (otx, orx) = mpsc::channel(64);
        tokio::spawn(debounce(cfg, rx, otx));
        (tx, orx)
    }

    #[tokio::test(start_paused = true)]
    async fn one_event_is_pushed_after_the_quiet_period() {
        let (tx, mut out) = spawn(DebounceConfig::default());
        let t0 = Instant::now();
        tx.send(1).await.unwrap();
        let batch = out.recv().await.unwrap();
        assert_eq!(batch, vec![1]);
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn events_within_the_quiet_period_are_merged() {
        let (tx, mut out) = spawn(DebounceConfig::default());
        let t0 = Instant::now();
        for i in 0..5 {
            tx.send(i).await.unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let batch = out.recv().await.unwrap();
        assert_eq!(batch, vec![0, 1, 2, 3, 4]);
        // last event at 240 ms, then 100 ms of quiet
        assert_eq!(t0.elapsed(), Duration::from_millis(340));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_is_pushed_at_the_max_delay() {
        let (tx, mut out) = spawn(DebounceConfig::default());
        let t0 = Instant::now();
        // 50 events 30 ms apart: at 0, 30, ..., 1470 ms; `tx` stays open
        let tx2 = tx.clone();
        let sender = tokio::spawn(async move {
            for i in 0..50 {
                if tx2.send(i).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
        let first = out.recv().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
        assert_eq!(first, (0..34).collect::<Vec<_>>()); // 0 ..= 990 ms
        let second = out.recv().await.unwrap();
        assert_eq!(second, (34..50).collect::<Vec<_>>());
        // the last event at 1470 ms, then 100 ms of quiet
        assert_eq!(t0.elapsed(), Duration::from_millis(1570));
        sender.await.unwrap();
        drop(tx);
        assert_eq!(out.recv().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn separate_bursts_give_separate_batches() {
        let cfg = DebounceConfig {
            quiet: Duration::from_millis(10),
            max: Duration::from_millis(500),
        };
        let (tx, mut out) = spawn(cfg);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(3).await.unwrap();
        assert_eq!(out.recv().await.unwrap(), vec![1, 2]);
        assert_eq!(out.recv().await.unwrap(), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_input_flushes_the_pending_batch() {
        let (tx, mut out) = spawn(DebounceConfig::default());
        let t0 = Instant::now();
        tx.send(7).await.unwrap();
        drop(tx);
        assert_eq!(out.recv().await.unwrap(), vec![7]);
        assert!(t0.elapsed() < Duration::from_millis(100));
        assert_eq!(out.recv().await, None);
    }
}
