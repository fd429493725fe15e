//! Deterministic record ids: the same source always yields the same id, so a
//! replayed record is recognised and changes nothing twice. Ids of records that are
//! stored and looked up by id can lead with a time, so that new ones sort together; such
//! an id is only as stable as the time given, so the time must come from the record's
//! source (or the record be recognised some other way) for a replay to be caught.

use sha2::{Digest, Sha256};

/// Derive a stable id from a kind and the parts that identify a record.
///
/// Parts are length-prefixed before hashing, so `("ab", "c")` and `("a", "bc")` differ.
/// The result is 32 lowercase hex characters (128 bits of SHA-256), prefixed by the kind:
/// `rd-3f2a...` for a reading.
pub fn derive(kind: &str, parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    hasher.update((kind.len() as u64).to_be_bytes());
    hasher.update(kind.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut id = String::with_capacity(kind.len() + 33);
    id.push_str(kind);
    id.push('-');
    for byte in &digest[..16] {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

/// Hex digits of the time in an ordered id: microseconds since the Unix epoch fit 13 of
/// them until the year 2112.
const TIME_DIGITS: usize = 13;

/// [`derive`], with the first 13 of the 32 hex characters replaced by `at` (microseconds
/// since the Unix epoch, zero-padded; a negative time counts as 0). Ids derived at later
/// times sort after earlier ones, so a database index on them grows at its end rather
/// than at random places; the 19 hex characters of hash (76 bits) tell apart records of
/// the same microsecond.
pub fn derive_ordered(kind: &str, at: i64, parts: &[&[u8]]) -> String {
    let hashed = derive(kind, parts);
    let time = u64::try_from(at).unwrap_or(0);
    let start = kind.len() + 1;
    let mut id = String::with_capacity(hashed.len());
    id.push_str(&hashed[..start]);
    for digit in (0..TIME_DIGITS).rev() {
        let nibble = (time >> (4 * digit)) & 0x0f;
        id.push(char::from(HEX[usize::try_from(nibble).unwrap_or(0)]));
    }
    id.push_str(&hashed[start + TIME_DIGITS..]);
    id
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parts_same_id() {
        let a = derive("rd", &[b"p-17", b"bearing_temperature", b"1764756000"]);
        let b = derive("rd", &[b"p-17", b"bearing_temperature", b"1764756000"]);
        assert_eq!(a, b);
        assert!(a.starts_with("rd-"));
        assert_eq!(a.len(), 3 + 32);
    }

    #[test]
    fn ordered_ids_sort_by_time_and_keep_the_shape() {
        let parts: [&[u8]; 2] = [b"plant/demo", b"st-1"];
        let early = derive_ordered("rc", 1_764_756_000_000_000, &parts);
        let late = derive_ordered("rc", 1_764_756_000_000_001, &parts);
        assert_eq!(early.len(), 3 + 32);
        assert!(early.starts_with("rc-64509467ec800"), "{early}");
        assert!(early < late);
        assert_eq!(early, derive_ordered("rc", 1_764_756_000_000_000, &parts));
        // The same time with other parts differs in the hash that follows.
        let other = derive_ordered("rc", 1_764_756_000_000_000, &[b"plant/demo", b"st-2"]);
        assert_ne!(early, other);
        assert_eq!(early[..16], other[..16]);
        assert!(derive_ordered("rc", -5, &parts).starts_with("rc-0000000000000"));
    }

    #[test]
    fn boundaries_between_parts_matter() {
        assert_ne!(derive("rd", &[b"ab", b"c"]), derive("rd", &[b"a", b"bc"]));
        assert_ne!(derive("rd", &[b"x"]), derive("dt", &[b"x"]));
    }
}
