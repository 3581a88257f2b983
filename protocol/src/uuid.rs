//! The protocol's `uuid` type: 16 raw bytes (topic ids, member ids of KIP-848 groups).

use std::fmt;

/// A 128-bit identifier as the protocol carries it. The all-zero value is the protocol's
/// "no id" (`Uuid::ZERO`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// The all-zero id, meaning "none".
    pub const ZERO: Uuid = Uuid([0; 16]);

    /// From raw bytes.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Uuid(b)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Whether this is [`Uuid::ZERO`].
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Uuid {
    /// The hyphenated hex form (`8-4-4-4-12`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
impl proptest::arbitrary::Arbitrary for Uuid {
    type Parameters = ();
    type Strategy = proptest::strategy::Map<
        proptest::array::UniformArrayStrategy<proptest::num::u8::Any, [u8; 16]>,
        fn([u8; 16]) -> Uuid,
    >;
    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::strategy::Strategy;
        proptest::array::uniform16(proptest::num::u8::ANY).prop_map(Uuid::from_bytes)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn displays_hyphenated() {
        let id = super::Uuid::from_bytes([0x12; 16]);
        assert_eq!(id.to_string(), "12121212-1212-1212-1212-121212121212");
    }
}
