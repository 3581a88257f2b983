//! The demo behind `scripts/demo`: start Apache Kafka on a loopback port, ask it for its API
//! versions with klamm-protocol, write a few records with librdkafka, read them back with the
//! Java client, compare, stop.
//!
//! Only ApiVersions goes through Klamm's own codec so far; the records travel through the peers
//! until klamm-protocol has CreateTopics, Produce and Fetch (then `create_topic`, `produce` and
//! `consume` below become RawConnection requests, and later the client's own API).

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use klamm_protocol::api::api_versions::ApiVersionsRequest;
use klamm_protocol::ApiKey;
use klamm_tests::{Broker, ConsumeOptions, Peer, PeerRecord, ProduceOptions};

fn main() -> ExitCode {
    let t0 = Instant::now();
    println!("starting Apache Kafka (KRaft, single node) on a free 127.0.0.1 port...");
    let broker = Broker::kafka();
    println!("  up at {} after {:.1} s", broker.bootstrap(), t0.elapsed().as_secs_f64());

    // Klamm's codec, on the wire: ApiVersions v3.
    let mut conn = broker.connect();
    let versions = conn.send(
        3,
        &ApiVersionsRequest {
            client_software_name: "klamm-demo".into(),
            client_software_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        },
    );
    println!(
        "ApiVersions v3 (klamm-protocol): the broker offers {} APIs, among them",
        versions.api_keys.len()
    );
    for key in [ApiKey::PRODUCE, ApiKey::FETCH, ApiKey::METADATA, ApiKey::CREATE_TOPICS] {
        if let Some(v) = versions.api_keys.iter().find(|k| k.api_key == key.0) {
            println!("  {:<13} v{}..v{}", key.name().unwrap_or("?"), v.min_version, v.max_version);
        }
    }

    let topic = "klamm-demo";
    let writer = Peer::rdkafka();
    let reader = Peer::java();
    writer.create_topic(&broker.bootstrap(), topic, 1);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let sent: Vec<PeerRecord> = (0..5)
        .map(|i| {
            PeerRecord::new(format!("key-{i}"), format!("hello from klamm, record {i}"))
                .header("demo-seq", i.to_string())
                .timestamp(now_ms + i)
        })
        .collect();

    println!("producing {} records to '{topic}' with librdkafka:", sent.len());
    let deliveries = writer.produce(&broker.bootstrap(), topic, &ProduceOptions::default(), &sent);
    for (r, d) in sent.iter().zip(&deliveries) {
        println!("  partition {} offset {}: {}", d.partition, d.offset, show(r));
    }

    println!("consuming them back with the Java client:");
    let got = reader.consume(&broker.bootstrap(), topic, sent.len(), &ConsumeOptions::default());
    for r in &got {
        println!("  partition {} offset {}: {}", r.partition.unwrap_or(-1), r.offset.unwrap_or(-1), show(r));
    }

    let same = got.len() == sent.len() && got.iter().zip(&sent).all(|(g, s)| g.content() == s.content());
    drop(broker);
    if same {
        println!("round trip OK in {:.1} s; broker stopped", t0.elapsed().as_secs_f64());
        ExitCode::SUCCESS
    } else {
        eprintln!("round trip FAILED: sent {} records, read back {}", sent.len(), got.len());
        ExitCode::FAILURE
    }
}

fn show(r: &PeerRecord) -> String {
    let text =
        |b: &Option<Vec<u8>>| b.as_deref().map_or("null".into(), |b| String::from_utf8_lossy(b).into_owned());
    let headers: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
    format!("{} => {} [{}]", text(&r.key), text(&r.value), headers.join(", "))
}
