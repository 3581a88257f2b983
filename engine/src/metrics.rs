//! The engine's counters, histograms and per-partition lag and committed offsets, read as a
//! [`MetricsSnapshot`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the handler latency histogram's buckets: from half a millisecond
/// (a handler that only updates its workspace) to ten seconds (one that calls slow services).
pub const HANDLER_SECONDS_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds (seconds) of the restore time histogram's buckets: from a millisecond (a few
/// workspace files) to two minutes (a large store read back over the network).
pub const RESTORE_SECONDS_BUCKETS: [f64; 12] =
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 120.0];

/// A histogram of durations over fixed buckets, updated with relaxed atomic adds (no lock,
/// no allocation per observation).
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, then the count above the last bound.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.iter().position(|b| secs <= *b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        HistogramSnapshot {
            buckets: self.bounds.iter().copied().zip(counts.iter().copied()).collect(),
            count: counts.iter().sum(),
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// A histogram at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations in this bucket alone, not cumulative), by
    /// ascending bound. Observations above the last bound are only in `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Observations in all.
    pub count: u64,
    /// The sum of the observed durations.
    pub sum: Duration,
}

/// Counters the engine updates as it works; shared by its partition tasks.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) processed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) assignments: AtomicU64,
    pub(crate) revocations: AtomicU64,
    pub(crate) losses: AtomicU64,
    pub(crate) transactions_committed: AtomicU64,
    pub(crate) transactions_aborted: AtomicU64,
    pub(crate) handler_latency: Histogram,
    pub(crate) restore_time: Histogram,
    pub(crate) lag: Mutex<BTreeMap<(String, i32), i64>>,
    pub(crate) committed: Mutex<BTreeMap<(String, i32), i64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            assignments: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            transactions_committed: AtomicU64::new(0),
            transactions_aborted: AtomicU64::new(0),
            handler_latency: Histogram::new(&HANDLER_SECONDS_BUCKETS),
            restore_time: Histogram::new(&RESTORE_SECONDS_BUCKETS),
            lag: Mutex::new(BTreeMap::new()),
            committed: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag.lock().unwrap_or_else(|e| e.into_inner()).insert((topic.to_string(), partition), lag.max(0));
    }

    /// Records that `offset` (the next offset to consume) is committed for the partition.
    pub(crate) fn set_committed(&self, topic: &str, partition: i32, offset: i64) {
        self.committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((topic.to_string(), partition), offset);
    }

    /// Forgets a partition that is no longer assigned.
    pub(crate) fn forget(&self, topic: &str, partition: i32) {
        let key = (topic.to_string(), partition);
        self.lag.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        self.committed.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
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
            assignments: get(&self.assignments),
            revocations: get(&self.revocations),
            losses: get(&self.losses),
            transactions_committed: get(&self.transactions_committed),
            transactions_aborted: get(&self.transactions_aborted),
            handler_latency: self.handler_latency.snapshot(),
            restore_time: self.restore_time.snapshot(),
            lag: self.lag.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            committed: self.committed.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

/// The engine's counters since it started.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// Rebalances that assigned partitions to this engine.
    pub assignments: u64,
    /// Rebalances that revoked partitions from this engine (it committed before giving them up).
    pub revocations: u64,
    /// Partitions lost at once (the member was fenced or its session expired; nothing was
    /// committed for them), counted per rebalance.
    pub losses: u64,
    /// Exactly-once mode: transactions committed (each covers a commit interval of work).
    pub transactions_committed: u64,
    /// Exactly-once mode: transactions aborted (each followed by a rewind to the last
    /// committed one).
    pub transactions_aborted: u64,
    /// How long each handler attempt took (retries are attempts of their own).
    pub handler_latency: HistogramSnapshot,
    /// How long each assignment took to restore: loading the workspaces of the assigned
    /// partitions and seeking them to their stored offsets.
    pub restore_time: HistogramSnapshot,
    /// Per assigned (topic, partition): records behind the partition's high watermark after
    /// the last processed one, as of its fetch.
    pub lag: BTreeMap<(String, i32), i64>,
    /// Per assigned (topic, partition): the committed offset (the next offset to consume), as
    /// read at assignment and then as this engine committed it.
    pub committed: BTreeMap<(String, i32), i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_in_its_bucket_and_sums_them() {
        let h = Histogram::new(&[0.001, 0.01, 0.1]);
        for ms in [0, 1, 2, 10, 50, 100, 2000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        // 0 and 1 ms are at most 1 ms; 2 and 10 at most 10 ms; 50 and 100 at most 100 ms;
        // 2 s is above every bound.
        assert_eq!(s.buckets, vec![(0.001, 2), (0.01, 2), (0.1, 2)]);
        assert_eq!(s.count, 7);
        assert_eq!(s.sum, Duration::from_millis(2163));
    }

    #[test]
    fn committed_offsets_and_lag_are_forgotten_with_their_partition() {
        let m = Metrics::default();
        m.set_lag("t", 0, -3);
        m.set_committed("t", 0, 12);
        m.set_committed("t", 1, 4);
        let s = m.snapshot();
        assert_eq!(s.lag.get(&("t".to_string(), 0)), Some(&0), "lag is never negative");
        assert_eq!(s.committed.len(), 2);
        m.forget("t", 0);
        let s = m.snapshot();
        assert!(s.lag.is_empty());
        assert_eq!(s.committed, BTreeMap::from([(("t".to_string(), 1), 4)]));
    }
}
