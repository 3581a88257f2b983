//! The transaction admin operations (KIP-664), for finding and inspecting hanging
//! transactions: [`Admin::list_transactions`] (ListTransactions to every broker, merged),
//! [`Admin::describe_transactions`] (FindCoordinator with key type 1, then DescribeTransactions
//! to each transaction coordinator) and [`Admin::describe_producers`] (DescribeProducers to each
//! partition's leader).
//!
//! A hanging transaction is one whose producer went away without committing or aborting, and
//! whose coordinator has not aborted it yet (it does at `transaction.timeout.ms`) or never will
//! (a lost marker). It shows as `Ongoing` in the listing, with a start time far in the past in
//! its description, and as an active producer with a transaction start offset in the partitions
//! it wrote to: that offset holds back the last stable offset, so `read_committed` consumers
//! stop there.
//!
//! Coordinator errors (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
//! COORDINATOR_LOAD_IN_PROGRESS) and lost connections send a transactional id back to
//! FindCoordinator, at most [`COORDINATOR_ATTEMPTS`](crate::COORDINATOR_ATTEMPTS) times and never past the operation timeout.
//! DescribeProducers is retried per partition as the other leader-routed operations are (see
//! `admin_offsets.rs`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use klamm_protocol::api::describe_producers::{DescribeProducersRequest, DescribeProducersTopic};
use klamm_protocol::api::describe_transactions::{DescribeTransactionsRequest, DescribedTransaction};
use klamm_protocol::api::list_transactions::ListTransactionsRequest;
use tracing::Instrument;

use crate::admin::{broker_error, user_error, Admin};
use crate::admin_offsets::{partition_what, Item, PartitionResults};
use crate::client::{ConnectionKind, CoordinatorKey};
use crate::connection::Connection;
use crate::error::Error;

/// The state of a transactional id at its coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TransactionState {
    /// No transaction open (the id is initialised, or the last one completed long ago).
    Empty,
    /// A transaction is open: partitions or offsets were added and it is not ending yet.
    Ongoing,
    /// The producer asked to commit; markers are being written.
    PrepareCommit,
    /// The producer (or the coordinator, on timeout) asked to abort; markers are being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
    /// The id expired and is being removed.
    Dead,
    /// The coordinator is fencing the producer's epoch before it aborts the open transaction.
    PrepareEpochFence,
    /// A state this client does not know, as the broker named it.
    Other(String),
}

impl TransactionState {
    /// The state's name as the protocol spells it (`Ongoing`, `CompleteCommit`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
            TransactionState::Dead => "Dead",
            TransactionState::PrepareEpochFence => "PrepareEpochFence",
            TransactionState::Other(name) => name,
        }
    }

    /// The state named `name`; a name this client does not know is [`TransactionState::Other`].
    pub fn parse(name: &str) -> TransactionState {
        match name {
            "Empty" => TransactionState::Empty,
            "Ongoing" => TransactionState::Ongoing,
            "PrepareCommit" => TransactionState::PrepareCommit,
            "PrepareAbort" => TransactionState::PrepareAbort,
            "CompleteCommit" => TransactionState::CompleteCommit,
            "CompleteAbort" => TransactionState::CompleteAbort,
            "Dead" => TransactionState::Dead,
            "PrepareEpochFence" => TransactionState::PrepareEpochFence,
            other => TransactionState::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for TransactionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which transactions [`Admin::list_transactions_with`] lists. The default lists all of them;
/// each filter set narrows the listing, and a transaction must pass every filter set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListTransactionsOptions {
    /// Only transactions in one of these states; empty for any state.
    pub states: Vec<TransactionState>,
    /// Only transactions of one of these producer ids; empty for any.
    pub producer_ids: Vec<i64>,
    /// Only transactions that have been open longer than this (ListTransactions v1+, Kafka
    /// 3.8+); `None` for any.
    pub open_longer_than: Option<Duration>,
    /// Only transactional ids matching this regular expression (Java's syntax; ListTransactions
    /// v2+, Kafka 4.1+); `None` for any.
    pub transactional_id_pattern: Option<String>,
}

impl ListTransactionsOptions {
    /// Sets [`ListTransactionsOptions::states`].
    pub fn states(mut self, states: impl IntoIterator<Item = TransactionState>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// Sets [`ListTransactionsOptions::producer_ids`].
    pub fn producer_ids(mut self, producer_ids: impl IntoIterator<Item = i64>) -> Self {
        self.producer_ids = producer_ids.into_iter().collect();
        self
    }

    /// Sets [`ListTransactionsOptions::open_longer_than`].
    pub fn open_longer_than(mut self, duration: Duration) -> Self {
        self.open_longer_than = Some(duration);
        self
    }

    /// Sets [`ListTransactionsOptions::transactional_id_pattern`].
    pub fn transactional_id_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.transactional_id_pattern = Some(pattern.into());
        self
    }

    /// The request for a broker that speaks ListTransactions `version`, or why it cannot carry
    /// these filters.
    fn request(&self, version: i16) -> Result<ListTransactionsRequest, Error> {
        let mut request = ListTransactionsRequest {
            state_filters: self.states.iter().map(|s| s.as_str().to_owned()).collect(),
            producer_id_filters: self.producer_ids.clone(),
            ..Default::default()
        };
        if let Some(duration) = self.open_longer_than {
            if version < 1 {
                return Err(user_error("the duration filter needs ListTransactions v1 (Kafka 3.8)"));
            }
            request.duration_filter = duration.as_millis().min(i64::MAX as u128) as i64;
        }
        if let Some(pattern) = &self.transactional_id_pattern {
            if version < 2 {
                return Err(user_error("the transactional id pattern needs ListTransactions v2 (Kafka 4.1)"));
            }
            request.transactional_id_pattern = Some(pattern.clone());
        }
        Ok(request)
    }
}

/// One transaction as [`Admin::list_transactions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id the id is bound to.
    pub producer_id: i64,
    /// The state.
    pub state: TransactionState,
    /// The node id of its transaction coordinator (the broker that listed it).
    pub coordinator: i32,
}

/// A transactional id as [`Admin::describe_transactions`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The node id of its transaction coordinator.
    pub coordinator: i32,
    /// The state.
    pub state: TransactionState,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The transaction timeout the producer registered (`transaction.timeout.ms`).
    pub timeout: Duration,
    /// When the open transaction started, in milliseconds since the Unix epoch; `None` when no
    /// transaction is open.
    pub start_time_ms: Option<i64>,
    /// The partitions in the open transaction, as `(topic, partition)`, sorted. While it
    /// commits or aborts, only those still without a marker.
    pub partitions: Vec<(String, i32)>,
}

/// What a partition leader knows about one producer ([`Admin::describe_producers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActiveProducer {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i32,
    /// The last sequence number it wrote to the partition, if any.
    pub last_sequence: Option<i32>,
    /// The timestamp of its last write, in milliseconds since the Unix epoch, if any.
    pub last_timestamp: Option<i64>,
    /// The epoch of the transaction coordinator that last wrote a marker for it, if any.
    pub coordinator_epoch: Option<i32>,
    /// The first offset of its open transaction in this partition; `None` when it has none.
    pub current_transaction_start_offset: Option<i64>,
}

impl Admin {
    /// Lists every transaction of the cluster; see [`Admin::list_transactions_with`].
    pub async fn list_transactions(&self) -> Result<Vec<TransactionListing>, Error> {
        self.list_transactions_with(&ListTransactionsOptions::default()).await
    }

    /// Lists the transactions of the cluster that pass `options`' filters: asks every broker
    /// for the transactional ids it coordinates and merges the answers, sorted by id.
    ///
    /// Fails when a broker cannot be asked (after retries), since the list would be missing
    /// that broker's transactions, and with [`ErrorKind::User`](crate::ErrorKind::User) when a
    /// broker's ListTransactions version cannot carry a filter that is set.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use klamm::{ListTransactionsOptions, TransactionState};
    ///
    /// # async fn example(admin: klamm::Admin) -> Result<(), klamm::Error> {
    /// // Transactions open for more than 15 minutes: probably hanging.
    /// let options = ListTransactionsOptions::default()
    ///     .states([TransactionState::Ongoing])
    ///     .open_longer_than(Duration::from_secs(15 * 60));
    /// for t in admin.list_transactions_with(&options).await? {
    ///     println!("{} (producer {}) on broker {}", t.transactional_id, t.producer_id, t.coordinator);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_transactions_with(
        &self,
        options: &ListTransactionsOptions,
    ) -> Result<Vec<TransactionListing>, Error> {
        let span = tracing::debug_span!(
            "klamm.admin.list_transactions",
            states = options.states.len(),
            producer_ids = options.producer_ids.len(),
            open_longer_than_ms = options.open_longer_than.map(|d| d.as_millis() as u64),
        );
        async {
            let deadline = Instant::now() + self.timeout;
            let answers = self
                .ask_every_broker(deadline, |node| async move {
                    let conn = self.client.connection(node, ConnectionKind::Control).await?;
                    let version = conn.version_for::<ListTransactionsRequest>()?;
                    let request = options.request(version)?;
                    let response = conn.send_at(version, &request).await?;
                    let what = format!("ListTransactions on broker {node}");
                    match broker_error(response.error_code, &what, None) {
                        Some(e) => Err(e),
                        None => Ok(response),
                    }
                })
                .await?;
            let mut listed = BTreeMap::new();
            for (node, response) in answers {
                if !response.unknown_state_filters.is_empty() {
                    tracing::warn!(
                        broker = node,
                        unknown = ?response.unknown_state_filters,
                        "the broker does not know some transaction states it was asked to filter by"
                    );
                }
                for t in response.transaction_states {
                    let listing = TransactionListing {
                        state: TransactionState::parse(&t.transaction_state),
                        producer_id: t.producer_id,
                        coordinator: node,
                        transactional_id: t.transactional_id,
                    };
                    listed.insert(listing.transactional_id.clone(), listing);
                }
            }
            Ok(listed.into_values().collect())
        }
        .instrument(span)
        .await
    }

    /// Describes transactional ids: state, producer id and epoch, timeout, when the open
    /// transaction started and its partitions. One result per id in the order given; an id the
    /// coordinator does not know fails with TRANSACTIONAL_ID_NOT_FOUND.
    ///
    /// The ids sharing a coordinator go in one request, found with one batched FindCoordinator
    /// where the broker has v4+.
    ///
    /// ```no_run
    /// # async fn example(admin: klamm::Admin) -> Result<(), klamm::Error> {
    /// let described = admin.describe_transactions(&["payments-0"]).await;
    /// let t = described[0].1.as_ref().map_err(Clone::clone)?;
    /// println!("{} since {:?}, partitions {:?}", t.state, t.start_time_ms, t.partitions);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_transactions(
        &self,
        transactional_ids: &[&str],
    ) -> Vec<(String, Result<TransactionDescription, Error>)> {
        let span = tracing::debug_span!("klamm.admin.describe_transactions", ids = transactional_ids.len());
        async {
            let deadline = Instant::now() + self.timeout;
            let kind = CoordinatorKey::Transaction;
            self.by_coordinator(
                kind,
                transactional_ids,
                "transactional id",
                deadline,
                |node, ids| async move {
                    let request =
                        DescribeTransactionsRequest { transactional_ids: ids, ..Default::default() };
                    let response = self.client.send_to(node, ConnectionKind::Control, &request).await?;
                    Ok(response
                        .transaction_states
                        .into_iter()
                        .map(|described| {
                            (described.transactional_id.clone(), transaction_description(described, node))
                        })
                        .collect())
                },
            )
            .await
        }
        .instrument(span)
        .await
    }

    /// Describes the producers each partition's leader holds state for: producer id and epoch,
    /// last sequence and timestamp, and the start offset of an open transaction. Each request
    /// goes to the partition's leader. One result per partition in the order given.
    ///
    /// ```no_run
    /// # async fn example(admin: klamm::Admin) -> Result<(), klamm::Error> {
    /// for ((topic, partition), producers) in admin.describe_producers(&[("payments", 0)]).await {
    ///     for p in producers? {
    ///         if let Some(offset) = p.current_transaction_start_offset {
    ///             println!("{topic}-{partition}: producer {} holds a transaction from {offset}", p.producer_id);
    ///         }
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_producers(
        &self,
        partitions: &[(&str, i32)],
    ) -> PartitionResults<Vec<ActiveProducer>> {
        let span = tracing::debug_span!("klamm.admin.describe_producers", partitions = partitions.len());
        let items = partitions.iter().map(|(t, p)| ((*t).to_owned(), *p, ())).collect();
        self.by_leader(items, |conn: Connection, batch: Vec<Item<()>>, _timeout_ms| async move {
            let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            let mut index = HashMap::new();
            for item in batch {
                topics.entry(item.topic.clone()).or_default().push(item.partition);
                index.insert((item.topic, item.partition), item.index);
            }
            let request = DescribeProducersRequest {
                topics: topics
                    .into_iter()
                    .map(|(name, partition_indexes)| DescribeProducersTopic {
                        name,
                        partition_indexes,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            let response = conn.send(&request).await?;
            let mut outcomes = Vec::new();
            for topic in response.topics {
                for p in topic.partitions {
                    let Some(i) = index.remove(&(topic.name.clone(), p.partition_index)) else { continue };
                    let what = partition_what(&topic.name, p.partition_index);
                    let result = match broker_error(p.error_code, &what, p.error_message) {
                        Some(e) => Err(e),
                        None => Ok(p.active_producers.into_iter().map(active_producer).collect()),
                    };
                    outcomes.push((i, result));
                }
            }
            Ok(outcomes)
        })
        .instrument(span)
        .await
    }
}

/// A DescribeTransactions entry as a description, or its error.
fn transaction_description(
    t: DescribedTransaction,
    coordinator: i32,
) -> Result<TransactionDescription, Error> {
    let what = format!("transactional id {:?}", t.transactional_id);
    if let Some(e) = broker_error(t.error_code, &what, None) {
        return Err(e);
    }
    let mut partitions: Vec<(String, i32)> = t
        .topics
        .into_iter()
        .flat_map(|topic| {
            let name = topic.topic;
            topic.partitions.into_iter().map(move |p| (name.clone(), p))
        })
        .collect();
    partitions.sort();
    Ok(TransactionDescription {
        transactional_id: t.transactional_id,
        coordinator,
        state: TransactionState::parse(&t.transaction_state),
        producer_id: t.producer_id,
        producer_epoch: t.producer_epoch,
        timeout: Duration::from_millis(u64::try_from(t.transaction_timeout_ms).unwrap_or(0)),
        start_time_ms: Some(t.transaction_start_time_ms).filter(|ms| *ms >= 0),
        partitions,
    })
}

/// A DescribeProducers entry, with the protocol's -1 for "none" as `None`.
fn active_producer(p: klamm_protocol::api::describe_producers::ProducerState) -> ActiveProducer {
    ActiveProducer {
        producer_id: p.producer_id,
        producer_epoch: p.producer_epoch,
        last_sequence: Some(p.last_sequence).filter(|s| *s >= 0),
        last_timestamp: Some(p.last_timestamp).filter(|t| *t >= 0),
        coordinator_epoch: Some(p.coordinator_epoch).filter(|e| *e >= 0),
        current_transaction_start_offset: Some(p.current_txn_start_offset).filter(|o| *o >= 0),
    }
}

#[cfg(test)]
mod tests {
    use klamm_protocol::api::describe_producers::ProducerState;
    use klamm_protocol::api::describe_transactions::TransactionTopic;
    use klamm_protocol::ErrorCode;

    use super::*;

    #[test]
    fn states_parse_and_print_as_the_protocol_spells_them() {
        for name in [
            "Empty",
            "Ongoing",
            "PrepareCommit",
            "PrepareAbort",
            "CompleteCommit",
            "CompleteAbort",
            "Dead",
            "PrepareEpochFence",
        ] {
            let state = TransactionState::parse(name);
            assert!(!matches!(state, TransactionState::Other(_)), "{name}");
            assert_eq!(state.to_string(), name);
        }
        assert_eq!(TransactionState::parse("Later"), TransactionState::Other("Later".into()));
        assert_eq!(TransactionState::parse("Later").as_str(), "Later");
    }

    #[test]
    fn filters_need_the_versions_that_carry_them() {
        let all = ListTransactionsOptions::default();
        assert_eq!(all.request(0).unwrap(), ListTransactionsRequest::default());

        let options = ListTransactionsOptions::default()
            .states([TransactionState::Ongoing])
            .producer_ids([7])
            .open_longer_than(Duration::from_secs(2));
        let e = options.request(0).unwrap_err();
        assert!(matches!(e.kind(), crate::ErrorKind::User), "{e:?}");
        assert!(!e.is_retriable());
        let request = options.request(1).unwrap();
        assert_eq!(request.state_filters, ["Ongoing"]);
        assert_eq!(request.producer_id_filters, [7]);
        assert_eq!(request.duration_filter, 2000);

        let options = ListTransactionsOptions::default().transactional_id_pattern("pay-.*");
        assert!(options.request(1).is_err());
        assert_eq!(options.request(2).unwrap().transactional_id_pattern.as_deref(), Some("pay-.*"));
    }

    #[test]
    fn descriptions_sort_partitions_and_map_absent_values() {
        let described = DescribedTransaction {
            transactional_id: "tx".into(),
            transaction_state: "Ongoing".into(),
            transaction_timeout_ms: 60_000,
            transaction_start_time_ms: 1_700_000_000_000,
            producer_id: 4,
            producer_epoch: 2,
            topics: vec![
                TransactionTopic { topic: "b".into(), partitions: vec![1, 0], ..Default::default() },
                TransactionTopic { topic: "a".into(), partitions: vec![3], ..Default::default() },
            ],
            ..Default::default()
        };
        let d = transaction_description(described, 1).unwrap();
        assert_eq!(d.state, TransactionState::Ongoing);
        assert_eq!(d.timeout, Duration::from_secs(60));
        assert_eq!(d.start_time_ms, Some(1_700_000_000_000));
        assert_eq!(d.partitions, [("a".into(), 3), ("b".into(), 0), ("b".into(), 1)]);

        let empty = DescribedTransaction {
            transaction_state: "Empty".into(),
            transaction_start_time_ms: -1,
            ..Default::default()
        };
        assert_eq!(transaction_description(empty, 1).unwrap().start_time_ms, None);

        let unknown = DescribedTransaction {
            error_code: ErrorCode::TRANSACTIONAL_ID_NOT_FOUND.0,
            transactional_id: "gone".into(),
            ..Default::default()
        };
        let e = transaction_description(unknown, 1).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND));
        assert!(e.to_string().contains("gone"), "{e}");

        let moved = DescribedTransaction { error_code: ErrorCode::NOT_COORDINATOR.0, ..Default::default() };
        assert!(transaction_description(moved, 1).unwrap_err().is_retriable());
    }

    #[test]
    fn producers_without_a_transaction_have_no_start_offset() {
        let idle = active_producer(ProducerState { producer_id: 1, producer_epoch: 0, ..Default::default() });
        assert_eq!(idle.current_transaction_start_offset, None);
        assert_eq!(idle.last_sequence, None);
        let open = active_producer(ProducerState {
            producer_id: 2,
            producer_epoch: 1,
            last_sequence: 0,
            last_timestamp: 5,
            coordinator_epoch: -1,
            current_txn_start_offset: 40,
            ..Default::default()
        });
        assert_eq!(open.current_transaction_start_offset, Some(40));
        assert_eq!(open.last_sequence, Some(0));
        assert_eq!(open.coordinator_epoch, None);
    }
}
