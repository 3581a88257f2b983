//! A small, fast, non-cryptographic random source for jitter and partition choice.
//!
//! One xorshift64* state per thread, seeded from the standard library's per-process random
//! hasher keys, so no dependency and no lock. Nothing here needs unpredictability, only spread.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    // xorshift must not start at zero.
    hasher.finish() | 1
}

/// The next 64 random bits.
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A value in `[0, 1)`.
pub(crate) fn unit() -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A value in `[0, n)`; `n` must be above zero.
#[allow(dead_code)] // used by the producer's partitioner
pub(crate) fn below(n: u32) -> u32 {
    // Multiply-shift: unbiased enough for spreading load, and no division.
    (((next_u64() >> 32) * u64::from(n)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_and_values_spread() {
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = below(7);
            seen[v as usize] += 1;
            let u = unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
    }
}
