//! Tagged fields (KIP-482): optional fields that flexible versions carry after a structure's
//! regular fields. A decoder keeps the tags it does not know so that a message passed through
//! Klamm is re-encoded with them intact.

use bytes::Bytes;

/// One tagged field that this crate does not interpret: its tag and raw value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTaggedField {
    /// The tag number.
    pub tag: u32,
    /// The field's encoded value.
    pub data: Bytes,
}

/// The tagged fields of a structure that this crate did not interpret, in the order read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaggedFields(pub Vec<RawTaggedField>);

impl TaggedFields {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
