//! Time as a dependency: logic asks a [`Clock`] for "now", never the wall clock.
//!
//! Production code passes [`SystemClock`]; tests and replay pass a [`ManualClock`]
//! that only moves when told to.
//!
//! ```
//! use sinter_core::{Clock, ManualClock, Timestamp};
//! let clock = ManualClock::new(Timestamp::from_micros(1_000_000));
//! clock.advance(std::time::Duration::from_secs(2));
//! assert_eq!(clock.now().as_micros(), 3_000_000);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: microseconds since the Unix epoch, in UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis.saturating_mul(1_000))
    }

    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    /// Whole seconds and the nanoseconds within the second (always non-negative),
    /// as protobuf's `Timestamp` wants them.
    pub const fn as_secs_nanos(self) -> (i64, i32) {
        let secs = self.0.div_euclid(1_000_000);
        let nanos = (self.0.rem_euclid(1_000_000) * 1_000) as i32;
        (secs, nanos)
    }

    /// Build from protobuf's seconds and nanoseconds; sub-microsecond parts are dropped.
    pub const fn from_secs_nanos(secs: i64, nanos: i32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000)
                .saturating_add(nanos as i64 / 1_000),
        )
    }

    pub fn saturating_add(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    pub fn saturating_sub(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(micros))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        let micros = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_micros(micros as u64)
    }

    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(self.0.unsigned_abs())
        }
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)),
            Err(before) => {
                Timestamp(-i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX))
            }
        }
    }
}

/// RFC 3339 in UTC with microseconds (`2026-12-03T08:15:00.000000Z`), before 1970 too; a
/// time beyond what a calendar date can hold is shown as its microseconds since the epoch.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp_micros(self.0) {
            Some(at) => write!(f, "{}", at.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
            None => write!(f, "{}us since the epoch", self.0),
        }
    }
}

/// The source of "now" for every piece of Sinter logic.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A clock that stands still until moved: for tests and for replaying history.
///
/// Clones share one time, so a test can keep a handle and move the clock that the
/// code under test holds.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            micros: Arc::new(AtomicI64::new(start.as_micros())),
        }
    }

    /// Move the clock forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Set the clock to `to`; it may move backwards, as a replay that restarts does.
    pub fn set(&self, to: Timestamp) {
        self.micros.store(to.as_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// A shared clock handle, as services hold it.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    #[test]
    fn times_display_as_rfc3339_before_and_after_1970() {
        let at = Timestamp::from_micros(1_764_749_700_000_123);
        assert_eq!(at.to_string(), "2025-12-03T08:15:00.000123Z");
        assert_eq!(
            Timestamp::from_micros(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::from_secs(-5).to_string(),
            "1969-12-31T23:59:55.000000Z"
        );
        assert_eq!(
            Timestamp::from_micros(-315_619_200_000_000).to_string(),
            "1960-01-01T00:00:00.000000Z"
        );
        assert!(
            Timestamp::from_micros(i64::MIN)
                .to_string()
                .contains("since the epoch")
        );
    }

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_secs(10));
        let handle = clock.clone();
        assert_eq!(clock.now(), Timestamp::from_secs(10));
        handle.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now(), Timestamp::from_micros(11_500_000));
        handle.set(Timestamp::from_secs(5));
        assert_eq!(clock.now(), Timestamp::from_secs(5));
    }

    #[test]
    fn secs_nanos_round_trip_before_and_after_epoch() {
        for micros in [
            0,
            1,
            999_999,
            1_000_000,
            -1,
            -1_000_001,
            1_764_756_000_123_456,
        ] {
            let ts = Timestamp::from_micros(micros);
            let (secs, nanos) = ts.as_secs_nanos();
            assert!((0..1_000_000_000).contains(&nanos));
            assert_eq!(Timestamp::from_secs_nanos(secs, nanos), ts);
        }
    }

    #[test]
    fn displays_as_rfc3339() {
        let ts = Timestamp::from_secs(1_764_756_000);
        assert_eq!(ts.to_string(), "2025-12-03T10:00:00.000000Z");
    }

    #[test]
    fn system_time_round_trip() {
        let ts = Timestamp::from_micros(-2_500_000);
        assert_eq!(Timestamp::from_system_time(ts.to_system_time()), ts);
    }
}
