//! What the consumer hands out: [`ConsumerRecord`], and the names it uses for partitions and
//! positions ([`TopicPartition`], [`Offset`]).
//!
//! A record's key, value and header parts are [`Bytes`] slices of the fetch response (or of
//! the decompressed batch) they came in: keeping a record keeps that buffer alive, and no byte
//! is copied on the way from the socket to the user.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use klamm_protocol::records::{Header, TimestampType};

/// A partition of a topic.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: Arc<str>,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

impl fmt::Debug for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Where to move a partition's position with [`Consumer::seek`](crate::Consumer::seek).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The earliest offset the partition holds (looked up with ListOffsets).
    Beginning,
    /// The end of the partition: the high watermark, or under read_committed the last stable
    /// offset (looked up with ListOffsets).
    End,
    /// This offset. One outside the partition's range is handled by `auto.offset.reset`.
    At(i64),
    /// The first offset whose timestamp is at or after this many milliseconds since the epoch;
    /// the end when there is none.
    Timestamp(i64),
}

/// One record read from a partition.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The key; `None` for a null key.
    pub key: Option<Bytes>,
    /// The value; `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// The headers in order (an empty `Vec`, which does not allocate, when there are none).
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch; `-1` when the record has none (message format 0).
    pub timestamp: i64,
    /// Whether the timestamp is the producer's create time or the broker's append time.
    pub timestamp_type: TimestampType,
    /// The partition's high watermark as of the fetch that returned the record.
    pub high_watermark: i64,
    /// The leader epoch of the batch the record was in, `None` when the batch has none.
    pub leader_epoch: Option<i32>,
}

impl ConsumerRecord {
    /// The record's partition as a [`TopicPartition`].
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition { topic: Arc::clone(&self.topic), partition: self.partition }
    }
}

impl fmt::Debug for ConsumerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerRecord")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers)
            .field("timestamp", &self.timestamp)
            .field("high_watermark", &self.high_watermark)
            .finish()
    }
}
