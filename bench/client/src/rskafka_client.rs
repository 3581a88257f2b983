//! `rskafka`, which has no idempotent producer and no partitioner: the bench picks partitions
//! itself, sticky like the other two clients (a batch's worth of records to one partition, then
//! the next partition).
//!
//! Two producers:
//! - `rskafka`: its `BatchProducer` per partition (a `RecordAggregator` of 256 KiB, linger
//!   5 ms, lz4), one `produce` future per record, at most `window` of them pending: the
//!   per-record API its documentation shows, comparable to klamm's `send`.
//! - `rskafka-batches`: whole batches built by the bench and written with
//!   `PartitionClient::produce`, at most `window` records' worth pending: the lowest-overhead
//!   way to use it, for the throughput ceiling.
//!
//! The consumer calls `PartitionClient::fetch_records` in a loop per partition, partitions in
//! tasks of their own, with a max wait of 0 and up to 1 MiB per fetch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures::stream::{FuturesUnordered, StreamExt};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::producer::aggregator::RecordAggregator;
use rskafka::client::producer::{BatchProducer, BatchProducerBuilder};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

use crate::payload::{Values, VALUE_LEN};
use crate::worker::{
    BoxError, Job, Report, Tally, BATCH_BYTES, LINGER, PARTITIONS, PARTITION_FETCH_BYTES, STALL,
};

/// Records per sticky turn: what fills one 256 KiB batch (rskafka's aggregator counts value
/// bytes).
const PER_BATCH: u64 = (BATCH_BYTES / VALUE_LEN) as u64;

async fn partition_clients(client: &Client, topic: &str) -> Result<Vec<Arc<PartitionClient>>, BoxError> {
    let mut clients = Vec::new();
    for p in 0..PARTITIONS {
        clients.push(Arc::new(client.partition_client(topic, p, UnknownTopicHandling::Retry).await?));
    }
    Ok(clients)
}

fn record(values: &Values, seq: u64) -> Record {
    let mut value = [0u8; VALUE_LEN];
    values.fill(seq, &mut value);
    Record { key: None, value: Some(value.to_vec()), headers: BTreeMap::new(), timestamp: Utc::now() }
}

/// The sticky partition of record `seq`.
fn partition_of(seq: u64) -> usize {
    ((seq / PER_BATCH) % PARTITIONS as u64) as usize
}

/// Sends `job.count` records through one `BatchProducer` per partition.
pub async fn produce(job: &Job) -> Result<Report, BoxError> {
    let client = ClientBuilder::new(vec![job.brokers.clone()]).build().await?;
    let producers: Vec<BatchProducer<RecordAggregator>> = partition_clients(&client, &job.topic)
        .await?
        .into_iter()
        .map(|pc| {
            BatchProducerBuilder::new(pc)
                .with_linger(LINGER)
                .with_compression(Compression::Lz4)
                .build(RecordAggregator::new(BATCH_BYTES))
        })
        .collect();
    let values = Values::new();
    let mut pending = FuturesUnordered::new();
    let mut acked = 0u64;

    let start = Instant::now();
    for seq in 0..job.count {
        if pending.len() == job.window {
            if let Some(result) = pending.next().await {
                result?;
                acked += 1;
            }
        }
        pending.push(producers[partition_of(seq)].produce(record(&values, seq)));
    }
    while let Some(result) = pending.next().await {
        result?;
        acked += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Report {
        client: "rskafka".into(),
        direction: "produce".into(),
        records: acked,
        seconds,
        value_bytes: acked * VALUE_LEN as u64,
        checksum: 0,
        ..Report::default()
    })
}

/// Sends `job.count` records as whole batches with `PartitionClient::produce`.
pub async fn produce_batches(job: &Job) -> Result<Report, BoxError> {
    let client = ClientBuilder::new(vec![job.brokers.clone()]).build().await?;
    let partitions = partition_clients(&client, &job.topic).await?;
    let values = Values::new();
    let max_batches = (job.window as u64).div_ceil(PER_BATCH).max(1) as usize;
    let mut pending = FuturesUnordered::new();
    let mut acked = 0u64;

    let start = Instant::now();
    let mut seq = 0;
    while seq < job.count {
        let end = (seq + PER_BATCH).min(job.count);
        let batch: Vec<Record> = (seq..end).map(|s| record(&values, s)).collect();
        if pending.len() == max_batches {
            if let Some(result) = pending.next().await {
                let offsets: Vec<i64> = result?;
                acked += offsets.len() as u64;
            }
        }
        pending.push(partitions[partition_of(seq)].produce(batch, Compression::Lz4));
        seq = end;
    }
    while let Some(result) = pending.next().await {
        acked += result?.len() as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Report {
        client: "rskafka-batches".into(),
        direction: "produce".into(),
        records: acked,
        seconds,
        value_bytes: acked * VALUE_LEN as u64,
        checksum: 0,
        ..Report::default()
    })
}

/// Reads every partition from its earliest to its latest offset (as of the start), each in its
/// own task.
pub async fn consume(job: &Job) -> Result<Report, BoxError> {
    let client = ClientBuilder::new(vec![job.brokers.clone()]).build().await?;

    let start = Instant::now();
    let mut tasks = Vec::new();
    for pc in partition_clients(&client, &job.topic).await? {
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            let end = pc.get_offset(OffsetAt::Latest).await?;
            let mut offset = pc.get_offset(OffsetAt::Earliest).await?;
            let mut progress = Instant::now();
            while offset < end {
                let (records, _high_watermark) =
                    pc.fetch_records(offset, 1..PARTITION_FETCH_BYTES, 0).await?;
                for r in &records {
                    tally.record(pc.partition(), r.offset, r.record.value.as_deref())?;
                }
                match records.last() {
                    Some(last) => {
                        offset = last.offset + 1;
                        progress = Instant::now();
                    }
                    None if progress.elapsed() > STALL => {
                        return Err(format!("partition {}: no record for {STALL:?}", pc.partition()).into());
                    }
                    None => {}
                }
            }
            Ok::<Tally, BoxError>(tally)
        }));
    }
    let (mut records, mut value_bytes, mut checksum) = (0, 0, 0);
    for task in tasks {
        let tally = task.await??;
        records += tally.records;
        value_bytes += tally.value_bytes;
        checksum += tally.checksum;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Report {
        client: "rskafka".into(),
        direction: "consume".into(),
        records,
        seconds,
        value_bytes,
        checksum,
        ..Report::default()
    })
}
