//! The dedup window: reading ids published recently, so a redelivered reading is
//! acknowledged without being published twice. Bounded in time and in entries.
//!
//! An id is remembered only once the bus has accepted its reading: a copy that arrives
//! while the first is still on its way waits for the first's outcome instead of being
//! published alongside it, and a copy of one that failed is free to be published.
//!
//! The window keeps 128 bits per id, not the id's text. Reading ids are 128 bits of SHA-256
//! already (`rd-` and 32 hex digits, see [`sinter_core::id`]); those bits are the key, and
//! being uniform they need no further hashing. Any other id is first digested the same way.
//!
//! Limitation: the window lives in this process's memory; after a restart a redelivered
//! reading is published again (with the same id, so consumers still recognise it).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sinter_core::Timestamp;
use tokio::sync::watch;

/// A remembered id: 128 bits of its SHA-256 digest.
type Key = u128;

/// The key of `id`: its own digest bits when it is a derived id, else a digest of it.
fn key(id: &str) -> Key {
    let digits = id
        .strip_prefix("rd-")
        .filter(|digits| {
            digits.len() == 32
                && digits
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
        .and_then(|digits| u128::from_str_radix(digits, 16).ok());
    match digits {
        Some(key) => key,
        None => {
            let derived = sinter_core::id::derive("dedup", &[id.as_bytes()]);
            u128::from_str_radix(&derived["dedup-".len()..], 16).unwrap_or_default()
        }
    }
}

/// Hashes a [`Key`] by taking its low bits: keys are uniform digests already.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u128(&mut self, key: u128) {
        // Truncation intended: the low 64 bits of a uniform digest.
        self.0 = key as u64;
    }
}

/// What the window knows of an id.
enum Entry {
    /// Published at this ingest time.
    Published(Timestamp),
    /// On its way to the bus. The channel that tells waiting copies whether it arrived is
    /// made only when a copy comes to wait, so the usual reading costs no channel.
    Pending(Option<watch::Sender<Option<bool>>>),
}

#[derive(Default)]
struct Window {
    entries: HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>,
    /// Published ids, oldest first.
    order: VecDeque<(Timestamp, Key)>,
    published: usize,
}

/// The answer to "has this reading been published?".
pub enum Claim<'a> {
    /// Not seen: publish it, then settle the ticket.
    Fresh(Ticket<'a>),
    /// Already published inside the window.
    Seen,
    /// A copy is on its way; wait for [`wait_for_copy`] to learn whether it arrived.
    InFlight(watch::Receiver<Option<bool>>),
}

/// Readings recently published, per Solution.
pub struct Dedup {
    window: Duration,
    capacity: usize,
    state: Mutex<Window>,
}

impl Dedup {
    /// A window of `window` holding at most `capacity` ids. Either being zero turns dedup off.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Dedup {
            window,
            capacity,
            state: Mutex::new(Window::default()),
        }
    }

    fn enabled(&self) -> bool {
        !self.window.is_zero() && self.capacity > 0
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many published ids are remembered now.
    pub fn len(&self) -> usize {
        self.lock().published
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Look `id` up at ingest time `now`.
    pub fn claim(&self, id: &str, now: Timestamp) -> Claim<'_> {
        if !self.enabled() {
            return Claim::Fresh(Ticket {
                dedup: self,
                key: 0,
                settled: true,
            });
        }
        let key = key(id);
        let mut state = self.lock();
        let oldest_kept = now.saturating_sub(self.window);
        while let Some((at, _)) = state.order.front() {
            if *at >= oldest_kept {
                break;
            }
            if let Some((at, expired)) = state.order.pop_front() {
                forget(&mut state, expired, at);
            }
        }
        match state.entries.get_mut(&key) {
            Some(Entry::Published(_)) => return Claim::Seen,
            Some(Entry::Pending(waiters)) => {
                let sender = waiters.get_or_insert_with(|| watch::channel(None).0);
                return Claim::InFlight(sender.subscribe());
            }
            None => {}
        }
        state.entries.insert(key, Entry::Pending(None));
        Claim::Fresh(Ticket {
            dedup: self,
            key,
            settled: false,
        })
    }

    /// Record the outcome of the reading keyed `key` and tell the copies waiting for it.
    fn settle(&self, key: Key, published_at: Option<Timestamp>) {
        let mut state = self.lock();
        let Some(entry) = state.entries.get_mut(&key) else {
            return;
        };
        let Entry::Pending(waiters) = entry else {
            return;
        };
        let waiters = waiters.take();
        match published_at {
            Some(at) if self.enabled() => {
                *entry = Entry::Published(at);
                state.order.push_back((at, key));
                state.published += 1;
                while state.published > self.capacity {
                    let Some((at, oldest)) = state.order.pop_front() else {
                        break;
                    };
                    forget(&mut state, oldest, at);
                }
            }
            _ => {
                state.entries.remove(&key);
            }
        }
        drop(state);
        if let Some(waiters) = waiters {
            waiters.send_replace(Some(published_at.is_some()));
        }
    }
}

/// Forget `key` if it is still the entry published at `at`.
fn forget(state: &mut Window, key: Key, at: Timestamp) {
    if matches!(state.entries.get(&key), Some(Entry::Published(when)) if *when == at) {
        state.entries.remove(&key);
        state.published -= 1;
    }
}

/// Wait for the copy in flight; `true` when it reached the bus.
pub async fn wait_for_copy(mut receiver: watch::Receiver<Option<bool>>) -> bool {
    match receiver.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.unwrap_or(false),
        // The publisher went away without settling: treat as not published.
        Err(_) => false,
    }
}

/// The right to publish one reading; settle it with the outcome. Dropped unsettled, it
/// counts as not published.
pub struct Ticket<'a> {
    dedup: &'a Dedup,
    key: Key,
    settled: bool,
}

impl Ticket<'_> {
    /// The reading reached the bus at ingest time `at`.
    pub fn published(mut self, at: Timestamp) {
        self.settled = true;
        self.dedup.settle(self.key, Some(at));
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled && self.dedup.enabled() {
            self.dedup.settle(self.key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(dedup: &Dedup, id: &str, now: Timestamp) -> bool {
        match dedup.claim(id, now) {
            Claim::Fresh(ticket) => {
                ticket.published(now);
                true
            }
            Claim::Seen | Claim::InFlight(_) => false,
        }
    }

    #[test]
    fn a_reading_inside_the_window_is_seen() {
        let dedup = Dedup::new(Duration::from_secs(60), 10);
        let t0 = Timestamp::from_secs(1_000);
        assert!(publish(&dedup, "a", t0));
        assert!(!publish(
            &dedup,
            "a",
            t0.saturating_add(Duration::from_secs(60))
        ));
        assert!(publish(
            &dedup,
            "a",
            t0.saturating_add(Duration::from_secs(61))
        ));
        assert_eq!(dedup.len(), 1);
    }

    #[test]
    fn capacity_bounds_memory() {
        let dedup = Dedup::new(Duration::from_secs(3_600), 3);
        let now = Timestamp::from_secs(1_000);
        for id in ["a", "b", "c", "d"] {
            assert!(publish(&dedup, id, now));
        }
        assert_eq!(dedup.len(), 3);
        assert!(publish(&dedup, "a", now), "the oldest was forgotten");
        assert!(!publish(&dedup, "d", now));
    }

    #[tokio::test]
    async fn a_copy_in_flight_waits_for_the_first() {
        let dedup = Dedup::new(Duration::from_secs(60), 10);
        let now = Timestamp::from_secs(1_000);
        let Claim::Fresh(first) = dedup.claim("a", now) else {
            panic!("first claim must be fresh");
        };
        let Claim::InFlight(copy) = dedup.claim("a", now) else {
            panic!("second claim must wait");
        };
        first.published(now);
        assert!(wait_for_copy(copy).await);

        let Claim::Fresh(failing) = dedup.claim("b", now) else {
            panic!("fresh");
        };
        let Claim::InFlight(copy) = dedup.claim("b", now) else {
            panic!("in flight");
        };
        drop(failing);
        assert!(!wait_for_copy(copy).await);
        assert!(
            matches!(dedup.claim("b", now), Claim::Fresh(_)),
            "a failed id is free"
        );
    }

    #[test]
    fn derived_ids_key_by_their_own_bits() {
        let id = sinter_core::id::derive("rd", &[b"p-17", b"42"]);
        let digits = u128::from_str_radix(&id[3..], 16).unwrap();
        assert_eq!(key(&id), digits);
        assert_ne!(key("rd-not-hex"), key("rd-not-hex!"));
        // Only the derived form is read as digits: not a sign, not upper case.
        let upper = id.to_uppercase().replacen("RD-", "rd-", 1);
        assert_ne!(key(&upper), key(&id));
        let signed = format!("rd-+{}", &id[4..]);
        assert_ne!(key(&signed), u128::from_str_radix(&id[4..], 16).unwrap());
        assert_eq!(key("plain"), key("plain"));
        let dedup = Dedup::new(Duration::from_secs(60), 10);
        let now = Timestamp::from_secs(1);
        assert!(publish(&dedup, &id, now));
        assert!(!publish(&dedup, &id, now));
        assert!(publish(&dedup, "rd-not-hex", now));
        assert!(!publish(&dedup, "rd-not-hex", now));
    }

    #[test]
    fn zero_capacity_turns_dedup_off() {
        let dedup = Dedup::new(Duration::from_secs(60), 0);
        let now = Timestamp::from_secs(1);
        assert!(publish(&dedup, "a", now));
        assert!(publish(&dedup, "a", now));
        assert!(dedup.is_empty());
    }
}
