//! What a valid reading is, per the Solution's device model and ingest limits: the one
//! check every transport calls, so the same input gets the same outcome everywhere.
//!
//! In order: device id (character set), device type (the first `spec.devices[].match`
//! pattern that matches), metric (declared for that type), value (type, the numeric-string
//! rule, finite, within `min`/`max`), time (readable, not further ahead than
//! `spec.ingest.clockSkew`, not older than `spec.ingest.maxAge`). The first failure is the
//! reading's refusal. Sizes and batch lengths are checked by the pipeline, before parsing.

use sinter_core::solution::{IngestLimits, NumericStrings, SolutionSpec};
use sinter_core::{Timestamp, id};
use sinter_proto::events::v1::{Reading, ReasonCode, TimestampUnit, Transport, reading};
use sinter_proto::ingest::v1::ReadingInput;
use sinter_proto::ingest::v1::reading_input::Value as InputValue;

use crate::number::{self, NumericText};
use crate::refusal::Refusal;
use crate::{device_id, timestamp};

/// A reading's value once checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
}

/// A reading that passed every check, before it is stamped for the bus.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidReading {
    pub device_id: String,
    pub device_type: String,
    pub metric: String,
    pub value: Value,
    pub event_time: Timestamp,
    pub timestamp_unit: TimestampUnit,
    pub message_id: String,
}

impl ValidReading {
    /// The reading's deterministic id, which is also its dedup key: derived from the device
    /// and the sender's message id when there is one (so two devices counting their messages
    /// from 1 never collide), otherwise from device, metric, event time and value. A numeric
    /// string and the number it reads as give the same id.
    pub fn id(&self) -> String {
        if !self.message_id.is_empty() {
            let parts: [&[u8]; 3] = [
                b"message",
                self.device_id.as_bytes(),
                self.message_id.as_bytes(),
            ];
            return id::derive("rd", &parts);
        }
        let micros = self.event_time.as_micros().to_be_bytes();
        let (tag, value): (&[u8], Vec<u8>) = match &self.value {
            Value::Number(number) => (b"number", number.to_bits().to_be_bytes().to_vec()),
            Value::Text(text) => (b"text", text.as_bytes().to_vec()),
        };
        id::derive(
            "rd",
            &[
                b"reading",
                self.device_id.as_bytes(),
                self.metric.as_bytes(),
                &micros,
                tag,
                &value,
            ],
        )
    }

    /// The record for `<solution>.telemetry`.
    pub fn into_reading(
        self,
        id: String,
        ingest_time: Timestamp,
        transport: Transport,
        source: &str,
    ) -> Reading {
        Reading {
            id,
            device_id: self.device_id,
            metric: self.metric,
            value: Some(match self.value {
                Value::Number(number) => reading::Value::Number(number),
                Value::Text(text) => reading::Value::Text(text),
            }),
            event_time: Some(sinter_proto::time::to_proto(self.event_time)),
            ingest_time: Some(sinter_proto::time::to_proto(ingest_time)),
            transport: transport as i32,
            source: source.to_owned(),
            message_id: self.message_id,
            timestamp_unit: self.timestamp_unit as i32,
            device_type: self.device_type,
        }
    }
}

/// What checking found in a valid reading beyond its own fields.
struct Verdict {
    device_type: String,
    value: Value,
    event_time: Timestamp,
    timestamp_unit: TimestampUnit,
}

/// Check `input` against `spec` at ingest time `now`.
pub fn check(
    input: &ReadingInput,
    spec: &SolutionSpec,
    now: Timestamp,
) -> Result<ValidReading, Refusal> {
    let verdict = verdict(input, spec, now)?;
    Ok(ValidReading {
        device_id: input.device_id.clone(),
        device_type: verdict.device_type,
        metric: input.metric.clone(),
        value: verdict.value,
        event_time: verdict.event_time,
        timestamp_unit: verdict.timestamp_unit,
        message_id: input.message_id.clone(),
    })
}

/// [`check`], keeping the input's own text in the valid reading; a refused input comes back
/// with its refusal.
pub fn check_owned(
    input: ReadingInput,
    spec: &SolutionSpec,
    now: Timestamp,
) -> Result<ValidReading, Box<(Refusal, ReadingInput)>> {
    match verdict(&input, spec, now) {
        Ok(verdict) => Ok(ValidReading {
            device_id: input.device_id,
            device_type: verdict.device_type,
            metric: input.metric,
            value: verdict.value,
            event_time: verdict.event_time,
            timestamp_unit: verdict.timestamp_unit,
            message_id: input.message_id,
        }),
        Err(refusal) => Err(Box::new((refusal, input))),
    }
}

fn verdict(input: &ReadingInput, spec: &SolutionSpec, now: Timestamp) -> Result<Verdict, Refusal> {
    device_id::check(&input.device_id)?;
    let device = &input.device_id;
    let device_type = spec.device_type_for(device).ok_or_else(|| {
        let patterns: Vec<String> = spec
            .devices
            .iter()
            .map(|t| {
                format!(
                    "{} {:?}",
                    t.name,
                    t.patterns.iter().map(|p| p.as_str()).collect::<Vec<_>>()
                )
            })
            .collect();
        Refusal::new(
            ReasonCode::UnknownDeviceType,
            format!(
                "device: {device:?} matches no device type of the Solution ({})",
                patterns.join(", ")
            ),
        )
    })?;
    if input.metric.is_empty() {
        return Err(Refusal::new(
            ReasonCode::MissingField,
            "metric: a metric name is required",
        ));
    }
    let metric = device_type.metric(&input.metric).ok_or_else(|| {
        let known: Vec<&str> = device_type
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        Refusal::new(
            ReasonCode::UnknownMetric,
            format!(
                "metric: {:?} is not a metric of device type {} (it has {})",
                input.metric,
                device_type.name,
                known.join(", ")
            ),
        )
    })?;
    let value = check_value(input, metric, &spec.ingest)?;
    let (event_time, timestamp_unit) = match timestamp::parse(input.time.as_ref())? {
        Some(time) => {
            check_time(time.at, now, &spec.ingest)?;
            (time.at, time.unit)
        }
        None => (now, TimestampUnit::Unspecified),
    };
    Ok(Verdict {
        device_type: device_type.name.clone(),
        value,
        event_time,
        timestamp_unit,
    })
}

fn check_value(
    input: &ReadingInput,
    metric: &sinter_core::solution::Metric,
    limits: &IngestLimits,
) -> Result<Value, Refusal> {
    let name = &metric.name;
    let number = match &input.value {
        None => {
            return Err(Refusal::new(
                ReasonCode::MissingField,
                "value: a value is required",
            ));
        }
        Some(InputValue::Text(text)) if !metric.is_numeric() => {
            return Ok(Value::Text(text.clone()));
        }
        Some(InputValue::Number(number)) if !metric.is_numeric() => {
            return Err(Refusal::new(
                ReasonCode::WrongType,
                format!("value: metric {name} takes a string, not the number {number}"),
            ));
        }
        Some(InputValue::Number(number)) => *number,
        Some(InputValue::Text(text)) => match limits.numeric_strings {
            NumericStrings::Refuse => {
                return Err(Refusal::new(
                    ReasonCode::WrongType,
                    format!(
                        "value: metric {name} takes a JSON number, not the string {text:?} \
                         (spec.ingest.numericStrings is refuse)"
                    ),
                ));
            }
            NumericStrings::Parse => match number::read(text) {
                NumericText::Number(number) => number,
                NumericText::NotFinite => {
                    return Err(Refusal::new(
                        ReasonCode::NotFinite,
                        format!("value: metric {name} takes a finite number, not {text:?}"),
                    ));
                }
                NumericText::NotANumber => {
                    return Err(Refusal::new(
                        ReasonCode::WrongType,
                        format!("value: metric {name} takes a number, and {text:?} is not one"),
                    ));
                }
            },
        },
    };
    if !number.is_finite() {
        return Err(Refusal::new(
            ReasonCode::NotFinite,
            format!("value: metric {name} takes a finite number, not {number}"),
        ));
    }
    if !metric.in_range(number) {
        let bound = |b: Option<f64>| b.map_or_else(|| "unbounded".to_owned(), |b| b.to_string());
        return Err(Refusal::new(
            ReasonCode::OutOfRange,
            format!(
                "value: {number} is outside the range of metric {name} ({} to {})",
                bound(metric.min),
                bound(metric.max)
            ),
        ));
    }
    Ok(Value::Number(number))
}

fn check_time(at: Timestamp, now: Timestamp, limits: &IngestLimits) -> Result<(), Refusal> {
    let latest = now.saturating_add(limits.clock_skew);
    if at > latest {
        return Err(Refusal::new(
            ReasonCode::TooFarInFuture,
            format!(
                "ts: {at} is {} ahead of ingest's clock ({now}); at most {} is allowed \
                 (spec.ingest.clockSkew)",
                human(at.duration_since(now)),
                human(limits.clock_skew)
            ),
        ));
    }
    let earliest = now.saturating_sub(limits.max_age);
    if at < earliest {
        return Err(Refusal::new(
            ReasonCode::TooOld,
            format!(
                "ts: {at} is {} old; readings older than {} are refused (spec.ingest.maxAge)",
                human(now.duration_since(at)),
                human(limits.max_age)
            ),
        ));
    }
    Ok(())
}

fn human(duration: std::time::Duration) -> String {
    sinter_core::solution::duration::format(std::time::Duration::from_secs(duration.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sinter_core::Solution;
    use sinter_proto::ingest::v1::reading_input::Time;

    const NOW: i64 = 1_796_292_000;

    fn solution_spec(numeric_strings: &str) -> SolutionSpec {
        let yaml = format!(
            "apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {{name: pumps}}
spec:
  devices:
    - type: pump
      match: [\"p-*\"]
      metrics:
        - {{name: temp, min: -40, max: 200}}
        - {{name: serial, type: string}}
  ingest: {{clockSkew: 2m, maxAge: 1d, numericStrings: {numeric_strings}}}
"
        );
        Solution::from_yaml(&yaml).unwrap().spec
    }

    fn input(metric: &str, value: InputValue, time: Option<Time>) -> ReadingInput {
        ReadingInput {
            device_id: "p-17".into(),
            metric: metric.into(),
            value: Some(value),
            time,
            message_id: String::new(),
        }
    }

    /// The outcome of [`check`], which every test also holds [`check_owned`] to.
    fn outcome(spec: &SolutionSpec, input: &ReadingInput) -> Result<ValidReading, ReasonCode> {
        let now = Timestamp::from_secs(NOW);
        let borrowed = check(input, spec, now);
        let owned = check_owned(input.clone(), spec, now);
        match (&borrowed, owned) {
            (Ok(valid), Ok(owned)) => assert_eq!(valid, &owned),
            (Err(refusal), Err(refused)) => {
                let (owned, returned) = *refused;
                assert_eq!(refusal.code, owned.code);
                assert_eq!(refusal.message, owned.message);
                // Compared encoded: a NaN value is never equal to itself.
                assert_eq!(
                    returned.encode_to_vec(),
                    input.encode_to_vec(),
                    "a refused input comes back whole"
                );
            }
            (borrowed, owned) => panic!("check gave {borrowed:?}, check_owned {owned:?}"),
        }
        borrowed.map_err(|r| r.code)
    }

    #[test]
    fn values_by_metric_type() {
        let spec = solution_spec("parse");
        let ok = outcome(&spec, &input("temp", InputValue::Number(91.2), None)).unwrap();
        assert_eq!(ok.value, Value::Number(91.2));
        assert_eq!(ok.device_type, "pump");
        assert_eq!(ok.timestamp_unit, TimestampUnit::Unspecified);
        let parsed = outcome(&spec, &input("temp", InputValue::Text("20.5".into()), None));
        assert_eq!(parsed.unwrap().value, Value::Number(20.5));
        let serial = outcome(
            &spec,
            &input("serial", InputValue::Text("241408E4".into()), None),
        );
        assert_eq!(serial.unwrap().value, Value::Text("241408E4".into()));
        for (value, metric, code) in [
            (InputValue::Number(f64::NAN), "temp", ReasonCode::NotFinite),
            (
                InputValue::Number(f64::INFINITY),
                "temp",
                ReasonCode::NotFinite,
            ),
            (
                InputValue::Text("NaN".into()),
                "temp",
                ReasonCode::NotFinite,
            ),
            (
                InputValue::Text("hot".into()),
                "temp",
                ReasonCode::WrongType,
            ),
            (InputValue::Number(200.5), "temp", ReasonCode::OutOfRange),
            (InputValue::Number(7.0), "serial", ReasonCode::WrongType),
            (
                InputValue::Number(7.0),
                "pressure",
                ReasonCode::UnknownMetric,
            ),
        ] {
            assert_eq!(
                outcome(&spec, &input(metric, value.clone(), None)),
                Err(code),
                "{value:?}"
            );
        }
        let refusing = solution_spec("refuse");
        assert_eq!(
            outcome(
                &refusing,
                &input("temp", InputValue::Text("20.5".into()), None)
            ),
            Err(ReasonCode::WrongType)
        );
    }

    #[test]
    fn times_before_1970_are_refused_as_too_old() {
        let spec = solution_spec("parse");
        let now = Timestamp::from_secs(NOW);
        for time in [Time::Epoch(-5), Time::Ts("1960-01-01T00:00:00Z".into())] {
            let old = input("temp", InputValue::Number(1.0), Some(time));
            let refusal = check(&old, &spec, now).expect_err("a 1960s reading is too old");
            assert_eq!(refusal.code, ReasonCode::TooOld);
            assert!(refusal.message.starts_with("ts: 19"), "{}", refusal.message);
        }
    }

    #[test]
    fn devices_and_times() {
        let spec = solution_spec("parse");
        let mut unknown = input("temp", InputValue::Number(1.0), None);
        unknown.device_id = "f-1".into();
        assert_eq!(outcome(&spec, &unknown), Err(ReasonCode::UnknownDeviceType));
        let seconds = input("temp", InputValue::Number(1.0), Some(Time::Epoch(NOW - 60)));
        let ok = outcome(&spec, &seconds).unwrap();
        assert_eq!(ok.timestamp_unit, TimestampUnit::Seconds);
        assert_eq!(ok.event_time, Timestamp::from_secs(NOW - 60));
        let skewed = input(
            "temp",
            InputValue::Number(1.0),
            Some(Time::Epoch(NOW + 110)),
        );
        assert!(outcome(&spec, &skewed).is_ok());
        let future = input(
            "temp",
            InputValue::Number(1.0),
            Some(Time::Epoch(NOW + 3 * 3600)),
        );
        let refusal = check(&future, &spec, Timestamp::from_secs(NOW)).unwrap_err();
        assert_eq!(refusal.code, ReasonCode::TooFarInFuture);
        assert!(refusal.message.contains("3h ahead"), "{refusal}");
        let old = input(
            "temp",
            InputValue::Number(1.0),
            Some(Time::Epoch(NOW - 2 * 86_400)),
        );
        assert_eq!(outcome(&spec, &old), Err(ReasonCode::TooOld));
    }

    #[test]
    fn ids_are_deterministic_and_value_normalised() {
        let spec = solution_spec("parse");
        let at = Some(Time::Epoch(NOW));
        let number = outcome(&spec, &input("temp", InputValue::Number(20.5), at.clone())).unwrap();
        let text = outcome(&spec, &input("temp", InputValue::Text("20.5".into()), at)).unwrap();
        assert_eq!(number.id(), text.id());
        let mut with_id = input("temp", InputValue::Number(20.5), None);
        with_id.message_id = "gw4-1".into();
        let first = outcome(&spec, &with_id).unwrap().id();
        with_id.value = Some(InputValue::Number(21.0));
        assert_eq!(outcome(&spec, &with_id).unwrap().id(), first);
        assert_ne!(first, number.id());
        with_id.device_id = "p-18".into();
        assert_ne!(outcome(&spec, &with_id).unwrap().id(), first);
    }
}
