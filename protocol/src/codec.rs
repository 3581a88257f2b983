//! The primitive types of the Kafka protocol, read from untrusted bytes and written to a buffer.
//!
//! [`Reader`] decodes from a [`Bytes`] so that byte strings come out as zero-copy slices of the
//! frame. Every read checks what remains before it reads; a length prefix is checked against
//! what remains before anything is allocated for it, so a hostile prefix costs nothing.
//!
//! Counts from the wire never size an allocation by themselves: an array's initial capacity is
//! capped (see [`MAX_PREALLOCATION`]) and grows as elements are actually read. Strings are held
//! to [`MAX_STRING_LEN`] and tagged fields to strictly increasing tags in both directions, as
//! the Java client reads and writes them, so what Klamm writes a Java peer can read.
//!
//! [`Writer`] encodes into a [`BytesMut`]. Strings, byte strings and arrays have a classic form
//! (fixed-width signed length, `-1` for null) and a compact form used by flexible versions
//! (unsigned varint of `length + 1`, `0` for null): each method takes `flexible` and picks.
//!
//! The message modules call these primitives directly; there is no reflection and no generated
//! code. See <https://kafka.apache.org/protocol#protocol_types>.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::tagged::{RawTaggedField, TaggedFields};
use crate::Uuid;

/// The longest string the protocol carries, in bytes of UTF-8. A classic string's int16 prefix
/// cannot say more; a compact string's varint could, but the Java client refuses to read or
/// write a longer one, and so does this crate.
pub const MAX_STRING_LEN: usize = 0x7fff;

/// The most bytes an array's initial allocation takes, whatever count the wire announces. A
/// longer array grows as its elements are read, so a hostile count in a large frame costs no
/// more than the elements actually present.
pub const MAX_PREALLOCATION: usize = 64 << 10;

/// The initial capacity for `count` elements of `T` read from the wire: at most
/// [`MAX_PREALLOCATION`] bytes' worth.
pub(crate) fn initial_capacity<T>(count: usize) -> usize {
    count.min(MAX_PREALLOCATION / std::mem::size_of::<T>().max(1))
}

/// A cursor over untrusted input.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    /// Reads from `buf`.
    pub fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Whether everything has been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The unread bytes, without consuming them.
    pub fn peek(&self) -> &Bytes {
        &self.buf
    }

    /// Consumes and returns everything that is left.
    pub fn take_rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    #[inline]
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::UnexpectedEnd { needed: n, remaining: self.buf.len() })
        } else {
            Ok(())
        }
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless everything was read.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { what, remaining: self.buf.len() })
        }
    }

    /// Takes the next `n` bytes as a zero-copy slice.
    #[inline]
    pub fn bytes_exact(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// Takes the next `n` bytes as a reader of their own.
    pub fn sub_reader(&mut self, n: usize) -> Result<Reader, DecodeError> {
        Ok(Reader::new(self.bytes_exact(n)?))
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.need(n)?;
        self.buf.advance(n);
        Ok(())
    }

    /// Reads an `int8`.
    #[inline]
    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }

    /// Reads an unsigned byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    /// Reads an `int16`.
    #[inline]
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    /// Reads a `uint16`.
    #[inline]
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    /// Reads an `int32`.
    #[inline]
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    /// Reads a `uint32`.
    #[inline]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    /// Reads an `int64`.
    #[inline]
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    /// Reads a `float64`.
    #[inline]
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_f64())
    }

    /// Reads a `bool` (any non-zero byte is true, as the Java implementation reads it).
    #[inline]
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }

    /// Reads a `uuid`.
    pub fn uuid(&mut self) -> Result<Uuid, DecodeError> {
        self.need(16)?;
        let mut b = [0u8; 16];
        self.buf.copy_to_slice(&mut b);
        Ok(Uuid::from_bytes(b))
    }

    /// Reads an `unsigned_varint` (at most 5 bytes).
    #[inline]
    pub fn uvarint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            if i == 4 && b > 0x0f {
                return Err(DecodeError::VarintTooLong { max_bytes: 5 });
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong { max_bytes: 5 })
    }

    /// Reads an unsigned varint of up to 10 bytes.
    #[inline]
    pub fn uvarlong(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 0x01 {
                return Err(DecodeError::VarintTooLong { max_bytes: 10 });
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintTooLong { max_bytes: 10 })
    }

    /// Reads a zig-zag `varint`.
    #[inline]
    pub fn varint(&mut self) -> Result<i32, DecodeError> {
        let v = self.uvarint()?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    /// Reads a zig-zag `varlong`.
    #[inline]
    pub fn varlong(&mut self) -> Result<i64, DecodeError> {
        let v = self.uvarlong()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Checks a length against what remains. `min_each` is the smallest encoded size of one
    /// element: a length that could not fit is refused before anything is allocated for it.
    #[inline]
    fn checked_len(&self, length: i64, min_each: usize) -> Result<usize, DecodeError> {
        let len = usize::try_from(length)
            .map_err(|_| DecodeError::InvalidLength { length, remaining: self.remaining() })?;
        if len.saturating_mul(min_each) > self.remaining() {
            return Err(DecodeError::InvalidLength { length, remaining: self.remaining() });
        }
        Ok(len)
    }

    /// Reads a string length: `None` for null. A compact string longer than
    /// [`MAX_STRING_LEN`] is refused, as the Java client refuses it.
    fn blob_len(&mut self, flexible: bool) -> Result<Option<usize>, DecodeError> {
        let length = if flexible { i64::from(self.uvarint()?) - 1 } else { i64::from(self.i16()?) };
        if length == -1 {
            return Ok(None);
        }
        if length > MAX_STRING_LEN as i64 {
            return Err(DecodeError::StringTooLong { length });
        }
        self.checked_len(length, 1).map(Some)
    }

    fn bytes_len(&mut self, flexible: bool) -> Result<Option<usize>, DecodeError> {
        let length = if flexible { i64::from(self.uvarint()?) - 1 } else { i64::from(self.i32()?) };
        if length == -1 {
            return Ok(None);
        }
        self.checked_len(length, 1).map(Some)
    }

    fn utf8(&mut self, len: usize) -> Result<String, DecodeError> {
        let raw = self.bytes_exact(len)?;
        std::str::from_utf8(&raw).map(str::to_owned).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// Reads a `string` (or `compact_string` when `flexible`).
    pub fn string(&mut self, flexible: bool, field: &'static str) -> Result<String, DecodeError> {
        match self.blob_len(flexible)? {
            Some(len) => self.utf8(len),
            None => Err(DecodeError::UnexpectedNull { field }),
        }
    }

    /// Reads a `nullable_string` (or `compact_nullable_string` when `flexible`).
    pub fn nullable_string(&mut self, flexible: bool) -> Result<Option<String>, DecodeError> {
        match self.blob_len(flexible)? {
            Some(len) => self.utf8(len).map(Some),
            None => Ok(None),
        }
    }

    /// Reads `bytes` (or `compact_bytes` when `flexible`) as a zero-copy slice.
    pub fn bytes(&mut self, flexible: bool, field: &'static str) -> Result<Bytes, DecodeError> {
        match self.bytes_len(flexible)? {
            Some(len) => self.bytes_exact(len),
            None => Err(DecodeError::UnexpectedNull { field }),
        }
    }

    /// Reads `nullable_bytes` (or `compact_nullable_bytes` when `flexible`).
    pub fn nullable_bytes(&mut self, flexible: bool) -> Result<Option<Bytes>, DecodeError> {
        match self.bytes_len(flexible)? {
            Some(len) => self.bytes_exact(len).map(Some),
            None => Ok(None),
        }
    }

    /// Reads an array length: `None` for a null array. Every element takes at least one byte
    /// on the wire, so a count larger than what remains is refused here.
    pub fn array_len(&mut self, flexible: bool) -> Result<Option<usize>, DecodeError> {
        let length = if flexible { i64::from(self.uvarint()?) - 1 } else { i64::from(self.i32()?) };
        if length == -1 {
            return Ok(None);
        }
        self.checked_len(length, 1).map(Some)
    }

    /// Reads a non-nullable array, each element with `f`.
    pub fn array<T>(
        &mut self,
        flexible: bool,
        field: &'static str,
        f: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        match self.nullable_array(flexible, f)? {
            Some(v) => Ok(v),
            None => Err(DecodeError::UnexpectedNull { field }),
        }
    }

    /// Reads a nullable array, each element with `f`.
    pub fn nullable_array<T>(
        &mut self,
        flexible: bool,
        mut f: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let Some(len) = self.array_len(flexible)? else {
            return Ok(None);
        };
        // The count is at most the bytes that remain (every element takes one), but an element
        // in memory can be far larger than its smallest encoding: cap what is reserved up front.
        let mut out = Vec::with_capacity(initial_capacity::<T>(len));
        for _ in 0..len {
            out.push(f(self)?);
        }
        Ok(Some(out))
    }

    /// Reads a string field whose nullability depends on the version (`nullable` says whether
    /// this one allows null).
    pub fn string_field(
        &mut self,
        nullable: bool,
        flexible: bool,
        field: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        if nullable {
            self.nullable_string(flexible)
        } else {
            self.string(flexible, field).map(Some)
        }
    }

    /// Reads a byte-string field whose nullability depends on the version.
    pub fn bytes_field(
        &mut self,
        nullable: bool,
        flexible: bool,
        field: &'static str,
    ) -> Result<Option<Bytes>, DecodeError> {
        if nullable {
            self.nullable_bytes(flexible)
        } else {
            self.bytes(flexible, field).map(Some)
        }
    }

    /// Reads an array field whose nullability depends on the version.
    pub fn array_field<T>(
        &mut self,
        nullable: bool,
        flexible: bool,
        field: &'static str,
        f: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        if nullable {
            self.nullable_array(flexible, f)
        } else {
            self.array(flexible, field, f).map(Some)
        }
    }

    /// Reads a tagged-field section. `known` is called for each tag with a reader over exactly
    /// that field's bytes and returns `Ok(true)` when it decoded the tag, `Ok(false)` when the
    /// tag is not one it knows: those are kept, in order, in the returned [`TaggedFields`].
    /// A known field must consume exactly the size its header announced, and tags must be
    /// strictly increasing (no tag twice), as the Java client requires.
    pub fn tagged_fields(
        &mut self,
        mut known: impl FnMut(u32, &mut Reader) -> Result<bool, DecodeError>,
    ) -> Result<TaggedFields, DecodeError> {
        let count = self.uvarint()?;
        // Each tagged field takes at least two bytes (tag and size).
        let count = self.checked_len(i64::from(count), 2)?;
        let mut unknown = Vec::new();
        let mut previous: Option<u32> = None;
        for _ in 0..count {
            let tag = self.uvarint()?;
            if let Some(previous) = previous.filter(|p| tag <= *p) {
                return Err(DecodeError::TaggedFieldOrder { tag, previous });
            }
            previous = Some(tag);
            let size = self.uvarint()? as usize;
            let mut field = self.sub_reader(size)?;
            if known(tag, &mut field)? {
                if !field.is_empty() {
                    return Err(DecodeError::TaggedFieldSize { tag, size, used: size - field.remaining() });
                }
            } else {
                unknown.push(RawTaggedField { tag, data: field.take_rest() });
            }
        }
        Ok(TaggedFields(unknown))
    }

    /// Reads a tagged-field section of a structure that defines no tagged fields of its own.
    pub fn unknown_tagged_fields(&mut self) -> Result<TaggedFields, DecodeError> {
        self.tagged_fields(|_, _| Ok(false))
    }
}

/// Writes protocol primitives into a buffer.
///
/// A writer is strict by default: a message that holds a value its version cannot carry fails
/// to encode (see [`Writer::unavailable`]). Tests use a lenient writer to encode arbitrary
/// values at every version, dropping what the version cannot carry.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut BytesMut,
    lenient: bool,
}

impl<'a> Writer<'a> {
    /// Writes into `buf`.
    pub fn new(buf: &'a mut BytesMut) -> Self {
        Self { buf, lenient: false }
    }

    /// A writer that drops values the version cannot carry instead of failing. Meant for tests
    /// that encode arbitrary values at old versions.
    pub fn lenient(buf: &'a mut BytesMut) -> Self {
        Self { buf, lenient: true }
    }

    /// Whether this writer drops unavailable values.
    pub fn is_lenient(&self) -> bool {
        self.lenient
    }

    /// The buffer written so far.
    pub fn buf(&mut self) -> &mut BytesMut {
        self.buf
    }

    /// Called when `field` holds a non-default value that `version` cannot carry and the
    /// protocol does not mark the field ignorable: an error, unless the writer is lenient.
    #[inline]
    pub fn unavailable(&self, field: &'static str, version: i16) -> Result<(), EncodeError> {
        if self.lenient {
            Ok(())
        } else {
            Err(EncodeError::FieldNotAvailable { field, version })
        }
    }

    /// Writes an `int8`.
    #[inline]
    pub fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    /// Writes an unsigned byte.
    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    /// Writes an `int16`.
    #[inline]
    pub fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    /// Writes a `uint16`.
    #[inline]
    pub fn u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }

    /// Writes an `int32`.
    #[inline]
    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    /// Writes a `uint32`.
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }

    /// Writes an `int64`.
    #[inline]
    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    /// Writes a `float64`.
    #[inline]
    pub fn f64(&mut self, v: f64) {
        self.buf.put_f64(v);
    }

    /// Writes a `bool`.
    #[inline]
    pub fn bool(&mut self, v: bool) {
        self.buf.put_u8(u8::from(v));
    }

    /// Writes a `uuid`.
    pub fn uuid(&mut self, v: &Uuid) {
        self.buf.put_slice(v.as_bytes());
    }

    /// Writes an `unsigned_varint`.
    #[inline]
    pub fn uvarint(&mut self, v: u32) {
        put_uvarint(self.buf, u64::from(v));
    }

    /// Writes a zig-zag `varint`.
    #[inline]
    pub fn varint(&mut self, v: i32) {
        put_uvarint(self.buf, u64::from(((v << 1) ^ (v >> 31)) as u32));
    }

    /// Writes a zig-zag `varlong`.
    #[inline]
    pub fn varlong(&mut self, v: i64) {
        put_uvarint(self.buf, ((v << 1) ^ (v >> 63)) as u64);
    }

    /// Writes raw bytes with no prefix.
    #[inline]
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.put_slice(v);
    }

    fn blob_len(
        &mut self,
        len: Option<usize>,
        flexible: bool,
        what: &'static str,
    ) -> Result<(), EncodeError> {
        match (len, flexible) {
            (None, true) => self.uvarint(0),
            (None, false) => self.i16(-1),
            (Some(n), true) => {
                // Compact strings too are held to the classic limit: Java peers refuse longer.
                if n > MAX_STRING_LEN {
                    return Err(EncodeError::TooLong { what, length: n });
                }
                self.uvarint(n as u32 + 1);
            }
            (Some(n), false) => {
                let n16 = i16::try_from(n).map_err(|_| EncodeError::TooLong { what, length: n })?;
                self.i16(n16);
            }
        }
        Ok(())
    }

    fn bytes_len(
        &mut self,
        len: Option<usize>,
        flexible: bool,
        what: &'static str,
    ) -> Result<(), EncodeError> {
        match (len, flexible) {
            (None, true) => self.uvarint(0),
            (None, false) => self.i32(-1),
            (Some(n), true) => {
                let n = u32::try_from(n)
                    .ok()
                    .filter(|n| *n < i32::MAX as u32)
                    .ok_or(EncodeError::TooLong { what, length: n })?;
                self.uvarint(n + 1);
            }
            (Some(n), false) => {
                let n32 = i32::try_from(n).map_err(|_| EncodeError::TooLong { what, length: n })?;
                self.i32(n32);
            }
        }
        Ok(())
    }

    /// Writes a `string` (or `compact_string`).
    pub fn string(&mut self, v: &str, flexible: bool) -> Result<(), EncodeError> {
        self.blob_len(Some(v.len()), flexible, "string")?;
        self.raw(v.as_bytes());
        Ok(())
    }

    /// Writes a `nullable_string` (or `compact_nullable_string`).
    pub fn nullable_string(&mut self, v: Option<&str>, flexible: bool) -> Result<(), EncodeError> {
        match v {
            Some(s) => self.string(s, flexible),
            None => self.blob_len(None, flexible, "string"),
        }
    }

    /// Writes `bytes` (or `compact_bytes`).
    pub fn bytes(&mut self, v: &[u8], flexible: bool) -> Result<(), EncodeError> {
        self.bytes_len(Some(v.len()), flexible, "bytes")?;
        self.raw(v);
        Ok(())
    }

    /// Writes `nullable_bytes` (or `compact_nullable_bytes`).
    pub fn nullable_bytes(&mut self, v: Option<&[u8]>, flexible: bool) -> Result<(), EncodeError> {
        match v {
            Some(b) => self.bytes(b, flexible),
            None => self.bytes_len(None, flexible, "bytes"),
        }
    }

    /// Writes an array length (`None` for a null array).
    pub fn array_len(&mut self, len: Option<usize>, flexible: bool) -> Result<(), EncodeError> {
        self.bytes_len(len, flexible, "array")
    }

    /// Writes an array, each element with `f`.
    pub fn array<T>(
        &mut self,
        items: &[T],
        flexible: bool,
        mut f: impl FnMut(&mut Writer<'_>, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        self.array_len(Some(items.len()), flexible)?;
        for item in items {
            f(self, item)?;
        }
        Ok(())
    }

    /// Writes a nullable array, each element with `f`.
    pub fn nullable_array<T>(
        &mut self,
        items: Option<&[T]>,
        flexible: bool,
        f: impl FnMut(&mut Writer<'_>, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        match items {
            Some(items) => self.array(items, flexible, f),
            None => self.array_len(None, flexible),
        }
    }

    /// Writes a string field whose nullability depends on the version: `nullable` says whether
    /// `version` allows null. A null where it is not allowed is an error (written as an empty
    /// string by a lenient writer).
    pub fn string_field(
        &mut self,
        v: Option<&str>,
        nullable: bool,
        flexible: bool,
        field: &'static str,
        version: i16,
    ) -> Result<(), EncodeError> {
        match v {
            Some(s) => self.string(s, flexible),
            None if nullable => self.nullable_string(None, flexible),
            None if self.lenient => self.string("", flexible),
            None => Err(EncodeError::NullNotAllowed { field, version }),
        }
    }

    /// Writes a byte-string field whose nullability depends on the version, as
    /// [`Writer::string_field`].
    pub fn bytes_field(
        &mut self,
        v: Option<&[u8]>,
        nullable: bool,
        flexible: bool,
        field: &'static str,
        version: i16,
    ) -> Result<(), EncodeError> {
        match v {
            Some(b) => self.bytes(b, flexible),
            None if nullable => self.nullable_bytes(None, flexible),
            None if self.lenient => self.bytes(&[], flexible),
            None => Err(EncodeError::NullNotAllowed { field, version }),
        }
    }

    /// Writes an array field whose nullability depends on the version, as
    /// [`Writer::string_field`].
    pub fn array_field<T>(
        &mut self,
        items: Option<&[T]>,
        nullable: bool,
        flexible: bool,
        field: &'static str,
        version: i16,
        f: impl FnMut(&mut Writer<'_>, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        match items {
            Some(items) => self.array(items, flexible, f),
            None if nullable => self.array_len(None, flexible),
            None if self.lenient => self.array_len(Some(0), flexible),
            None => Err(EncodeError::NullNotAllowed { field, version }),
        }
    }

    /// Writes an array of `int32` (`[]int32`).
    pub fn i32_array(&mut self, items: &[i32], flexible: bool) -> Result<(), EncodeError> {
        self.array(items, flexible, |w, v| {
            w.i32(*v);
            Ok(())
        })
    }

    /// Writes an array of strings (`[]string`).
    pub fn string_array(&mut self, items: &[String], flexible: bool) -> Result<(), EncodeError> {
        self.array(items, flexible, |w, s| w.string(s, flexible))
    }

    /// Starts a tagged-field section. Add the known fields that differ from their default with
    /// [`TagWriter::field`], then call [`TagWriter::finish`] with the unknown fields to keep.
    pub fn tags(&self) -> TagWriter {
        TagWriter { lenient: self.lenient, fields: Vec::new() }
    }

    /// Writes a tagged-field section holding only `unknown` fields: the common case of a
    /// structure with no tagged fields of its own.
    pub fn unknown_tagged_fields(&mut self, unknown: &TaggedFields) -> Result<(), EncodeError> {
        self.tags().finish(self, unknown)
    }
}

/// Collects the known tagged fields of one structure, then writes the section in tag order,
/// merged with the unknown fields that were read with the structure.
#[derive(Debug)]
pub struct TagWriter {
    lenient: bool,
    fields: Vec<(u32, BytesMut)>,
}

impl TagWriter {
    /// Encodes one known tagged field.
    pub fn field(
        &mut self,
        tag: u32,
        f: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let mut buf = BytesMut::new();
        let mut w = Writer { buf: &mut buf, lenient: self.lenient };
        f(&mut w)?;
        self.fields.push((tag, buf));
        Ok(())
    }

    /// Writes the section: the count, then every field in ascending tag order. A tag given
    /// twice (a known field and an unknown one, or two unknown ones) is an error: readers refuse
    /// a section whose tags do not strictly increase.
    pub fn finish(mut self, w: &mut Writer<'_>, unknown: &TaggedFields) -> Result<(), EncodeError> {
        if self.fields.is_empty() && unknown.0.is_empty() {
            w.uvarint(0);
            return Ok(());
        }
        let mut all: Vec<(u32, &[u8])> = self.fields.iter().map(|(t, b)| (*t, &b[..])).collect();
        all.extend(unknown.0.iter().map(|f| (f.tag, &f.data[..])));
        all.sort_by_key(|(t, _)| *t);
        if let Some(pair) = all.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(EncodeError::DuplicateTag { tag: pair[0].0 });
        }
        let count = u32::try_from(all.len())
            .map_err(|_| EncodeError::TooLong { what: "tagged fields", length: all.len() })?;
        w.uvarint(count);
        for (tag, data) in all {
            w.uvarint(tag);
            let len = u32::try_from(data.len())
                .map_err(|_| EncodeError::TooLong { what: "tagged field", length: data.len() })?;
            w.uvarint(len);
            w.raw(data);
        }
        self.fields.clear();
        Ok(())
    }
}

/// Appends an unsigned varint (up to 10 bytes) to `buf`.
#[inline]
pub fn put_uvarint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// The encoded size of an unsigned varint.
#[inline]
pub fn uvarint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least 1.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The encoded size of a zig-zag varint.
#[inline]
pub fn varint_len(v: i32) -> usize {
    uvarint_len(u64::from(((v << 1) ^ (v >> 31)) as u32))
}

/// The encoded size of a zig-zag varlong.
#[inline]
pub fn varlong_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reader(b: &[u8]) -> Reader {
        Reader::new(Bytes::copy_from_slice(b))
    }

    #[test]
    fn varint_known_values() {
        // Zig-zag values from the protocol guide.
        for (v, enc) in [(0i32, &[0u8][..]), (-1, &[1]), (1, &[2]), (-2, &[3]), (300, &[0xd8, 0x04])] {
            let mut b = BytesMut::new();
            Writer::new(&mut b).varint(v);
            assert_eq!(&b[..], enc, "encoding {v}");
            assert_eq!(reader(enc).varint().unwrap(), v);
        }
    }

    #[test]
    fn overlong_varints_are_errors() {
        assert_eq!(
            reader(&[0xff, 0xff, 0xff, 0xff, 0x7f]).uvarint(),
            Err(DecodeError::VarintTooLong { max_bytes: 5 })
        );
        assert_eq!(reader(&[0xff; 11]).uvarlong(), Err(DecodeError::VarintTooLong { max_bytes: 10 }));
        assert!(matches!(reader(&[0x80]).uvarint(), Err(DecodeError::UnexpectedEnd { .. })));
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocation() {
        // An array claiming i32::MAX elements in 4 bytes of input.
        let mut r = reader(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(matches!(r.array(false, "x", |r| r.i32()), Err(DecodeError::InvalidLength { .. })));
        let mut r = reader(&[0x00, 0x10, b'a']);
        assert!(matches!(r.string(false, "s"), Err(DecodeError::InvalidLength { .. })));
        let mut r = reader(&[0xff, 0xfe]);
        assert!(matches!(r.string(false, "s"), Err(DecodeError::InvalidLength { .. })));
        let mut r = reader(&[0x00]);
        assert_eq!(r.string(true, "s"), Err(DecodeError::UnexpectedNull { field: "s" }));
    }

    #[test]
    fn tagged_fields_keep_unknown_and_order() {
        let mut b = BytesMut::new();
        let mut w = Writer::new(&mut b);
        let unknown = TaggedFields(vec![RawTaggedField { tag: 7, data: Bytes::from_static(b"xy") }]);
        let mut tags = w.tags();
        tags.field(3, |w| {
            w.i32(42);
            Ok(())
        })
        .unwrap();
        tags.finish(&mut w, &unknown).unwrap();
        assert_eq!(&b[..], &[2, 3, 4, 0, 0, 0, 42, 7, 2, b'x', b'y']);
        let mut seen = None;
        let rest = reader(&b)
            .tagged_fields(|tag, r| {
                if tag == 3 {
                    seen = Some(r.i32()?);
                    Ok(true)
                } else {
                    Ok(false)
                }
            })
            .unwrap();
        assert_eq!(seen, Some(42));
        assert_eq!(rest, unknown);
    }

    #[test]
    fn compact_strings_longer_than_0x7fff_are_refused() {
        // Length 0x8000 (varint of 0x8001) with that many bytes following.
        let mut b = BytesMut::new();
        put_uvarint(&mut b, 0x8001);
        b.extend_from_slice(&[b'a'; 0x8000]);
        assert_eq!(reader(&b).string(true, "s"), Err(DecodeError::StringTooLong { length: 0x8000 }));
        assert_eq!(reader(&b).nullable_string(true), Err(DecodeError::StringTooLong { length: 0x8000 }));
        // Bytes are not strings: the same prefix is a valid compact byte string.
        assert_eq!(reader(&b).bytes(true, "b").unwrap().len(), 0x8000);
        // 0x7fff bytes is the longest string, in either form.
        let long = "a".repeat(MAX_STRING_LEN);
        for flexible in [false, true] {
            let mut b = BytesMut::new();
            Writer::new(&mut b).string(&long, flexible).unwrap();
            assert_eq!(reader(&b).string(flexible, "s").unwrap(), long);
        }
        // Writing one byte more fails in both forms, so Klamm never sends what it refuses.
        let longer = "a".repeat(MAX_STRING_LEN + 1);
        for flexible in [false, true] {
            let mut b = BytesMut::new();
            let err = Writer::new(&mut b).string(&longer, flexible);
            assert_eq!(err, Err(EncodeError::TooLong { what: "string", length: 0x8000 }));
            let err = Writer::new(&mut b).nullable_string(Some(&longer), flexible);
            assert_eq!(err, Err(EncodeError::TooLong { what: "string", length: 0x8000 }));
        }
    }

    #[test]
    fn tagged_fields_must_strictly_increase() {
        // Two fields: tag, size 1, one byte each.
        let section = |a: u8, b: u8| [2, a, 1, 0, b, 1, 0];
        let rest = reader(&section(1, 5)).unknown_tagged_fields().unwrap();
        assert_eq!(rest.0.iter().map(|f| f.tag).collect::<Vec<_>>(), [1, 5]);
        assert_eq!(
            reader(&section(5, 1)).unknown_tagged_fields(),
            Err(DecodeError::TaggedFieldOrder { tag: 1, previous: 5 })
        );
        assert_eq!(
            reader(&section(3, 3)).unknown_tagged_fields(),
            Err(DecodeError::TaggedFieldOrder { tag: 3, previous: 3 })
        );
        // Known tags are held to the order too.
        let err = reader(&section(0, 0)).tagged_fields(|_, r| r.u8().map(|_| true));
        assert_eq!(err, Err(DecodeError::TaggedFieldOrder { tag: 0, previous: 0 }));
    }

    #[test]
    fn a_tag_given_twice_is_not_written() {
        let unknown = |tags: &[u32]| {
            TaggedFields(
                tags.iter().map(|&tag| RawTaggedField { tag, data: Bytes::from_static(b"x") }).collect(),
            )
        };
        // A known field and an unknown one with the same tag.
        let mut b = BytesMut::new();
        let mut w = Writer::new(&mut b);
        let mut tags = w.tags();
        tags.field(3, |w| {
            w.i8(1);
            Ok(())
        })
        .unwrap();
        assert_eq!(tags.finish(&mut w, &unknown(&[3])), Err(EncodeError::DuplicateTag { tag: 3 }));
        // Two unknown ones.
        let mut w = Writer::new(&mut b);
        assert_eq!(w.unknown_tagged_fields(&unknown(&[4, 2, 4])), Err(EncodeError::DuplicateTag { tag: 4 }));
        // Unknown fields out of order are written in order, and read back.
        let mut b = BytesMut::new();
        Writer::new(&mut b).unknown_tagged_fields(&unknown(&[9, 2])).unwrap();
        assert_eq!(reader(&b).unknown_tagged_fields().unwrap(), unknown(&[2, 9]));
    }

    #[test]
    fn known_tagged_field_must_use_its_size() {
        // tag 0, size 4, but the reader only consumes 2 bytes.
        let err = reader(&[1, 0, 4, 0, 1, 0, 2]).tagged_fields(|_, r| r.i16().map(|_| true));
        assert_eq!(err, Err(DecodeError::TaggedFieldSize { tag: 0, size: 4, used: 2 }));
    }

    proptest! {
        #[test]
        fn varints_round_trip(a in any::<i32>(), b in any::<i64>(), c in any::<u32>()) {
            let mut buf = BytesMut::new();
            let mut w = Writer::new(&mut buf);
            w.varint(a);
            w.varlong(b);
            w.uvarint(c);
            prop_assert_eq!(buf.len(), varint_len(a) + varlong_len(b) + uvarint_len(u64::from(c)));
            let mut r = Reader::new(buf.freeze());
            prop_assert_eq!(r.varint().unwrap(), a);
            prop_assert_eq!(r.varlong().unwrap(), b);
            prop_assert_eq!(r.uvarint().unwrap(), c);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn strings_round_trip(s in ".{0,40}", n in proptest::option::of(".{0,10}"), flex in any::<bool>()) {
            let mut buf = BytesMut::new();
            let mut w = Writer::new(&mut buf);
            w.string(&s, flex).unwrap();
            w.nullable_string(n.as_deref(), flex).unwrap();
            w.nullable_bytes(n.as_deref().map(str::as_bytes), flex).unwrap();
            let mut r = Reader::new(buf.freeze());
            prop_assert_eq!(r.string(flex, "s").unwrap(), s);
            prop_assert_eq!(r.nullable_string(flex).unwrap(), n.clone());
            prop_assert_eq!(r.nullable_bytes(flex).unwrap().map(|b| b.to_vec()), n.map(String::into_bytes));
        }

        #[test]
        fn primitives_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64), flex in any::<bool>()) {
            let mut r = Reader::new(Bytes::from(data));
            let _ = r.string(flex, "s");
            let _ = r.nullable_bytes(flex);
            let _ = r.array(flex, "a", |r| r.varlong());
            let _ = r.tagged_fields(|_, r| r.uvarint().map(|_| true));
        }
    }
}
