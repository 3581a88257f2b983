//! Test support: proptest strategies for the field types that have no `Arbitrary` of their
//! own, and the round-trip property every message must hold at every version.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::codec::Writer;
use crate::error::EncodeError;
use crate::message::Message;
use crate::tagged::{RawTaggedField, TaggedFields};

/// A short vector: nested message arrays multiply, so keep each level small.
pub(crate) fn vec<T: Arbitrary + 'static>() -> impl Strategy<Value = Vec<T>> {
    proptest::collection::vec(any::<T>(), 0..3)
}

/// A short nullable vector.
pub(crate) fn opt_vec<T: Arbitrary + 'static>() -> impl Strategy<Value = Option<Vec<T>>> {
    proptest::option::of(vec())
}

/// A short byte string.
pub(crate) fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

/// A short nullable byte string.
pub(crate) fn opt_bytes() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(bytes())
}

impl Arbitrary for TaggedFields {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    /// Unknown tags are drawn from 1000 up, above every tag the definitions use, in ascending
    /// order as the protocol requires.
    fn arbitrary_with(_: ()) -> Self::Strategy {
        proptest::collection::btree_map(1000u32..1010, bytes(), 0..3)
            .prop_map(|m| {
                TaggedFields(m.into_iter().map(|(tag, data)| RawTaggedField { tag, data }).collect())
            })
            .boxed()
    }
}

/// `m`'s body encoded strictly at `version`, for byte-level tests.
pub(crate) fn encode<M: Message>(m: &M, version: i16) -> Result<Bytes, EncodeError> {
    let mut buf = BytesMut::new();
    m.encode_body(&mut buf, version)?;
    Ok(buf.freeze())
}

/// The round-trip property, for every version `M` implements: an arbitrary value encoded at a
/// version (dropping what that version cannot carry) decodes to a value that encodes strictly to
/// the very same bytes and decodes back to itself.
pub(crate) fn round_trip_all_versions<M: Message + Arbitrary>() {
    for version in M::MIN_VERSION..=M::MAX_VERSION {
        let mut runner =
            TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
        runner
            .run(&any::<M>(), |m| {
                check_round_trip(&m, version);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{:?} v{version}: {e}", M::API_KEY));
    }
}

/// One round trip of `m` at `version`; panics with a description of the first difference.
pub(crate) fn check_round_trip<M: Message>(m: &M, version: i16) {
    let mut buf = BytesMut::new();
    m.encode(&mut Writer::lenient(&mut buf), version)
        .unwrap_or_else(|e| panic!("lenient encode at v{version} failed: {e}"));
    let first = buf.freeze();
    let decoded = M::decode_body(first.clone(), version)
        .unwrap_or_else(|e| panic!("decode at v{version} failed: {e}\nbytes: {first:?}"));
    let mut again = BytesMut::new();
    decoded
        .encode_body(&mut again, version)
        .unwrap_or_else(|e| panic!("strict re-encode at v{version} failed: {e}\nvalue: {decoded:?}"));
    assert_eq!(first, again, "v{version}: re-encoding the decoded value changed the bytes");
    let twice = M::decode_body(again.freeze(), version).expect("second decode");
    assert_eq!(decoded, twice, "v{version}: second decode differs");
}
