//! Durations as the Solution format writes them (`30s`, `5m`, `1h30m`, `7d`).
//!
//! They are stored as [`std::time::Duration`].
//!
//! The module doubles as a serde `with` module, for configuration elsewhere that wants the
//! same spelling:
//!
//! ```
//! use std::time::Duration;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Limits {
//!     #[serde(with = "sinter_core::solution::duration")]
//!     grace: Duration,
//! }
//! let limits: Limits = serde_json::from_str(r#"{"grace": "1h30m"}"#).unwrap();
//! assert_eq!(limits.grace, Duration::from_secs(5_400));
//! assert_eq!(serde_json::to_string(&limits).unwrap(), r#"{"grace":"1h30m"}"#);
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Read a duration such as `90s`, `5m` or `1h30m`.
///
/// The error is a sentence for a person: `"5x" is not a duration (expected e.g. 30s, 5m, 1h30m)`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration (expected e.g. 30s, 5m, 1h30m)"))
}

/// Write a duration the way a person would type it: `1h30m`, `7d`, `250ms`, `0s`.
///
/// [`parse`] reads the result back to the same duration.
pub fn format(duration: Duration) -> String {
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let mut rest = duration.as_nanos();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (unit, nanos) in UNITS {
        let count = rest / nanos;
        if count > 0 {
            text.push_str(&count.to_string());
            text.push_str(unit);
            rest -= count * nanos;
        }
    }
    text
}

/// Serialise a duration as [`format`] writes it.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// Deserialise a duration from a string that [`parse`] accepts.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The same, for an optional duration: `None` is left out or written as `null`.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialise an optional duration as [`super::format`] writes it.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserialise an optional duration; `null` is `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => super::parse(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_spellings() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_nonsense_with_a_hint() {
        assert_eq!(
            parse("5x"),
            Err(r#""5x" is not a duration (expected e.g. 30s, 5m, 1h30m)"#.to_owned())
        );
        assert!(parse("").is_err());
        assert!(parse("-5m").is_err());
        assert!(parse("five minutes").is_err());
    }

    #[test]
    fn formats_compactly_and_reads_back() {
        for (seconds, text) in [(90, "1m30s"), (5_400, "1h30m"), (604_800, "7d"), (0, "0s")] {
            let duration = Duration::from_secs(seconds);
            assert_eq!(format(duration), text);
            assert_eq!(parse(text), Ok(duration));
        }
        assert_eq!(format(Duration::from_millis(1_250)), "1s250ms");
        assert_eq!(parse("1s250ms"), Ok(Duration::from_millis(1_250)));
    }
}
