//! The state the consumer and its fetch tasks share: per-partition positions and flags, the
//! queue of completed fetches, errors for the user, and the buffered-bytes count.
//!
//! Who owns what:
//! - [`Shared::state`] (one `std::sync::Mutex`) guards [`State`]. Every critical section is a
//!   few map and queue operations; nobody holds it across an `.await` or while decoding
//!   records.
//! - The [`Consumer`](crate::Consumer) (user side, `&mut self`) assigns, seeks, pauses and
//!   drains. It takes a [`CompletedFetch`] out of the queue and decodes it without the lock;
//!   while it does, the partition is marked `buffered`, so no fetch for it is sent, and its
//!   position lives in the `CompletedFetch` until the drain ends and writes it back.
//! - The driver and its fetch and offset-lookup tasks (fetcher.rs) read positions to build
//!   requests, mark partitions `in_flight`, and push results. A result is used only if the
//!   partition's `generation` (bumped by every seek, pause and re-assignment) is the one the
//!   request was built with; otherwise it is dropped.
//! - [`Shared::ready`] wakes the consumer when data or an error arrived; [`Shared::wake`] wakes
//!   the driver when something it plans with changed (a drain ended, a seek, a resume, a fetch
//!   completed). Both use `notify_one`, whose stored permit means no wakeup is lost.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use crate::client::Client;
use crate::config::backoff;
use crate::consumer::config::ConsumerConfig;
use crate::consumer::drain::CompletedFetch;
use crate::consumer::record::{Offset, TopicPartition};
use crate::consumer::stall::Stalls;
use crate::error::Error;

/// What the consumer and its tasks share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: ConsumerConfig,
    pub(crate) state: Mutex<State>,
    /// Data or an error is ready for the consumer.
    pub(crate) ready: Notify,
    /// The driver should plan again.
    pub(crate) wake: Notify,
    pub(crate) closed: AtomicBool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections only move values between collections; a panic cannot leave the
        // state half updated in a way later code relies on.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a partition reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// Fetch from this offset.
    Fetch(i64),
    /// Look the offset up with ListOffsets first (never [`Offset::At`]).
    Lookup(Offset),
    /// The position is out of range and `auto.offset.reset` is none: waits for a seek.
    Failed,
}

/// One assigned partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) position: Position,
    /// Bumped whenever buffered or in-flight data of the partition must be dropped.
    pub(crate) generation: u64,
    pub(crate) paused: bool,
    /// A completed fetch of this partition is queued or being drained.
    pub(crate) buffered: bool,
    /// A fetch or offset lookup for this partition is under way.
    pub(crate) in_flight: bool,
    /// No request for this partition before this (after an error).
    pub(crate) retry_at: Option<Instant>,
    /// Errors in a row, for the backoff.
    pub(crate) failures: u32,
    pub(crate) high_watermark: Option<i64>,
    /// The leader epoch of the record just before the position (of the last record consumed,
    /// or the one a committed offset carried), when known. Sent with each fetch
    /// (`last_fetched_epoch`), so that the leader can tell when its log diverged from what was
    /// read (KIP-320): a truncation after an unclean leader election.
    pub(crate) last_epoch: Option<i32>,
    /// Assigned with `auto.offset.reset` none and not seeked yet: the next poll reports it
    /// (once). A seek before that poll clears it, so no stale error follows a seek.
    pub(crate) unpositioned: bool,
}

impl PartitionState {
    pub(crate) fn new(position: Position) -> Self {
        Self {
            position,
            generation: 0,
            paused: false,
            buffered: false,
            in_flight: false,
            retry_at: None,
            failures: 0,
            high_watermark: None,
            last_epoch: None,
            unpositioned: false,
        }
    }
}

/// Everything behind [`Shared::state`].
#[derive(Default)]
pub(crate) struct State {
    pub(crate) partitions: HashMap<TopicPartition, PartitionState>,
    /// Completed fetches in arrival order.
    pub(crate) completed: VecDeque<CompletedFetch>,
    /// Errors for the next poll.
    pub(crate) errors: VecDeque<Error>,
    /// Record-data bytes of fetches not yet drained (queued or being drained).
    pub(crate) buffered_bytes: usize,
    /// Brokers with a fetch in flight.
    pub(crate) busy_brokers: HashSet<i32>,
    /// The largest `buffered_bytes` ever reached (for tests and metrics).
    pub(crate) buffered_peak: usize,
    /// Partitions that cannot be read for a retriable cause, reported by `poll` in time.
    pub(crate) stalls: Stalls,
}

impl State {
    /// Drops the queued fetches of `tp` and bumps its generation, so that nothing fetched
    /// before this point is handed out.
    pub(crate) fn discard(&mut self, tp: &TopicPartition) {
        let mut freed = 0;
        self.completed.retain(|f| {
            let keep = *f.topic != *tp.topic || f.partition != tp.partition;
            if !keep {
                freed += f.size;
            }
            keep
        });
        self.buffered_bytes -= freed;
        if let Some(p) = self.partitions.get_mut(tp) {
            p.generation += 1;
            p.buffered = false;
            p.retry_at = None;
            p.failures = 0;
        }
    }

    /// Records an error for a partition: it is retried after a backoff.
    pub(crate) fn back_off(&mut self, tp: &TopicPartition, config: &ConsumerConfig) {
        if let Some(p) = self.partitions.get_mut(tp) {
            let c = &config.client;
            p.retry_at = Some(Instant::now() + backoff(c.retry_backoff, c.retry_backoff_max, p.failures));
            p.failures = p.failures.saturating_add(1);
        }
    }

    /// Adds a completed fetch to the queue.
    pub(crate) fn push_completed(&mut self, fetch: CompletedFetch) {
        self.buffered_bytes += fetch.size;
        self.buffered_peak = self.buffered_peak.max(self.buffered_bytes);
        self.completed.push_back(fetch);
    }

    /// A drain ended: frees its bytes and, if the partition has not been seeked since, stores
    /// where the drain stopped as the partition's position.
    pub(crate) fn finish_drain(&mut self, fetch: &CompletedFetch) {
        self.buffered_bytes -= fetch.size;
        let tp = TopicPartition { topic: fetch.topic.clone(), partition: fetch.partition };
        if let Some(p) = self.partitions.get_mut(&tp) {
            if p.generation == fetch.generation {
                p.position = Position::Fetch(fetch.position);
                if fetch.last_epoch.is_some() {
                    p.last_epoch = fetch.last_epoch;
                }
                p.buffered = false;
            }
        }
    }
}
