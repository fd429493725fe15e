//! Which partition a key lands on: Kafka's default partitioner (murmur2), shared by both buses.
//!
//! The Java client and librdkafka's `murmur2_random` partitioner (which [`crate::kafka`]
//! configures) hash a key with MurmurHash2 (seed `0x9747b28c`), clear the sign bit and take
//! the remainder by the partition count. The embedded bus does the same here, so a device's
//! readings land on the same partition number whichever bus carries them.

/// Kafka's MurmurHash2 seed.
const SEED: u32 = 0x9747_b28c;
/// MurmurHash2's multiplier.
const MULTIPLIER: u32 = 0x5bd1_e995;
/// MurmurHash2's shift.
const SHIFT: u32 = 24;

/// MurmurHash2 of `data` exactly as Kafka's `Utils.murmur2` computes it, as a signed 32-bit
/// number like Java's.
pub fn murmur2(data: &[u8]) -> i32 {
    // Kafka seeds with the length as a Java int: lengths past i32::MAX wrap the same way.
    let length_seed = data.len() as u32;
    let mut hash = SEED ^ length_seed;

    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(MULTIPLIER);
        k ^= k >> SHIFT;
        k = k.wrapping_mul(MULTIPLIER);
        hash = hash.wrapping_mul(MULTIPLIER);
        hash ^= k;
    }

    let tail = words.remainder();
    if !tail.is_empty() {
        if let Some(&third) = tail.get(2) {
            hash ^= u32::from(third) << 16;
        }
        if let Some(&second) = tail.get(1) {
            hash ^= u32::from(second) << 8;
        }
        hash ^= u32::from(tail[0]);
        hash = hash.wrapping_mul(MULTIPLIER);
    }

    hash ^= hash >> 13;
    hash = hash.wrapping_mul(MULTIPLIER);
    hash ^= hash >> 15;
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// The partition, in `0..partitions`, that Kafka's default partitioner picks for `key`.
///
/// `partitions` below 1 is treated as 1.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafka_reference_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for device in 0..1_000 {
            let key = format!("device-{device}");
            let partition = partition_for_key(key.as_bytes(), 12);
            assert!((0..12).contains(&partition));
            assert_eq!(partition, partition_for_key(key.as_bytes(), 12));
        }
        assert_eq!(partition_for_key(b"anything", 1), 0);
        assert_eq!(partition_for_key(b"anything", 0), 0);
    }
}
