//! The limits ingest holds every reading to: size, batch, clock skew, age, dedup.

use std::time::Duration;

use serde::Serialize;

use super::duration;
use super::error::Problems;
use super::keyword::keyword_enum;
use super::node::Node;
use super::path::Path;
use super::raw::RawIngest;

/// What ingest accepts; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestLimits {
    /// The largest reading accepted, in bytes of its JSON or protobuf form; 4096 unless told.
    pub max_reading_bytes: u64,
    /// The most readings accepted in one batch (one request); 1000 unless told.
    pub max_batch_readings: u64,
    /// How far in the future a reading's timestamp may be; 5m unless told.
    #[serde(with = "duration")]
    pub clock_skew: Duration,
    /// How old a reading may be and still be accepted; 7d unless told.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// How long a reading id is remembered to recognise a resent reading; 10m unless told.
    #[serde(with = "duration")]
    pub dedup_window: Duration,
    /// The most reading ids remembered at once for dedup; 100000 unless told.
    pub dedup_capacity: u64,
    /// What to do with `"91.2"` for a number metric; `parse` unless told.
    pub numeric_strings: NumericStrings,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_reading_bytes: 4_096,
            max_batch_readings: 1_000,
            clock_skew: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(7 * 86_400),
            dedup_window: Duration::from_secs(10 * 60),
            dedup_capacity: 100_000,
            numeric_strings: NumericStrings::Parse,
        }
    }
}

keyword_enum! {
    /// What a number metric's reading whose value is a string means.
    pub enum NumericStrings ("numericStrings policy") {
        /// Read the string as a number; refuse the reading when it is not one.
        Parse = "parse",
        /// Refuse the reading: number metrics take JSON numbers only.
        Refuse = "refuse",
    }
}

/// Read and check `spec.ingest`.
pub(crate) fn build(raw: Node<RawIngest>, path: &Path, problems: &mut Problems) -> IngestLimits {
    let defaults = IngestLimits::default();
    let Some(raw) = raw.take(path, problems) else {
        return defaults;
    };
    let limits = IngestLimits {
        max_reading_bytes: raw
            .max_reading_bytes
            .count(1, &path.field("maxReadingBytes"), problems)
            .unwrap_or(defaults.max_reading_bytes),
        max_batch_readings: raw
            .max_batch_readings
            .count(1, &path.field("maxBatchReadings"), problems)
            .unwrap_or(defaults.max_batch_readings),
        clock_skew: raw
            .clock_skew
            .duration(&path.field("clockSkew"), problems)
            .unwrap_or(defaults.clock_skew),
        max_age: raw
            .max_age
            .positive_duration(&path.field("maxAge"), problems)
            .unwrap_or(defaults.max_age),
        dedup_window: raw
            .dedup_window
            .duration(&path.field("dedupWindow"), problems)
            .unwrap_or(defaults.dedup_window),
        dedup_capacity: raw
            .dedup_capacity
            .count(0, &path.field("dedupCapacity"), problems)
            .unwrap_or(defaults.dedup_capacity),
        numeric_strings: raw
            .numeric_strings
            .keyword(&path.field("numericStrings"), problems)
            .unwrap_or(defaults.numeric_strings),
    };
    if limits.dedup_window > limits.max_age && raw.dedup_window.is_present() {
        problems.report(
            &path.field("dedupWindow"),
            format!(
                "dedupWindow ({}) must not exceed maxAge ({}): older readings are refused anyway",
                duration::format(limits.dedup_window),
                duration::format(limits.max_age)
            ),
        );
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::super::tests::{DEVICES, document, spec_errors};
    use super::*;

    #[test]
    fn defaults_apply_field_by_field() {
        let yaml = document(&format!(
            "{DEVICES}    ingest: {{maxAge: 1d, numericStrings: refuse}}\n"
        ));
        let limits = super::super::Solution::from_yaml(&yaml)
            .unwrap()
            .spec
            .ingest;
        assert_eq!(limits.max_age, Duration::from_secs(86_400));
        assert_eq!(limits.numeric_strings, NumericStrings::Refuse);
        assert_eq!(limits.max_reading_bytes, 4_096);
        assert_eq!(limits.clock_skew, Duration::from_secs(300));
        let yaml = document(DEVICES);
        let limits = super::super::Solution::from_yaml(&yaml)
            .unwrap()
            .spec
            .ingest;
        assert_eq!(limits, IngestLimits::default());
    }

    #[test]
    fn limits_are_checked() {
        let found = spec_errors(
            "    ingest:
      maxReadingBytes: 0
      maxBatchReadings: many
      clockSkew: five minutes
      maxAge: 0s
      dedupCapacity: -1
      numericStrings: coerce
",
        );
        assert_eq!(
            found,
            [
                "spec.ingest.maxReadingBytes: must be at least 1, not 0",
                r#"spec.ingest.maxBatchReadings: expected a whole number of at least 1, found "many""#,
                r#"spec.ingest.clockSkew: "five minutes" is not a duration (expected e.g. 30s, 5m, 1h30m)"#,
                "spec.ingest.maxAge: must be longer than 0s",
                "spec.ingest.dedupCapacity: expected a whole number, not negative, found -1",
                r#"spec.ingest.numericStrings: "coerce" is not a valid numericStrings policy (expected one of parse, refuse)"#,
            ]
        );
    }

    #[test]
    fn dedup_window_fits_in_max_age() {
        let found = spec_errors("    ingest: {maxAge: 1h, dedupWindow: 2h}\n");
        assert_eq!(
            found,
            [
                "spec.ingest.dedupWindow: dedupWindow (2h) must not exceed maxAge (1h): older readings are refused anyway"
            ]
        );
    }
}
