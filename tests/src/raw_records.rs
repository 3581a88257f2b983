//! Record data between the peers' shape ([`PeerRecord`]) and klamm-protocol's record batches,
//! and a raw fetch loop: what the interop tests and the demo share.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use klamm_protocol::api::fetch::{FetchPartition, FetchRequest, FetchTopic};
use klamm_protocol::compression::Compression;
use klamm_protocol::records::{Record, RecordBatch, RecordBatchBuilder, RecordBatches, TimestampType};
use klamm_protocol::Uuid;

use crate::negotiated::NegotiatedConnection;
use crate::peer::PeerRecord;

/// A record read by klamm, in the peers' shape.
pub fn peer_record(record: &Record, partition: i32, timestamp_type: TimestampType) -> PeerRecord {
    PeerRecord {
        partition: Some(partition),
        offset: Some(record.offset()),
        key: record.key().map(<[u8]>::to_vec),
        value: record.value().map(<[u8]>::to_vec),
        headers: record
            .headers()
            .iter()
            .map(|h| {
                (String::from_utf8(h.key.to_vec()).expect("UTF-8 header key"), h.value.map(<[u8]>::to_vec))
            })
            .collect(),
        timestamp: Some(record.timestamp()),
        timestamp_type: Some(
            match timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
                TimestampType::NotAvailable => "NoTimestampType",
            }
            .to_owned(),
        ),
    }
}

/// Every record of `batches`, in the peers' shape.
pub fn records_of(batches: &[RecordBatch], partition: i32) -> Vec<PeerRecord> {
    let mut out = Vec::new();
    for batch in batches {
        for record in batch.records().unwrap_or_else(|e| panic!("batch at {}: {e}", batch.base_offset())) {
            let record =
                record.unwrap_or_else(|e| panic!("a record of the batch at {}: {e}", batch.base_offset()));
            out.push(peer_record(&record, partition, batch.timestamp_type()));
        }
    }
    out
}

/// One batch of `records`, compressed with `compression`.
pub fn build_batch(records: &[PeerRecord], compression: Compression) -> Bytes {
    let mut builder = RecordBatchBuilder::new().compression(compression);
    for r in records {
        let headers = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref()));
        builder
            .push_with_headers(r.timestamp.unwrap(), r.key.as_deref(), r.value.as_deref(), headers)
            .unwrap();
    }
    builder.finish().unwrap().freeze()
}

/// What a raw fetch of a whole partition returned.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The batches, in offset order.
    pub batches: Vec<RecordBatch>,
    /// The high watermark of the last answer for the partition.
    pub high_watermark: i64,
    /// The log start offset of the last answer for the partition.
    pub log_start_offset: i64,
}

/// Fetches (at `version`) the partitions of `topic` named in `expected` from offset 0 until
/// each has given `expected[p]` records, and returns what each gave. From v13 the topic is
/// named by `topic_id`.
pub fn fetch_all(
    conn: &mut NegotiatedConnection,
    version: i16,
    topic: &str,
    topic_id: Uuid,
    expected: &BTreeMap<i32, usize>,
) -> BTreeMap<i32, Fetched> {
    let mut fetched: BTreeMap<i32, Fetched> = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = expected.keys().map(|p| (*p, 0)).collect();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let wanted: Vec<FetchPartition> = next
            .iter()
            .filter(|(p, offset)| (**offset as usize) < expected[p])
            .map(|(p, offset)| FetchPartition {
                partition: *p,
                fetch_offset: *offset,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            })
            .collect();
        let request = FetchRequest {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 16 << 20,
            topics: vec![FetchTopic {
                topic: topic.to_owned(),
                topic_id,
                partitions: wanted,
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = conn.send_at(version, &request);
        assert_eq!(response.error_code, 0, "Fetch v{version}: {response:?}");
        for t in &response.responses {
            if version >= 13 {
                assert_eq!(t.topic_id, topic_id, "Fetch v{version}");
            } else {
                assert_eq!(t.topic, topic, "Fetch v{version}");
            }
            for p in &t.partitions {
                assert_eq!(p.error_code, 0, "Fetch v{version} partition {}: {p:?}", p.partition_index);
                let f = fetched.entry(p.partition_index).or_default();
                (f.high_watermark, f.log_start_offset) = (p.high_watermark, p.log_start_offset);
                let data = p.records.clone().unwrap_or_default();
                for batch in RecordBatches::new(data) {
                    let batch = batch
                        .unwrap_or_else(|e| panic!("Fetch v{version} partition {}: {e}", p.partition_index));
                    let offset = next.get_mut(&p.partition_index).unwrap();
                    // A fetch may start inside a batch the previous one ended with.
                    if batch.next_offset() <= *offset {
                        continue;
                    }
                    *offset = batch.next_offset();
                    f.batches.push(batch);
                }
            }
        }
        if next.iter().all(|(p, offset)| *offset as usize >= expected[p]) {
            return fetched;
        }
        assert!(Instant::now() < deadline, "Fetch v{version}: still missing records after 30 s: {next:?}");
    }
}
