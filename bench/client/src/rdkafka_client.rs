//! librdkafka through the `rdkafka` crate, the way its documentation suggests for throughput:
//! a `BaseProducer` (no future per message) whose delivery reports are counted in the
//! producer context, polled while sending; a `BaseConsumer` with an explicit assignment.
//!
//! Settings mirror klamm's defaults where librdkafka's differ: `batch.size` 256 KiB,
//! `linger.ms` 5, a 64 MiB producer queue (`queue.buffering.max.kbytes`); lz4, acks=all,
//! idempotence on. Consumers: `fetch.wait.max.ms=0` and `fetch.queue.backoff.ms=0`; the
//! prefetch limit (`queued.max.messages.kbytes`) and per-partition fetch size are librdkafka's
//! defaults, which equal klamm's (64 MiB, 1 MiB).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::payload::{Values, VALUE_LEN};
use crate::worker::{BoxError, Job, Report, Tally, BATCH_BYTES, BUFFER_BYTES, LINGER, PARTITIONS, STALL};

/// Extra librdkafka properties from `KLAMM_BENCH_RDKAFKA` (`key=value,key=value`), applied
/// last: for trying other settings without rebuilding. The benchmark's figures use none.
fn with_extra(mut config: ClientConfig) -> Result<ClientConfig, BoxError> {
    let extra = std::env::var("KLAMM_BENCH_RDKAFKA").unwrap_or_default();
    for pair in extra.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("KLAMM_BENCH_RDKAFKA: {pair:?}"))?;
        config.set(key.trim(), value.trim());
    }
    Ok(config)
}

/// TLS trusting the job's CA, when it has one (the `rdkafka-tls` client: librdkafka's OpenSSL),
/// and SCRAM-SHA-512 inside it when the job has a SCRAM user (`rdkafka-sasl-ssl`: librdkafka's
/// built-in SCRAM, on the same OpenSSL).
fn with_tls(mut config: ClientConfig, job: &Job) -> ClientConfig {
    if let Some(ca) = &job.ca {
        config.set("security.protocol", "SSL").set("ssl.ca.location", ca);
    }
    if let Some((user, password)) = &job.scram {
        config
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", user)
            .set("sasl.password", password);
    }
    config
}

/// Counts delivery reports.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Sends `job.count` records with null keys (librdkafka's sticky partitioning for keyless
/// records) and flushes until every delivery report is in.
pub fn produce(job: &Job) -> Result<Report, BoxError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &job.brokers)
        .set("compression.type", "lz4")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", LINGER.as_millis().to_string())
        .set("batch.size", BATCH_BYTES.to_string())
        .set("queue.buffering.max.kbytes", (BUFFER_BYTES / 1024).to_string());
    let producer: BaseProducer<Deliveries> =
        with_extra(with_tls(config, job))?.create_with_context(Deliveries::default())?;
    let values = Values::new();
    let mut value = [0u8; VALUE_LEN];

    let start = Instant::now();
    for seq in 0..job.count {
        values.fill(seq, &mut value);
        let mut record = BaseRecord::<(), [u8]>::to(&job.topic).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The queue is full: serve delivery reports until there is room.
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        if seq % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let seconds = start.elapsed().as_secs_f64();

    let context = producer.context();
    let failed = context.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = context.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        return Err(format!("{failed} records failed, first: {}", first.unwrap_or_default()).into());
    }
    let acked = context.ok.load(Ordering::Relaxed);
    Ok(Report {
        client: "rdkafka".into(),
        direction: "produce".into(),
        records: acked,
        seconds,
        value_bytes: acked * VALUE_LEN as u64,
        checksum: 0,
        ..Report::default()
    })
}

/// Reads the topic from the beginning of every partition until `job.count` records are in.
pub fn consume(job: &Job) -> Result<Report, BoxError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &job.brokers)
        .set("group.id", "klamm-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "0")
        .set("fetch.queue.backoff.ms", "0");
    let consumer: BaseConsumer = with_extra(with_tls(config, job))?.create()?;
    let mut tally = Tally::new();

    let start = Instant::now();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(&job.topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    while tally.records < job.count {
        match consumer.poll(STALL) {
            Some(Ok(message)) => tally.record(message.partition(), message.offset(), message.payload())?,
            Some(Err(e)) => return Err(e.into()),
            None => {
                return Err(format!("no record for {STALL:?} after {} records", tally.records).into());
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Report {
        client: "rdkafka".into(),
        direction: "consume".into(),
        records: tally.records,
        seconds,
        value_bytes: tally.value_bytes,
        checksum: tally.checksum,
        ..Report::default()
    })
}
