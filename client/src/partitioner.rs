//! Choosing a partition for a record: the key hash the Java client and librdkafka agree on, and
//! the sticky choice for records without a key.
//!
//! - [`murmur2`] is the 32-bit MurmurHash2 variant of the Java client (`Utils.murmur2`), and
//!   [`partition_for_key`] maps a key to a partition the way the Java client's built-in
//!   partitioner and librdkafka's `murmur2_random` partitioner do, so that a topic shared with
//!   those clients keeps all records of a key in one partition.
//! - `StickyPartitioner` (crate-private, for the producer) keeps records without a key on one
//!   partition until the batch for that partition is closed, then moves to another partition
//!   chosen at random, as the Java client's sticky partitioner (KIP-480) does. One instance
//!   serves one topic.

// The sticky partitioner waits for the producer; this expectation fails once it is used.
#![cfg_attr(not(test), expect(dead_code, reason = "the producer, its user, is not written yet"))]

use crate::random::XorShift;
use std::num::NonZeroU32;

/// The Java client's `Utils.murmur2`: MurmurHash2 (32 bits) with seed `0x9747b28c`, reading the
/// input in little-endian 4-byte blocks.
///
/// The result is a signed `i32`, bit for bit what the Java function returns. For inputs longer
/// than `u32::MAX` bytes (which no Kafka key can be) the length mixed into the seed wraps.
///
/// ```
/// assert_eq!(klamm::partitioner::murmur2(b"foobar"), -790332482);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // The last 1-3 bytes, as the fall-through switch of the reference implementation mixes them.
    let tail = blocks.remainder();
    if !tail.is_empty() {
        if let Some(&b) = tail.get(2) {
            h ^= u32::from(b) << 16;
        }
        if let Some(&b) = tail.get(1) {
            h ^= u32::from(b) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition, among `partitions`, for a record with this key: the key's [`murmur2`] hash
/// with its sign bit cleared, modulo the partition count.
///
/// This is where the Java client's default partitioner and librdkafka's `murmur2_random`
/// partitioner put a record with a non-null key. An empty key is a key like any other and is
/// hashed; only records without a key get another partitioner (`StickyPartitioner` in the
/// producer). The result lies in `0..partitions`.
///
/// ```
/// use std::num::NonZeroU32;
/// use klamm::partitioner::partition_for_key;
///
/// let seven = NonZeroU32::new(7).unwrap();
/// assert_eq!(partition_for_key(b"foobar", seven), 0);
/// assert_eq!(partition_for_key(b"21", seven), 3);
/// ```
pub fn partition_for_key(key: &[u8], partitions: NonZeroU32) -> i32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    // Less than 2^31, so it fits an i32 whatever the partition count.
    (positive % partitions.get()) as i32
}

/// The sticky partition choice for the records of one topic that have no key (KIP-480).
///
/// Records without a key all go to one partition, the sticky one, so they fill one batch rather
/// than many small ones. When the producer closes the batch of that partition it calls
/// [`on_new_batch`](Self::on_new_batch), and the next record picks a new partition at random
/// among the available ones, different from the previous one when more than one is available.
///
/// One instance serves one topic: the producer keeps it with the rest of its per-topic state.
/// The random choices come from the crate's xorshift generator; they need to spread load, not to
/// be unpredictable.
#[derive(Debug)]
pub(crate) struct StickyPartitioner {
    /// The sticky partition; `None` before the first record and after its batch was closed.
    current: Option<i32>,
    /// The sticky partition whose batch was closed last: the next choice avoids it.
    released: Option<i32>,
    rng: XorShift,
}

impl StickyPartitioner {
    /// A partitioner with no partition chosen yet and a freshly seeded generator.
    pub(crate) fn new() -> Self {
        Self { current: None, released: None, rng: XorShift::seeded() }
    }

    /// A partitioner whose random choices follow from `seed` (for tests).
    pub(crate) fn with_seed(seed: u64) -> Self {
        Self { current: None, released: None, rng: XorShift::new(seed) }
    }

    /// The partition for the next record without a key, for a topic with `topic_partitions`
    /// partitions of which those in `available` have a leader.
    ///
    /// The sticky partition stays until [`on_new_batch`](Self::on_new_batch) releases it (or
    /// until it is no longer below `topic_partitions`). A new one is drawn at random from the
    /// entries of `available` that lie in `0..topic_partitions`, or from all partitions of the
    /// topic when there are none (as the Java client does; the batch then waits for a leader),
    /// and differs from the released partition whenever there is another choice.
    /// The sticky partition, if one is chosen and still below `topic_partitions`.
    pub(crate) fn current(&self, topic_partitions: NonZeroU32) -> Option<i32> {
        self.current.filter(|&p| in_range(p, topic_partitions))
    }

    pub(crate) fn partition(&mut self, topic_partitions: NonZeroU32, available: &[i32]) -> i32 {
        if let Some(p) = self.current(topic_partitions) {
            return p;
        }
        let p = self.choose(topic_partitions, available, self.released);
        self.current = Some(p);
        p
    }

    /// Tells the partitioner that the batch of `previous` was closed (full, or sent after its
    /// linger time), so that the next record without a key moves to another partition.
    ///
    /// Nothing changes when `previous` is not the current sticky partition: a batch of an
    /// earlier sticky partition closing late must not move records off the current one.
    pub(crate) fn on_new_batch(&mut self, previous: i32) {
        if self.current == Some(previous) {
            // The new partition is drawn on the next record, with the availability known then.
            self.current = None;
            self.released = Some(previous);
        }
    }

    /// A random partition among the valid entries of `available` other than `avoid`; failing
    /// that `avoid` itself if it is available, else any partition of the topic but `avoid`.
    /// Runs in time linear in `available`, whatever duplicates or junk it holds.
    fn choose(&mut self, topic_partitions: NonZeroU32, available: &[i32], avoid: Option<i32>) -> i32 {
        let is_other = |p: &&i32| in_range(**p, topic_partitions) && Some(**p) != avoid;
        let others = available.iter().filter(is_other).count();
        if others > 0 {
            let i = self.rng.below(others as u64) as usize;
            return *available.iter().filter(is_other).nth(i).expect("i < others");
        }
        if let Some(&p) = available.iter().find(|&&p| in_range(p, topic_partitions)) {
            return p;
        }
        // Partition ids are i32s: a larger count (no broker has one) is cut to the ids there are.
        let all = topic_partitions.get().min(i32::MAX as u32);
        match avoid.filter(|&a| in_range(a, topic_partitions) && all > 1) {
            Some(a) => {
                // Draw among the other all - 1 partitions by skipping over `a`.
                let r = self.rng.below(u64::from(all - 1)) as i32;
                if r >= a {
                    r + 1
                } else {
                    r
                }
            }
            None => self.rng.below(u64::from(all)) as i32,
        }
    }
}

fn in_range(partition: i32, topic_partitions: NonZeroU32) -> bool {
    u32::try_from(partition).is_ok_and(|p| p < topic_partitions.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(partitions: u32) -> NonZeroU32 {
        NonZeroU32::new(partitions).unwrap()
    }

    /// Values printed by the Java client's `Utils.murmur2` (kafka-clients 4.1.2), and the
    /// partition `Utils.toPositive(hash) % 7` it gives.
    const JAVA_VECTORS: &[(&[u8], i32, i32)] = &[
        (b"21", -973932308, 3),
        (b"foobar", -790332482, 0),
        (b"a-little-bit-long-string", -985981536, 1),
        (b"a-little-bit-longer-string", -1486304829, 0),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, 3),
        (b"", 275646681, 2),
        (b"a", -1563381124, 5),
        (b"ab", 316155434, 0),
        (b"abc", 479470107, 4),
        (b"abcd", -1323649548, 5),
        (b"abcde", 461995741, 4),
        (b"abcdef", 1870650108, 5),
        (b"abcdefg", -346467175, 4),
        (b"abcdefgh", -955427363, 0),
        (&[0xff], -311467685, 5),
        (&[0x80, 0xff, 0x00], 2014942385, 1),
        (&[0xff, 0xfe, 0xfd, 0xfc, 0xfb], 524068735, 1),
        (&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], -921386178, 3),
    ];

    #[test]
    fn murmur2_matches_the_java_client() {
        for &(data, hash, _) in JAVA_VECTORS {
            assert_eq!(murmur2(data), hash, "murmur2({data:?})");
        }
    }

    #[test]
    fn partition_for_key_matches_the_java_client() {
        for &(data, _, partition) in JAVA_VECTORS {
            assert_eq!(partition_for_key(data, n(7)), partition, "key {data:?}");
        }
    }

    #[test]
    fn partition_for_key_stays_in_range_for_any_count() {
        for &(data, hash, _) in JAVA_VECTORS {
            assert_eq!(partition_for_key(data, n(1)), 0);
            // With more partitions than positive hashes, the partition is the positive hash.
            assert_eq!(partition_for_key(data, n(u32::MAX)), hash & 0x7fff_ffff);
            for count in [2, 3, 1000, 1 << 31, (1 << 31) + 1] {
                let p = partition_for_key(data, n(count));
                assert!(p >= 0 && (p as u32) < count, "{data:?} over {count}: {p}");
            }
        }
    }

    #[test]
    fn sticky_partition_stays_until_its_batch_closes() {
        let mut s = StickyPartitioner::with_seed(1);
        let available = [0, 1, 2, 3, 4, 5];
        let first = s.partition(n(6), &available);
        assert!(available.contains(&first));
        for _ in 0..100 {
            assert_eq!(s.partition(n(6), &available), first);
        }
        // Closing the batch of another partition does not move the sticky one.
        s.on_new_batch((first + 1) % 6);
        assert_eq!(s.partition(n(6), &available), first);
        s.on_new_batch(first);
        let second = s.partition(n(6), &available);
        assert_ne!(second, first);
        assert!(available.contains(&second));
        // A late close of the old partition's batch changes nothing either.
        s.on_new_batch(first);
        assert_eq!(s.partition(n(6), &available), second);
    }

    #[test]
    fn sticky_partition_moves_to_a_different_available_partition_each_batch() {
        for seed in 0..20 {
            let mut s = StickyPartitioner::with_seed(seed);
            let available = [1, 4, 6];
            let mut seen = [0usize; 8];
            let mut previous = s.partition(n(8), &available);
            for _ in 0..300 {
                s.on_new_batch(previous);
                let next = s.partition(n(8), &available);
                assert!(available.contains(&next), "seed {seed}: {next} is not available");
                assert_ne!(next, previous, "seed {seed}");
                seen[next as usize] += 1;
                previous = next;
            }
            // Random, not a fixed rotation: every available partition gets a fair share.
            for p in available {
                assert!(
                    seen[p as usize] > 60,
                    "seed {seed}: partition {p} chosen {} times",
                    seen[p as usize]
                );
            }
        }
    }

    #[test]
    fn sticky_partition_with_one_available_partition_keeps_it() {
        let mut s = StickyPartitioner::with_seed(7);
        for _ in 0..10 {
            assert_eq!(s.partition(n(5), &[3]), 3);
            s.on_new_batch(3);
        }
    }

    #[test]
    fn sticky_partition_without_available_partitions_uses_all_of_them() {
        let mut s = StickyPartitioner::with_seed(3);
        let mut seen = [false; 4];
        let mut previous = s.partition(n(4), &[]);
        for _ in 0..200 {
            s.on_new_batch(previous);
            let next = s.partition(n(4), &[]);
            assert!((0..4).contains(&next));
            assert_ne!(next, previous);
            seen[next as usize] = true;
            previous = next;
        }
        assert_eq!(seen, [true; 4]);
        let mut single = StickyPartitioner::with_seed(3);
        assert_eq!(single.partition(n(1), &[]), 0);
        single.on_new_batch(0);
        assert_eq!(single.partition(n(1), &[]), 0);
    }

    #[test]
    fn sticky_partition_ignores_partitions_outside_the_topic() {
        let mut s = StickyPartitioner::with_seed(11);
        // Junk and duplicates of the released partition: only 2 and 5 are real choices.
        let available = [-1, 9, i32::MAX, i32::MIN, 2, 5, 5, 5, 6];
        let mut previous = s.partition(n(6), &available);
        for _ in 0..100 {
            assert!(previous == 2 || previous == 5, "{previous}");
            s.on_new_batch(previous);
            let next = s.partition(n(6), &available);
            assert_ne!(next, previous);
            previous = next;
        }
        // Only the released partition available: it is taken again rather than looping.
        let only = [-3, 4, 4, 4];
        let mut s = StickyPartitioner::with_seed(5);
        assert_eq!(s.partition(n(5), &only), 4);
        s.on_new_batch(4);
        assert_eq!(s.partition(n(5), &only), 4);
        // Nothing valid at all: any partition of the topic.
        let mut s = StickyPartitioner::with_seed(5);
        let p = s.partition(n(3), &[7, -2]);
        assert!((0..3).contains(&p));
    }

    #[test]
    fn sticky_partition_beyond_the_partition_count_is_replaced() {
        let mut s = StickyPartitioner::with_seed(2);
        let first = s.partition(n(10), &[9]);
        assert_eq!(first, 9);
        // Metadata now says 4 partitions: 9 cannot be used any more.
        let next = s.partition(n(4), &[0, 1, 2, 3]);
        assert!((0..4).contains(&next));
        assert_eq!(s.partition(n(4), &[0, 1, 2, 3]), next);
    }

    #[test]
    fn sticky_partition_ids_stay_i32_for_huge_counts() {
        let mut s = StickyPartitioner::with_seed(9);
        let mut previous = s.partition(n(u32::MAX), &[]);
        for _ in 0..1000 {
            assert!(previous >= 0, "{previous}");
            s.on_new_batch(previous);
            let next = s.partition(n(u32::MAX), &[]);
            assert_ne!(next, previous);
            previous = next;
        }
    }

    #[test]
    fn fresh_partitioners_are_seeded_differently() {
        // 20 partitioners over 1000 partitions all starting on the same one would mean one seed.
        let firsts: std::collections::HashSet<i32> =
            (0..20).map(|_| StickyPartitioner::new().partition(n(1000), &[])).collect();
        assert!(firsts.len() > 1, "{firsts:?}");
    }
}
