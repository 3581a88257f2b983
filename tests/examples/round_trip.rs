//! The demo behind `scripts/demo`: start Apache Kafka on a loopback port, then move records both
//! ways between Klamm's codec and a reference client.
//!
//! 1. Klamm negotiates versions (ApiVersions) and creates a topic (CreateTopics, Metadata).
//! 2. Klamm writes an lz4 record batch with a raw Produce; librdkafka reads it back.
//! 3. librdkafka writes records (idempotent, zstd); Klamm fetches them with a raw Fetch and
//!    decodes the batches.
//!
//! The client crate will replace the raw requests with its producer and consumer.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use klamm_protocol::api::fetch::FetchRequest;
use klamm_protocol::api::produce::{PartitionProduceData, ProduceRequest, TopicProduceData};
use klamm_protocol::ApiKey;
use klamm_tests::{
    build_batch, fetch_all, leader_address, records_of, Broker, Compression, ConsumeOptions,
    NegotiatedConnection, Peer, PeerRecord, ProduceOptions,
};

fn main() -> ExitCode {
    let t0 = Instant::now();
    println!("starting Apache Kafka (KRaft, single node) on a free 127.0.0.1 port...");
    let broker = Broker::kafka();
    println!("  up at {} after {:.1} s", broker.bootstrap(), t0.elapsed().as_secs_f64());

    let mut admin = NegotiatedConnection::connect(broker.addr());
    println!("klamm negotiated versions with the broker (ApiVersions):");
    for key in [ApiKey::PRODUCE, ApiKey::FETCH, ApiKey::METADATA, ApiKey::CREATE_TOPICS] {
        if let Some((min, max)) = admin.versions().broker_range(key) {
            println!("  {:<13} broker v{min}..v{max}", key.name().unwrap_or("?"));
        }
    }
    let topic = "klamm-demo";
    let metadata = admin.create_topic(topic, 1);
    let topic_id = metadata.topics[0].topic_id;
    println!("klamm created topic '{topic}' (id {topic_id})");
    let mut leader = NegotiatedConnection::connect(leader_address(&metadata, topic, 0));

    // Klamm -> librdkafka.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let sent: Vec<PeerRecord> = (0..5)
        .map(|i| {
            PeerRecord::new(format!("key-{i}"), format!("hello from klamm, record {i}"))
                .header("demo-seq", i.to_string())
                .timestamp(now_ms + i)
        })
        .collect();
    let produce = ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: topic.into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(build_batch(&sent, Compression::Lz4)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let version = leader.version::<ProduceRequest>();
    let answer = leader.send(&produce);
    let partition = &answer.responses[0].partition_responses[0];
    if partition.error_code != 0 {
        eprintln!("Produce failed with error code {}", partition.error_code);
        return ExitCode::FAILURE;
    }
    println!(
        "klamm produced {} records in one lz4 batch (Produce v{version}) at offset {}",
        sent.len(),
        partition.base_offset
    );
    let read = Peer::rdkafka().consume(&broker.bootstrap(), topic, sent.len(), &ConsumeOptions::default());
    println!("librdkafka read them back:");
    for r in &read {
        println!("  offset {}: {}", r.offset.unwrap_or(-1), show(r));
    }
    let klamm_to_peer =
        read.len() == sent.len() && read.iter().zip(&sent).all(|(g, s)| g.content() == s.content());

    // librdkafka -> Klamm.
    let theirs: Vec<PeerRecord> = (0..5)
        .map(|i| {
            PeerRecord::new(format!("key-{i}"), format!("hello from librdkafka, record {i}"))
                .header("demo-seq", i.to_string())
                .timestamp(now_ms + 100 + i)
        })
        .collect();
    let options = ProduceOptions { compression: Compression::Zstd, idempotent: true, ..Default::default() };
    Peer::rdkafka().produce(&broker.bootstrap(), topic, &options, &theirs);
    println!("librdkafka produced {} records (idempotent, zstd)", theirs.len());
    let version = leader.version::<FetchRequest>();
    let total = sent.len() + theirs.len();
    let fetched = fetch_all(&mut leader, version, topic, topic_id, &BTreeMap::from([(0, total)]));
    let batches = &fetched[&0].batches;
    let got = records_of(batches, 0);
    println!("klamm fetched {} batches (Fetch v{version}) and decoded:", batches.len());
    for batch in batches {
        println!(
            "  batch at offset {}: {} records, {}, producer id {}",
            batch.base_offset(),
            batch.record_count(),
            batch.compression(),
            batch.producer_id()
        );
    }
    for r in &got[sent.len()..] {
        println!("  offset {}: {}", r.offset.unwrap_or(-1), show(r));
    }
    let peer_to_klamm =
        got.len() == total && got[sent.len()..].iter().zip(&theirs).all(|(g, s)| g.content() == s.content());

    drop(broker);
    if klamm_to_peer && peer_to_klamm {
        println!("round trip OK in {:.1} s; broker stopped", t0.elapsed().as_secs_f64());
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "round trip FAILED: klamm -> librdkafka {}, librdkafka -> klamm {}",
            if klamm_to_peer { "ok" } else { "differs" },
            if peer_to_klamm { "ok" } else { "differs" }
        );
        ExitCode::FAILURE
    }
}

fn show(r: &PeerRecord) -> String {
    let text =
        |b: &Option<Vec<u8>>| b.as_deref().map_or("null".into(), |b| String::from_utf8_lossy(b).into_owned());
    let headers: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
    format!("{} => {} [{}]", text(&r.key), text(&r.value), headers.join(", "))
}
