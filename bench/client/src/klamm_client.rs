//! klamm as a user would drive it for throughput: the `Producer` with its defaults (batch
//! 256 KiB, linger 5 ms, buffer 64 MiB, idempotence on, acks=all) plus lz4, and the `Consumer`
//! assigned every partition from the beginning with a fetch max wait of 0.
//!
//! Over TLS (`Job::ca` set: the `klamm-tls` and `klamm-tls-graviola` clients) the same, with
//! `security.protocol=SSL` trusting that CA; `main` installs the crypto provider first. With
//! `Job::scram` too (`klamm-sasl-ssl`), SASL_SSL: SCRAM-SHA-512 inside that TLS.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::protocol::compression::Compression;
use klamm::{ClientConfig, DeliveryFuture, SaslMechanism, TlsConfig, TopicPartition};
use klamm::{Consumer, ConsumerConfig, Offset, OffsetReset, Producer, ProducerConfig, ProducerRecord};

use crate::payload::{Values, VALUE_LEN};
use crate::worker::{BoxError, Job, Report, Tally, PARTITIONS, STALL};

/// Sends `job.count` records with null keys (the sticky partitioner spreads them) and waits
/// for every acknowledgement.
///
/// Delivery futures are kept in a FIFO window of `job.window`: once it is full, the oldest is
/// awaited before the next send. That bounds what the bench itself holds (a `DeliveryFuture`
/// per record) while sends never wait on a young batch. With a window of 0 the futures are
/// dropped and only `flush` waits, which is how the peak RSS is checked against the buffer
/// limit: nothing but `buffer.memory` throttles `send` then.
pub async fn produce(job: &Job) -> Result<Report, BoxError> {
    let config = ProducerConfig::new(&job.brokers).compression(Compression::Lz4).with_client(|c| tls(c, job));
    let producer = Producer::new(config)?;
    let values = Values::new();
    let mut value = [0u8; VALUE_LEN];
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(job.window.min(1 << 20));
    let mut acked = 0u64;

    // The topic name is made once and shared by every record (no allocation per record), as
    // klamm's docs recommend for a producer that sends many records to one topic.
    let topic: Arc<str> = Arc::from(job.topic.as_str());
    let start = Instant::now();
    if job.window == 0 {
        // Fire and forget: only the buffer limit throttles `send`; `flush` waits for the rest.
        // Failed records are not seen here, but the driver's read-back count catches them.
        for seq in 0..job.count {
            values.fill(seq, &mut value);
            let record = ProducerRecord::new(&topic, Bytes::copy_from_slice(&value));
            drop(producer.send(record).await?);
        }
        let left = producer.flush(Duration::from_secs(120)).await;
        if left != 0 {
            return Err(format!("{left} records not acknowledged after flush").into());
        }
        acked = job.count;
    } else {
        for seq in 0..job.count {
            values.fill(seq, &mut value);
            let record = ProducerRecord::new(&topic, Bytes::copy_from_slice(&value));
            let delivery = producer.send(record).await?;
            if pending.len() == job.window {
                if let Some(oldest) = pending.pop_front() {
                    oldest.await?;
                    acked += 1;
                }
            }
            pending.push_back(delivery);
        }
        for delivery in pending {
            delivery.await?;
            acked += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();

    let left = producer.close(Duration::from_secs(10)).await;
    if left != 0 {
        return Err(format!("{left} records still pending at close").into());
    }
    Ok(Report {
        client: "klamm".into(),
        direction: "produce".into(),
        records: acked,
        seconds,
        value_bytes: acked * VALUE_LEN as u64,
        checksum: 0,
        ..Report::default()
    })
}

/// `client` over TLS trusting the job's CA, when it has one.
fn tls(client: ClientConfig, job: &Job) -> ClientConfig {
    let client = match &job.ca {
        Some(ca) => client.tls(TlsConfig::new().ca_file(ca)),
        None => client,
    };
    match &job.scram {
        Some((user, password)) => client.sasl_scram(SaslMechanism::ScramSha512, user, password.as_str()),
        None => client,
    }
}

/// Reads the topic from the beginning of every partition until `job.count` records are in.
pub async fn consume(job: &Job) -> Result<Report, BoxError> {
    let config = ConsumerConfig::with_client_config(tls(ClientConfig::new(&job.brokers), job))
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::ZERO);
    let mut consumer = Consumer::new(config)?;
    let mut tally = Tally::new();

    let start = Instant::now();
    let partitions: Vec<TopicPartition> =
        (0..PARTITIONS).map(|p| TopicPartition::new(job.topic.as_str(), p)).collect();
    consumer.assign(partitions.iter().cloned());
    for tp in &partitions {
        consumer.seek(tp, Offset::Beginning)?;
    }
    while tally.records < job.count {
        let records = consumer.poll(STALL).await?;
        if records.is_empty() {
            return Err(format!("no record for {STALL:?} after {} records", tally.records).into());
        }
        for record in &records {
            tally.record(record.partition, record.offset, record.value.as_deref())?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    consumer.close(Duration::from_secs(10)).await?;
    Ok(Report {
        client: "klamm".into(),
        direction: "consume".into(),
        records: tally.records,
        seconds,
        value_bytes: tally.value_bytes,
        checksum: tally.checksum,
        ..Report::default()
    })
}
