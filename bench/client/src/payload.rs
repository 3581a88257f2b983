//! The record values every client sends: 100 bytes of JSON-like text that differs from record
//! to record, so that lz4 has real work to do (repeated structure, varying content).
//!
//! Values come from a table of distinct templates built once, with the record's sequence
//! number stamped into each copy, so making a value costs a copy and ten digits: the same small
//! cost for every client, and no 100 MB of pre-built values inflating the worker's memory.

/// The size of every value, in bytes.
pub const VALUE_LEN: usize = 100;

/// How many distinct templates the values cycle through (about 400 KiB of text).
const TEMPLATES: usize = 4096;

/// Where the ten-digit sequence number sits in each value (`{"seq":` is 7 bytes).
const SEQ_AT: usize = 7;

const EVENTS: [&str; 8] = ["view", "click", "add_to_cart", "checkout", "refund", "login", "logout", "search"];
const REGIONS: [&str; 6] = ["eu-west", "us-east", "ap-south", "sa-east", "eu-north", "us-west"];

/// Makes the values of a benchmark run.
pub struct Values {
    templates: Vec<[u8; VALUE_LEN]>,
}

impl Values {
    /// Builds the template table (deterministic: every run and client sends the same bytes).
    pub fn new() -> Values {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64*: enough variety for text, no dependency.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let templates = (0..TEMPLATES)
            .map(|_| {
                let r = next();
                let text = format!(
                    "{{\"seq\":0000000000,\"user\":\"u{:06}\",\"event\":\"{}\",\"amount\":{}.{:02},\"region\":\"{}\",\"n\":{}",
                    r % 1_000_000,
                    EVENTS[(r >> 20) as usize % EVENTS.len()],
                    (r >> 24) % 10_000,
                    (r >> 40) % 100,
                    REGIONS[(r >> 48) as usize % REGIONS.len()],
                    next() % 100_000_000,
                );
                let mut value = [b' '; VALUE_LEN];
                let text = text.as_bytes();
                let len = text.len().min(VALUE_LEN - 1);
                value[..len].copy_from_slice(&text[..len]);
                value[VALUE_LEN - 1] = b'}';
                value
            })
            .collect();
        Values { templates }
    }

    /// The value of record `seq` (0-based), written into `out`.
    pub fn fill(&self, seq: u64, out: &mut [u8; VALUE_LEN]) {
        *out = self.templates[seq as usize % TEMPLATES];
        let mut n = seq;
        for digit in out[SEQ_AT..SEQ_AT + 10].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_100_bytes_and_carry_their_sequence_number() {
        let values = Values::new();
        let mut a = [0; VALUE_LEN];
        let mut b = [0; VALUE_LEN];
        values.fill(1234567, &mut a);
        values.fill(1234568, &mut b);
        let text = std::str::from_utf8(&a).unwrap();
        assert!(text.starts_with("{\"seq\":0001234567,\"user\":\"u"), "{text}");
        assert!(text.ends_with('}'));
        assert_ne!(a, b);
    }
}
