//! The engine's counters and per-partition lag, read as a [`MetricsSnapshot`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters the engine updates as it works; shared by its partition tasks.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) processed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) lag: Mutex<BTreeMap<(String, i32), i64>>,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag.lock().unwrap_or_else(|e| e.into_inner()).insert((topic.to_string(), partition), lag.max(0));
    }

    pub(crate) fn forget(&self, topic: &str, partition: i32) {
        self.lag.lock().unwrap_or_else(|e| e.into_inner()).remove(&(topic.to_string(), partition));
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            processed: get(&self.processed),
            failed: get(&self.failed),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            skipped: get(&self.skipped),
            replayed: get(&self.replayed),
            lag: self.lag.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// The engine's counters since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Messages handled successfully.
    pub processed: u64,
    /// Handler attempts that failed (every class, panics included).
    pub failed: u64,
    /// Retries of transient failures.
    pub retried: u64,
    /// Messages written to the dead-letter topic.
    pub dead_lettered: u64,
    /// Messages skipped after a business error.
    pub skipped: u64,
    /// Messages not applied because their workspace had already applied them (replays after
    /// a restart).
    pub replayed: u64,
    /// Per assigned (topic, partition): records behind the partition's high watermark after
    /// the last processed one, as of its fetch.
    pub lag: BTreeMap<(String, i32), i64>,
}
