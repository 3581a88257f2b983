//! Dead-letter writes: retried until acknowledged or the partition task is aborted.

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
