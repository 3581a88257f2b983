//! `klamm::Consumer` when the leader moves: a proxy between the consumer and Apache Kafka
//! rewrites Fetch answers for a while to say NOT_LEADER_OR_FOLLOWER (then
//! FENCED_LEADER_EPOCH), as a broker does when leadership moved away from it. The consumer
//! must look the leaders up again (Metadata) and go on from where it was: every record once,
//! in order, nothing skipped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::protocol::api::any::{
    decode_request_frame, decode_response_frame, encode_response_frame, AnyResponse,
};
use klamm::protocol::{ApiKey, ErrorCode};
use klamm::{
    Consumer, ConsumerConfig, Offset, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use klamm_tests::{unique_topic, BrokerKind, FaultProxy, FrameHook, NegotiatedConnection};

/// Turns the first `budget` partition answers of Fetch responses into leader errors (dropping
/// their records), and counts Metadata requests.
struct LeaderMoves {
    /// (connection, correlation id) -> (api key, version) of requests seen.
    pending: Mutex<HashMap<(usize, i32), (ApiKey, i16)>>,
    budget: AtomicUsize,
    rewritten: AtomicUsize,
    metadata_requests: AtomicUsize,
}

impl FrameHook for LeaderMoves {
    fn request(&self, connection: usize, frame: &Bytes) {
        if let Ok((header, _)) = decode_request_frame(frame.clone()) {
            if header.api_key == ApiKey::METADATA {
                self.metadata_requests.fetch_add(1, Ordering::Relaxed);
            }
            self.pending
                .lock()
                .unwrap()
                .insert((connection, header.correlation_id), (header.api_key, header.api_version));
        }
    }

    fn response(&self, connection: usize, frame: Bytes) -> Bytes {
        let correlation = i32::from_be_bytes(frame[..4].try_into().unwrap());
        let Some((key, version)) = self.pending.lock().unwrap().remove(&(connection, correlation)) else {
            return frame;
        };
        if key != ApiKey::FETCH || self.budget.load(Ordering::Relaxed) == 0 {
            return frame;
        }
        let Ok((header, AnyResponse::Fetch(mut body))) = decode_response_frame(key, version, frame.clone())
        else {
            return frame;
        };
        let mut changed = false;
        for topic in &mut body.responses {
            for p in &mut topic.partitions {
                if p.error_code != 0 || self.budget.load(Ordering::Relaxed) == 0 {
                    continue;
                }
                self.budget.fetch_sub(1, Ordering::Relaxed);
                let n = self.rewritten.fetch_add(1, Ordering::Relaxed);
                p.error_code = if n.is_multiple_of(2) {
                    ErrorCode::NOT_LEADER_OR_FOLLOWER
                } else {
                    ErrorCode::FENCED_LEADER_EPOCH
                }
                .code();
                p.records = None;
                changed = true;
            }
        }
        if !changed {
            return frame;
        }
        encode_response_frame(version, &header, &AnyResponse::Fetch(body)).expect("re-encode").freeze()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_leader_is_looked_up_again_and_nothing_is_skipped() {
    let hook = Arc::new(LeaderMoves {
        pending: Mutex::new(HashMap::new()),
        budget: AtomicUsize::new(0),
        rewritten: AtomicUsize::new(0),
        metadata_requests: AtomicUsize::new(0),
    });
    let proxy = FaultProxy::bind_with(vec![hook.clone() as Arc<dyn FrameHook>]).unwrap();
    let _broker = proxy.start_broker(klamm_tests::Broker::builder(BrokerKind::Kafka)).unwrap();
    let topic = unique_topic("leader-moves");
    NegotiatedConnection::connect(proxy.addr()).create_topic(&topic, 2);

    let producer = Producer::new(ProducerConfig::new(&proxy.bootstrap())).unwrap();
    let mut deliveries = Vec::new();
    for i in 0..2000 {
        let record = ProducerRecord::new(topic.as_str(), format!("v{i}")).key(format!("k{}", i % 17));
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut expected: HashMap<i32, Vec<i64>> = HashMap::new();
    for d in deliveries {
        let m = d.await.unwrap();
        expected.entry(m.partition).or_default().push(m.offset);
    }
    producer.close(Duration::from_secs(10)).await;

    // From now on the next 8 partition answers of Fetch say the leader moved.
    hook.budget.store(8, Ordering::Relaxed);
    let metadata_before = hook.metadata_requests.load(Ordering::Relaxed);
    let config = ConsumerConfig::new(&proxy.bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
        .max_partition_fetch_bytes(4096);
    let mut consumer = Consumer::new(config).unwrap();
    let tps: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new(topic.as_str(), p)).collect();
    consumer.assign(tps.iter().cloned());
    for tp in &tps {
        consumer.seek(tp, Offset::Beginning).unwrap();
    }
    let mut got: HashMap<i32, Vec<i64>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.values().map(Vec::len).sum::<usize>() < 2000 {
        assert!(Instant::now() < deadline, "read {} of 2000", got.values().map(Vec::len).sum::<usize>());
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            got.entry(r.partition).or_default().push(r.offset);
        }
    }
    assert_eq!(hook.budget.load(Ordering::Relaxed), 0, "every planned leader error was served");
    assert_eq!(hook.rewritten.load(Ordering::Relaxed), 8);
    assert!(
        hook.metadata_requests.load(Ordering::Relaxed) > metadata_before,
        "the consumer looked the leaders up again"
    );
    for (p, offsets) in &expected {
        assert_eq!(got.get(p), Some(offsets), "partition {p}: every record once, in order");
    }
    consumer.close(Duration::from_secs(5)).await.unwrap();
}
