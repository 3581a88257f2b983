//! A small, fast, non-cryptographic random source for jitter and partition choice.
//!
//! [`XorShift`] is xorshift64*: a few cycles per number. The free functions use one generator
//! per thread, seeded from the standard library's per-process random hasher keys, so there is no
//! dependency and no lock. Nothing here needs unpredictability, only spread.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// xorshift64* generator.
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    /// A generator whose numbers follow from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        // Any state but zero works; scramble the seed so that near seeds start far apart.
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// A generator with a fresh seed.
    pub(crate) fn seeded() -> Self {
        // Every RandomState has its own keys, so hashing nothing still gives a fresh seed.
        Self::new(RandomState::new().hash_one(()))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (which must not be zero); the modulo bias is negligible for the
    /// ranges this serves (partition counts, jitter).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(XorShift::seeded().0);
}

/// A value in `[0, 1)` from this thread's generator.
pub(crate) fn unit() -> f64 {
    let bits = STATE.with(|state| {
        let mut rng = XorShift(state.get());
        let bits = rng.next_u64();
        state.set(rng.0);
        bits
    });
    // The top 53 bits fill an f64 mantissa exactly.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_and_values_spread() {
        let mut rng = XorShift::seeded();
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[rng.below(7) as usize] += 1;
            assert!((0.0..1.0).contains(&unit()));
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert_eq!(XorShift::new(5).next_u64(), XorShift::new(5).next_u64());
    }
}
