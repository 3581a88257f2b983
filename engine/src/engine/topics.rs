//! Topic admin: the source topics' partition counts and ids, log ranges, and the dead-letter
//! topic made at startup.

use std::num::NonZeroU32;

use klamm::protocol::ErrorCode;
use klamm::{Admin, Error, ErrorKind, NewTopic, OffsetSpec, TopicPartition};

use super::shared::*;
use crate::config::EngineConfig;

impl Shared {
    /// Reads the source topics' partition counts and ids again (partitions may have been
    /// added, or a topic deleted and made again, which is what brings a rebalance).
    pub(super) async fn refresh_topics(&self) {
        let names: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        for (name, described) in self.admin.describe_topics(&names).await {
            match described {
                Ok(meta) => {
                    let Some(partitions) = NonZeroU32::new(meta.partition_count()) else { continue };
                    let id = (!meta.id.is_zero()).then(|| meta.id.to_string());
                    let info = TopicInfo { partitions, id };
                    let old = self
                        .topics
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), info.clone());
                    if let Some(old) = old.filter(|o| o.partitions != info.partitions || o.id != info.id) {
                        tracing::info!(
                            topic = %name, partitions = info.partitions.get(), was = old.partitions.get(),
                            id = ?info.id, was_id = ?old.id, "source topic changed"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %name, error = %e, "cannot read the topic's metadata; using what was known")
                }
            }
        }
    }

    /// The partition's first and end offsets, when they can be looked up.
    pub(super) async fn log_range(&self, tp: &TopicPartition) -> (Option<i64>, Option<i64>) {
        let asked = [
            (&*tp.topic, tp.partition, OffsetSpec::Earliest),
            (&*tp.topic, tp.partition, OffsetSpec::Latest),
        ];
        let listed = self.admin.list_offsets(&asked).await;
        let get = |i: usize| listed.get(i).and_then(|(_, r)| r.as_ref().ok()).map(|l| l.offset);
        (get(0), get(1))
    }
}

/// Creates the dead-letter topic with `partitions` partitions unless it exists.
pub(super) async fn ensure_dlq(
    admin: &Admin,
    config: &EngineConfig,
    partitions: NonZeroU32,
) -> Result<(), Error> {
    let dlq = &config.dlq_topic;
    let described = admin.describe_topics(&[dlq.as_str()]).await;
    match described.into_iter().next() {
        Some((_, Ok(_))) => return Ok(()),
        Some((_, Err(e))) if e.code() != Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => {
            return Err(Error::with_message(ErrorKind::Config, format!("dead-letter topic {dlq}: {e}")));
        }
        _ => {}
    }
    let mut topic = NewTopic::with_defaults(dlq.clone());
    topic.partitions = Some(i32::try_from(partitions.get()).unwrap_or(i32::MAX));
    match admin.create_topics(&[topic]).await.into_iter().next() {
        Some((_, Ok(_))) => {
            tracing::info!(topic = %dlq, partitions = partitions.get(), "dead-letter topic created")
        }
        Some((_, Err(e))) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
        Some((_, Err(e))) => {
            return Err(Error::with_message(
                ErrorKind::Config,
                format!("cannot create dead-letter topic {dlq}: {e}"),
            ))
        }
        None => {}
    }
    admin
        .wait_for_topic(dlq, config.shutdown_timeout)
        .await
        .map_err(|e| Error::with_message(ErrorKind::Config, format!("dead-letter topic {dlq}: {e}")))?;
    Ok(())
}
