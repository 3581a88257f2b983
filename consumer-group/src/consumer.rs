//! [`GroupConsumer`]: a consumer group member that reads the partitions the group gives it.
//!
//! It puts three parts together: the [`Membership`](crate::membership::Membership) state
//! machine, driven by its own task ([`coordinator`](crate::coordinator)); a partition
//! [`Consumer`] that fetches the assigned partitions; and the application's
//! [`RebalanceListener`], called from inside [`GroupConsumer::poll`] (as the Java client
//! does), so that a revocation handler can commit and save state before the partitions move,
//! with a [`RebalanceHandle`] that commits and seeks.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use klamm::protocol::api::leave_group::LeaveGroupRequest;
use klamm::protocol::ErrorCode;
use klamm::{Client, Consumer, ConsumerRecord, Error, ErrorKind, Offset, TopicPartition};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::committer::{after_each_partition, Committer, ConsumedOffsets};
use crate::config::{GroupConfig, GroupProtocol};
use crate::consumer_driver;
use crate::consumer_membership::{ConsumerMembership, ConsumerMembershipConfig, Subscription};
use crate::coordinator::{self, GroupShared};
use crate::member::Member;
use crate::membership::{leave_request_at, GroupEvent, MemberState, Membership, MembershipConfig};
use crate::offsets::{self, NextOffset};
use crate::stall::GroupStall;

/// What the application does when the group moves partitions. Every method has an empty
/// default; each gets a [`RebalanceHandle`] to commit and seek with. The methods are called
/// from inside [`GroupConsumer::poll`] (or while its stream is read).
///
/// Empty lists: `on_revoked` and `on_lost` are only called with partitions. `on_assigned` is
/// called once after every rebalance the member completes, with an empty list when the
/// rebalance gave it nothing new (as the Java client calls `onPartitionsAssigned`): that call
/// says the member is in the new generation, which a listener may want to know (to commit
/// with it, or to see that a rejoin finished); ignore an empty list if not.
///
/// ```
/// use klamm_group::{NextOffset, RebalanceHandle, RebalanceListener};
/// use klamm::TopicPartition;
///
/// struct SaveBeforeMoving;
///
/// impl RebalanceListener for SaveBeforeMoving {
///     async fn on_revoked(&mut self, handle: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
///         // Commit what was processed of the partitions that are about to move.
///         if let Err(e) = handle.commit_consumed(partitions).await {
///             eprintln!("commit before revocation failed: {e}");
///         }
///     }
/// }
/// ```
pub trait RebalanceListener: Send {
    /// `partitions` were added to the member's assignment; their positions are set from the
    /// committed offsets (or `auto.offset.reset`), and can be changed with the handle.
    fn on_assigned(
        &mut self,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = ()> + Send {
        let _ = (handle, partitions);
        async {}
    }

    /// `partitions` are about to leave the member: nobody else reads them until this returns.
    /// Commit and save here.
    fn on_revoked(
        &mut self,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = ()> + Send {
        let _ = (handle, partitions);
        async {}
    }

    /// `partitions` were already taken away (the member fell out of the group): another
    /// member may be reading them. Commits for them will fail; drop their state.
    fn on_lost(
        &mut self,
        handle: &mut RebalanceHandle<'_>,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = ()> + Send {
        let _ = (handle, partitions);
        async {}
    }
}

/// The listener of a [`GroupConsumer`] made without one: does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoListener;

impl RebalanceListener for NoListener {}

/// What a [`RebalanceListener`] can do while it is called.
pub struct RebalanceHandle<'c> {
    shared: &'c GroupShared,
    consumer: &'c mut Consumer,
    consumed: &'c ConsumedOffsets,
}

impl<'c> RebalanceHandle<'c> {
    /// Commits `offsets` (synchronously, retrying within `default.api.timeout.ms`).
    pub async fn commit(
        &mut self,
        offsets: impl IntoIterator<Item = (TopicPartition, NextOffset)>,
    ) -> Result<(), Error> {
        let offsets: Vec<_> = offsets.into_iter().collect();
        offsets::commit(self.shared, &offsets, self.shared.config.api_timeout).await
    }

    /// Commits, for each of `partitions`, the offset after the last record
    /// [`GroupConsumer::poll`] handed out (partitions with none are skipped).
    pub async fn commit_consumed(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        let offsets = self.consumed.of(partitions);
        offsets::commit(self.shared, &offsets, self.shared.config.api_timeout).await
    }

    /// Moves a partition's position.
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<(), Error> {
        self.consumer.seek(tp, offset)
    }

    /// The offset of the next record a poll would hand out for `tp`, when known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.consumer.position(tp)
    }

    /// The group's committed offsets of `partitions`. The future does not hold on to the
    /// handle, so a listener's future stays `Send` across it.
    pub fn committed<'a>(
        &self,
        partitions: &'a [TopicPartition],
    ) -> impl Future<Output = Result<HashMap<TopicPartition, Option<NextOffset>>, Error>> + Send + 'a
    where
        'c: 'a,
    {
        let shared: &'c GroupShared = self.shared;
        offsets::committed(shared, partitions, shared.config.api_timeout)
    }

    /// The member's generation.
    pub fn generation(&self) -> i32 {
        self.shared.membership().generation()
    }

    /// The member's identity in the group now, as [`GroupConsumer::group_metadata`] gives
    /// it: what a listener that commits an open transaction before its partitions move sends
    /// with the transaction's offsets.
    pub fn group_metadata(&self) -> klamm::ConsumerGroupMetadata {
        group_metadata(self.shared)
    }
}

/// The member's identity for [`Producer::send_offsets_to_transaction`](klamm::Producer::send_offsets_to_transaction).
fn group_metadata(shared: &GroupShared) -> klamm::ConsumerGroupMetadata {
    let (generation, member_id) = {
        let m = shared.membership();
        (m.generation(), m.member_id().to_string())
    };
    klamm::ConsumerGroupMetadata::new(shared.config.group_id.clone())
        .generation_id(generation)
        .member_id(member_id)
        .group_instance_id(shared.config.group_instance_id.clone())
}

/// A member of a consumer group.
///
/// ```no_run
/// use std::time::Duration;
/// use klamm_group::{GroupConfig, GroupConsumer};
///
/// # async fn example() -> Result<(), klamm::Error> {
/// let config = GroupConfig::new("127.0.0.1:9092", "billing")
///     .consumer(|c| c.auto_offset_reset(klamm::OffsetReset::Earliest));
/// let mut consumer = GroupConsumer::new(config)?;
/// consumer.subscribe(["invoices"]);
/// loop {
///     let records = consumer.poll(Duration::from_secs(1)).await?;
///     for record in &records {
///         println!("{} {} {:?}", record.partition, record.offset, record.value);
///     }
///     // Each partition of the batch, up to its last record.
///     consumer.commit_records(&records).await?;
/// #   break;
/// }
/// consumer.close(Duration::from_secs(10)).await?;
/// # Ok(())
/// # }
/// ```
pub struct GroupConsumer<L: RebalanceListener = NoListener> {
    shared: Arc<GroupShared>,
    consumer: Option<Consumer>,
    task: Option<JoinHandle<()>>,
    listener: L,
    /// Per partition, the offset after the last record handed out (shared with committers).
    consumed: ConsumedOffsets,
    /// Partitions assigned whose committed offsets could not be read yet.
    pending_assignment: Vec<TopicPartition>,
    next_auto_commit: Instant,
    fatal: Option<Error>,
    closed: bool,
    /// What keeps the member from progress, reported by `poll`.
    stall: GroupStall,
    /// The membership event being handled (taken from the membership, not yet done).
    in_progress: Option<GroupEvent>,
    /// Records a `poll_batch` gathered and has not returned yet (handed out, for commits).
    gathered: Vec<ConsumerRecord>,
    /// An error a `poll_batch` met after gathering records: returned by the next call.
    deferred: Option<Error>,
}

impl GroupConsumer<NoListener> {
    /// A member without a rebalance listener. Does not touch the network until
    /// [`GroupConsumer::subscribe`]. Must be called inside a tokio runtime.
    pub fn new(config: GroupConfig) -> Result<Self, Error> {
        GroupConsumer::with_listener(config, NoListener)
    }
}

impl<L: RebalanceListener> GroupConsumer<L> {
    /// A member whose rebalances call `listener`.
    pub fn with_listener(config: GroupConfig, listener: L) -> Result<Self, Error> {
        config.validate()?;
        let client = Client::new(config.consumer.client.clone())?;
        let consumer = Consumer::with_client(client.clone(), config.consumer.clone())?;
        let now = Instant::now();
        let membership = match config.group_protocol {
            GroupProtocol::Classic => Member::Classic(Membership::new(
                MembershipConfig {
                    group_id: config.group_id.clone(),
                    group_instance_id: config.group_instance_id.clone(),
                    session_timeout: config.session_timeout,
                    max_poll_interval: config.max_poll_interval,
                    heartbeat_interval: config.heartbeat_interval,
                    retry_backoff: config.consumer.client.retry_backoff,
                    assignors: config.assignors.clone(),
                    rack: config.client_rack.clone(),
                },
                now,
            )),
            GroupProtocol::Consumer => Member::Consumer(ConsumerMembership::new(
                ConsumerMembershipConfig {
                    group_id: config.group_id.clone(),
                    member_id: consumer_driver::new_member_id(),
                    group_instance_id: config.group_instance_id.clone(),
                    rack: config.client_rack.clone(),
                    max_poll_interval: config.max_poll_interval,
                    session_timeout: config.session_timeout,
                    heartbeat_interval: config.heartbeat_interval,
                    retry_backoff: config.consumer.client.retry_backoff,
                    remote_assignor: config.remote_assignor.clone(),
                },
                now,
            )),
        };
        let protocol = config.group_protocol;
        let next_auto_commit = now + config.auto_commit_interval;
        let shared = Arc::new(GroupShared {
            client,
            config,
            membership: Mutex::new(membership),
            wake: Notify::new(),
            events: Notify::new(),
            stopped: Default::default(),
            done: Notify::new(),
            pattern: Mutex::new(None),
            commit_order: Default::default(),
            problem: Mutex::new(None),
            missing_topics: Mutex::new(Default::default()),
            refused_topics: Mutex::new(Default::default()),
        });
        let task = match protocol {
            GroupProtocol::Classic => tokio::spawn(coordinator::run(Arc::clone(&shared))),
            GroupProtocol::Consumer => tokio::spawn(consumer_driver::run(Arc::clone(&shared))),
        };
        Ok(GroupConsumer {
            shared,
            consumer: Some(consumer),
            task: Some(task),
            listener,
            consumed: ConsumedOffsets::default(),
            pending_assignment: Vec::new(),
            next_auto_commit,
            fatal: None,
            closed: false,
            stall: GroupStall::default(),
            in_progress: None,
            gathered: Vec::new(),
            deferred: None,
        })
    }

    /// Subscribes to `topics`, replacing the previous subscription, and joins the group (or
    /// rejoins, when the topics changed).
    pub fn subscribe<S: Into<String>>(&mut self, topics: impl IntoIterator<Item = S>) {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        *self.shared.pattern.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.membership().subscribe(topics, Instant::now());
        self.shared.wake.notify_one();
    }

    /// Subscribes to every topic whose whole name matches the regular expression `pattern`
    /// (as the Java client matches; internal topics never match), replacing the previous
    /// subscription. Topics created or deleted later are picked up within
    /// `metadata.max.age.ms`. Fails with [`ErrorKind::Config`] on an invalid pattern.
    ///
    /// With `group.protocol=consumer` the broker matches the pattern (RE2 syntax, KIP-848)
    /// and follows topics as they come and go; the member only sends it.
    ///
    /// ```no_run
    /// # async fn example(consumer: &mut klamm_group::GroupConsumer) -> Result<(), klamm::Error> {
    /// consumer.subscribe_pattern("orders-.*")?; // orders-eu, orders-us, ... not preorders-x
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<(), Error> {
        let anchored = format!("^(?:{pattern})$");
        let regex = regex::Regex::new(&anchored).map_err(|e| {
            Error::with_message(ErrorKind::Config, format!("subscription pattern {pattern:?}: {e}"))
        })?;
        let sent =
            self.shared.consumer(|m| m.subscribe(Subscription::Pattern(pattern.to_string()), Instant::now()));
        if sent.is_none() {
            *self.shared.pattern.lock().unwrap_or_else(|e| e.into_inner()) = Some(regex);
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Records from the assigned partitions, waiting up to `timeout` for the first (an empty
    /// `Vec` when none came); at most `max.poll.records`. Rebalance listener calls happen in
    /// here. Fails when the member cannot go on (fenced, not authorized, misconfigured) and
    /// with errors about single partitions as [`Consumer::poll`] does.
    ///
    /// Also fails, with a retriable error ([`Error::is_retriable`]), when something has kept
    /// the member from progress for a bounded time, while it keeps trying: the group not
    /// stable for `klamm.stall.timeout.ms` (30 s; no broker at the address, say, which the
    /// error names), a subscribed topic missing for `topic.metadata.propagation.max.ms` (30 s,
    /// an UNKNOWN_TOPIC_OR_PARTITION error naming it), assigned partitions unread for the
    /// same bounds. Warnings come in the log before. Go on polling after such an error (or
    /// stop, if the cause will not pass); it comes again after each further bound while the
    /// cause lasts.
    ///
    /// Cancel safety: cancel safe (inside `tokio::select!`, say). A poll dropped before it
    /// returned loses no record: the records it had not returned are handed out by the next
    /// poll. A rebalance listener call it cut short is made again, from the start, by the next
    /// poll, so an assignment or revocation is never left half done; listeners should expect
    /// that (a commit made twice is harmless).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        // What a cancelled `poll_batch` had gathered comes first.
        if !self.gathered.is_empty() {
            return Ok(std::mem::take(&mut self.gathered));
        }
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        self.poll_records(timeout).await
    }

    /// [`GroupConsumer::poll`] without the records a `poll_batch` gathered.
    async fn poll_records(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.check_open()?;
            {
                let mut m = self.shared.membership();
                let was = m.state();
                m.poll(Instant::now());
                if was == MemberState::Unjoined && m.state() != was {
                    self.shared.wake.notify_one();
                }
            }
            self.handle_events().await?;
            self.maybe_auto_commit().await;
            if let Some(e) = self.stall.check(&self.shared, Instant::now()) {
                return Err(e);
            }
            let stall_due = self.stall.next_due().map_or(deadline, |at| deadline.min(at.into()));
            let consumer = self.consumer.as_mut().expect("open consumer");
            let events = self.shared.events.notified();
            tokio::select! {
                biased;
                () = events => continue,
                () = tokio::time::sleep_until(stall_due), if stall_due < deadline => continue,
                result = consumer.poll(deadline.saturating_duration_since(tokio::time::Instant::now())) => {
                    let records = result?;
                    for r in &records {
                        self.consumed.handed_out(r);
                    }
                    if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                        return Ok(records);
                    }
                }
            }
        }
    }

    /// Up to `max` records, waiting up to `timeout` for the first. Like [`GroupConsumer::poll`]
    /// with a different cap; records beyond `max` stay buffered for the next call.
    ///
    /// Cancel safety: cancel safe. The records gathered so far are kept in the consumer until
    /// a call returns them, so a batch cut short (or ended by an error after some records) is
    /// handed out by the next `poll_batch` or `poll`.
    pub async fn poll_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        if self.gathered.is_empty() {
            if let Some(e) = self.deferred.take() {
                return Err(e);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while self.gathered.len() < max {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = if self.gathered.is_empty() { left } else { Duration::ZERO };
            let mut got = match self.poll_records(wait).await {
                Ok(got) => got,
                // The records gathered first; the error comes with the next call.
                Err(e) if !self.gathered.is_empty() => {
                    self.deferred = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            if got.is_empty() {
                break;
            }
            let room = max - self.gathered.len();
            if got.len() > room {
                // Give back what does not fit: seek each partition to its first unreturned
                // record, and forget those records as consumed.
                let rest = got.split_off(room);
                self.give_back(rest)?;
            }
            self.gathered.append(&mut got);
        }
        Ok(std::mem::take(&mut self.gathered))
    }

    /// Records as a stream, one at a time; rebalances are handled (and listeners called)
    /// while it is read.
    ///
    /// Semantics: each item is a record or an error; an error that leaves the member able to go
    /// on (a retriable stall report, a partition's error) is one item and the stream goes on
    /// after it; a fatal one (fenced, closed) is the last item. The stream polls in batches of
    /// up to `max.poll.records` and yields them one by one; a record counts as handed out
    /// (for [`GroupConsumer::commit_consumed`] and [`Committer::commit_consumed`]) when it is
    /// yielded. Dropping the stream puts the records it holds back, so the next poll or
    /// stream starts with them.
    ///
    /// The stream borrows the consumer; commit through a [`Committer`]
    /// ([`GroupConsumer::committer`], taken before) while it is read:
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// # async fn example(consumer: &mut klamm_group::GroupConsumer) -> Result<(), klamm::Error> {
    /// let committer = consumer.committer();
    /// let mut batches = consumer.stream().ready_chunks(500);
    /// while let Some(batch) = batches.next().await {
    ///     let records: Vec<_> = batch.into_iter().filter_map(Result::ok).collect();
    ///     // ... process ...
    ///     committer.commit_records(&records).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Cancel safety: dropping a pending `next()` loses no record (see
    /// [`GroupConsumer::poll`]); an item, once yielded, is the caller's.
    pub fn stream(&mut self) -> RecordStream<'_, L> {
        RecordStream { consumer: Some(self), buffered: VecDeque::new(), pending: None }
    }

    /// The partitions the member reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer.as_ref().map(Consumer::assignment).unwrap_or_default()
    }

    /// The member's current generation (-1 when not in one) and member id; with
    /// `group.protocol=consumer`, its member epoch (0 when not in the group).
    pub fn generation(&self) -> (i32, String) {
        let m = self.shared.membership();
        (m.generation(), m.member_id().to_string())
    }

    /// The member's identity in the group now, for
    /// [`Producer::send_offsets_to_transaction`](klamm::Producer::send_offsets_to_transaction)
    /// (exactly-once consume-process-produce): the group id, the generation (the member epoch
    /// with `group.protocol=consumer`), the member id and the `group.instance.id`. The group
    /// coordinator refuses offsets sent with the metadata of an older generation (KIP-447), so
    /// take it after the records were polled, right before sending their offsets.
    ///
    /// ```no_run
    /// # async fn example(consumer: &klamm_group::GroupConsumer, producer: &klamm::Producer) -> Result<(), klamm::Error> {
    /// producer.begin_transaction()?;
    /// // ... poll, produce the results ...
    /// producer.send_offsets_to_transaction([("orders", 0, 1042)], &consumer.group_metadata()).await?;
    /// producer.commit_transaction().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn group_metadata(&self) -> klamm::ConsumerGroupMetadata {
        group_metadata(&self.shared)
    }

    /// [`GroupConsumer::group_metadata`], but only while the member is settled: stable in its
    /// generation, with every assignment change of the group protocol already applied by
    /// [`GroupConsumer::poll`] and told to the listener. `None` while a rebalance is under way
    /// or its outcome waits for the next poll: the partitions the application works on may not
    /// be the member's any more (they may be another member's, in a newer generation that this
    /// member is part of too), so offsets sent with a transaction now could commit what is not
    /// this member's to commit. An exactly-once loop commits when this is `Some`, and otherwise
    /// polls first (the listener commits or aborts on a revocation or a loss).
    ///
    /// ```no_run
    /// # async fn example(consumer: &klamm_group::GroupConsumer, producer: &klamm::Producer) -> Result<(), klamm::Error> {
    /// if let Some(metadata) = consumer.settled_group_metadata() {
    ///     producer.send_offsets_to_transaction(consumer.transaction_offsets(), &metadata).await?;
    ///     producer.commit_transaction().await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn settled_group_metadata(&self) -> Option<klamm::ConsumerGroupMetadata> {
        if self.in_progress.is_some() || !self.pending_assignment.is_empty() {
            return None;
        }
        let m = self.shared.membership();
        if m.state() != MemberState::Stable || m.has_events() {
            return None;
        }
        Some(
            klamm::ConsumerGroupMetadata::new(self.shared.config.group_id.clone())
                .generation_id(m.generation())
                .member_id(m.member_id().to_string())
                .group_instance_id(self.shared.config.group_instance_id.clone()),
        )
    }

    /// Where the member stands in the group protocol now ([`MemberState::Stable`] once it is
    /// in a generation with its assignment).
    pub fn state(&self) -> MemberState {
        self.shared.membership().state()
    }

    /// The client the member talks to the cluster through (shared with its fetches).
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The group's committed offsets of `partitions` (`None` where nothing is committed).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, Option<NextOffset>>, Error> {
        offsets::committed(&self.shared, partitions, self.shared.config.api_timeout).await
    }

    /// Commits `offsets` and waits for the outcome (retrying within
    /// `default.api.timeout.ms`). Fails with the broker's error when the member is no longer
    /// in the generation (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID): the
    /// partitions may have moved, and the new owner reads from the last successful commit.
    /// The same errors come without anything sent when the member knows already: it is
    /// rejoining, its generation changed while the commit was retried, or one of the
    /// partitions is not assigned to it (any more). The commit is made in the generation of
    /// this call; partitions that a newer commit covers before a retry are left out of it, so
    /// an older offset never lands after a newer one.
    ///
    /// Cancel safety: dropping the future before it resolves leaves the commit sent or not,
    /// and its outcome unknown; nothing else is affected, and the next commit of the same
    /// partitions supersedes it. Use [`GroupConsumer::commit_async`] for a commit that must
    /// go ahead whatever happens to the caller.
    pub async fn commit(
        &self,
        offsets: impl IntoIterator<Item = (TopicPartition, NextOffset)>,
    ) -> Result<(), Error> {
        let offsets: Vec<_> = offsets.into_iter().collect();
        offsets::commit(&self.shared, &offsets, self.shared.config.api_timeout).await
    }

    /// Starts a commit of `offsets` and returns at once. The commit goes ahead even if the
    /// returned future is dropped; awaiting it gives the outcome. Ordered and refused as
    /// [`GroupConsumer::commit`]: a later commit of the same partition (of any kind) supersedes
    /// this one's pending retries, and this one reports `Ok` when nothing of it is left to send.
    ///
    /// Cancel safety: the commit runs in a task of its own; dropping the [`CommitFuture`]
    /// only gives up its outcome.
    pub fn commit_async(
        &self,
        offsets: impl IntoIterator<Item = (TopicPartition, NextOffset)>,
    ) -> CommitFuture {
        commit_async(&self.shared, offsets.into_iter().collect())
    }

    /// Commits, for every assigned partition, the offset after the last record handed out.
    ///
    /// Cancel safety: as [`GroupConsumer::commit`].
    pub async fn commit_consumed(&self) -> Result<(), Error> {
        let offsets = self.consumed_offsets();
        offsets::commit(&self.shared, &offsets, self.shared.config.api_timeout).await
    }

    /// Commits, for every partition among `records`, the offset after its last record there:
    /// what to commit once a batch is processed (not only the partition of its last record).
    ///
    /// Cancel safety: as [`GroupConsumer::commit`].
    pub async fn commit_records(&self, records: &[ConsumerRecord]) -> Result<(), Error> {
        let offsets = after_each_partition(records);
        offsets::commit(&self.shared, &offsets, self.shared.config.api_timeout).await
    }

    /// A handle that commits for this consumer while something else holds it, such as its
    /// [`stream`](GroupConsumer::stream): see [`Committer`].
    pub fn committer(&self) -> Committer {
        Committer::new(Arc::clone(&self.shared), self.consumed.clone())
    }

    /// The offsets [`GroupConsumer::commit_consumed`] would commit.
    pub fn consumed_offsets(&self) -> Vec<(TopicPartition, NextOffset)> {
        self.consumed.of(&self.assignment())
    }

    /// The offsets [`GroupConsumer::commit_consumed`] would commit, for
    /// [`Producer::send_offsets_to_transaction`](klamm::Producer::send_offsets_to_transaction)
    /// instead (with [`GroupConsumer::group_metadata`]): exactly-once consume-process-produce
    /// commits them with the transaction's output.
    pub fn transaction_offsets(&self) -> Vec<klamm::TransactionOffset> {
        self.consumed_offsets()
            .into_iter()
            .map(|(tp, next)| {
                klamm::TransactionOffset::new(tp, next.offset())
                    .leader_epoch(next.leader_epoch())
                    .metadata(next.metadata().map(str::to_owned))
            })
            .collect()
    }

    /// Moves an assigned partition's position.
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<(), Error> {
        self.consumer_mut().seek(tp, offset)
    }

    /// Stops fetching `partitions` (they stay assigned).
    pub fn pause<'a>(&mut self, partitions: impl IntoIterator<Item = &'a TopicPartition>) {
        self.consumer_mut().pause(partitions)
    }

    /// Fetches `partitions` again.
    pub fn resume<'a>(&mut self, partitions: impl IntoIterator<Item = &'a TopicPartition>) {
        self.consumer_mut().resume(partitions)
    }

    /// The offset of the next record a poll would hand out for `tp`, when known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.consumer.as_ref().and_then(|c| c.position(tp))
    }

    /// How far behind the partition's end the member is (high watermark minus position), as
    /// of the last fetch; `None` until both are known.
    pub fn lag(&self, tp: &TopicPartition) -> Option<i64> {
        let c = self.consumer.as_ref()?;
        Some((c.high_watermark(tp)? - c.position(tp)?).max(0))
    }

    /// Leaves the group within `timeout`: commits what was consumed when auto-commit is on,
    /// calls the listener's `on_revoked`, sends LeaveGroup (a static member does not: its
    /// place is kept for the session timeout), and stops fetching. Commits nothing by itself
    /// otherwise.
    pub async fn close(mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.closed = true;
        if self.shared.config.enable_auto_commit && self.fatal.is_none() {
            let offsets = self.consumed_offsets();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(e) = offsets::commit(&self.shared, &offsets, left).await {
                tracing::warn!(error = %e, "auto-commit on close failed");
            }
        }
        self.shared.membership().leave(Instant::now());
        self.shared.wake.notify_one();
        // Runs the listener for the revocation that leaving starts.
        let _ = tokio::time::timeout_at(deadline, self.handle_events()).await;
        let stopped = async {
            loop {
                let done = self.shared.done.notified();
                if self.shared.stopped.load(Ordering::Acquire) {
                    return;
                }
                done.await;
            }
        };
        let left_in_time = tokio::time::timeout_at(deadline, stopped).await.is_ok();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let consumer = self.consumer.take().expect("open consumer");
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        consumer.close(left).await?;
        self.shared.client.close().await;
        if left_in_time {
            Ok(())
        } else {
            Err(Error::with_message(
                ErrorKind::Timeout,
                "leaving the group took longer than the close timeout",
            ))
        }
    }

    fn consumer_mut(&mut self) -> &mut Consumer {
        self.consumer.as_mut().expect("open consumer")
    }

    fn check_open(&self) -> Result<(), Error> {
        if let Some(e) = &self.fatal {
            return Err(e.clone());
        }
        if self.closed {
            return Err(Error::with_message(ErrorKind::User, "the group consumer is closed"));
        }
        Ok(())
    }

    /// Puts records back: each partition restarts at its first record in `rest`.
    fn give_back(&mut self, rest: Vec<ConsumerRecord>) -> Result<(), Error> {
        let mut first: HashMap<TopicPartition, &ConsumerRecord> = HashMap::new();
        for r in &rest {
            first.entry(r.topic_partition()).or_insert(r);
        }
        for (tp, r) in first {
            self.consumer_mut().seek(&tp, Offset::At(r.offset))?;
            // The last record handed out of this partition is the one before `r`.
            match self.consumed.lock().get_mut(&tp) {
                Some(next) if next.offset() > r.offset => *next = NextOffset::new(r.offset),
                _ => {}
            }
        }
        Ok(())
    }

    /// Acts on the membership's events: assignment changes and listener calls.
    async fn handle_events(&mut self) -> Result<(), Error> {
        if !self.pending_assignment.is_empty() {
            // Kept until assigned, so that a poll cancelled meanwhile leaves it for the next.
            let pending = self.pending_assignment.clone();
            self.assign(pending).await?;
            self.pending_assignment.clear();
        }
        loop {
            // An event whose handling a cancelled poll cut short is handled again, from the
            // start, before the next one: no assignment or revocation is ever half done.
            let event = match self.in_progress.clone() {
                Some(event) => event,
                None => {
                    let Some(event) = self.shared.membership().poll_event() else { return Ok(()) };
                    self.in_progress = Some(event.clone());
                    event
                }
            };
            match event {
                GroupEvent::Assigned(partitions) => {
                    tracing::info!(partitions = ?partitions, "assigned");
                    let assigned = self.assign(partitions).await;
                    // On failure, `pending_assignment` holds the partitions.
                    self.in_progress = None;
                    assigned?;
                }
                GroupEvent::Revoke(partitions) => {
                    tracing::info!(partitions = ?partitions, "revoking");
                    if self.shared.config.enable_auto_commit {
                        let offsets = self.consumed.of(&partitions);
                        if let Err(e) =
                            offsets::commit(&self.shared, &offsets, self.shared.config.api_timeout).await
                        {
                            tracing::warn!(error = %e, "auto-commit before revocation failed");
                        }
                    }
                    let mut handle = handle(&self.shared, &mut self.consumer, &self.consumed);
                    self.listener.on_revoked(&mut handle, &partitions).await;
                    self.drop_partitions(&partitions);
                    self.shared.membership().revocation_done(Instant::now(), &partitions);
                    self.shared.wake.notify_one();
                }
                GroupEvent::Lost(partitions) => {
                    tracing::warn!(partitions = ?partitions, "lost");
                    let mut handle = handle(&self.shared, &mut self.consumer, &self.consumed);
                    self.listener.on_lost(&mut handle, &partitions).await;
                    self.drop_partitions(&partitions);
                }
                GroupEvent::Fatal(e) => {
                    self.in_progress = None;
                    let kind = match e.code {
                        ErrorCode::SASL_AUTHENTICATION_FAILED => ErrorKind::Authentication,
                        code => ErrorKind::Broker(code),
                    };
                    let error = Error::with_message(kind, e.to_string());
                    tracing::error!(error = %error, "the member cannot go on");
                    self.fatal = Some(error.clone());
                    return Err(error);
                }
            }
            self.in_progress = None;
        }
    }

    /// Adds `partitions` to the consumer at their committed offsets, then tells the listener.
    async fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<(), Error> {
        if partitions.is_empty() {
            let mut handle = handle(&self.shared, &mut self.consumer, &self.consumed);
            self.listener.on_assigned(&mut handle, &[]).await;
            return Ok(());
        }
        let committed =
            match offsets::committed(&self.shared, &partitions, self.shared.config.api_timeout).await {
                Ok(c) => c,
                Err(e) => {
                    // Not fetching them without a known start; try again on the next poll.
                    self.pending_assignment = partitions;
                    return Err(e);
                }
            };
        let consumer = self.consumer_mut();
        let mut all = consumer.assignment();
        all.extend(partitions.iter().cloned());
        consumer.assign(all);
        for tp in &partitions {
            if let Some(Some(next)) = committed.get(tp) {
                // With the leader epoch the commit carries, the first fetch checks that the
                // log still holds what was consumed up to there (KIP-320): a truncation below
                // the committed offset is detected instead of skipped.
                consumer.seek_with_leader_epoch(tp, Offset::At(next.offset()), next.leader_epoch())?;
            }
        }
        let mut handle = handle(&self.shared, &mut self.consumer, &self.consumed);
        self.listener.on_assigned(&mut handle, &partitions).await;
        Ok(())
    }

    fn drop_partitions(&mut self, partitions: &[TopicPartition]) {
        let consumer = self.consumer_mut();
        let keep: Vec<TopicPartition> =
            consumer.assignment().into_iter().filter(|tp| !partitions.contains(tp)).collect();
        consumer.assign(keep);
        let mut consumed = self.consumed.lock();
        for tp in partitions {
            consumed.remove(tp);
        }
    }

    async fn maybe_auto_commit(&mut self) {
        if !self.shared.config.enable_auto_commit || Instant::now() < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = Instant::now() + self.shared.config.auto_commit_interval;
        let offsets = self.consumed_offsets();
        if offsets.is_empty() {
            return;
        }
        // As the Java client: asynchronous, the outcome logged.
        drop(self.commit_async(offsets));
    }
}

/// The handle a listener gets, over the consumer's parts (so the listener itself, another
/// part, can be borrowed beside it).
fn handle<'c>(
    shared: &'c GroupShared,
    consumer: &'c mut Option<Consumer>,
    consumed: &'c ConsumedOffsets,
) -> RebalanceHandle<'c> {
    RebalanceHandle { shared, consumer: consumer.as_mut().expect("open consumer"), consumed }
}

impl<L: RebalanceListener> Drop for GroupConsumer<L> {
    /// Never blocks: stops the coordinator task and, for a dynamic member that did not
    /// [`close`](GroupConsumer::close), sends a best-effort LeaveGroup from a detached task so
    /// the group rebalances now instead of after the session timeout.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if self.closed {
            return;
        }
        if self.shared.config.group_protocol == GroupProtocol::Consumer {
            return self.leave_on_drop();
        }
        if self.shared.config.group_instance_id.is_some() {
            return;
        }
        let (member_id, coordinator) = {
            let m = self.shared.membership();
            (m.member_id().to_string(), m.coordinator())
        };
        let (Some(node), false) = (coordinator, member_id.is_empty()) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let client = self.shared.client.clone();
        let request = LeaveGroupRequest {
            group_id: self.shared.config.group_id.clone(),
            members: vec![klamm::protocol::api::leave_group::MemberIdentity {
                member_id,
                reason: Some("the consumer was dropped".to_string()),
                ..Default::default()
            }],
            ..Default::default()
        };
        runtime.spawn(async move {
            let leave = async {
                let conn = client.connection(node, klamm::ConnectionKind::Group).await?;
                let version = conn.version_for::<LeaveGroupRequest>()?;
                conn.send_at(version, &leave_request_at(&request, version)).await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), leave).await;
            client.close().await;
        });
    }
}

/// Starts a commit of `offsets` in a task of its own (see [`GroupConsumer::commit_async`]).
pub(crate) fn commit_async(
    shared: &Arc<GroupShared>,
    offsets: Vec<(TopicPartition, NextOffset)>,
) -> CommitFuture {
    let shared = Arc::clone(shared);
    // Its place among the member's commits and its generation are fixed now, not when the
    // task runs.
    let commit = offsets::Commit::new(&shared, offsets);
    let task = tokio::spawn(async move {
        let result = match commit {
            Ok(commit) => commit.run(&shared, shared.config.api_timeout).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(group = %shared.config.group_id, error = %e, "asynchronous commit failed");
        }
        result
    });
    CommitFuture { task }
}

impl<L: RebalanceListener> GroupConsumer<L> {
    /// A `consumer` protocol member dropped without `close`: a best-effort leave heartbeat
    /// (epoch -1, or -2 for a static member, which keeps its place) from a detached task.
    fn leave_on_drop(&mut self) {
        let Some(request) = self.shared.consumer(|m| m.leave_request_now()).flatten() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), consumer_driver::heartbeat(&shared, request))
                    .await;
            shared.client.close().await;
        });
    }
}

/// The outcome of [`GroupConsumer::commit_async`].
#[must_use = "the commit happens anyway; await this to learn whether it succeeded"]
pub struct CommitFuture {
    task: JoinHandle<Result<(), Error>>,
}

impl Future for CommitFuture {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(e)) => Poll::Ready(Err(Error::with_message(
                ErrorKind::User,
                format!("the commit task stopped: {e}"),
            ))),
        }
    }
}

type PollFuture<'a, L> =
    Pin<Box<dyn Future<Output = (&'a mut GroupConsumer<L>, Result<Vec<ConsumerRecord>, Error>)> + Send + 'a>>;

/// [`GroupConsumer::stream`]: records one at a time.
pub struct RecordStream<'a, L: RebalanceListener> {
    consumer: Option<&'a mut GroupConsumer<L>>,
    buffered: VecDeque<ConsumerRecord>,
    pending: Option<PollFuture<'a, L>>,
}

impl<L: RebalanceListener> Drop for RecordStream<'_, L> {
    /// Puts the records it fetched but did not yield back: the consumer's next poll (or
    /// stream) hands them out first.
    fn drop(&mut self) {
        if self.buffered.is_empty() {
            return;
        }
        if let Some(consumer) = self.consumer.take() {
            let rest: Vec<ConsumerRecord> = self.buffered.drain(..).collect();
            // A partition revoked meanwhile cannot be seeked, and needs not be.
            let _ = consumer.give_back(rest);
        }
    }
}

impl<'a, L: RebalanceListener + 'a> futures_core::Stream for RecordStream<'a, L> {
    type Item = Result<ConsumerRecord, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(r) = this.buffered.pop_front() {
                // Handed out now, not when the poll returned it: `commit_consumed` commits
                // what the stream yielded, never what it still holds.
                if let Some(consumer) = &this.consumer {
                    consumer.consumed.handed_out(&r);
                }
                return Poll::Ready(Some(Ok(r)));
            }
            if this.pending.is_none() {
                let Some(consumer) = this.consumer.take() else { return Poll::Ready(None) };
                this.pending = Some(Box::pin(async move {
                    let result = consumer.poll(Duration::from_secs(3600)).await;
                    (consumer, result)
                }));
            }
            let fut = this.pending.as_mut().expect("set above");
            let (consumer, result) = match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(done) => done,
            };
            this.pending = None;
            this.consumer = Some(consumer);
            match result {
                Ok(records) => {
                    if let Some(consumer) = &this.consumer {
                        // Back to before these records: each partition's next record to hand
                        // out is its first one here (the earliest, as the records are in
                        // offset order per partition).
                        let mut consumed = consumer.consumed.lock();
                        for r in records.iter().rev() {
                            consumed.insert(r.topic_partition(), NextOffset::new(r.offset));
                        }
                    }
                    this.buffered.extend(records)
                }
                Err(e) => {
                    let fatal = matches!(e.code(), Some(c) if c == ErrorCode::FENCED_INSTANCE_ID)
                        || this.consumer.as_ref().is_some_and(|c| c.fatal.is_some() || c.closed);
                    if fatal {
                        this.consumer = None;
                    }
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}
