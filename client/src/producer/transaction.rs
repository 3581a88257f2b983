//! Transactions: the state a transactional producer keeps between `init_transactions` and
//! `commit_transaction` / `abort_transaction`, and the requests it sends to its transaction
//! coordinator (KIP-98, KIP-447 group fencing, KIP-890 transactions version 2).
//!
//! ```text
//!   Uninitialized --init_transactions--> Ready --begin_transaction--> InTransaction
//!        ^                                 ^                          |   |   (a record or the
//!        |                                 |                          |   |    offsets failed:
//!        |                                 +--- commit / abort done --+   |    `error` is set,
//!        |                                      (Committing, Aborting)    |    only abort goes)
//!                                                                         v
//!   Fatal (fenced by a newer producer, not authorised, ...): every call fails; drop it.
//! ```
//!
//! [`TxnProgress`] is the state machine, kept inside the accumulator so that `send` checks it
//! under the lock it already takes, and so that the sender sees which partitions are in the
//! transaction. Its transitions take no IO and are unit-tested here.
//!
//! Two transaction versions, picked at `init_transactions` from the coordinator's finalized
//! feature `transaction.version` and its API versions:
//! - v1: the sender adds a partition with AddPartitionsToTxn before its first batch goes out;
//!   `send_offsets_to_transaction` sends AddOffsetsToTxn, then TxnOffsetCommit. The epoch stays
//!   the same from one transaction to the next; after an abort the producer bumps it with
//!   InitProducerId (KIP-360), so that batches dropped from the aborted transaction leave no
//!   sequence gap.
//! - v2 (KIP-890): Produce v12+ and TxnOffsetCommit v5 add partitions and the group
//!   implicitly; EndTxn v5 ends the transaction and answers with the epoch for the next one
//!   (a bump per transaction, which also fences a zombie's late writes).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm_protocol::api::add_offsets_to_txn::AddOffsetsToTxnRequest;
use klamm_protocol::api::add_partitions_to_txn::{AddPartitionsToTxnRequest, AddPartitionsToTxnTopic};
use klamm_protocol::api::api_versions::ApiVersionsRequest;
use klamm_protocol::api::end_txn::EndTxnRequest;
use klamm_protocol::api::find_coordinator::FindCoordinatorRequest;
use klamm_protocol::api::init_producer_id::InitProducerIdRequest;
use klamm_protocol::api::txn_offset_commit::{
    TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use klamm_protocol::{ApiKey, ErrorCode, Request};

use super::accumulator::Accumulator;
use super::{lock, Shared};
use crate::client::ConnectionKind;
use crate::config::backoff;
use crate::consumer::TopicPartition;
use crate::error::{Error, ErrorKind, TransactionFailure};

/// The key type of a transaction coordinator in FindCoordinator.
const TRANSACTION_KEY: i8 = 1;

/// The highest AddPartitionsToTxn version a client sends (v4+ is for brokers).
const ADD_PARTITIONS_CLIENT_MAX: i16 = 3;

/// How long to wait before retrying CONCURRENT_TRANSACTIONS: the coordinator is still writing
/// the markers of the previous transaction, which takes milliseconds.
const CONCURRENT_BACKOFF: Duration = Duration::from_millis(20);

/// A consumer group member's identity, for
/// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction):
/// the group coordinator accepts the offsets only from the member that holds the partitions
/// now (KIP-447), so a zombie whose partitions moved on cannot commit.
///
/// A `GroupConsumer` of klamm-group hands out the current one with its `group_metadata()`.
///
/// ```
/// use klamm::ConsumerGroupMetadata;
///
/// let metadata = ConsumerGroupMetadata::new("copy-group")
///     .generation_id(7)
///     .member_id("member-1")
///     .group_instance_id(Some("copier-a".to_owned()));
/// assert_eq!(metadata.generation_id, 7);
/// // Only the group: the coordinator checks no membership (no fencing of zombies).
/// assert_eq!(ConsumerGroupMetadata::new("copy-group").generation_id, -1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation (classic protocol) or the member epoch (consumer protocol, KIP-848);
    /// -1 when unknown.
    pub generation_id: i32,
    /// The member id the coordinator gave the member; empty when unknown.
    pub member_id: String,
    /// The member's `group.instance.id` (static membership), if it has one.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// The metadata of a group alone: generation -1, no member id.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }

    /// Sets the generation or member epoch.
    pub fn generation_id(mut self, generation_id: i32) -> Self {
        self.generation_id = generation_id;
        self
    }

    /// Sets the member id.
    pub fn member_id(mut self, member_id: impl Into<String>) -> Self {
        self.member_id = member_id.into();
        self
    }

    /// Sets the group instance id.
    pub fn group_instance_id(mut self, group_instance_id: Option<String>) -> Self {
        self.group_instance_id = group_instance_id;
        self
    }
}

/// One offset for [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction):
/// the **next offset to consume** in a partition (after processing the record at offset 41,
/// 42), with the leader epoch of the last record processed (so that a consumer resuming from
/// it detects log truncation) and a metadata string, both optional.
///
/// Made from `(topic, partition, offset)` or `(TopicPartition, offset)`; klamm-group's
/// `GroupConsumer::transaction_offsets` makes them from what the member consumed.
///
/// ```
/// use klamm::{TopicPartition, TransactionOffset};
///
/// let a = TransactionOffset::from(("orders", 0, 42));
/// let b = TransactionOffset::from((TopicPartition::new("orders", 0), 42)).leader_epoch(Some(3));
/// assert_eq!((a.partition.clone(), a.offset), (b.partition.clone(), b.offset));
/// assert_eq!(b.leader_epoch, Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the last record processed, if known.
    pub leader_epoch: Option<i32>,
    /// A metadata string stored with the offset.
    pub metadata: Option<String>,
}

impl TransactionOffset {
    /// The next offset to consume in `partition` is `offset`.
    pub fn new(partition: TopicPartition, offset: i64) -> Self {
        Self { partition, offset, leader_epoch: None, metadata: None }
    }

    /// Sets the leader epoch of the last record processed.
    pub fn leader_epoch(mut self, leader_epoch: Option<i32>) -> Self {
        self.leader_epoch = leader_epoch;
        self
    }

    /// Sets the metadata string.
    pub fn metadata(mut self, metadata: Option<String>) -> Self {
        self.metadata = metadata;
        self
    }
}

impl<S: AsRef<str>> From<(S, i32, i64)> for TransactionOffset {
    fn from((topic, partition, offset): (S, i32, i64)) -> Self {
        Self::new(TopicPartition::new(topic.as_ref(), partition), offset)
    }
}

impl From<(TopicPartition, i64)> for TransactionOffset {
    fn from((partition, offset): (TopicPartition, i64)) -> Self {
        Self::new(partition, offset)
    }
}

/// Which transaction protocol the producer speaks with its coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnVersion {
    /// Partitions and offsets added explicitly; one epoch across transactions.
    V1,
    /// KIP-890: partitions and offsets added implicitly; an epoch bump per transaction.
    V2,
}

/// Where the producer is in its transaction life (see the module docs).
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    Uninitialized,
    Ready,
    InTransaction,
    Committing,
    Aborting,
    Fatal(Error),
}

/// A transactional producer's state.
#[derive(Debug)]
pub(crate) struct TxnProgress {
    pub(crate) phase: Phase,
    pub(crate) version: TxnVersion,
    /// Partitions added to the open transaction (v1).
    pub(crate) added: HashSet<(Arc<str>, i32)>,
    /// An AddPartitionsToTxn is under way (v1).
    pub(crate) adding: bool,
    /// Counts the transactions begun: an AddPartitionsToTxn that answers after its transaction
    /// ended must not add its partitions to the next one.
    pub(crate) number: u64,
    /// Something was written or added in the open transaction: ending it needs an EndTxn.
    pub(crate) touched: bool,
    /// The first error of the open transaction: it can only be aborted.
    pub(crate) error: Option<Error>,
    /// The transaction coordinator's node id, once found.
    pub(crate) coordinator: Option<i32>,
}

impl Default for TxnProgress {
    fn default() -> Self {
        Self {
            phase: Phase::Uninitialized,
            version: TxnVersion::V1,
            added: HashSet::new(),
            adding: false,
            number: 0,
            touched: false,
            error: None,
            coordinator: None,
        }
    }
}

impl TxnProgress {
    /// Whether `init_transactions` may run now.
    pub(crate) fn check_init(&self) -> Result<(), Error> {
        match &self.phase {
            Phase::Uninitialized => Ok(()),
            Phase::Fatal(e) => Err(e.clone()),
            _ => Err(misuse("init_transactions was already called")),
        }
    }

    /// `init_transactions` succeeded.
    pub(crate) fn initialized(&mut self, version: TxnVersion) {
        self.version = version;
        self.phase = Phase::Ready;
    }

    /// `begin_transaction`.
    pub(crate) fn begin(&mut self) -> Result<(), Error> {
        match &self.phase {
            Phase::Ready => {
                self.phase = Phase::InTransaction;
                self.number += 1;
                self.added.clear();
                self.touched = false;
                self.error = None;
                Ok(())
            }
            Phase::Uninitialized => Err(misuse("call init_transactions before begin_transaction")),
            Phase::Fatal(e) => Err(e.clone()),
            _ => Err(misuse("a transaction is already open")),
        }
    }

    /// Whether a record may be sent now: inside a transaction that has not failed.
    pub(crate) fn check_send(&self) -> Result<(), Error> {
        match &self.phase {
            Phase::InTransaction => match &self.error {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            },
            Phase::Fatal(e) => Err(e.clone()),
            Phase::Committing | Phase::Aborting => Err(misuse("the transaction is ending")),
            Phase::Uninitialized | Phase::Ready => Err(misuse(
                "a transactional producer sends only inside a transaction: call begin_transaction",
            )),
        }
    }

    /// `commit_transaction` starts: no more records. Again after a commit that timed out
    /// (its outcome unknown), which is then retried.
    pub(crate) fn start_commit(&mut self) -> Result<(), Error> {
        if !matches!(self.phase, Phase::Committing) {
            self.check_send()?;
        }
        self.phase = Phase::Committing;
        Ok(())
    }

    /// `abort_transaction` starts, from an open transaction, failed or not (or from a commit
    /// that failed half way).
    pub(crate) fn start_abort(&mut self) -> Result<(), Error> {
        match &self.phase {
            Phase::InTransaction | Phase::Committing | Phase::Aborting => {
                self.phase = Phase::Aborting;
                Ok(())
            }
            Phase::Fatal(e) => Err(e.clone()),
            Phase::Uninitialized | Phase::Ready => Err(misuse("no transaction is open")),
        }
    }

    /// The transaction ended (committed or aborted).
    pub(crate) fn finished(&mut self) {
        if !matches!(self.phase, Phase::Fatal(_)) {
            self.phase = Phase::Ready;
        }
        self.added.clear();
        // An AddPartitionsToTxn still under way belongs to the transaction that ended: its
        // answer is ignored (see `number`), and the next transaction sends its own.
        self.adding = false;
        self.touched = false;
        self.error = None;
    }

    /// A commit could not finish: the transaction stays open, failed with `error`, so that only
    /// abort (or, for a fatal error, nothing) remains.
    pub(crate) fn commit_failed(&mut self, error: &Error) {
        if matches!(self.phase, Phase::Committing) {
            self.phase = Phase::InTransaction;
        }
        self.fail(error);
    }

    /// Something of the open transaction failed with `error` (already classified by
    /// [`transaction_error`], or a plain error that makes the transaction abortable).
    pub(crate) fn fail(&mut self, error: &Error) {
        if matches!(self.phase, Phase::Fatal(_)) {
            return;
        }
        let error = match error.kind() {
            ErrorKind::Transaction(_) => error.clone(),
            _ => abortable(error.clone()),
        };
        if error.is_fatal() {
            self.phase = Phase::Fatal(error);
        } else if self.error.is_none() && !matches!(self.phase, Phase::Ready | Phase::Uninitialized) {
            self.error = Some(error);
        }
    }
}

/// An error that makes the open transaction abortable, caused by `cause`.
pub(crate) fn abortable(cause: Error) -> Error {
    Error::with_source(ErrorKind::Transaction(TransactionFailure::Abortable), None, cause)
}

/// The transaction error a broker error code means (the Java client's split): fencing codes
/// are [`TransactionFailure::Fenced`], codes no retry or abort can mend are
/// [`TransactionFailure::Fatal`], anything else makes the transaction abortable.
pub(crate) fn transaction_error(cause: Error) -> Error {
    let failure = match cause.code() {
        Some(
            ErrorCode::PRODUCER_FENCED
            | ErrorCode::INVALID_PRODUCER_EPOCH
            | ErrorCode::TRANSACTION_COORDINATOR_FENCED,
        ) => TransactionFailure::Fenced,
        Some(
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | ErrorCode::CLUSTER_AUTHORIZATION_FAILED
            | ErrorCode::INVALID_TXN_STATE
            | ErrorCode::INVALID_TRANSACTION_TIMEOUT
            | ErrorCode::UNSUPPORTED_VERSION
            | ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        ) => TransactionFailure::Fatal,
        _ if matches!(cause.kind(), ErrorKind::UnsupportedVersion { .. }) => TransactionFailure::Fatal,
        _ => TransactionFailure::Abortable,
    };
    Error::with_source(ErrorKind::Transaction(failure), None, cause)
}

fn misuse(what: &'static str) -> Error {
    Error::with_message(ErrorKind::User, what)
}

/// The broker's error `code` about `what`, as an error (`None` for no error).
fn coded(code: i16, what: &str) -> Option<Error> {
    crate::admin::broker_error(code, what, None)
}

/// Retries a request to the transaction coordinator until it is answered without a retriable
/// error or `deadline` passes. `answer` reads the response's error code.
async fn to_coordinator<R: Request>(
    shared: &Shared,
    what: &str,
    request: &R,
    max_version: i16,
    deadline: Instant,
    answer: impl Fn(&R::Response) -> i16,
) -> Result<(R::Response, i16), Error> {
    let config = &shared.config.client;
    let mut attempt = 0;
    loop {
        let outcome = async {
            let node = coordinator(shared).await?;
            let conn = shared.client.connection(node, ConnectionKind::Control).await?;
            let version = conn.version_for::<R>()?.min(max_version);
            let response = conn.send_at(version, request).await?;
            Ok::<_, Error>((response, version))
        }
        .await;
        let (wait, error) = match outcome {
            Ok((response, version)) => match coded(answer(&response), what) {
                None => return Ok((response, version)),
                Some(e) => match e.code() {
                    Some(ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE) => {
                        forget_coordinator(shared);
                        (backoff(config.retry_backoff, config.retry_backoff_max, attempt), e)
                    }
                    Some(ErrorCode::CONCURRENT_TRANSACTIONS) => (CONCURRENT_BACKOFF, e),
                    _ if e.is_retriable() => {
                        (backoff(config.retry_backoff, config.retry_backoff_max, attempt), e)
                    }
                    _ => return Err(e),
                },
            },
            Err(e) if e.is_retriable() => {
                forget_coordinator(shared);
                (backoff(config.retry_backoff, config.retry_backoff_max, attempt), e)
            }
            Err(e) => return Err(e),
        };
        attempt += 1;
        if Instant::now() + wait >= deadline {
            return Err(Error::with_source(
                ErrorKind::Timeout,
                None,
                GaveUp { what: what.to_owned(), cause: error },
            ));
        }
        tracing::debug!(what, error = %error, "retrying a request to the transaction coordinator");
        tokio::time::sleep(wait).await;
    }
}

fn forget_coordinator(shared: &Shared) {
    if let Some(txn) = lock(&shared.state).txn.as_mut() {
        txn.coordinator = None;
    }
}

/// The transaction coordinator of the producer's `transactional.id`, found once and kept
/// until it moves.
async fn coordinator(shared: &Shared) -> Result<i32, Error> {
    if let Some(node) = lock(&shared.state).txn.as_ref().and_then(|t| t.coordinator) {
        return Ok(node);
    }
    let id = transactional_id(shared);
    let conn = shared.client.any_connection(ConnectionKind::Control).await?;
    let version = conn.version_for::<FindCoordinatorRequest>()?;
    let what = format!("the coordinator of transactional id {id:?}");
    let node = if version >= 4 {
        let request = FindCoordinatorRequest {
            key_type: TRANSACTION_KEY,
            coordinator_keys: vec![id.to_owned()],
            ..Default::default()
        };
        let response = conn.send_at(version, &request).await?;
        let found = response.coordinators.into_iter().next().ok_or_else(|| crate::admin::missing(&what))?;
        if let Some(e) = crate::admin::broker_error(found.error_code, &what, found.error_message) {
            return Err(e);
        }
        found.node_id
    } else {
        let request =
            FindCoordinatorRequest { key: id.to_owned(), key_type: TRANSACTION_KEY, ..Default::default() };
        let response = conn.send_at(version, &request).await?;
        if let Some(e) = crate::admin::broker_error(response.error_code, &what, response.error_message) {
            return Err(e);
        }
        response.node_id
    };
    if shared.client.metadata().broker(node).is_none() {
        shared.client.refresh_metadata(&[]).await?;
    }
    if let Some(txn) = lock(&shared.state).txn.as_mut() {
        txn.coordinator = Some(node);
    }
    Ok(node)
}

fn transactional_id(shared: &Shared) -> &str {
    shared.config.transactional_id.as_deref().unwrap_or_default()
}

fn timeout_ms(shared: &Shared) -> i32 {
    i32::try_from(shared.config.transaction_timeout.as_millis()).unwrap_or(i32::MAX)
}

/// Which transaction version the coordinator offers: v2 when the cluster's finalized
/// `transaction.version` is 2 or more and the broker has EndTxn v5 and Produce v12.
async fn negotiate_version(shared: &Shared) -> Result<TxnVersion, Error> {
    let node = coordinator(shared).await?;
    let conn = shared.client.connection(node, ConnectionKind::Control).await?;
    // A v3+ request without a software name and version is refused as invalid.
    let request = ApiVersionsRequest {
        client_software_name: "klamm".to_owned(),
        client_software_version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    };
    let versions = conn.send(&request).await?;
    if let Some(e) = coded(versions.error_code, "ApiVersions") {
        return Err(e);
    }
    let feature = versions
        .finalized_features
        .iter()
        .find(|f| f.name == "transaction.version")
        .map_or(0, |f| f.max_version_level);
    let has = |key: ApiKey, v: i16| conn.broker_versions(key).is_some_and(|(_, max)| max >= v);
    let v2 = feature >= 2
        && has(ApiKey::END_TXN, 5)
        && has(ApiKey::PRODUCE, 12)
        && has(ApiKey::TXN_OFFSET_COMMIT, 5)
        && conn.version_for::<EndTxnRequest>()? >= 5;
    Ok(if v2 { TxnVersion::V2 } else { TxnVersion::V1 })
}

/// Gives the producer a new id or epoch: every partition starts again at sequence 0. Called
/// only when no batch is queued or in flight (between transactions).
fn install_producer(state: &mut Accumulator, producer: (i64, i16)) {
    state.producer = Some(producer);
    for topic in state.topics.values_mut() {
        for queue in &mut topic.partitions {
            queue.producer = None;
            queue.next_sequence = 0;
            queue.confirmed = false;
            queue.needs_bump = false;
        }
    }
}

/// InitProducerId for the `transactional.id`: the first (`current` None) fences older
/// producers and aborts their open transaction; with the current id and epoch it bumps the
/// epoch (KIP-360).
async fn init_producer_id(
    shared: &Shared,
    current: Option<(i64, i16)>,
    deadline: Instant,
) -> Result<(), Error> {
    let (producer_id, producer_epoch) = current.unwrap_or((-1, -1));
    let request = InitProducerIdRequest {
        transactional_id: Some(transactional_id(shared).to_owned()),
        transaction_timeout_ms: timeout_ms(shared),
        producer_id,
        producer_epoch,
        ..Default::default()
    };
    let (response, _) =
        to_coordinator(shared, "InitProducerId", &request, i16::MAX, deadline, |r| r.error_code).await?;
    tracing::debug!(
        producer_id = response.producer_id,
        epoch = response.producer_epoch,
        "transactional producer id"
    );
    install_producer(&mut lock(&shared.state), (response.producer_id, response.producer_epoch));
    Ok(())
}

/// `init_transactions`.
pub(super) async fn init(shared: &Shared) -> Result<(), Error> {
    with_txn(shared, |t| t.check_init())?;
    let deadline = Instant::now() + shared.config.max_block;
    let result = async {
        init_producer_id(shared, None, deadline).await?;
        negotiate_version(shared).await
    }
    .await;
    match result {
        Ok(version) => {
            tracing::info!(transactional_id = transactional_id(shared), ?version, "transactions initialised");
            with_txn(shared, |t| {
                t.initialized(version);
                Ok(())
            })
        }
        Err(e) => {
            let e = classify_unless_retriable(e);
            if e.is_fatal() {
                with_txn(shared, |t| {
                    t.fail(&e);
                    Ok(())
                })?;
            }
            Err(e)
        }
    }
}

/// A broker error that retrying cannot mend becomes a transaction error; the rest (timeouts,
/// connection errors) stay what they are, for the caller to retry.
fn classify_unless_retriable(e: Error) -> Error {
    if e.is_retriable() || matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Transaction(_)) {
        e
    } else {
        transaction_error(e)
    }
}

/// Runs `f` on the transaction state under the accumulator lock.
pub(super) fn with_txn<T>(
    shared: &Shared,
    f: impl FnOnce(&mut TxnProgress) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut state = lock(&shared.state);
    match state.txn.as_mut() {
        Some(txn) => f(txn),
        None => Err(misuse("the producer has no transactional.id")),
    }
}

/// `send_offsets_to_transaction`.
pub(super) async fn send_offsets(
    shared: &Shared,
    offsets: Vec<TransactionOffset>,
    group: &ConsumerGroupMetadata,
) -> Result<(), Error> {
    let version = with_txn(shared, |t| {
        t.check_send()?;
        t.touched = true;
        Ok(t.version)
    })?;
    let result = async {
        let deadline = Instant::now() + shared.config.max_block;
        let (producer_id, producer_epoch) = lock(&shared.state).producer.unwrap_or((-1, -1));
        let id = transactional_id(shared).to_owned();
        if version == TxnVersion::V1 {
            let request = AddOffsetsToTxnRequest {
                transactional_id: id.clone(),
                producer_id,
                producer_epoch,
                group_id: group.group_id.clone(),
                ..Default::default()
            };
            to_coordinator(shared, "AddOffsetsToTxn", &request, i16::MAX, deadline, |r| r.error_code).await?;
        }
        let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
        for o in offsets {
            let p = TxnOffsetCommitRequestPartition {
                partition_index: o.partition.partition,
                committed_offset: o.offset,
                committed_leader_epoch: o.leader_epoch.unwrap_or(-1),
                committed_metadata: o.metadata,
                ..Default::default()
            };
            match topics.iter_mut().find(|t| *t.name == *o.partition.topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(TxnOffsetCommitRequestTopic {
                    name: o.partition.topic.to_string(),
                    partitions: vec![p],
                    ..Default::default()
                }),
            }
        }
        let request = TxnOffsetCommitRequest {
            transactional_id: id,
            group_id: group.group_id.clone(),
            producer_id,
            producer_epoch,
            generation_id: group.generation_id,
            member_id: group.member_id.clone(),
            group_instance_id: group.group_instance_id.clone(),
            topics,
            ..Default::default()
        };
        commit_offsets(shared, &request, version, deadline).await
    }
    .await;
    if let Err(e) = &result {
        let e = transaction_error_of(e);
        with_txn(shared, |t| {
            t.fail(&e);
            Ok(())
        })?;
        return Err(e);
    }
    result
}

/// The transaction error that `e` makes of the open transaction.
pub(crate) fn transaction_error_of(e: &Error) -> Error {
    match e.kind() {
        ErrorKind::Transaction(_) => e.clone(),
        ErrorKind::Broker(_) => transaction_error(e.clone()),
        _ => abortable(e.clone()),
    }
}

/// TxnOffsetCommit to the group coordinator, retried on coordinator moves and loads.
async fn commit_offsets(
    shared: &Shared,
    request: &TxnOffsetCommitRequest,
    version: TxnVersion,
    deadline: Instant,
) -> Result<(), Error> {
    let config = &shared.config.client;
    let max = if version == TxnVersion::V2 { i16::MAX } else { 4 };
    let what = format!("TxnOffsetCommit for group {:?}", request.group_id);
    let mut attempt = 0;
    loop {
        let outcome = async {
            let node = shared.client.group_coordinator(&request.group_id).await?;
            let conn = shared.client.connection(node, ConnectionKind::Control).await?;
            let v = conn.version_for::<TxnOffsetCommitRequest>()?.min(max);
            conn.send_at(v, request).await
        }
        .await;
        let error = match outcome {
            Ok(response) => {
                let code = response
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .map(|p| p.error_code)
                    .find(|c| *c != 0);
                match code.and_then(|c| coded(c, &what)) {
                    None => return Ok(()),
                    Some(e) if e.is_retriable() || e.code() == Some(ErrorCode::CONCURRENT_TRANSACTIONS) => e,
                    Some(e) => return Err(e),
                }
            }
            Err(e) if e.is_retriable() => e,
            Err(e) => return Err(e),
        };
        let wait = backoff(config.retry_backoff, config.retry_backoff_max, attempt);
        attempt += 1;
        if Instant::now() + wait >= deadline {
            return Err(Error::with_source(ErrorKind::Timeout, None, GaveUp { what, cause: error }));
        }
        tokio::time::sleep(wait).await;
    }
}

/// `commit_transaction` (`commit`) or `abort_transaction`.
pub(super) async fn end(shared: &Arc<Shared>, commit: bool) -> Result<(), Error> {
    if commit {
        with_txn(shared, TxnProgress::start_commit)?;
        // Every record of the transaction must be written before the coordinator writes the
        // commit markers.
        let pending = super::flush(shared, shared.config.delivery_timeout).await;
        let failed = with_txn(shared, |t| Ok(t.error.clone()))?;
        let failed = failed.or_else(|| {
            (pending > 0).then(|| abortable(Error::with_message(ErrorKind::Timeout, format!("{pending} records of the transaction were not acknowledged within delivery.timeout.ms"))))
        });
        if let Some(e) = failed {
            with_txn(shared, |t| {
                t.commit_failed(&e);
                Ok(())
            })?;
            return Err(with_txn(shared, |t| Ok(t.error.clone()))?.unwrap_or(e));
        }
    } else {
        with_txn(shared, TxnProgress::start_abort)?;
        // Records not sent yet are dropped; those in flight are waited for, so that no write
        // of this transaction lands after its abort marker.
        super::sender::discard_unsent(
            shared,
            abortable(Error::with_message(ErrorKind::User, "the transaction was aborted")),
        );
        let _ = super::flush(shared, shared.config.delivery_timeout).await;
    }
    let (touched, version) = with_txn(shared, |t| Ok((t.touched, t.version)))?;
    let deadline = Instant::now() + shared.config.max_block;
    let result = async {
        if touched {
            let (producer_id, producer_epoch) = lock(&shared.state).producer.unwrap_or((-1, -1));
            let request = EndTxnRequest {
                transactional_id: transactional_id(shared).to_owned(),
                producer_id,
                producer_epoch,
                committed: commit,
                ..Default::default()
            };
            let max = if version == TxnVersion::V2 { i16::MAX } else { 4 };
            let what = if commit { "EndTxn (commit)" } else { "EndTxn (abort)" };
            let (response, used) =
                to_coordinator(shared, what, &request, max, deadline, |r| r.error_code).await?;
            if version == TxnVersion::V2
                && used >= 5
                && response.producer_id >= 0
                && response.producer_epoch >= 0
            {
                install_producer(&mut lock(&shared.state), (response.producer_id, response.producer_epoch));
            }
        }
        if !commit && version == TxnVersion::V1 {
            // Batches dropped from the aborted transaction took sequence numbers the broker
            // never saw: a new epoch starts every partition again at 0.
            let current = lock(&shared.state).producer;
            init_producer_id(shared, current, deadline).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    match result {
        Ok(()) => with_txn(shared, |t| {
            t.finished();
            Ok(())
        }),
        Err(e) => {
            let e = classify_unless_retriable(e);
            with_txn(shared, |t| {
                if commit && e.is_retriable() {
                    // The commit may or may not have happened: the transaction stays
                    // committing, for `commit_transaction` to be called again.
                } else if commit {
                    t.commit_failed(&e);
                } else {
                    t.fail(&e);
                }
                Ok(())
            })?;
            Err(e)
        }
    }
}

/// The partitions the sender waits to add (v1), sent in one AddPartitionsToTxn in the
/// background. On success they join the transaction; a retriable error is tried again after a
/// backoff; anything else fails the transaction (the partitions' batches then wait for abort).
pub(super) fn start_add(
    shared: &Arc<Shared>,
    partitions: Vec<(Arc<str>, i32)>,
    done: impl FnOnce() + Send + 'static,
) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let ((producer_id, producer_epoch), number) = {
            let state = lock(&shared.state);
            (state.producer.unwrap_or((-1, -1)), state.txn.as_ref().map_or(0, |t| t.number))
        };
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (topic, partition) in &partitions {
            match topics.iter_mut().find(|t| *t.name == **topic) {
                Some(t) => t.partitions.push(*partition),
                None => topics.push(AddPartitionsToTxnTopic {
                    name: topic.to_string(),
                    partitions: vec![*partition],
                    ..Default::default()
                }),
            }
        }
        let request = AddPartitionsToTxnRequest {
            transactional_id: transactional_id(&shared).to_owned(),
            producer_id,
            producer_epoch,
            topics,
            ..Default::default()
        };
        let deadline = Instant::now() + shared.config.max_block;
        let result = to_coordinator(
            &shared,
            "AddPartitionsToTxn",
            &request,
            ADD_PARTITIONS_CLIENT_MAX,
            deadline,
            |r| {
                r.results_by_topic
                    .iter()
                    .flat_map(|t| t.results_by_partition.iter())
                    .map(|p| p.partition_error_code)
                    // OPERATION_NOT_ATTEMPTED only says another partition failed.
                    .filter(|c| *c != ErrorCode::OPERATION_NOT_ATTEMPTED.0)
                    .find(|c| *c != 0)
                    .unwrap_or(0)
            },
        )
        .await;
        {
            let mut state = lock(&shared.state);
            if let Some(txn) = state.txn.as_mut().filter(|t| t.number == number) {
                txn.adding = false;
                match result {
                    Ok(_) => {
                        txn.added.extend(partitions);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::Timeout) => {
                        txn.fail(&e);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "AddPartitionsToTxn failed");
                        txn.fail(&transaction_error_of(&e));
                    }
                }
            }
        }
        done();
    });
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: gave up retrying: {cause}")]
struct GaveUp {
    what: String,
    cause: Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(code: ErrorCode) -> Error {
        Error::new(ErrorKind::Broker(code))
    }

    #[test]
    fn a_transaction_goes_round_the_states() {
        let mut t = TxnProgress::default();
        assert!(t.begin().unwrap_err().is_user_error(), "begin before init");
        assert!(t.check_send().unwrap_err().is_user_error());
        t.check_init().unwrap();
        t.initialized(TxnVersion::V1);
        assert!(t.check_init().is_err(), "init twice");
        assert!(t.check_send().is_err(), "send outside a transaction");
        t.begin().unwrap();
        assert!(t.begin().is_err(), "begin inside a transaction");
        t.check_send().unwrap();
        t.start_commit().unwrap();
        assert!(t.check_send().is_err(), "send while committing");
        t.finished();
        t.begin().unwrap();
        t.start_abort().unwrap();
        t.finished();
        t.begin().unwrap();
        t.start_commit().unwrap();
        // A commit that timed out is retried.
        t.start_commit().unwrap();
        t.finished();
        assert!(t.start_abort().is_err(), "abort without a transaction");
        assert!(t.start_commit().is_err(), "commit without a transaction");
    }

    #[test]
    fn an_abortable_error_allows_only_abort() {
        let mut t = TxnProgress::default();
        t.initialized(TxnVersion::V2);
        t.begin().unwrap();
        t.fail(&broker(ErrorCode::TOPIC_AUTHORIZATION_FAILED));
        let e = t.check_send().unwrap_err();
        assert!(e.is_abortable(), "{e}");
        assert!(t.start_commit().unwrap_err().is_abortable());
        t.start_abort().unwrap();
        t.finished();
        t.begin().unwrap();
        t.check_send().unwrap();
    }

    #[test]
    fn fencing_is_fatal_for_good() {
        let mut t = TxnProgress::default();
        t.initialized(TxnVersion::V1);
        t.begin().unwrap();
        t.fail(&transaction_error(broker(ErrorCode::PRODUCER_FENCED)));
        for e in [t.check_send().unwrap_err(), t.start_commit().unwrap_err(), t.start_abort().unwrap_err()] {
            assert!(e.is_fenced() && e.is_fatal() && !e.is_abortable(), "{e}");
        }
        t.finished();
        assert!(t.begin().unwrap_err().is_fatal());
    }

    #[test]
    fn error_codes_split_as_the_java_client_does() {
        let kind = |code| transaction_error(broker(code)).kind().clone();
        let fenced = ErrorKind::Transaction(TransactionFailure::Fenced);
        let fatal = ErrorKind::Transaction(TransactionFailure::Fatal);
        let abortable = ErrorKind::Transaction(TransactionFailure::Abortable);
        assert_eq!(kind(ErrorCode::PRODUCER_FENCED), fenced);
        assert_eq!(kind(ErrorCode::INVALID_PRODUCER_EPOCH), fenced);
        assert_eq!(kind(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED), fatal);
        assert_eq!(kind(ErrorCode::INVALID_TXN_STATE), fatal);
        assert_eq!(kind(ErrorCode::TRANSACTION_ABORTABLE), abortable);
        assert_eq!(kind(ErrorCode::UNKNOWN_MEMBER_ID), abortable);
        assert_eq!(kind(ErrorCode::ILLEGAL_GENERATION), abortable);
        assert_eq!(kind(ErrorCode::FENCED_INSTANCE_ID), abortable);
        assert_eq!(kind(ErrorCode::GROUP_AUTHORIZATION_FAILED), abortable);
    }
}
