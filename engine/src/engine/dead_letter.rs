//! Dead-letter writes: retried until acknowledged or the partition task is aborted; and the
//! search for a write that a killed run may have made.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use klamm::{Consumer, ConsumerRecord, Error, ErrorKind, Offset, OffsetSpec, TopicPartition};
use tokio::sync::watch;

use super::shared::*;
use super::worker::*;
use crate::dlq::{dead_letter_record, retry_backoff};
use crate::handler::{ErrorClass, HandlerError, Message};
use crate::metrics::Metrics;

/// Writes `msg` to the dead-letter topic, retrying until the write is acknowledged (or the
/// task is aborted: then it is not counted as handled and nothing past it is committed).
pub(super) async fn dead_letter(
    shared: &Shared,
    msg: &Message,
    error: &HandlerError,
    class: ErrorClass,
    retries: u32,
    abort: &watch::Receiver<bool>,
) -> Result<(), Halt> {
    let record = dead_letter_record(&shared.config.dlq_topic, msg, &error.to_string(), class, retries);
    let mut attempt = 0u32;
    loop {
        let written = match shared.producer.send(record.clone()).await {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        };
        match written {
            Ok(meta) => {
                tracing::info!(
                    topic = &*msg.topic, partition = msg.partition, offset = msg.offset,
                    dlq = %shared.config.dlq_topic, dlq_partition = meta.partition, dlq_offset = meta.offset,
                    class = class.as_str(), retries, error = %error, "dead-lettered"
                );
                Metrics::add(&shared.metrics.dead_lettered);
                return Ok(());
            }
            Err(e) => {
                if let Some(eos) = &shared.eos {
                    // In a transaction a failed write fails the transaction: retrying cannot
                    // help, aborting and reading the message again does.
                    tracing::warn!(offset = msg.offset, error = %e, "dead-letter write into the transaction failed");
                    eos.poison(&format!("dead-letter write of offset {} failed: {e}", msg.offset));
                    return Err(Halt::Rewind);
                }
                let wait =
                    retry_backoff(shared.config.retry_backoff, shared.config.retry_backoff_max, attempt);
                tracing::warn!(offset = msg.offset, error = %e, ?wait, "dead-letter write failed; retrying");
                shared
                    .health
                    .error(format_args!("dead-letter write to {} failed: {e}", shared.config.dlq_topic));
                sleep_or_abort(wait, abort).await?;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// How far before a recorded dead-letter write's start the dead-letter topic is searched: the
/// record's timestamp may come from the broker's clock (`LogAppendTime`) rather than the clock
/// that stamped the mark.
const CLOCK_SLACK_MS: i64 = 60_000;

/// How long the search of the dead-letter topic may take before the event is written again.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the dead-letter topic holds `msg` (by its `original-topic`, `original-partition` and
/// `original-offset` headers) among the records written since `since_ms` (less
/// [`CLOCK_SLACK_MS`]). Asked when a workspace was saved with a dead-letter write of `msg`
/// begun and not known to be done: a run killed after the write and before it could record it.
pub(super) async fn already_dead_lettered(
    shared: &Shared,
    msg: &Message,
    since_ms: i64,
) -> Result<bool, Error> {
    let dlq = shared.config.dlq_topic.as_str();
    let partitions = match shared.admin.describe_topics(&[dlq]).await.into_iter().next() {
        Some((_, Ok(meta))) => meta.partition_count() as i32,
        Some((_, Err(e))) => return Err(e),
        None => return Ok(false),
    };
    let from = since_ms.saturating_sub(CLOCK_SLACK_MS);
    // Per partition: the first offset written since `from` (-1 when none was) and the end,
    // asked apart (the answers come back grouped by leader, not in the order asked).
    let mut ranges: HashMap<i32, (i64, i64)> = HashMap::new();
    for (spec, end) in [(OffsetSpec::Timestamp(from), false), (OffsetSpec::Latest, true)] {
        let asked: Vec<(&str, i32, OffsetSpec)> = (0..partitions).map(|p| (dlq, p, spec)).collect();
        for ((_, p), listed) in shared.admin.list_offsets(&asked).await {
            let offset = listed?.offset;
            let range = ranges.entry(p).or_insert((-1, -1));
            if end {
                range.1 = offset;
            } else {
                range.0 = offset;
            }
        }
    }
    let to_read: Vec<(TopicPartition, i64, i64)> = ranges
        .into_iter()
        .filter(|(_, (start, end))| *start >= 0 && end > start)
        .map(|(p, (start, end))| (TopicPartition::new(dlq, p), start, end))
        .collect();
    if to_read.is_empty() {
        return Ok(false);
    }
    let config = shared.config.group_config()?.consumer;
    let mut consumer = Consumer::with_client(shared.admin.client().clone(), config)?;
    consumer.assign(to_read.iter().map(|(tp, _, _)| tp.clone()));
    for (tp, start, _) in &to_read {
        consumer.seek(tp, Offset::At(*start))?;
    }
    let (topic, partition, offset) =
        (msg.topic.as_bytes(), msg.partition.to_string(), msg.offset.to_string());
    let header = |r: &ConsumerRecord, name: &str| {
        r.headers.iter().find(|h| &*h.key == name.as_bytes()).and_then(|h| h.value.clone())
    };
    let deadline = Instant::now() + SEARCH_TIMEOUT;
    let mut found = Ok(false);
    while !to_read.iter().all(|(tp, _, end)| consumer.position(tp).is_some_and(|p| p >= *end)) {
        if Instant::now() > deadline {
            found = Err(Error::with_message(
                ErrorKind::Timeout,
                format!("the dead-letter topic {dlq} was not searched within {SEARCH_TIMEOUT:?}"),
            ));
            break;
        }
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) => {
                if records.iter().any(|r| {
                    header(r, "original-topic").as_deref() == Some(topic)
                        && header(r, "original-partition").as_deref() == Some(partition.as_bytes())
                        && header(r, "original-offset").as_deref() == Some(offset.as_bytes())
                }) {
                    found = Ok(true);
                    break;
                }
            }
            Err(e) => {
                found = Err(e);
                break;
            }
        }
    }
    let _ = consumer.close(Duration::from_secs(5)).await;
    found
}
