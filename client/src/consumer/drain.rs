//! [`CompletedFetch`]: one partition's part of a fetch response, turned into records in offset
//! order, the way Kafka's Java consumer reads it.
//!
//! The rules, in order, for each batch of the response:
//! - a batch whose records all lie below the position is skipped (the broker returns whole
//!   batches, so the first batch may start before the offset we asked for);
//! - under read_committed, the response's aborted transactions (producer id, first offset) whose
//!   first offset is at or below the batch's last offset mark their producer as aborted; a
//!   transactional batch of an aborted producer is skipped whole, and an ABORT control batch of
//!   that producer ends its aborted state; a batch at or past the last stable offset ends the
//!   fetch;
//! - control batches (transaction markers) are never shown; the position moves past them;
//! - records below the position are skipped; every record handed out moves the position to its
//!   offset + 1, and a finished batch moves it to the batch's next offset.
//!
//! A `CompletedFetch` is owned by one thread at a time (the fetch task that built it, then the
//! consumer that drains it); it has no locks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use klamm_protocol::records::{ControlRecordType, RecordBatch, RecordBatches, Records};
use klamm_protocol::DecodeError;

use crate::consumer::record::ConsumerRecord;

/// One partition's data from one fetch response, drained record by record.
pub(crate) struct CompletedFetch {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// The partition's seek generation when the fetch was sent; a seek since makes it stale.
    pub(crate) generation: u64,
    /// The next offset to hand out.
    pub(crate) position: i64,
    /// Record-data bytes counted against the prefetch limit until the fetch is drained.
    pub(crate) size: usize,
    high_watermark: i64,
    last_stable_offset: i64,
    read_committed: bool,
    batches: RecordBatches,
    current: Option<(RecordBatch, Records)>,
    /// Aborted transactions not reached yet, smallest first offset first.
    aborted: BinaryHeap<Reverse<(i64, i64)>>,
    /// Producers whose transaction is aborted at the current read point.
    aborted_producers: HashSet<i64>,
    done: bool,
    /// The leader epoch of the last record handed out, if its batch carried one.
    pub(crate) last_epoch: Option<i32>,
}

/// What a fetch response said about one partition, as the drain needs it.
pub(crate) struct FetchedData {
    pub(crate) records: Bytes,
    pub(crate) high_watermark: i64,
    pub(crate) last_stable_offset: i64,
    /// (producer id, first offset) of each aborted transaction in the data.
    pub(crate) aborted: Vec<(i64, i64)>,
}

impl CompletedFetch {
    /// A drain of `data`, starting at `position`.
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        generation: u64,
        position: i64,
        read_committed: bool,
        check_crcs: bool,
        data: FetchedData,
    ) -> Self {
        let aborted = if read_committed {
            data.aborted.iter().map(|&(producer, first)| Reverse((first, producer))).collect()
        } else {
            BinaryHeap::new()
        };
        Self {
            topic,
            partition,
            generation,
            position,
            size: data.records.len(),
            high_watermark: data.high_watermark,
            last_stable_offset: data.last_stable_offset,
            read_committed,
            batches: RecordBatches::new(data.records).verify_checksums(check_crcs),
            current: None,
            aborted,
            aborted_producers: HashSet::new(),
            done: false,
            last_epoch: None,
        }
    }

    /// Whether every record has been handed out (or the data ended in an error).
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The next record to hand out, `None` when the fetch is drained, or the decode error that
    /// ends it (the position stays at the record that could not be read).
    pub(crate) fn next_record(&mut self) -> Option<Result<ConsumerRecord, DecodeError>> {
        while !self.done {
            if let Some((batch, records)) = &mut self.current {
                match records.next() {
                    Some(Ok(record)) => {
                        if record.offset() < self.position {
                            continue;
                        }
                        self.position = record.offset().wrapping_add(1);
                        let epoch = batch.partition_leader_epoch();
                        if epoch >= 0 {
                            self.last_epoch = Some(epoch);
                        }
                        return Some(Ok(ConsumerRecord {
                            topic: Arc::clone(&self.topic),
                            partition: self.partition,
                            offset: record.offset(),
                            key: record.key_bytes(),
                            value: record.value_bytes(),
                            headers: if record.headers().is_empty() {
                                Vec::new()
                            } else {
                                record.headers().iter_owned().collect()
                            },
                            timestamp: record.timestamp(),
                            timestamp_type: batch.timestamp_type(),
                            high_watermark: self.high_watermark,
                            leader_epoch: (epoch >= 0).then_some(epoch),
                        }));
                    }
                    Some(Err(e)) => return Some(Err(self.fail(e))),
                    None => {
                        let (epoch, next) = (batch.partition_leader_epoch(), batch.next_offset());
                        self.passed(epoch, next);
                        self.current = None;
                    }
                }
                continue;
            }
            let batch = match self.batches.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => return Some(Err(self.fail(e))),
                Some(Ok(batch)) => batch,
            };
            if batch.next_offset() <= self.position {
                continue;
            }
            if self.read_committed {
                if self.last_stable_offset >= 0 && batch.base_offset() >= self.last_stable_offset {
                    self.done = true;
                    return None;
                }
                if batch.producer_id() >= 0 {
                    self.reach_aborted_up_to(batch.last_offset());
                    let producer = batch.producer_id();
                    if batch.is_control() {
                        match batch.control_record() {
                            Ok(Some(c)) if c.kind == ControlRecordType::Abort => {
                                self.aborted_producers.remove(&producer);
                            }
                            Ok(_) => {}
                            Err(e) => return Some(Err(self.fail(e))),
                        }
                    } else if batch.is_transactional() && self.aborted_producers.contains(&producer) {
                        self.passed(batch.partition_leader_epoch(), batch.next_offset());
                        continue;
                    }
                }
            }
            if batch.is_control() {
                self.passed(batch.partition_leader_epoch(), batch.next_offset());
                continue;
            }
            match batch.records() {
                Ok(records) => self.current = Some((batch, records)),
                Err(e) => return Some(Err(self.fail(e))),
            }
        }
        None
    }

    /// The position moved past a batch (to `next_offset`) whose leader epoch is `epoch`.
    fn passed(&mut self, epoch: i32, next_offset: i64) {
        self.position = self.position.max(next_offset);
        if epoch >= 0 {
            self.last_epoch = Some(epoch);
        }
    }

    fn reach_aborted_up_to(&mut self, offset: i64) {
        while let Some(Reverse((first, producer))) = self.aborted.peek().copied() {
            if first > offset {
                break;
            }
            self.aborted.pop();
            self.aborted_producers.insert(producer);
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.done = true;
        self.current = None;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use klamm_protocol::records::{end_transaction_batch, RecordBatchBuilder};

    const T: i64 = 1_700_000_000_000;

    fn data_batch(out: &mut BytesMut, base: i64, producer: Option<i64>, values: &[&str]) {
        let mut b = RecordBatchBuilder::new().base_offset(base);
        if let Some(p) = producer {
            b = b.producer(p, 0, 0).transactional(true);
        }
        for v in values {
            b.push(T, None, Some(v.as_bytes())).unwrap();
        }
        out.extend_from_slice(&b.finish().unwrap());
    }

    fn marker(out: &mut BytesMut, offset: i64, producer: i64, kind: ControlRecordType) {
        out.extend_from_slice(&end_transaction_batch(kind, producer, 0, 0, offset, T).unwrap());
    }

    fn drain(
        data: Bytes,
        position: i64,
        read_committed: bool,
        aborted: Vec<(i64, i64)>,
        lso: i64,
    ) -> (Vec<String>, i64) {
        let fetched = FetchedData { records: data, high_watermark: 100, last_stable_offset: lso, aborted };
        let mut f = CompletedFetch::new("t".into(), 0, 0, position, read_committed, true, fetched);
        let mut out = Vec::new();
        while let Some(r) = f.next_record() {
            let r = r.unwrap();
            assert_eq!(r.high_watermark, 100);
            out.push(format!("{}:{}", r.offset, std::str::from_utf8(r.value.as_deref().unwrap()).unwrap()));
        }
        assert!(f.is_done());
        (out, f.position)
    }

    /// Offsets: 0-1 plain, 2-3 txn of producer 7 (aborted), 4 ABORT marker for 7,
    /// 5-6 txn of producer 8 (committed), 7 COMMIT marker for 8, 8 plain.
    fn mixed() -> Bytes {
        let mut d = BytesMut::new();
        data_batch(&mut d, 0, None, &["a", "b"]);
        data_batch(&mut d, 2, Some(7), &["x", "y"]);
        marker(&mut d, 4, 7, ControlRecordType::Abort);
        data_batch(&mut d, 5, Some(8), &["c", "d"]);
        marker(&mut d, 7, 8, ControlRecordType::Commit);
        data_batch(&mut d, 8, None, &["e"]);
        d.freeze()
    }

    #[test]
    fn read_committed_skips_aborted_and_control_batches() {
        let (got, position) = drain(mixed(), 0, true, vec![(7, 2)], -1);
        assert_eq!(got, ["0:a", "1:b", "5:c", "6:d", "8:e"]);
        assert_eq!(position, 9);
    }

    #[test]
    fn read_uncommitted_shows_aborted_data_but_no_markers() {
        let (got, position) = drain(mixed(), 0, false, vec![(7, 2)], -1);
        assert_eq!(got, ["0:a", "1:b", "2:x", "3:y", "5:c", "6:d", "8:e"]);
        assert_eq!(position, 9);
    }

    #[test]
    fn records_below_the_position_are_skipped() {
        let (got, position) = drain(mixed(), 1, false, vec![], -1);
        assert_eq!(got[0], "1:b");
        assert_eq!(position, 9);
        // Starting inside the aborted range: nothing of it, position past the marker.
        let (got, _) = drain(mixed(), 3, true, vec![(7, 2)], -1);
        assert_eq!(got, ["5:c", "6:d", "8:e"]);
    }

    #[test]
    fn the_last_stable_offset_bounds_read_committed() {
        let (got, position) = drain(mixed(), 0, true, vec![(7, 2)], 5);
        assert_eq!(got, ["0:a", "1:b"]);
        // The aborted batch and its marker are below the LSO: the position moves past them.
        assert_eq!(position, 5);
    }

    #[test]
    fn a_producer_aborted_twice_is_aborted_again_after_its_marker() {
        let mut d = BytesMut::new();
        data_batch(&mut d, 0, Some(7), &["x"]);
        marker(&mut d, 1, 7, ControlRecordType::Abort);
        data_batch(&mut d, 2, Some(7), &["ok"]);
        marker(&mut d, 3, 7, ControlRecordType::Commit);
        data_batch(&mut d, 4, Some(7), &["z"]);
        marker(&mut d, 5, 7, ControlRecordType::Abort);
        let (got, position) = drain(d.freeze(), 0, true, vec![(7, 0), (7, 4)], -1);
        assert_eq!(got, ["2:ok"]);
        assert_eq!(position, 6);
    }

    #[test]
    fn a_corrupt_batch_is_an_error_and_keeps_the_position() {
        let mut d = BytesMut::new();
        data_batch(&mut d, 0, None, &["a"]);
        let start = d.len();
        data_batch(&mut d, 1, None, &["b"]);
        let last = d.len() - 1;
        d[last] ^= 0xff;
        assert!(d.len() > start);
        let fetched =
            FetchedData { records: d.freeze(), high_watermark: 2, last_stable_offset: -1, aborted: vec![] };
        let mut f = CompletedFetch::new("t".into(), 0, 0, 0, false, true, fetched);
        assert_eq!(f.next_record().unwrap().unwrap().offset, 0);
        assert!(f.next_record().unwrap().is_err());
        assert!(f.is_done());
        assert_eq!(f.position, 1);
        assert!(f.next_record().is_none());
    }

    #[test]
    fn headers_and_keys_are_slices_of_the_data() {
        let mut b = RecordBatchBuilder::new().base_offset(3);
        b.push_with_headers(T, Some(&b"k"[..]), Some(&b"v"[..]), [("h", Some(b"1"))]).unwrap();
        let data = b.finish().unwrap().freeze();
        let range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
        let fetched =
            FetchedData { records: data, high_watermark: 4, last_stable_offset: -1, aborted: vec![] };
        let mut f = CompletedFetch::new("t".into(), 0, 0, 0, false, true, fetched);
        let r = f.next_record().unwrap().unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.headers.len(), 1);
        assert_eq!(&r.headers[0].key[..], b"h");
        assert!(range.contains(&(r.value.as_ref().unwrap().as_ptr() as usize)));
        assert!(range.contains(&(r.headers[0].key.as_ptr() as usize)));
        assert_eq!(f.position, 4);
    }
}
