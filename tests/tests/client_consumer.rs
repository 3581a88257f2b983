//! `klamm::Consumer` against real brokers: records written by librdkafka and the Java client
//! with every codec, seeks, pause and resume, `auto.offset.reset`, read_committed against the
//! Java peer's transactions, the prefetch memory bound, and the `consume` example.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_core::Stream;
use klamm::protocol::ErrorCode;
use klamm::{Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, Offset, OffsetReset, TopicPartition};
use klamm_tests::{
    unique_topic, Broker, BrokerKind, Compression, NegotiatedConnection, Peer, PeerRecord, ProduceOptions,
    Transaction,
};

const T0: i64 = 1_700_000_000_000;

/// Runs blocking harness code (peers, raw connections) off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

fn consumer(broker: &Broker, reset: OffsetReset) -> Consumer {
    let config = ConsumerConfig::new(&broker.bootstrap())
        .auto_offset_reset(reset)
        .fetch_max_wait(Duration::from_millis(100));
    Consumer::new(config).expect("consumer")
}

fn tps(topic: &str, partitions: i32) -> Vec<TopicPartition> {
    (0..partitions).map(|p| TopicPartition::new(topic, p)).collect()
}

/// Polls until `n` records arrived or `within` passed.
async fn poll_n(consumer: &mut Consumer, n: usize, within: Duration) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let batch = consumer.poll(Duration::from_millis(200)).await.expect("poll");
        out.extend(batch);
    }
    out
}

/// Reads `n` records from the consumer as a `Stream`.
async fn stream_n(consumer: &mut Consumer, n: usize, within: Duration) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    let read = async {
        while out.len() < n {
            match poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)).await {
                Some(r) => out.push(r.expect("stream item")),
                None => break,
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
    out
}

/// A record as the peers describe it: partition, key, value, headers, timestamp.
fn as_peer(r: &ConsumerRecord) -> PeerRecord {
    PeerRecord {
        partition: Some(r.partition),
        offset: None,
        key: r.key.as_ref().map(|b| b.to_vec()),
        value: r.value.as_ref().map(|b| b.to_vec()),
        headers: r
            .headers
            .iter()
            .map(|h| (String::from_utf8(h.key.to_vec()).unwrap(), h.value.as_ref().map(|v| v.to_vec())))
            .collect(),
        timestamp: Some(r.timestamp),
        timestamp_type: None,
    }
}

/// Checks that `got` holds exactly `sent`, in per-partition order, with offsets increasing.
fn assert_same_per_partition(ctx: &str, sent: &[PeerRecord], got: &[ConsumerRecord]) {
    let mut want: BTreeMap<i32, Vec<PeerRecord>> = BTreeMap::new();
    for r in sent {
        want.entry(r.partition.unwrap()).or_default().push(r.clone());
    }
    let mut have: BTreeMap<i32, Vec<PeerRecord>> = BTreeMap::new();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in got {
        let prev = last.insert(r.partition, r.offset);
        assert!(prev.is_none_or(|p| p < r.offset), "{ctx}: offsets out of order on {}", r.partition);
        assert!(
            r.high_watermark > r.offset,
            "{ctx}: high watermark {} <= offset {}",
            r.high_watermark,
            r.offset
        );
        have.entry(r.partition).or_default().push(as_peer(r));
    }
    assert_eq!(have.len(), want.len(), "{ctx}: partitions");
    for (p, want) in &want {
        let have = &have[p];
        assert_eq!(have.len(), want.len(), "{ctx}: record count of partition {p}");
        for (i, (h, w)) in have.iter().zip(want).enumerate() {
            assert_eq!(h, w, "{ctx}: record {i} of partition {p}");
        }
    }
}

/// Records with keys (one null), headers (one null value) and explicit timestamps, spread over
/// two partitions.
fn sample(tag: &str, n: usize) -> Vec<PeerRecord> {
    (0..n)
        .map(|i| {
            let mut r = PeerRecord::new(format!("{tag}-k{i}"), format!("{tag}-value-{i}").repeat(1 + i % 3))
                .partition((i % 2) as i32)
                .timestamp(T0 + i as i64);
            if i % 5 == 0 {
                r.key = None;
            }
            if i % 3 == 0 {
                r = r.header("h", format!("{i}")).header("empty", Vec::new());
                r.headers.push(("null".to_owned(), None));
            }
            r
        })
        .collect()
}

async fn interop(kind: BrokerKind, peers: Vec<Peer>) {
    let broker = Broker::shared(kind);
    for peer in peers {
        let topic = unique_topic(&format!("consumer-{}", peer.name()));
        let (bootstrap, t) = (broker.bootstrap(), topic.clone());
        let addr = broker.addr();
        let ctx = format!("{} on {}", peer.name(), kind.name());
        let sent = blocking(move || {
            NegotiatedConnection::connect(addr).create_topic(&t, 2);
            let mut all = Vec::new();
            for codec in Compression::ALL {
                let records = sample(codec.name(), 12);
                let options = ProduceOptions { compression: codec, ..Default::default() };
                peer.produce(&bootstrap, &t, &options, &records);
                all.extend(records);
            }
            all
        })
        .await;

        // As poll.
        let mut c = consumer(broker, OffsetReset::Earliest);
        c.assign(tps(&topic, 2));
        let got = poll_n(&mut c, sent.len(), Duration::from_secs(30)).await;
        assert_same_per_partition(&format!("{ctx}, poll"), &sent, &got);
        for tp in tps(&topic, 2) {
            let end = sent.iter().filter(|r| r.partition == Some(tp.partition)).count() as i64;
            assert_eq!(c.position(&tp), Some(end), "{ctx}: position of {tp}");
            assert_eq!(c.high_watermark(&tp), Some(end), "{ctx}: high watermark of {tp}");
        }
        c.close(Duration::from_secs(5)).await.expect("close");

        // As a stream.
        let mut c = consumer(broker, OffsetReset::Earliest);
        c.assign(tps(&topic, 2));
        let got = stream_n(&mut c, sent.len(), Duration::from_secs(30)).await;
        assert_same_per_partition(&format!("{ctx}, stream"), &sent, &got);
        // Nothing more arrives, and dropping the consumer does not block.
        assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty(), "{ctx}: extra records");
        drop(c);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_records_of_both_peers_with_every_codec() {
    interop(BrokerKind::Kafka, vec![Peer::rdkafka(), Peer::java()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_records_of_librdkafka_with_every_codec() {
    interop(BrokerKind::Tansu, vec![Peer::rdkafka()]).await;
}

/// A one-partition topic holding `n` records at timestamps `T0 + 1000 * i`.
async fn filled_topic(broker: &Broker, prefix: &str, n: usize) -> (String, Vec<PeerRecord>) {
    let topic = unique_topic(prefix);
    let records: Vec<PeerRecord> = (0..n)
        .map(|i| {
            PeerRecord::new(format!("k{i}"), format!("v{i}")).partition(0).timestamp(T0 + 1000 * i as i64)
        })
        .collect();
    let (bootstrap, addr, t, r) = (broker.bootstrap(), broker.addr(), topic.clone(), records.clone());
    blocking(move || {
        NegotiatedConnection::connect(addr).create_topic(&t, 1);
        // One record per produce call: one batch each, so that lookups by time are exact.
        Peer::rdkafka().produce(&bootstrap, &t, &ProduceOptions::default(), &r);
    })
    .await;
    (topic, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_seek_to_offset_beginning_end_and_timestamp() {
    let broker = Broker::shared_kafka();
    let (topic, records) = filled_topic(broker, "consumer-seek", 10).await;
    let tp = TopicPartition::new(topic.as_str(), 0);
    let mut c = consumer(broker, OffsetReset::Earliest);
    c.assign([tp.clone()]);

    c.seek(&tp, Offset::At(5)).unwrap();
    assert_eq!(c.position(&tp), Some(5));
    let got = poll_n(&mut c, 5, Duration::from_secs(20)).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [5, 6, 7, 8, 9]);
    assert_eq!(got[0].value.as_deref(), records[5].value.as_deref());

    c.seek(&tp, Offset::Beginning).unwrap();
    let got = poll_n(&mut c, 10, Duration::from_secs(20)).await;
    assert_eq!(got.first().map(|r| r.offset), Some(0));
    assert_eq!(got.len(), 10);

    c.seek(&tp, Offset::Timestamp(T0 + 7000)).unwrap();
    let got = poll_n(&mut c, 3, Duration::from_secs(20)).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [7, 8, 9]);
    // A time after every record: the end.
    c.seek(&tp, Offset::Timestamp(T0 + 1_000_000)).unwrap();
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    assert_eq!(c.position(&tp), Some(10));

    // A seek in the middle of buffered data drops it: the next record is the one sought.
    c.seek(&tp, Offset::Beginning).unwrap();
    let first = poll_n(&mut c, 1, Duration::from_secs(20)).await;
    assert_eq!(first[0].offset, 0);
    c.seek(&tp, Offset::At(3)).unwrap();
    let next = poll_n(&mut c, 1, Duration::from_secs(20)).await;
    assert_eq!(next[0].offset, 3);

    // The end, then a new record arrives.
    c.seek(&tp, Offset::End).unwrap();
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    assert_eq!(c.position(&tp), Some(10));
    let (bootstrap, t) = (broker.bootstrap(), topic.clone());
    blocking(move || {
        let r = [PeerRecord::new("late", "late").partition(0)];
        Peer::rdkafka().produce(&bootstrap, &t, &ProduceOptions::default(), &r);
    })
    .await;
    let got = poll_n(&mut c, 1, Duration::from_secs(20)).await;
    assert_eq!((got[0].offset, got[0].value.as_deref()), (10, Some(&b"late"[..])));

    let unassigned = TopicPartition::new(topic.as_str(), 1);
    assert!(c.seek(&unassigned, Offset::At(0)).unwrap_err().is_user_error());
}

async fn pause_and_resume(kind: BrokerKind) {
    let broker = Broker::shared(kind);
    let topic = unique_topic("consumer-pause");
    let sent = sample("pause", 20);
    let (bootstrap, addr, t, s) = (broker.bootstrap(), broker.addr(), topic.clone(), sent.clone());
    blocking(move || {
        NegotiatedConnection::connect(addr).create_topic(&t, 2);
        Peer::rdkafka().produce(&bootstrap, &t, &ProduceOptions::default(), &s);
    })
    .await;
    let (p0, p1) = (TopicPartition::new(topic.as_str(), 0), TopicPartition::new(topic.as_str(), 1));
    let config = ConsumerConfig::new(&broker.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
        .max_poll_records(3);
    let mut c = Consumer::new(config).unwrap();
    c.assign(tps(&topic, 2));
    c.pause([&p0]);
    assert_eq!(c.paused(), std::slice::from_ref(&p0));
    let got = poll_n(&mut c, 20, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 10, "{}: only the unpaused partition", kind.name());
    assert!(got.iter().all(|r| r.partition == 1), "{}: a paused partition's record came out", kind.name());

    c.resume([&p0]);
    assert!(c.paused().is_empty());
    let got = poll_n(&mut c, 10, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|r| r.partition == 0));
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());

    // Pausing in the middle of a partition keeps its position. tansu answers a fetch from an
    // offset inside a batch with no data (a tansu bug), so this part runs on Kafka only.
    if kind != BrokerKind::Kafka {
        return;
    }
    c.seek(&p1, Offset::Beginning).unwrap();
    let first = poll_n(&mut c, 1, Duration::from_secs(20)).await;
    assert_eq!(first.iter().map(|r| (r.partition, r.offset)).collect::<Vec<_>>(), [(1, 0), (1, 1), (1, 2)]);
    c.pause([&p1]);
    assert_eq!(c.position(&p1), Some(3));
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    c.resume([&p1]);
    let rest = poll_n(&mut c, 7, Duration::from_secs(20)).await;
    assert_eq!(rest.iter().map(|r| r.offset).collect::<Vec<_>>(), (3..10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_pause_and_resume() {
    pause_and_resume(BrokerKind::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_pause_and_resume() {
    pause_and_resume(BrokerKind::Tansu).await;
}

// tansu answers a fetch past the end without OFFSET_OUT_OF_RANGE (a known tansu bug), so the
// reset policies are checked on Kafka only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_auto_offset_reset_after_offset_out_of_range() {
    let broker = Broker::shared_kafka();
    let (topic, _) = filled_topic(broker, "consumer-reset", 4).await;
    let tp = TopicPartition::new(topic.as_str(), 0);

    let mut earliest = consumer(broker, OffsetReset::Earliest);
    earliest.assign([tp.clone()]);
    earliest.seek(&tp, Offset::At(1000)).unwrap();
    let got = poll_n(&mut earliest, 4, Duration::from_secs(20)).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2, 3]);

    let mut latest = consumer(broker, OffsetReset::Latest);
    latest.assign([tp.clone()]);
    latest.seek(&tp, Offset::At(1000)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while latest.position(&tp) != Some(4) && Instant::now() < deadline {
        assert!(latest.poll(Duration::from_millis(100)).await.unwrap().is_empty());
    }
    assert_eq!(latest.position(&tp), Some(4));

    let mut none = consumer(broker, OffsetReset::None);
    none.assign([tp.clone()]);
    // No position and no reset policy: an error until a seek.
    let e = none.poll(Duration::from_secs(1)).await.expect_err("no position");
    assert!(e.is_user_error(), "{e}");
    none.seek(&tp, Offset::At(1000)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let e = loop {
        match none.poll(Duration::from_millis(200)).await {
            Err(e) => break e,
            Ok(records) => assert!(records.is_empty()),
        }
        assert!(Instant::now() < deadline, "no OFFSET_OUT_OF_RANGE error");
    };
    assert_eq!(e.code(), Some(ErrorCode::OFFSET_OUT_OF_RANGE), "{e}");
    assert!(e.to_string().contains(&topic), "{e}");
    assert_eq!(none.position(&tp), None);
    // The partition waits for a seek, then reads again.
    assert!(none.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    none.seek(&tp, Offset::At(2)).unwrap();
    let got = poll_n(&mut none, 2, Duration::from_secs(20)).await;
    // A seek right after the assignment leaves no stale "no position" error behind.
    let mut seeked = consumer(broker, OffsetReset::None);
    seeked.assign([tp.clone()]);
    seeked.seek(&tp, Offset::At(2)).unwrap();
    assert_eq!(poll_n(&mut seeked, 2, Duration::from_secs(20)).await.len(), 2);
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_read_committed_skips_aborted_transactions() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("consumer-txn");
    let make = |tag: &str| -> Vec<PeerRecord> {
        (0..3).map(|i| PeerRecord::new(format!("{tag}{i}"), format!("{tag}-{i}")).partition(0)).collect()
    };
    let (plain, aborted, committed) = (make("plain"), make("aborted"), make("committed"));
    let (bootstrap, addr, t) = (broker.bootstrap(), broker.addr(), topic.clone());
    let (p, a, c) = (plain.clone(), aborted.clone(), committed.clone());
    blocking(move || {
        NegotiatedConnection::connect(addr).create_topic(&t, 1);
        let java = Peer::java();
        java.produce(&bootstrap, &t, &ProduceOptions::default(), &p);
        let txn = |end| ProduceOptions { transaction: Some(end), ..Default::default() };
        java.produce(&bootstrap, &t, &txn(Transaction::Abort), &a);
        java.produce(&bootstrap, &t, &txn(Transaction::Commit), &c);
    })
    .await;
    let tp = TopicPartition::new(topic.as_str(), 0);
    let values = |records: &[ConsumerRecord]| -> Vec<String> {
        records.iter().map(|r| String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap()).collect()
    };
    let expect = |sets: &[&[PeerRecord]]| -> Vec<String> {
        sets.iter()
            .flat_map(|s| s.iter())
            .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
            .collect()
    };

    for level in [IsolationLevel::ReadCommitted, IsolationLevel::ReadUncommitted] {
        let config = ConsumerConfig::new(&broker.bootstrap())
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(level)
            .fetch_max_wait(Duration::from_millis(100));
        let mut c = Consumer::new(config).unwrap();
        c.assign([tp.clone()]);
        let want = match level {
            IsolationLevel::ReadCommitted => expect(&[&plain, &committed]),
            IsolationLevel::ReadUncommitted => expect(&[&plain, &aborted, &committed]),
        };
        let mut got = poll_n(&mut c, want.len(), Duration::from_secs(30)).await;
        // Nothing else (no control record) follows.
        got.extend(c.poll(Duration::from_millis(500)).await.unwrap());
        assert_eq!(values(&got), want, "{level:?}");
        // 9 records and 2 markers: the position is past the commit marker.
        assert_eq!(c.position(&tp), Some(11), "{level:?}");
        c.close(Duration::from_secs(5)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_prefetch_stays_within_the_memory_limit() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("consumer-memory");
    // The Java client's 16 KiB batches keep every batch below the fetch size.
    let records: Vec<PeerRecord> =
        (0..1500).map(|i| PeerRecord::new(format!("k{i}"), vec![b'x'; 1000]).partition(i % 2)).collect();
    let (bootstrap, addr, t, r) = (broker.bootstrap(), broker.addr(), topic.clone(), records.clone());
    blocking(move || {
        NegotiatedConnection::connect(addr).create_topic(&t, 2);
        Peer::java().produce(&bootstrap, &t, &ProduceOptions::default(), &r);
    })
    .await;
    let limit = 64 * 1024;
    let fetch_max = 32 * 1024;
    let config = ConsumerConfig::new(&broker.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .prefetch_max_bytes(limit)
        .fetch_max_bytes(fetch_max as i32)
        .max_partition_fetch_bytes(24 * 1024)
        .max_poll_records(50)
        .fetch_max_wait(Duration::from_millis(50));
    let mut c = Consumer::new(config).unwrap();
    c.assign(tps(&topic, 2));
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < records.len() && Instant::now() < deadline {
        // A slow reader: the fetcher fills the buffer and has to wait.
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(c.buffered_bytes() <= limit + fetch_max, "buffered {} bytes", c.buffered_bytes());
        got += c.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    assert_eq!(got, records.len());
    let peak = c.buffered_bytes_peak();
    assert!(peak <= limit + fetch_max, "peak {peak} above {limit} + {fetch_max}");
    assert!(peak >= limit / 2, "peak {peak}: the reader never fell behind, the bound was not tested");
    assert_eq!(c.buffered_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_example_prints_every_record() {
    let broker = Broker::shared_kafka();
    let topic = unique_topic("consumer-example");
    let sent: Vec<PeerRecord> =
        (0..20).map(|i| PeerRecord::new(format!("key{i}"), format!("value {i}")).partition(i % 3)).collect();
    let (bootstrap, addr, t, s) = (broker.bootstrap(), broker.addr(), topic.clone(), sent.clone());
    blocking(move || {
        NegotiatedConnection::connect(addr).create_topic(&t, 3);
        Peer::rdkafka().produce(&bootstrap, &t, &ProduceOptions::default(), &s);
    })
    .await;
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["run", "-q", "-p", "klamm", "--example", "consume", "--"]);
        cmd.args(["--brokers", &broker.bootstrap(), "--topic", &topic]);
        cmd.args(extra);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        cmd.output().expect("cargo run")
    };
    let a = run(&["--from", "beginning", "--count", "20", "--timeout-ms", "20000"]);
    assert!(a.status.success(), "stderr: {}", String::from_utf8_lossy(&a.stderr));
    let stdout = String::from_utf8(a.stdout).unwrap();
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    let mut want: Vec<String> = Vec::new();
    let mut next_offset = [0i64; 3];
    for (i, r) in sent.iter().enumerate() {
        let p = r.partition.unwrap() as usize;
        want.push(format!("{p}\t{}\tkey{i}\tvalue {i}", next_offset[p]));
        next_offset[p] += 1;
    }
    want.sort();
    assert_eq!(lines, want);

    // From an offset, stopping when idle; properties reach the consumer.
    let out = run(&["--from", "5", "--timeout-ms", "1500", "--property", "fetch.max.wait.ms=100"]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 20 - 3 * 5, "{stdout}");

    // A topic that does not exist: a message and a failure status.
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args(["run", "-q", "-p", "klamm", "--example", "consume", "--", "--brokers"]);
    cmd.args([&broker.bootstrap(), "--topic", "no-such-topic-here", "--timeout-ms", "1000"]);
    let out = cmd.output().expect("cargo run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNKNOWN_TOPIC_OR_PARTITION"), "{out:?}");

    // A property the consumer does not know, or a bad value: refused, naming it.
    for (property, named) in
        [("no.such.property=1", "no.such.property"), ("fetch.max.wait.ms=x", "fetch.max.wait.ms")]
    {
        let out = run(&["--timeout-ms", "1000", "--property", property]);
        assert!(!out.status.success(), "{property}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(named), "{property}: {out:?}");
    }
    let out = run(&["--timeout-ms", "1000", "--property", "novalue"]);
    assert_eq!(out.status.code(), Some(2), "a property without '=' is a usage error: {out:?}");
}
