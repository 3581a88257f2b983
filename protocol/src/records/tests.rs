//! Tests of record data: round trips through the builder and reader for every codec, the
//! exact bytes of a batch, checksums, partial tails, invalid lengths, hand-built legacy
//! messages (plain and wrapped), control batches, and no panic on arbitrary bytes.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::error::DecodeError;

/// All records of all batches; the first error ends it.
fn all_records(data: Bytes) -> Result<Vec<Record>, DecodeError> {
    let mut out = Vec::new();
    for batch in RecordBatches::new(data) {
        for record in batch?.records()? {
            out.push(record?);
        }
    }
    Ok(out)
}

fn one_batch(data: Bytes) -> RecordBatch {
    let mut batches = RecordBatches::new(data);
    let batch = batches.next().unwrap().unwrap();
    assert!(batches.next().is_none());
    batch
}

fn simple_batch(base_offset: i64, values: &[&[u8]], codec: Compression) -> BytesMut {
    let mut b = RecordBatchBuilder::new().base_offset(base_offset).compression(codec);
    for (i, v) in values.iter().enumerate() {
        b.push(1_000 + i as i64, Some(b"k"), Some(v)).unwrap();
    }
    b.finish().unwrap()
}

#[test]
fn batch_bytes_match_the_specification() {
    let mut b = RecordBatchBuilder::new().base_offset(5).partition_leader_epoch(3).producer(9, 1, 7);
    b.push_with_headers(100, None, Some(b"v"), [("h", Some(b"x"))]).unwrap();
    let data = b.finish().unwrap();
    let record: &[u8] = &[
        11 << 1, // length of what follows: 11
        0,       // attributes
        0,       // timestamp delta 0
        0,       // offset delta 0
        1,       // key: null (-1)
        1 << 1,  // value length 1
        b'v',
        1 << 1, // one header
        1 << 1,
        b'h',
        1 << 1,
        b'x',
    ];
    let mut expected = BytesMut::new();
    expected.put_i64(5); // base offset
    expected.put_i32((49 + record.len()) as i32); // batch length
    expected.put_i32(3); // partition leader epoch
    expected.put_i8(2); // magic
    expected.put_u32(0); // crc, below
    expected.put_i16(0); // attributes
    expected.put_i32(0); // last offset delta
    expected.put_i64(100); // base timestamp
    expected.put_i64(100); // max timestamp
    expected.put_i64(9); // producer id
    expected.put_i16(1); // producer epoch
    expected.put_i32(7); // base sequence
    expected.put_i32(1); // record count
    expected.put_slice(record);
    let crc = crc32c::crc32c(&expected[21..]);
    expected[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(&data[..], &expected[..]);
}

#[test]
fn header_fields_and_flags() {
    let mut b = RecordBatchBuilder::new()
        .base_offset(1000)
        .partition_leader_epoch(12)
        .producer(77, 3, i32::MAX - 1)
        .transactional(true)
        .log_append_time(5_000);
    for ts in [30, 10, 20] {
        b.push(ts, None, None).unwrap();
    }
    let batch = one_batch(b.finish().unwrap().freeze());
    assert_eq!(batch.magic(), 2);
    assert_eq!((batch.base_offset(), batch.last_offset(), batch.next_offset()), (1000, 1002, 1003));
    assert_eq!(batch.partition_leader_epoch(), 12);
    assert_eq!((batch.producer_id(), batch.producer_epoch()), (77, 3));
    assert_eq!((batch.base_sequence(), batch.last_sequence()), (i32::MAX - 1, 0));
    assert!(batch.is_transactional() && !batch.is_control());
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!((batch.base_timestamp(), batch.max_timestamp()), (30, 5_000));
    assert_eq!(batch.delete_horizon_ms(), None);
    assert_eq!(batch.control_record(), Ok(None));
    // Under log-append time every record reads the batch's max timestamp.
    let records: Vec<_> = batch.records().unwrap().map(Result::unwrap).collect();
    assert!(records.iter().all(|r| r.timestamp() == 5_000));
    assert_eq!(records.iter().map(|r| r.offset()).collect::<Vec<_>>(), [1000, 1001, 1002]);
}

#[test]
fn create_time_max_timestamp_is_the_largest() {
    let mut b = RecordBatchBuilder::new();
    for ts in [30, 10, 50, 20] {
        b.push(ts, None, None).unwrap();
    }
    let batch = one_batch(b.finish().unwrap().freeze());
    assert_eq!((batch.base_timestamp(), batch.max_timestamp()), (30, 50));
    let ts: Vec<_> = batch.records().unwrap().map(|r| r.unwrap().timestamp()).collect();
    assert_eq!(ts, [30, 10, 50, 20]);
}

#[test]
fn offsets_with_gaps_and_empty_batches() {
    let mut b = RecordBatchBuilder::new().base_offset(10);
    b.push_at(0, 1, None, Some(b"a"), [("k", None::<&[u8]>)]).unwrap();
    b.push_at(5, 2, None, Some(b"b"), [("k", None::<&[u8]>)]).unwrap();
    assert!(b.push_at(5, 3, None, None, [("k", None::<&[u8]>)]).is_err());
    let batch = one_batch(b.finish().unwrap().freeze());
    assert_eq!(batch.last_offset(), 15);
    let offsets: Vec<_> = batch.records().unwrap().map(|r| r.unwrap().offset()).collect();
    assert_eq!(offsets, [10, 15]);

    let empty = one_batch(RecordBatchBuilder::new().finish().unwrap().freeze());
    assert_eq!(empty.record_count(), 0);
    assert_eq!(empty.records().unwrap().count(), 0);
}

#[test]
fn several_batches_share_a_buffer() {
    let first = simple_batch(0, &[b"a", b"b"], Compression::None);
    let mut second = RecordBatchBuilder::with_buffer(first).base_offset(2);
    second.push(5, None, Some(b"c")).unwrap();
    let data = second.finish().unwrap().freeze();
    let values: Vec<_> =
        all_records(data).unwrap().into_iter().map(|r| (r.offset(), r.value_bytes().unwrap())).collect();
    assert_eq!(values, [(0, Bytes::from("a")), (1, Bytes::from("b")), (2, Bytes::from("c"))]);
}

#[test]
fn uncompressed_values_are_slices_of_the_input() {
    let data = simple_batch(0, &[b"value"], Compression::None).freeze();
    let record = all_records(data.clone()).unwrap().remove(0);
    let value = record.value().unwrap();
    let within = data.as_ptr_range();
    assert!(within.contains(&value.as_ptr()));
}

#[test]
fn checksum_mismatch_is_detected() {
    for codec in Compression::ALL.into_iter().filter(|c| c.is_enabled()) {
        let good = simple_batch(0, &[b"hello", b"world"], codec);
        for at in [21, 30, 60, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            let err = RecordBatches::new(bad.freeze()).next().unwrap().unwrap_err();
            assert!(
                matches!(err, DecodeError::ChecksumMismatch { what: "record batch CRC-32C", .. }),
                "{err}"
            );
        }
        // With verification off the header still decodes.
        let mut bad = good.clone();
        bad[57] ^= 0;
        bad[17] ^= 0xff;
        let batch = RecordBatches::new(bad.freeze()).verify_checksums(false).next().unwrap().unwrap();
        assert_eq!(batch.record_count(), 2);
    }
}

#[test]
fn partial_tail_ends_iteration_without_error() {
    let mut data = simple_batch(0, &[b"first batch"], Compression::None);
    let first_len = data.len();
    let second = simple_batch(1, &[b"second", b"batch"], Compression::None);
    data.extend_from_slice(&second);
    let data = data.freeze();
    for cut in 0..=data.len() {
        let mut batches = RecordBatches::new(data.slice(..cut));
        let got: Vec<_> = batches.by_ref().map(|b| b.unwrap().base_offset()).collect();
        let expected: &[i64] = if cut == data.len() {
            &[0, 1]
        } else if cut >= first_len {
            &[0]
        } else {
            &[]
        };
        assert_eq!(got, expected, "cut at {cut}");
        let tail = if cut >= first_len { cut - first_len } else { cut };
        assert_eq!(batches.remaining().len(), if cut == data.len() { 0 } else { tail });
    }
}

#[test]
fn invalid_lengths_and_magic_are_errors() {
    let good = simple_batch(0, &[b"x"], Compression::None);
    // Negative, too small for any entry, too small for a magic 2 header.
    for length in [-1i32, 13, 48] {
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&length.to_be_bytes());
        let err = RecordBatches::new(bad.freeze()).next().unwrap().unwrap_err();
        assert!(matches!(err, DecodeError::InvalidLength { .. }), "{length}: {err}");
    }
    // A negative length is refused even before the magic byte has arrived.
    let mut bad = good.clone();
    bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(RecordBatches::new(bad.freeze().slice(..14)).next().unwrap().is_err());
    for magic in [3u8, 0xff] {
        let mut bad = good.clone();
        bad[16] = magic;
        let err = RecordBatches::new(bad.freeze()).next().unwrap().unwrap_err();
        assert!(matches!(err, DecodeError::InvalidValue { field: "record batch magic", .. }));
    }
    // The iterator stops after an error.
    let mut bad = good.clone();
    bad[16] = 7;
    bad.extend_from_slice(&good);
    assert_eq!(RecordBatches::new(bad.freeze()).count(), 1);
}

/// Rewrites a batch's record count and CRC.
fn with_count(batch: &BytesMut, count: i32) -> Bytes {
    let mut b = batch.clone();
    b[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

#[test]
fn record_count_must_match_the_records() {
    let good = simple_batch(0, &[b"a value of some length", b"another value"], Compression::None);
    // Fewer records announced than present: the rest is trailing bytes.
    let records: Vec<_> = one_batch(with_count(&good, 1)).records().unwrap().collect();
    assert!(matches!(records[..], [Ok(_), Err(DecodeError::TrailingBytes { .. })]));
    // More than present.
    let records: Vec<_> = one_batch(with_count(&good, 3)).records().unwrap().collect();
    assert!(matches!(records[..], [Ok(_), Ok(_), Err(_)]));
    // More than could possibly fit, refused before reading.
    assert!(matches!(
        one_batch(with_count(&good, 1_000_000)).records(),
        Err(DecodeError::InvalidLength { .. })
    ));
    // Negative.
    let err = RecordBatches::new(with_count(&good, -1)).next().unwrap().unwrap_err();
    assert!(matches!(err, DecodeError::InvalidValue { field: "record batch record count", .. }));
}

#[test]
fn headers_are_read_lazily_but_validated_eagerly() {
    let mut b = RecordBatchBuilder::new();
    let headers = [("a", Some(&b"1"[..])), ("b", None), ("a", Some(&b"2"[..]))];
    b.push_with_headers(0, Some(b"k"), None, headers).unwrap();
    let record = all_records(b.finish().unwrap().freeze()).unwrap().remove(0);
    assert_eq!(record.headers().len(), 3);
    let read: Vec<_> = record.headers().iter().map(|h| (h.key_str().unwrap(), h.value)).collect();
    assert_eq!(read, [("a", Some(&b"1"[..])), ("b", None), ("a", Some(&b"2"[..]))]);
    assert_eq!(record.headers().last("a").unwrap().value, Some(&b"2"[..]));
    assert!(record.headers().last("c").is_none());
    let owned: Vec<Header> = record.headers().iter_owned().collect();
    assert_eq!(owned[0].key, Bytes::from("a"));
    assert_eq!(
        format!("{:?}", record.headers()),
        r#"[Header { key: "a", value: Some(b"1") }, Header { key: "b", value: None }, Header { key: "a", value: Some(b"2") }]"#
    );

    // A header key with a negative length makes the record invalid when it is read.
    let mut raw = RecordBatchBuilder::new();
    raw.push_with_headers(0, None, None, [("k", None::<&[u8]>)]).unwrap();
    let mut raw = raw.finish().unwrap();
    let key_len_at = raw.len() - 3;
    assert_eq!(raw[key_len_at], 2);
    raw[key_len_at] = 1; // -1
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    let err = one_batch(raw.freeze()).records().unwrap().next().unwrap().unwrap_err();
    assert!(matches!(err, DecodeError::UnexpectedNull { .. } | DecodeError::TrailingBytes { .. }), "{err}");
}

#[test]
fn control_batches() {
    for kind in [ControlRecordType::Abort, ControlRecordType::Commit] {
        let data = end_transaction_batch(kind, 42, 2, 9, 100, 1234).unwrap().freeze();
        let batch = one_batch(data);
        assert!(batch.is_control() && batch.is_transactional());
        assert_eq!((batch.producer_id(), batch.producer_epoch(), batch.base_offset()), (42, 2, 100));
        assert_eq!(batch.control_record().unwrap(), Some(ControlRecord { version: 0, kind }));
        let record = batch.records().unwrap().next().unwrap().unwrap();
        assert_eq!(record.key(), Some(&[0, 0, 0, kind.code() as u8][..]));
        let marker = EndTransactionMarker::parse(record.value().unwrap()).unwrap();
        assert_eq!(marker, EndTransactionMarker { version: 0, coordinator_epoch: 9 });
    }
    assert_eq!(ControlRecord::parse(&[0, 0, 0, 5]).unwrap().kind, ControlRecordType::Other(5));
    assert!(ControlRecord::parse(&[0, 0, 0]).is_err());
    assert!(ControlRecord::parse(&[0xff, 0xff, 0, 0]).is_err());
}

#[test]
fn disabled_codec_keeps_the_header_readable() {
    if Compression::Zstd.is_enabled() {
        return;
    }
    // A zstd batch built by hand: the codec bits say zstd, the records are whatever.
    let mut b = simple_batch(0, &[b"x"], Compression::None);
    b[22] |= 4;
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = one_batch(b.freeze());
    assert_eq!(batch.compression(), Compression::Zstd);
    assert_eq!(batch.next_offset(), 1);
    assert!(matches!(batch.records(), Err(DecodeError::CompressionNotEnabled("zstd"))));
}

#[test]
fn decompression_limits_apply_to_batches() {
    let Some(codec) = [Compression::Lz4, Compression::Gzip, Compression::Zstd, Compression::Snappy]
        .into_iter()
        .find(|c| c.is_enabled())
    else {
        return;
    };
    let big = vec![0u8; 2 << 20];
    let data = simple_batch(0, &[&big], codec).freeze();
    let batch = RecordBatches::new(data)
        .with_limits(DecompressionLimits::new(1 << 20, None))
        .next()
        .unwrap()
        .unwrap();
    assert!(matches!(batch.records(), Err(DecodeError::DecompressionLimitExceeded { .. })));
}

// --- Legacy message sets, built byte by byte ---

/// A legacy message set entry: offset, size, then crc over magic..end, magic, attributes,
/// timestamp (magic 1), key and value.
fn legacy_entry(
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = vec![magic as u8, attributes as u8];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    for field in [key, value] {
        match field {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                body.extend_from_slice(b);
            }
        }
    }
    let mut out = offset.to_be_bytes().to_vec();
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn legacy_magic_0_message_byte_by_byte() {
    // offset 7, size 20, crc, magic 0, attributes 0, key "k", value "val".
    let mut entry: Vec<u8> = vec![0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 20];
    let message: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'k', 0, 0, 0, 3, b'v'];
    let mut message = message.to_vec();
    message.extend_from_slice(b"al");
    let crc = crc32fast::hash(&message[4..]);
    message[..4].copy_from_slice(&crc.to_be_bytes());
    entry.extend_from_slice(&message);
    assert_eq!(entry.len(), 12 + 18);
    entry[11] = 18;
    assert_eq!(entry, legacy_entry(7, 0, 0, 0, Some(b"k"), Some(b"val")));

    let batch = one_batch(Bytes::from(entry.clone()));
    assert_eq!(batch.magic(), 0);
    assert_eq!((batch.base_offset(), batch.last_offset(), batch.record_count()), (7, 7, 1));
    assert_eq!(batch.timestamp_type(), TimestampType::NotAvailable);
    assert_eq!((batch.producer_id(), batch.partition_leader_epoch()), (-1, -1));
    let r = batch.records().unwrap().next().unwrap().unwrap();
    assert_eq!((r.offset(), r.timestamp()), (7, -1));
    assert_eq!((r.key(), r.value()), (Some(&b"k"[..]), Some(&b"val"[..])));
    assert!(r.headers().is_empty());

    // A flipped bit is a CRC-32 mismatch.
    entry[20] ^= 0x80;
    let err = RecordBatches::new(Bytes::from(entry)).next().unwrap().unwrap_err();
    assert!(matches!(err, DecodeError::ChecksumMismatch { what: "legacy message CRC-32", .. }));
}

#[test]
fn legacy_magic_1_message_byte_by_byte() {
    let entry = legacy_entry(3, 1, 0, 1_600_000_000_000, None, Some(b"v"));
    // offset, size 4+1+1+8+4+4+1 = 23, crc, magic 1, attributes, timestamp, key -1, value.
    assert_eq!(&entry[8..12], &[0, 0, 0, 23]);
    assert_eq!(entry[16], 1);
    assert_eq!(&entry[18..26], &1_600_000_000_000i64.to_be_bytes());
    assert_eq!(&entry[26..30], &[0xff; 4]);
    let batch = one_batch(Bytes::from(entry));
    assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(batch.max_timestamp(), 1_600_000_000_000);
    let r = batch.records().unwrap().next().unwrap().unwrap();
    assert_eq!(
        (r.offset(), r.timestamp(), r.key(), r.value()),
        (3, 1_600_000_000_000, None, Some(&b"v"[..]))
    );
}

#[test]
fn legacy_sets_mix_with_batches() {
    let mut data = legacy_entry(0, 0, 0, 0, None, Some(b"a"));
    data.extend_from_slice(&legacy_entry(1, 1, 0, 10, None, Some(b"b")));
    data.extend_from_slice(&simple_batch(2, &[b"c"], Compression::None));
    let values: Vec<_> = all_records(Bytes::from(data))
        .unwrap()
        .into_iter()
        .map(|r| (r.offset(), r.value_bytes().unwrap()))
        .collect();
    assert_eq!(values, [(0, Bytes::from("a")), (1, Bytes::from("b")), (2, Bytes::from("c"))]);
}

#[cfg(feature = "gzip")]
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Compression::Gzip.compress(data, &mut out).unwrap();
    out.to_vec()
}

#[cfg(feature = "gzip")]
#[test]
fn legacy_gzip_wrapped_magic_1_uses_relative_offsets() {
    let mut inner = legacy_entry(0, 1, 0, 11, Some(b"k0"), Some(b"v0"));
    inner.extend_from_slice(&legacy_entry(1, 1, 0, 12, None, Some(b"v1")));
    inner.extend_from_slice(&legacy_entry(2, 1, 0, 13, Some(b"k2"), None));
    // The wrapper carries the absolute offset of the last inner message.
    let wrapper = legacy_entry(102, 1, 1, 13, None, Some(&gzip(&inner)));
    let batch = one_batch(Bytes::from(wrapper.clone()));
    assert_eq!(batch.compression(), Compression::Gzip);
    assert_eq!((batch.base_offset(), batch.last_offset(), batch.record_count()), (100, 102, 3));
    let records: Vec<_> = batch.records().unwrap().map(Result::unwrap).collect();
    let fields: Vec<_> =
        records.iter().map(|r| (r.offset(), r.timestamp(), r.key_bytes(), r.value_bytes())).collect();
    assert_eq!(
        fields,
        [
            (100, 11, Some(Bytes::from("k0")), Some(Bytes::from("v0"))),
            (101, 12, None, Some(Bytes::from("v1"))),
            (102, 13, Some(Bytes::from("k2")), None),
        ]
    );

    // Under log-append time the wrapper's timestamp applies to every inner message.
    let wrapper = legacy_entry(102, 1, 1 | 0x08, 99, None, Some(&gzip(&inner)));
    let batch = one_batch(Bytes::from(wrapper));
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert!(batch.records().unwrap().all(|r| r.unwrap().timestamp() == 99));

    // A wrapper offset of 0 (some librdkafka versions) leaves inner offsets as they are.
    let wrapper = legacy_entry(0, 1, 1, 13, None, Some(&gzip(&inner)));
    let offsets: Vec<_> =
        one_batch(Bytes::from(wrapper)).records().unwrap().map(|r| r.unwrap().offset()).collect();
    assert_eq!(offsets, [0, 1, 2]);

    // A wrapper offset below the last inner offset is invalid.
    let wrapper = legacy_entry(1, 1, 1, 13, None, Some(&gzip(&inner)));
    assert!(RecordBatches::new(Bytes::from(wrapper)).next().unwrap().is_err());
}

#[cfg(feature = "gzip")]
#[test]
fn legacy_magic_1_offsets_that_overflow_are_errors() {
    let overflow = |value| DecodeError::InvalidValue { field: "legacy inner offset", value };
    // The wrapper offset minus the last inner offset: i64::MAX - (-1).
    let inner = legacy_entry(-1, 1, 0, 0, None, Some(b"x"));
    let wrapper = legacy_entry(i64::MAX, 1, 1, 0, None, Some(&gzip(&inner)));
    let err = RecordBatches::new(Bytes::from(wrapper)).next().unwrap().unwrap_err();
    assert_eq!(err, overflow(-1));

    // The base is fine (10 - 0) but an earlier inner offset lands past i64::MAX.
    let mut inner = legacy_entry(i64::MAX, 1, 0, 0, None, Some(b"x"));
    inner.extend_from_slice(&legacy_entry(0, 1, 0, 0, None, Some(b"y")));
    let wrapper = legacy_entry(10, 1, 1, 0, None, Some(&gzip(&inner)));
    let err = RecordBatches::new(Bytes::from(wrapper)).next().unwrap().unwrap_err();
    assert_eq!(err, overflow(i64::MAX));
}

#[cfg(feature = "gzip")]
#[test]
fn legacy_gzip_wrapped_magic_0_uses_absolute_offsets() {
    let mut inner = legacy_entry(40, 0, 0, 0, None, Some(b"x"));
    inner.extend_from_slice(&legacy_entry(41, 0, 0, 0, None, Some(b"y")));
    // A partial inner message at the end is ignored, as Kafka does.
    let partial = legacy_entry(42, 0, 0, 0, None, Some(b"z"));
    inner.extend_from_slice(&partial[..partial.len() - 2]);
    let wrapper = legacy_entry(41, 0, 1, 0, None, Some(&gzip(&inner)));
    let batch = one_batch(Bytes::from(wrapper));
    assert_eq!((batch.base_offset(), batch.last_offset(), batch.record_count()), (40, 41, 2));
    let records: Vec<_> = batch.records().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(records.iter().map(|r| (r.offset(), r.timestamp())).collect::<Vec<_>>(), [(40, -1), (41, -1)]);
}

#[cfg(feature = "gzip")]
#[test]
fn invalid_legacy_wrappers() {
    let inner = legacy_entry(0, 1, 0, 0, None, Some(b"x"));
    // Inner messages may not be compressed.
    let nested = legacy_entry(0, 1, 1, 0, None, Some(&gzip(&inner)));
    let wrapper = legacy_entry(0, 1, 1, 0, None, Some(&gzip(&nested)));
    assert!(RecordBatches::new(Bytes::from(wrapper)).next().unwrap().is_err());
    // A null wrapper value, and a wrapper holding nothing.
    let wrapper = legacy_entry(0, 1, 1, 0, None, None);
    assert!(RecordBatches::new(Bytes::from(wrapper)).next().unwrap().is_err());
    let wrapper = legacy_entry(0, 1, 1, 0, None, Some(&gzip(b"")));
    assert!(RecordBatches::new(Bytes::from(wrapper)).next().unwrap().is_err());
    // zstd never wraps a legacy set.
    let wrapper = legacy_entry(0, 1, 4, 0, None, Some(b"whatever"));
    assert!(RecordBatches::new(Bytes::from(wrapper)).next().unwrap().is_err());
    // A corrupted inner message.
    let mut bad_inner = inner.clone();
    let last = bad_inner.len() - 1;
    bad_inner[last] ^= 1;
    let wrapper = legacy_entry(0, 1, 1, 0, None, Some(&gzip(&bad_inner)));
    let err = RecordBatches::new(Bytes::from(wrapper)).next().unwrap().unwrap_err();
    assert!(matches!(err, DecodeError::ChecksumMismatch { .. }));
}

#[cfg(feature = "lz4")]
#[test]
fn legacy_magic_0_lz4_with_kafka_08_header_checksum() {
    let inner = legacy_entry(0, 0, 0, 0, None, Some(b"old"));
    let mut frame = BytesMut::new();
    Compression::Lz4.compress(&inner, &mut frame).unwrap();
    // Kafka 0.8 hashed the magic number with the descriptor.
    let broken = (twox_hash::XxHash32::oneshot(0, &frame[..6]) >> 8) as u8;
    assert_ne!(broken, frame[6]);
    frame[6] = broken;
    let wrapper = legacy_entry(0, 0, 3, 0, None, Some(&frame));
    let records = all_records(Bytes::from(wrapper)).unwrap();
    assert_eq!(records[0].value(), Some(&b"old"[..]));
    // Magic 1 data must have a correct descriptor checksum.
    let inner = legacy_entry(0, 1, 0, 0, None, Some(b"new"));
    let mut frame = BytesMut::new();
    Compression::Lz4.compress(&inner, &mut frame).unwrap();
    frame[6] = (twox_hash::XxHash32::oneshot(0, &frame[..6]) >> 8) as u8;
    let wrapper = legacy_entry(0, 1, 3, 0, None, Some(&frame));
    assert!(all_records(Bytes::from(wrapper)).is_err());
}

// --- Properties ---

#[derive(Debug, Clone)]
struct TestRecord {
    gap: u8,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn bytes_strategy(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max))
}

fn record_strategy() -> impl Strategy<Value = TestRecord> {
    (
        0u8..3,
        prop_oneof![any::<i64>(), 1_600_000_000_000i64..1_800_000_000_000],
        bytes_strategy(40),
        bytes_strategy(300),
        proptest::collection::vec((".{0,8}", bytes_strategy(8)), 0..3),
    )
        .prop_map(|(gap, timestamp, key, value, headers)| TestRecord {
            gap,
            timestamp,
            key,
            value,
            headers,
        })
}

#[derive(Debug, Clone)]
struct TestBatch {
    base_offset: i64,
    leader_epoch: i32,
    producer: (i64, i16, i32),
    transactional: bool,
    log_append_time: Option<i64>,
    codec: u8,
    records: Vec<TestRecord>,
}

fn batch_strategy() -> impl Strategy<Value = TestBatch> {
    (
        any::<i64>(),
        any::<i32>(),
        (any::<i64>(), any::<i16>(), any::<i32>()),
        any::<bool>(),
        proptest::option::of(any::<i64>()),
        0u8..5,
        proptest::collection::vec(record_strategy(), 0..12),
    )
        .prop_map(
            |(base_offset, leader_epoch, producer, transactional, log_append_time, codec, records)| {
                TestBatch {
                    base_offset,
                    leader_epoch,
                    producer,
                    transactional,
                    log_append_time,
                    codec,
                    records,
                }
            },
        )
}

fn build(t: &TestBatch) -> BytesMut {
    let codec = Compression::from_id(t.codec).unwrap();
    let mut b = RecordBatchBuilder::new()
        .base_offset(t.base_offset)
        .partition_leader_epoch(t.leader_epoch)
        .producer(t.producer.0, t.producer.1, t.producer.2)
        .transactional(t.transactional)
        .compression(codec);
    if let Some(time) = t.log_append_time {
        b = b.log_append_time(time);
    }
    let mut delta = 0i32;
    for r in &t.records {
        delta += i32::from(r.gap);
        let headers = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref()));
        b.push_at(delta, r.timestamp, r.key.as_deref(), r.value.as_deref(), headers).unwrap();
        delta += 1;
    }
    b.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn batches_round_trip(t in batch_strategy()) {
        let codec = Compression::from_id(t.codec).unwrap();
        prop_assume!(codec.is_enabled());
        let data = build(&t).freeze();
        let batch = one_batch(data.clone());
        prop_assert_eq!(batch.size_in_bytes(), data.len());
        prop_assert_eq!(batch.base_offset(), t.base_offset);
        prop_assert_eq!(batch.partition_leader_epoch(), t.leader_epoch);
        prop_assert_eq!((batch.producer_id(), batch.producer_epoch(), batch.base_sequence()), t.producer);
        prop_assert_eq!(batch.is_transactional(), t.transactional);
        prop_assert_eq!(batch.record_count() as usize, t.records.len());
        prop_assert_eq!(batch.compression(), if t.records.is_empty() { Compression::None } else { codec });
        let records: Vec<Record> = batch.records().unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(records.len(), t.records.len());
        let mut delta = 0i64;
        for (got, want) in records.iter().zip(&t.records) {
            delta += i64::from(want.gap);
            prop_assert_eq!(got.offset(), t.base_offset.wrapping_add(delta));
            delta += 1;
            prop_assert_eq!(got.timestamp(), t.log_append_time.unwrap_or(want.timestamp));
            prop_assert_eq!(got.key(), want.key.as_deref());
            prop_assert_eq!(got.value(), want.value.as_deref());
            let headers: Vec<_> = got.headers().iter().map(|h| (h.key_str().unwrap().to_owned(), h.value.map(<[u8]>::to_vec))).collect();
            prop_assert_eq!(&headers, &want.headers);
        }
        if let Some(last) = records.last() {
            prop_assert_eq!(batch.last_offset(), last.offset());
            let max = t.log_append_time.unwrap_or_else(|| t.records.iter().map(|r| r.timestamp).max().unwrap());
            prop_assert_eq!(batch.max_timestamp(), max);
        }
    }

    #[test]
    fn no_panic_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = all_records(Bytes::from(data.clone()));
        for batch in RecordBatches::new(Bytes::from(data)).verify_checksums(false).flatten() {
            let _ = batch.records().map(Iterator::count);
        }
    }

    #[test]
    fn no_panic_on_mutated_batches(t in batch_strategy(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        prop_assume!(Compression::from_id(t.codec).is_some_and(Compression::is_enabled));
        let mut data = build(&t);
        for (at, byte) in flips {
            let at = at.index(data.len());
            data[at] = byte;
        }
        // Without checksums, so the mutations reach the record parser.
        for batch in RecordBatches::new(data.freeze()).verify_checksums(false) {
            let Ok(batch) = batch else { break };
            let _ = batch.control_record();
            if let Ok(records) = batch.records() {
                for record in records {
                    let Ok(record) = record else { break };
                    let _ = record.headers().iter().count();
                }
            }
        }
    }
}

// --- Record data written by Apache Kafka's Java client ---
//
// `fixtures/*.bin` were written by kafka-clients 3.9.1's `MemoryRecordsBuilder` (the code the
// Java producer and the broker use) with `fixtures/GenerateFixtures.java`: five records at
// offsets 100 to 104 for every magic and codec, and a transactional batch with its commit
// marker. Regenerate with `java -cp '<kafka-clients and its codec jars>:.' GenerateFixtures
// write <dir>`.

/// Headers as owned key and value pairs.
type OwnedHeaders = Vec<(String, Option<Vec<u8>>)>;

/// What `GenerateFixtures.append` wrote for record `i`: key, value, headers.
fn java_record(i: i64, magic: u8) -> (Option<Vec<u8>>, Option<Vec<u8>>, OwnedHeaders) {
    let key = (i != 1).then(|| format!("key-{i}").into_bytes());
    let value = (i != 2).then(|| format!("value {i} {}", "x".repeat(i as usize * 50)).into_bytes());
    let headers = if magic < 2 {
        Vec::new()
    } else {
        vec![(format!("h{i}"), Some(format!("hv{i}").into_bytes())), ("null".to_owned(), None)]
    };
    (key, value, headers)
}

fn headers_of(r: &Record) -> OwnedHeaders {
    r.headers().iter().map(|h| (h.key_str().unwrap().to_owned(), h.value.map(<[u8]>::to_vec))).collect()
}

#[test]
fn java_client_batches_of_every_magic_and_codec() {
    let fixtures: [(&str, u8, Compression, &[u8]); 13] = [
        ("magic0-none", 0, Compression::None, include_bytes!("fixtures/java-magic0-none.bin")),
        ("magic0-gzip", 0, Compression::Gzip, include_bytes!("fixtures/java-magic0-gzip.bin")),
        ("magic0-snappy", 0, Compression::Snappy, include_bytes!("fixtures/java-magic0-snappy.bin")),
        ("magic0-lz4", 0, Compression::Lz4, include_bytes!("fixtures/java-magic0-lz4.bin")),
        ("magic1-none", 1, Compression::None, include_bytes!("fixtures/java-magic1-none.bin")),
        ("magic1-gzip", 1, Compression::Gzip, include_bytes!("fixtures/java-magic1-gzip.bin")),
        ("magic1-snappy", 1, Compression::Snappy, include_bytes!("fixtures/java-magic1-snappy.bin")),
        ("magic1-lz4", 1, Compression::Lz4, include_bytes!("fixtures/java-magic1-lz4.bin")),
        ("magic2-none", 2, Compression::None, include_bytes!("fixtures/java-magic2-none.bin")),
        ("magic2-gzip", 2, Compression::Gzip, include_bytes!("fixtures/java-magic2-gzip.bin")),
        ("magic2-snappy", 2, Compression::Snappy, include_bytes!("fixtures/java-magic2-snappy.bin")),
        ("magic2-lz4", 2, Compression::Lz4, include_bytes!("fixtures/java-magic2-lz4.bin")),
        ("magic2-zstd", 2, Compression::Zstd, include_bytes!("fixtures/java-magic2-zstd.bin")),
    ];
    for (name, magic, codec, data) in fixtures {
        if !codec.is_enabled() {
            continue;
        }
        let mut records = Vec::new();
        for batch in RecordBatches::new(Bytes::from_static(data)) {
            let batch = batch.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((batch.magic() as u8, batch.compression()), (magic, codec), "{name}");
            // Uncompressed legacy data is one batch per message.
            assert_eq!(
                batch.last_offset(),
                if magic < 2 && codec == Compression::None { batch.base_offset() } else { 104 }
            );
            records.extend(batch.records().unwrap().map(|r| r.unwrap_or_else(|e| panic!("{name}: {e}"))));
        }
        assert_eq!(records.len(), 5, "{name}");
        for (i, r) in (0..).zip(&records) {
            let (key, value, headers) = java_record(i, magic);
            assert_eq!(r.offset(), 100 + i, "{name}");
            assert_eq!(r.timestamp(), if magic == 0 { -1 } else { 1_700_000_000_000 + i }, "{name}");
            assert_eq!(r.key(), key.as_deref(), "{name}");
            assert_eq!(r.value(), value.as_deref(), "{name}");
            assert_eq!(headers_of(r), headers, "{name}");
        }
    }
}

#[cfg(feature = "lz4")]
#[test]
fn java_client_transaction_and_commit_marker() {
    let data = Bytes::from_static(include_bytes!("fixtures/java-transaction-lz4.bin"));
    let batches: Vec<RecordBatch> = RecordBatches::new(data).collect::<Result<_, _>>().unwrap();
    let [data_batch, marker] = &batches[..] else { panic!("expected two batches, got {}", batches.len()) };

    assert_eq!((data_batch.base_offset(), data_batch.last_offset()), (200, 204));
    assert_eq!((data_batch.producer_id(), data_batch.producer_epoch()), (4242, 7));
    // The sequence wraps from i32::MAX to 0 as Java's does.
    assert_eq!((data_batch.base_sequence(), data_batch.last_sequence()), (i32::MAX - 1, 2));
    assert!(data_batch.is_transactional() && !data_batch.is_control());
    assert_eq!(data_batch.partition_leader_epoch(), 13);
    assert_eq!(data_batch.timestamp_type(), TimestampType::LogAppendTime);
    let records: Vec<Record> = data_batch.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.timestamp() == 1_700_000_000_999));
    assert_eq!(headers_of(&records[3]), java_record(3, 2).2);

    assert!(marker.is_control() && marker.is_transactional());
    assert_eq!((marker.base_offset(), marker.producer_id(), marker.producer_epoch()), (205, 4242, 7));
    assert_eq!(
        marker.control_record().unwrap(),
        Some(ControlRecord { version: 0, kind: ControlRecordType::Commit })
    );
    let record = marker.records().unwrap().next().unwrap().unwrap();
    assert_eq!(record.timestamp(), 1_700_000_001_000);
    let value = EndTransactionMarker::parse(record.value().unwrap()).unwrap();
    assert_eq!(value, EndTransactionMarker { version: 0, coordinator_epoch: 3 });
}

#[test]
fn set_producer_state_restamps_and_keeps_the_crc_valid() {
    let mut builder = RecordBatchBuilder::new().producer(7, 1, 10);
    builder.push(1_000, Some(&b"k"[..]), Some(&b"v"[..])).unwrap();
    builder.push(1_001, None, Some(&b"w"[..])).unwrap();
    let mut data = builder.finish().unwrap();
    crate::records::set_producer_state(&mut data, 9, 2, 40).unwrap();
    let batch = RecordBatches::new(data.clone().freeze()).next().unwrap().unwrap();
    assert_eq!((batch.producer_id(), batch.producer_epoch(), batch.base_sequence()), (9, 2, 40));
    assert_eq!(batch.record_count(), 2);

    // Not a whole batch: refused, untouched.
    let before = data.clone();
    assert!(crate::records::set_producer_state(&mut data[..60], 1, 1, 1).is_err());
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(crate::records::set_producer_state(&mut longer, 1, 1, 1).is_err());
    assert_eq!(data, before);
}
