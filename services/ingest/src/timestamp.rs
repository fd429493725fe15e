//! Reading timestamps: RFC 3339, or epoch seconds, milliseconds or microseconds told apart
//! by magnitude, normalised to microseconds with the unit they came in.
//!
//! The magnitude rule, on the absolute value of the number:
//!
//! | value below | unit | covers |
//! | --- | --- | --- |
//! | 10^11 | seconds | up to the year 5138 |
//! | 10^14 | milliseconds | 1973 to 5138 |
//! | 10^17 | microseconds | 1973 to 5138 |
//!
//! Anything larger (nanoseconds, say) is refused rather than guessed at. Epoch text may carry
//! a fraction (`"1764756000.25"`); it must follow JSON's number grammar.

use sinter_core::Timestamp;
use sinter_proto::events::v1::{ReasonCode, TimestampUnit};
use sinter_proto::ingest::v1::reading_input::Time;

use crate::number;
use crate::refusal::Refusal;

/// Epoch values below this are seconds.
const SECONDS_BELOW: u64 = 100_000_000_000;
/// Epoch values below this (and not seconds) are milliseconds.
const MILLIS_BELOW: u64 = 100_000_000_000_000;
/// Epoch values below this (and not milliseconds) are microseconds.
const MICROS_BELOW: u64 = 100_000_000_000_000_000;

/// A reading's time, as given and as normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTime {
    pub at: Timestamp,
    pub unit: TimestampUnit,
}

/// Read a reading's time field. `None` when the reading carried none.
pub fn parse(time: Option<&Time>) -> Result<Option<EventTime>, Refusal> {
    let Some(time) = time else {
        return Ok(None);
    };
    let parsed = match time {
        Time::EventTime(proto) => {
            let at = sinter_proto::time::from_proto(proto).ok_or_else(|| {
                bad(format!(
                    "event_time: nanos {} is outside 0..999999999",
                    proto.nanos
                ))
            })?;
            EventTime {
                at,
                unit: TimestampUnit::Protobuf,
            }
        }
        Time::Epoch(value) => from_epoch_integer(*value)?,
        Time::Ts(text) => parse_text(text)?,
    };
    Ok(Some(parsed))
}

/// Read RFC 3339 text, or epoch seconds, milliseconds or microseconds as decimal text.
pub fn parse_text(text: &str) -> Result<EventTime, Refusal> {
    if number::is_json_number(text) {
        // Whole numbers are judged exactly: as a float, 99999999999999999 rounds up to 10^17.
        if let Ok(integer) = text.parse::<i64>() {
            return from_epoch_integer(integer);
        }
        let value: f64 = text
            .parse()
            .map_err(|_| bad(format!("ts: {text:?} is not a number")))?;
        return from_epoch(value, text);
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(text).map_err(|error| {
        bad(format!(
            "ts: {text:?} is neither RFC 3339 (like 2026-12-03T10:00:00Z) nor epoch seconds, \
             milliseconds or microseconds: {error}"
        ))
    })?;
    Ok(EventTime {
        at: Timestamp::from_micros(parsed.timestamp_micros()),
        unit: TimestampUnit::Rfc3339,
    })
}

fn from_epoch(value: f64, written: &str) -> Result<EventTime, Refusal> {
    let magnitude = value.abs();
    // Powers of ten this small are exact as floats.
    let (unit, micros_per_unit) = if magnitude < SECONDS_BELOW as f64 {
        (TimestampUnit::Seconds, 1e6)
    } else if magnitude < MILLIS_BELOW as f64 {
        (TimestampUnit::Milliseconds, 1e3)
    } else if magnitude < MICROS_BELOW as f64 {
        (TimestampUnit::Microseconds, 1.0)
    } else {
        return Err(too_large(written));
    };
    // Below 1e17 microseconds the product fits an i64 exactly enough (to the microsecond).
    let micros = (value * micros_per_unit).round() as i64;
    Ok(EventTime {
        at: Timestamp::from_micros(micros),
        unit,
    })
}

/// A whole epoch number: its unit by magnitude, the same rule as [`from_epoch`], exactly.
fn from_epoch_integer(value: i64) -> Result<EventTime, Refusal> {
    let magnitude = value.unsigned_abs();
    let (unit, micros_per_unit) = if magnitude < SECONDS_BELOW {
        (TimestampUnit::Seconds, 1_000_000)
    } else if magnitude < MILLIS_BELOW {
        (TimestampUnit::Milliseconds, 1_000)
    } else if magnitude < MICROS_BELOW {
        (TimestampUnit::Microseconds, 1)
    } else {
        return Err(too_large(&value.to_string()));
    };
    // Below 10^11 seconds or 10^14 milliseconds, the microseconds stay below 10^17.
    Ok(EventTime {
        at: Timestamp::from_micros(value * micros_per_unit),
        unit,
    })
}

fn too_large(written: &str) -> Refusal {
    bad(format!(
        "ts: {written} is too large for epoch microseconds (its magnitude must be below \
         10^17); nanoseconds are not accepted"
    ))
}

fn bad(message: String) -> Refusal {
    Refusal::new(ReasonCode::BadTimestamp, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEC_3_2026: i64 = 1_796_292_000; // 2026-12-03T10:00:00Z

    fn text(text: &str) -> Result<EventTime, Refusal> {
        parse_text(text)
    }

    #[test]
    fn epoch_units_by_magnitude() {
        let at = Timestamp::from_secs(DEC_3_2026);
        for (written, unit) in [
            ("1796292000", TimestampUnit::Seconds),
            ("1796292000000", TimestampUnit::Milliseconds),
            ("1796292000000000", TimestampUnit::Microseconds),
        ] {
            assert_eq!(text(written), Ok(EventTime { at, unit }), "{written}");
        }
        let epoch = parse(Some(&Time::Epoch(DEC_3_2026 * 1_000)))
            .unwrap()
            .unwrap();
        assert_eq!(epoch.unit, TimestampUnit::Milliseconds);
        assert_eq!(epoch.at, at);
        let fraction = text("1796292000.25").unwrap();
        assert_eq!(fraction.at.as_micros(), DEC_3_2026 * 1_000_000 + 250_000);
    }

    #[test]
    fn rfc3339_with_offsets() {
        let utc = text("2026-12-03T10:00:00Z").unwrap();
        assert_eq!(utc.at, Timestamp::from_secs(DEC_3_2026));
        assert_eq!(utc.unit, TimestampUnit::Rfc3339);
        let offset = text("2026-12-03T11:00:00.5+01:00").unwrap();
        assert_eq!(offset.at.as_micros(), DEC_3_2026 * 1_000_000 + 500_000);
    }

    #[test]
    fn refuses_what_it_cannot_tell() {
        for bad in [
            "yesterday",
            "2026-12-03",
            "1796292000000000000",
            " 1796292000",
            "",
        ] {
            let refusal = text(bad).unwrap_err();
            assert_eq!(refusal.code, ReasonCode::BadTimestamp, "{bad:?}");
            assert!(refusal.message.starts_with("ts: "), "{refusal}");
        }
        let proto = prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert!(parse(Some(&Time::EventTime(proto))).is_err());
        assert_eq!(parse(None), Ok(None));
        // Seventeen nines are microseconds, though as a float they round up to 10^17.
        let nines = parse(Some(&Time::Epoch(99_999_999_999_999_999)))
            .unwrap()
            .unwrap();
        assert_eq!(nines.unit, TimestampUnit::Microseconds);
        assert_eq!(nines.at.as_micros(), 99_999_999_999_999_999);
        assert_eq!(text("99999999999999999").unwrap(), nines);
        for too_large in [100_000_000_000_000_000, -100_000_000_000_000_000] {
            let refusal = parse(Some(&Time::Epoch(too_large))).unwrap_err();
            assert!(
                refusal
                    .message
                    .contains("its magnitude must be below 10^17"),
                "{refusal}"
            );
        }
    }
}
