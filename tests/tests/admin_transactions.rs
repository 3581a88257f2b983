//! `klamm::Admin`'s transaction calls against Apache Kafka, on a hanging transaction: a
//! librdkafka transactional producer begins a transaction, writes to one partition and exits
//! without committing or aborting. Klamm's admin then lists it (state Ongoing, under filters
//! that include and exclude it), describes it (partitions, producer id and epoch, timeout,
//! start time) and describes the producers of the partition (the producer id and the start
//! offset of the open transaction).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use klamm::protocol::ErrorCode;
use klamm::{Admin, ClientConfig, ListTransactionsOptions, NewTopic, TransactionListing, TransactionState};
use klamm::{CreateTopicsOptions, Error};
use klamm_tests::{unique_topic, Broker, BrokerKind, Peer, PeerRecord};

/// Long enough that the coordinator does not abort the transaction during the test.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(600);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

async fn listed(admin: &Admin, options: &ListTransactionsOptions, id: &str) -> Option<TransactionListing> {
    let all = admin.list_transactions_with(options).await.unwrap_or_else(|e| panic!("{options:?}: {e}"));
    all.into_iter().find(|t| t.transactional_id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_transaction_is_listed_and_described_with_its_producer() {
    let broker = Broker::shared(BrokerKind::Kafka);
    let admin = Admin::connect(ClientConfig::new(&broker.bootstrap()))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
        .timeout(Duration::from_secs(30));
    let topic = unique_topic("admin-txn");
    let options = CreateTopicsOptions::default().wait_for_leaders(true);
    let created = admin.create_topics_with(&[NewTopic::new(&topic, 2, 1)], &options).await;
    created[0].1.as_ref().unwrap_or_else(|e| panic!("create {topic}: {e}"));

    // Before anything: an id nobody used is not found.
    let transactional_id = unique_topic("hanging");
    let unknown = admin.describe_transactions(&[&transactional_id]).await;
    let e = unknown[0].1.as_ref().expect_err("an unused transactional id is not described");
    assert_eq!(e.code(), Some(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND), "{e}");
    assert!(!e.is_retriable(), "{e}");

    let before_ms = now_ms();
    let records: Vec<PeerRecord> =
        (0..3).map(|i| PeerRecord::new(format!("k{i}"), format!("open {i}")).partition(1)).collect();
    let deliveries = Peer::rdkafka()
        .hang_transaction(&broker.bootstrap(), &topic, &transactional_id, TRANSACTION_TIMEOUT, &records)
        .unwrap_or_else(|e| panic!("librdkafka: {e}"));
    let after_ms = now_ms();
    assert!(deliveries.iter().all(|d| d.partition == 1), "{deliveries:?}");
    let start_offset = deliveries[0].offset;

    // Listed, Ongoing, by every filter it passes and by none it fails.
    let all = ListTransactionsOptions::default();
    let listing = listed(&admin, &all, &transactional_id).await.expect("listed without filters");
    assert_eq!(listing.state, TransactionState::Ongoing, "{listing:?}");
    let producer_id = listing.producer_id;
    assert!(producer_id >= 0, "{listing:?}");
    let including = [
        all.clone().states([TransactionState::Ongoing, TransactionState::PrepareCommit]),
        all.clone().producer_ids([producer_id]),
        all.clone().open_longer_than(Duration::ZERO),
        all.clone().transactional_id_pattern(format!("{}$", regex_quote(&transactional_id))),
        all.clone()
            .states([TransactionState::Ongoing])
            .producer_ids([producer_id])
            .open_longer_than(Duration::ZERO),
    ];
    for options in &including {
        let found = listed(&admin, options, &transactional_id).await;
        assert_eq!(found.as_ref(), Some(&listing), "{options:?}");
    }
    let excluding = [
        all.clone().states([TransactionState::CompleteCommit, TransactionState::Empty]),
        all.clone().producer_ids([producer_id + 1_000_000]),
        all.clone().open_longer_than(Duration::from_secs(3600)),
        all.clone().transactional_id_pattern("^no-such-id-"),
        all.clone().states([TransactionState::Ongoing]).producer_ids([producer_id + 1_000_000]),
    ];
    for options in &excluding {
        assert_eq!(listed(&admin, options, &transactional_id).await, None, "{options:?}");
    }

    // Described by its coordinator, with the partition it wrote to.
    let described = admin.describe_transactions(&[&transactional_id, &transactional_id]).await;
    assert_eq!(described.len(), 2, "one result per id asked about");
    let d = described[0].1.as_ref().unwrap_or_else(|e| panic!("describe: {e}"));
    assert_eq!(described[1].1.as_ref().map_err(Error::to_string), Ok(d));
    assert_eq!(d.transactional_id, transactional_id);
    assert_eq!(d.state, TransactionState::Ongoing, "{d:?}");
    assert_eq!(d.coordinator, listing.coordinator, "{d:?}");
    assert_eq!(d.producer_id, producer_id, "{d:?}");
    assert!(d.producer_epoch >= 0, "{d:?}");
    assert_eq!(d.timeout, TRANSACTION_TIMEOUT, "{d:?}");
    let started = d.start_time_ms.expect("an open transaction has a start time");
    assert!(
        (before_ms - 1000..=after_ms + 1000).contains(&started),
        "{before_ms} <= {started} <= {after_ms}"
    );
    assert_eq!(d.partitions, [(topic.clone(), 1)], "{d:?}");

    // The partition's leader holds the producer with its open transaction; the other
    // partition has none.
    let producers = admin.describe_producers(&[(&topic, 1), (&topic, 0)]).await;
    assert_eq!(producers[0].0, (topic.clone(), 1));
    let in_one = producers[0].1.as_ref().unwrap_or_else(|e| panic!("describe producers: {e}"));
    let p = in_one.iter().find(|p| p.producer_id == producer_id).unwrap_or_else(|| panic!("{in_one:?}"));
    assert_eq!(p.producer_epoch, i32::from(d.producer_epoch), "{p:?}");
    assert_eq!(p.current_transaction_start_offset, Some(start_offset), "{p:?}");
    assert_eq!(p.last_sequence, Some(records.len() as i32 - 1), "{p:?}");
    assert!(p.last_timestamp.is_some(), "{p:?}");
    let in_zero = producers[1].1.as_ref().unwrap_or_else(|e| panic!("describe producers: {e}"));
    assert!(in_zero.is_empty(), "{in_zero:?}");
}

/// `s` as a regular expression that matches only itself (ids here are letters, digits and `-`).
fn regex_quote(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_string() } else { format!("\\{c}") })
        .collect()
}
