//! One record of a batch, its headers, and the iterator that reads the records of a batch.
//!
//! A magic 2 record is framed by a zig-zag varint length and holds: attributes (int8, unused),
//! timestampDelta (varlong), offsetDelta (varint), key and value (varint length, `-1` for
//! null), and headers (varint count, then per header a varint-length UTF-8 key and a
//! varint-length value, `-1` for null). See
//! <https://kafka.apache.org/documentation/#record> and `DefaultRecord` in Apache Kafka.
//!
//! Reading allocates nothing per record, and takes one reference count per record: a
//! [`Record`] holds one [`Bytes`] slice of the batch data (the input itself when uncompressed,
//! the one decompressed buffer otherwise) covering that record, and knows where its key, value
//! and headers are in it. Headers are parsed again only when iterated. Each record's structure,
//! headers included, is validated when the record is read, so reading its parts cannot fail.

use std::fmt;

use bytes::Bytes;

use crate::error::DecodeError;
use crate::records::legacy::LegacyRecords;

/// Where a key, value or header section lies in a record's bytes; `NULL` for null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    pub(crate) const NULL: Span = Span { start: u32::MAX, end: u32::MAX };
    pub(crate) const EMPTY: Span = Span { start: 0, end: 0 };

    /// The span of `start..end` (both within a record, so below 2^31).
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Span { start: start as u32, end: end as u32 }
    }

    /// The bytes this span covers in `data`, `None` for null.
    #[inline]
    pub(crate) fn get(self, data: &[u8]) -> Option<&[u8]> {
        if self.start == u32::MAX {
            None
        } else {
            data.get(self.start as usize..self.end as usize)
        }
    }
}

/// One record: its absolute offset and timestamp, key, value and headers, as zero-copy views of
/// the record data.
///
/// For magic 0 and 1 data, headers are empty, and magic 0 records have no timestamp (`-1`).
/// Cloning a record costs one reference count; [`Record::value_bytes`] and friends hand out
/// [`Bytes`] that share the data, for keeping parts beyond the record.
#[derive(Clone)]
pub struct Record {
    offset: i64,
    timestamp: i64,
    /// The record's bytes (for magic 2, from its attributes to its end; for legacy data, the
    /// message from its CRC on).
    data: Bytes,
    key: Span,
    value: Span,
    /// The header section after the header count.
    headers: Span,
    header_count: u32,
}

impl Record {
    pub(crate) fn new(offset: i64, timestamp: i64, data: Bytes, key: Span, value: Span) -> Self {
        Self { offset, timestamp, data, key, value, headers: Span::EMPTY, header_count: 0 }
    }

    /// The record's offset in its partition.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The record's timestamp in milliseconds: its create time, or the batch's log-append time
    /// when the batch's [`TimestampType`](crate::records::TimestampType) says so; `-1` when there
    /// is none.
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, `None` for a null key.
    #[inline]
    pub fn key(&self) -> Option<&[u8]> {
        self.key.get(&self.data)
    }

    /// The value, `None` for a null value (a tombstone on a compacted topic).
    #[inline]
    pub fn value(&self) -> Option<&[u8]> {
        self.value.get(&self.data)
    }

    /// The key as [`Bytes`] sharing the record data (no copy).
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key().map(|k| self.data.slice_ref(k))
    }

    /// The value as [`Bytes`] sharing the record data (no copy).
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value().map(|v| self.data.slice_ref(v))
    }

    /// The headers.
    #[inline]
    pub fn headers(&self) -> RecordHeaders<'_> {
        RecordHeaders { data: &self.data, section: self.headers, count: self.header_count }
    }
}

impl PartialEq for Record {
    /// Records are equal when offset, timestamp, key, value and headers are, however they were
    /// encoded.
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
            && self.timestamp == other.timestamp
            && self.key() == other.key()
            && self.value() == other.value()
            && self.header_count == other.header_count
            && self.headers.get(&self.data) == other.headers.get(&other.data)
    }
}

impl Eq for Record {}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key_bytes())
            .field("value", &self.value_bytes())
            .field("headers", &self.headers())
            .finish()
    }
}

/// The headers of a record: a view over their encoded bytes, parsed when iterated.
///
/// ```
/// use klamm_protocol::records::{RecordBatchBuilder, RecordBatches};
///
/// let mut batch = RecordBatchBuilder::new();
/// batch.push_with_headers(1_700_000_000_000, None, Some(&b"v"[..]), [("trace", Some(b"abc"))]).unwrap();
/// let data = batch.finish().unwrap().freeze();
/// let record = RecordBatches::new(data).next().unwrap().unwrap().records().unwrap().next().unwrap().unwrap();
/// let header = record.headers().iter().next().unwrap();
/// assert_eq!((header.key, header.value), (&b"trace"[..], Some(&b"abc"[..])));
/// assert_eq!(record.headers().last("trace").unwrap().value, Some(&b"abc"[..]));
/// ```
#[derive(Clone, Copy)]
pub struct RecordHeaders<'a> {
    data: &'a Bytes,
    /// The encoded headers (after the count), validated when the record was read.
    section: Span,
    count: u32,
}

impl<'a> RecordHeaders<'a> {
    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in order, borrowed from the record data.
    pub fn iter(&self) -> HeadersIter<'a> {
        let data: &'a [u8] = self.data;
        HeadersIter { cursor: Cursor::new(self.section.get(data).unwrap_or_default()), left: self.count }
    }

    /// The headers in order, each as [`Bytes`] sharing the record data (no copy).
    pub fn iter_owned(&self) -> impl Iterator<Item = Header> + 'a {
        let data = self.data;
        self.iter()
            .map(move |h| Header { key: data.slice_ref(h.key), value: h.value.map(|v| data.slice_ref(v)) })
    }

    /// The last header with this key, as Kafka's `Headers.lastHeader` finds it.
    pub fn last(&self, key: &str) -> Option<HeaderRef<'a>> {
        self.iter().filter(|h| h.key == key.as_bytes()).last()
    }
}

impl fmt::Debug for RecordHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for RecordHeaders<'a> {
    type Item = HeaderRef<'a>;
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A header borrowed from a record.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderRef<'a> {
    /// The key (UTF-8 by Kafka's contract; see [`HeaderRef::key_str`]).
    pub key: &'a [u8],
    /// The value, `None` for null.
    pub value: Option<&'a [u8]>,
}

impl<'a> HeaderRef<'a> {
    /// The key as a string, if it is valid UTF-8.
    pub fn key_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.key)
    }
}

impl fmt::Debug for HeaderRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("key", &String::from_utf8_lossy(self.key))
            .field("value", &self.value.map(Bytes::copy_from_slice))
            .finish()
    }
}

/// A record header: what a consumed record carries (as [`Bytes`] slices of the record data)
/// and what a produced record is given. The client crate uses this one type on both sides, so
/// a consumed record's headers can be sent on as they are, null values included.
///
/// ```
/// use klamm_protocol::records::Header;
///
/// let trace = Header::new("trace-id", "4bf92f35");
/// assert_eq!(trace.key_str(), Ok("trace-id"));
/// assert_eq!(trace.value.as_deref(), Some(&b"4bf92f35"[..]));
/// let flag = Header::null("replayed");
/// assert_eq!(flag.value, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// The key (UTF-8 by Kafka's contract; see [`Header::key_str`]).
    pub key: Bytes,
    /// The value, `None` for null.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value. `&'static str`, `String`, `Vec<u8>` and `Bytes` all convert
    /// without copying.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self { key: key.into(), value: Some(value.into()) }
    }

    /// A header with a null value (which Kafka keeps apart from an empty one).
    pub fn null(key: impl Into<Bytes>) -> Self {
        Self { key: key.into(), value: None }
    }

    /// A header whose value may be null.
    pub fn with_value(key: impl Into<Bytes>, value: Option<Bytes>) -> Self {
        Self { key: key.into(), value }
    }

    /// The key as a string, if it is valid UTF-8.
    pub fn key_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.key)
    }
}

impl From<HeaderRef<'_>> for Header {
    /// Copies a borrowed header.
    fn from(h: HeaderRef<'_>) -> Self {
        Self { key: Bytes::copy_from_slice(h.key), value: h.value.map(Bytes::copy_from_slice) }
    }
}

/// Iterator over [`RecordHeaders`].
#[derive(Debug, Clone)]
pub struct HeadersIter<'a> {
    cursor: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = HeaderRef<'a>;

    fn next(&mut self) -> Option<HeaderRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The section was validated when its record was read, so this cannot fail; if it did,
        // the iteration would end rather than panic.
        let key = self.cursor.blob();
        let value = self.cursor.blob();
        match (key, value) {
            (Ok(key), Ok(value)) => Some(HeaderRef { key: key.unwrap_or_default(), value }),
            _ => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// What turns a record's deltas into absolute values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordBase {
    pub(crate) base_offset: i64,
    pub(crate) base_timestamp: i64,
    /// The batch's max timestamp when it uses log-append time: every record gets it.
    pub(crate) log_append_time: Option<i64>,
}

/// The smallest encoding of a record: a length and six one-byte fields.
pub(crate) const MIN_RECORD_SIZE: usize = 7;

/// Reads the magic 2 record at `*pos` of `data`, moving `*pos` past it.
#[inline]
pub(crate) fn read_record(data: &Bytes, pos: &mut usize, base: &RecordBase) -> Result<Record, DecodeError> {
    let mut c = Cursor { buf: data, pos: *pos };
    let length = c.varint()?;
    let len = usize::try_from(length)
        .ok()
        .filter(|len| *len <= c.remaining())
        .ok_or(DecodeError::InvalidLength { length: length.into(), remaining: c.remaining() })?;
    let start = c.pos;
    let end = start + len;
    let mut c = Cursor::new(&data[start..end]);
    let _attributes = c.u8()?;
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.blob_span()?;
    let value = c.blob_span()?;
    let count = c.varint()?;
    let header_count = u32::try_from(count)
        .map_err(|_| DecodeError::InvalidValue { field: "record header count", value: count.into() })?;
    if header_count as usize > c.remaining() {
        return Err(DecodeError::InvalidLength { length: count.into(), remaining: c.remaining() });
    }
    let headers_start = c.pos;
    for _ in 0..header_count {
        if c.blob_span()? == Span::NULL {
            return Err(DecodeError::UnexpectedNull { field: "record header key" });
        }
        c.blob_span()?;
    }
    if c.pos != len {
        return Err(DecodeError::TrailingBytes { what: "record", remaining: len - c.pos });
    }
    *pos = end;
    Ok(Record {
        offset: base.base_offset.wrapping_add(offset_delta.into()),
        timestamp: base.log_append_time.unwrap_or(base.base_timestamp.wrapping_add(timestamp_delta)),
        data: data.slice(start..end),
        key,
        value,
        headers: Span::new(headers_start, len),
        header_count,
    })
}

/// Iterator over the records of one batch, each `Ok` or the error that ends the iteration.
///
/// After the last record the batch must hold no more bytes; if it does, the iterator yields
/// one [`DecodeError::TrailingBytes`]. After any error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Records {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    V2 { data: Bytes, pos: usize, left: u32, base: RecordBase },
    Legacy(LegacyRecords),
    Done,
}

impl Records {
    pub(crate) fn empty() -> Self {
        Self { inner: Inner::Done }
    }

    /// Records of a (decompressed) magic 2 records section holding `count` records.
    pub(crate) fn v2(data: Bytes, count: u32, base: RecordBase) -> Self {
        Self { inner: Inner::V2 { data, pos: 0, left: count, base } }
    }

    pub(crate) fn legacy(records: LegacyRecords) -> Self {
        Self { inner: Inner::Legacy(records) }
    }
}

impl Iterator for Records {
    type Item = Result<Record, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let result = match &mut self.inner {
            Inner::V2 { data, pos, left, base } => {
                if *left == 0 {
                    if *pos == data.len() {
                        None
                    } else {
                        Some(Err(DecodeError::TrailingBytes {
                            what: "record batch",
                            remaining: data.len() - *pos,
                        }))
                    }
                } else {
                    *left -= 1;
                    Some(read_record(data, pos, base))
                }
            }
            Inner::Legacy(legacy) => legacy.next(),
            Inner::Done => None,
        };
        if !matches!(result, Some(Ok(_))) {
            self.inner = Inner::Done;
        }
        result
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Inner::V2 { left, .. } => (0, Some(*left as usize + 1)),
            Inner::Legacy(legacy) => legacy.size_hint(),
            Inner::Done => (0, Some(0)),
        }
    }
}

/// A cursor over record bytes, reading the varint-framed primitives of magic 2 records.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn end(&self, needed: usize) -> DecodeError {
        DecodeError::UnexpectedEnd { needed, remaining: self.remaining() }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.end(1))?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned varint of at most 5 bytes (32 bits).
    #[inline]
    fn uvarint(&mut self) -> Result<u32, DecodeError> {
        let b = self.u8()?;
        if b < 0x80 {
            return Ok(u32::from(b));
        }
        let mut value = u32::from(b & 0x7f);
        for shift in [7, 14, 21, 28] {
            let b = self.u8()?;
            if shift == 28 && b > 0x0f {
                return Err(DecodeError::VarintTooLong { max_bytes: 5 });
            }
            value |= u32::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong { max_bytes: 5 })
    }

    /// An unsigned varint of at most 10 bytes (64 bits).
    #[inline]
    fn uvarlong(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 0x01 {
                return Err(DecodeError::VarintTooLong { max_bytes: 10 });
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong { max_bytes: 10 })
    }

    /// A zig-zag varint.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<i32, DecodeError> {
        let v = self.uvarint()?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    /// A zig-zag varlong.
    #[inline]
    pub(crate) fn varlong(&mut self) -> Result<i64, DecodeError> {
        let v = self.uvarlong()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A varint-length byte string's position, [`Span::NULL`] for a negative length (null, as
    /// Kafka reads any negative length).
    #[inline]
    pub(crate) fn blob_span(&mut self) -> Result<Span, DecodeError> {
        let length = self.varint()?;
        let Ok(len) = usize::try_from(length) else {
            return Ok(Span::NULL);
        };
        if len > self.remaining() {
            return Err(DecodeError::InvalidLength { length: length.into(), remaining: self.remaining() });
        }
        let start = self.pos;
        self.pos += len;
        Ok(Span::new(start, self.pos))
    }

    /// A varint-length byte string, borrowed.
    #[inline]
    fn blob(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let buf = self.buf;
        Ok(self.blob_span()?.get(buf))
    }
}
