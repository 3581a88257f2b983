//! Counters of what a [`Client`](crate::Client) and the producers and consumers built on it
//! did: connections, produced and fetched records and bytes, retries and errors. Read as a
//! [`ClientStats`] snapshot with [`Client::stats`](crate::Client::stats) (also
//! [`Producer::stats`](crate::Producer::stats) and [`Consumer::stats`](crate::Consumer::stats)).
//!
//! Every counter is a relaxed atomic add on a path that already does far more work (a
//! request, a batch, a record handed out); nothing allocates. Counters only grow, from the
//! client's creation, and are shared by its clones and by every producer and consumer made
//! over it, so a service that wants them apart gives each role a client of its own (as the
//! engine does).

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters, one set per client (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_opened: AtomicU64,
    pub(crate) connection_failures: AtomicU64,
    pub(crate) produce_requests: AtomicU64,
    pub(crate) produce_request_errors: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    pub(crate) records_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) batch_retries: AtomicU64,
    pub(crate) records_failed: AtomicU64,
    pub(crate) fetch_requests: AtomicU64,
    pub(crate) fetch_request_errors: AtomicU64,
    pub(crate) bytes_fetched: AtomicU64,
    pub(crate) records_fetched: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            connections_opened: get(&self.connections_opened),
            connection_failures: get(&self.connection_failures),
            produce_requests: get(&self.produce_requests),
            produce_request_errors: get(&self.produce_request_errors),
            batches_sent: get(&self.batches_sent),
            records_sent: get(&self.records_sent),
            bytes_sent: get(&self.bytes_sent),
            batch_retries: get(&self.batch_retries),
            records_failed: get(&self.records_failed),
            fetch_requests: get(&self.fetch_requests),
            fetch_request_errors: get(&self.fetch_request_errors),
            bytes_fetched: get(&self.bytes_fetched),
            records_fetched: get(&self.records_fetched),
        }
    }
}

/// What a client and the producers and consumers over it did since the client was made.
/// Every field only grows.
///
/// ```no_run
/// use klamm::{Producer, ProducerConfig, ProducerRecord};
///
/// # async fn example() -> Result<(), klamm::Error> {
/// let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092"))?;
/// producer.send(ProducerRecord::new("orders", "hello")).await?.await?;
/// let stats = producer.stats();
/// println!("{} records, {} bytes in {} batches", stats.records_sent, stats.bytes_sent, stats.batches_sent);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Broker connections opened (each reconnect counts).
    pub connections_opened: u64,
    /// Connection attempts that failed (refused, timed out, TLS or SASL failure).
    pub connection_failures: u64,
    /// Produce requests that got an answer or failed (with `acks=0`, those written).
    pub produce_requests: u64,
    /// Produce requests that failed as a whole: no connection, a lost connection, a timeout.
    /// Errors the broker gives per partition are not counted here (see `batch_retries` and
    /// `records_failed`).
    pub produce_request_errors: u64,
    /// Record batches the brokers acknowledged.
    pub batches_sent: u64,
    /// Records the brokers acknowledged.
    pub records_sent: u64,
    /// Bytes of the acknowledged record batches, as sent (after compression).
    pub bytes_sent: u64,
    /// Batches sent again after a retriable failure (each resend counts).
    pub batch_retries: u64,
    /// Records the sender gave up on: their batch failed for good (retries ran out, an error
    /// that is not retriable) or waited past `delivery.timeout.ms`.
    pub records_failed: u64,
    /// Fetch requests answered or failed.
    pub fetch_requests: u64,
    /// Fetch requests that failed as a whole (no connection, a timeout, a request-level error
    /// code).
    pub fetch_request_errors: u64,
    /// Bytes of record data fetched (as the broker sent them, before decompression).
    pub bytes_fetched: u64,
    /// Records handed to the application by the consumers.
    pub records_fetched: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_every_counter() {
        let c = Counters::default();
        let all = [
            &c.connections_opened,
            &c.connection_failures,
            &c.produce_requests,
            &c.produce_request_errors,
            &c.batches_sent,
            &c.records_sent,
            &c.bytes_sent,
            &c.batch_retries,
            &c.records_failed,
            &c.fetch_requests,
            &c.fetch_request_errors,
            &c.bytes_fetched,
            &c.records_fetched,
        ];
        for (i, counter) in all.iter().enumerate() {
            Counters::add(counter, i as u64 + 1);
        }
        let s = c.snapshot();
        let read = [
            s.connections_opened,
            s.connection_failures,
            s.produce_requests,
            s.produce_request_errors,
            s.batches_sent,
            s.records_sent,
            s.bytes_sent,
            s.batch_retries,
            s.records_failed,
            s.fetch_requests,
            s.fetch_request_errors,
            s.bytes_fetched,
            s.records_fetched,
        ];
        assert_eq!(read.to_vec(), (1..=13).collect::<Vec<u64>>());
    }
}
