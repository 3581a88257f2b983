//! What a worker process (one client, one direction) is told and what it reports: the arguments
//! shared by every client, the JSON line it prints, and the checks a consumer makes on what it
//! read.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Partitions of every benchmark topic.
pub const PARTITIONS: i32 = 4;

/// The batch size every producer is given: klamm's default `batch.size`.
pub const BATCH_BYTES: usize = 256 * 1024;

/// The producer buffer every client is given where it has one: klamm's default
/// `buffer.memory`.
pub const BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// How long producers linger: klamm's default `linger.ms`.
pub const LINGER: Duration = Duration::from_millis(5);

/// The most a per-partition fetch asks for: the `max.partition.fetch.bytes` default of klamm
/// and librdkafka.
pub const PARTITION_FETCH_BYTES: i32 = 1024 * 1024;

/// How long a consumer may see nothing before the run fails.
pub const STALL: Duration = Duration::from_secs(60);

/// What a worker is asked to do.
#[derive(Debug, Clone)]
pub struct Job {
    /// Bootstrap list, `host:port`.
    pub brokers: String,
    /// The topic (with [`PARTITIONS`] partitions) to write or read.
    pub topic: String,
    /// Records to produce, or to read back (exactly).
    pub count: u64,
    /// Producers: how many delivery results the bench keeps pending before it waits for the
    /// oldest (klamm, rskafka). 0: klamm drops its delivery futures and flushes at the end.
    pub window: usize,
    /// The CA file to trust when the client connects over TLS (the `klamm-tls-*` and
    /// `*-sasl-ssl` clients).
    pub ca: Option<String>,
    /// The SCRAM-SHA-512 user name and password, for the `*-sasl-ssl` clients (SASL_SSL).
    pub scram: Option<(String, String)>,
}

/// The JSON line a worker prints on success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// `klamm`, `rdkafka` or `rskafka`.
    pub client: String,
    /// `produce` or `consume`.
    pub direction: String,
    /// Records sent and acknowledged, or read.
    pub records: u64,
    /// Wall time: first send to last acknowledgement, or consumer start to the last record.
    pub seconds: f64,
    /// Sum of the value lengths handled.
    pub value_bytes: u64,
    /// Consumers: a sum over one byte of each value, so the values are read.
    pub checksum: u64,
    /// The worker's peak RSS in KiB (`VmHWM`), filled in by [`Report::with_peak_rss`].
    #[serde(default)]
    pub peak_rss_kib: u64,
}

impl Report {
    /// Sets [`Report::peak_rss_kib`] from `/proc/self/status`.
    ///
    /// Why not `ru_maxrss` from `wait4` in the driver: Linux carries the peak RSS of the
    /// address space a process replaces at `exec` into that process's `ru_maxrss`, so a child
    /// of the driver reports at least the driver's own peak. `VmHWM` belongs to the worker's
    /// own address space only.
    pub fn with_peak_rss(mut self) -> Report {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        self.peak_rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        self
    }

    /// Records per second.
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// What a consumer has read so far, with the checks that make the count trustworthy: offsets
/// strictly increase within each partition, so no record is counted twice.
#[derive(Debug, Default)]
pub struct Tally {
    /// Records read.
    pub records: u64,
    /// Sum of value lengths.
    pub value_bytes: u64,
    /// Sum of the middle byte of each value.
    pub checksum: u64,
    last_offset: [i64; PARTITIONS as usize],
}

impl Tally {
    /// A tally with nothing read.
    pub fn new() -> Tally {
        Tally { last_offset: [-1; PARTITIONS as usize], ..Tally::default() }
    }

    /// Counts one record; fails if its offset is not past the last one of its partition.
    pub fn record(&mut self, partition: i32, offset: i64, value: Option<&[u8]>) -> Result<(), String> {
        let last = usize::try_from(partition)
            .ok()
            .and_then(|p| self.last_offset.get_mut(p))
            .ok_or_else(|| format!("record from partition {partition}, expected 0..{PARTITIONS}"))?;
        if offset <= *last {
            return Err(format!("partition {partition}: offset {offset} after {last} (read twice?)"));
        }
        *last = offset;
        self.records += 1;
        if let Some(value) = value {
            self.value_bytes += value.len() as u64;
            self.checksum += u64::from(value.get(value.len() / 2).copied().unwrap_or(0));
        }
        Ok(())
    }
}

/// The error type of the workers: a message is all the driver shows.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_read_twice_or_from_an_unknown_partition_is_an_error() {
        let mut tally = Tally::new();
        tally.record(0, 0, Some(b"abc")).unwrap();
        tally.record(1, 0, None).unwrap();
        tally.record(0, 5, Some(b"xyz")).unwrap();
        assert!(tally.record(0, 5, Some(b"xyz")).is_err());
        assert!(tally.record(0, 3, None).is_err());
        assert!(tally.record(PARTITIONS, 0, None).is_err());
        assert!(tally.record(-1, 0, None).is_err());
        assert_eq!((tally.records, tally.value_bytes, tally.checksum), (3, 6, u64::from(b'b' + b'y')));
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        assert!(Report::default().with_peak_rss().peak_rss_kib > 0);
    }
}
