//! The JSON shape of a reading, shared by HTTP bodies, MQTT payloads and `sinter publish`:
//!
//! ```json
//! {"device": "p-17", "metric": "bearing_temperature", "value": 91.2,
//!  "ts": "2026-12-03T10:00:00Z", "id": "gw4-000123"}
//! ```
//!
//! - `device` (string): the device id; over MQTT it may be left out, the topic names it.
//! - `metric` (string): the metric's name in the Solution's device model.
//! - `value` (number or string): a number for numeric metrics (a numeric string follows the
//!   Solution's `spec.ingest.numericStrings` rule), a string for string metrics.
//! - `ts` (string or number, optional): RFC 3339, or epoch seconds, milliseconds or
//!   microseconds; when absent the reading is stamped with the time ingest accepted it.
//! - `id` (string, optional): the sender's message id; with the device, the dedup key.
//!
//! `null` counts as absent; any other field is refused, so a misspelt field is never
//! silently ignored. The result is the same [`ReadingInput`] a gRPC client sends, so every
//! transport is validated by the same code.

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sinter_proto::events::v1::ReasonCode;
use sinter_proto::ingest::v1::ReadingInput;
use sinter_proto::ingest::v1::reading_input::{Time, Value as InputValue};

use crate::refusal::Refusal;

/// The fields a JSON reading may have.
pub const FIELDS: [&str; 5] = ["device", "metric", "value", "ts", "id"];

/// Parse one JSON reading from its bytes.
pub fn parse_reading(bytes: &[u8]) -> Result<ReadingInput, Refusal> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| not_json(bytes, &error))?;
    reading_from_value(value)
}

/// The refusal of a reading that is not JSON: it names the field whose value the error is
/// in, when there is one (`NaN`, `1e400` and the like are values JSON cannot hold).
fn not_json(bytes: &[u8], error: &serde_json::Error) -> Refusal {
    match field_error(bytes, error) {
        Some(found) => {
            let code = match found.field.as_str() {
                "value" if found.infinite => ReasonCode::NotFinite,
                "ts" => ReasonCode::BadTimestamp,
                _ => ReasonCode::Malformed,
            };
            Refusal::new(code, format!("{}: {}", found.field, found.reason))
        }
        None => Refusal::new(
            ReasonCode::Malformed,
            format!("not a JSON reading: {error}"),
        ),
    }
}

/// A JSON error inside a field's value.
struct FieldError {
    field: String,
    reason: String,
    /// The value is a number no 64-bit float holds finitely.
    infinite: bool,
}

/// What `error` says about the field it is in, if it is in one: a syntax error at a bare
/// value of one of a reading's own [`FIELDS`]. A line cut short, an unterminated string or
/// a value nested deeper is left to serde_json's own words.
fn field_error(bytes: &[u8], error: &serde_json::Error) -> Option<FieldError> {
    if error.classify() != serde_json::error::Category::Syntax {
        return None;
    }
    let (field, token) = field_at(bytes, error.line(), error.column())?;
    if !FIELDS.contains(&field.as_str()) {
        return None;
    }
    let bare = token.to_ascii_lowercase();
    let (reason, infinite) = if matches!(
        bare.trim_start_matches(['-', '+']),
        "nan" | "inf" | "infinity"
    ) {
        let reason = format!("{token} is not a JSON number; JSON has no NaN or infinity");
        (reason, true)
    } else if error.to_string().starts_with("number out of range") {
        (format!("{token} is beyond what a 64-bit float holds"), true)
    } else {
        (format!("not valid JSON: {error}"), false)
    };
    Some(FieldError {
        field,
        reason,
        infinite,
    })
}

/// The field whose value starts with the bare token at `line` and `column` (1-based, as
/// serde_json reports them), and that token: for `{"value": NaN}` at the `N`,
/// `("value", "NaN")`. `None` when there is no bare token there, or it does not follow a
/// key.
fn field_at(bytes: &[u8], line: usize, column: usize) -> Option<(String, String)> {
    let line_start = if line <= 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map(|(at, _)| at + 1)?
    };
    let at = (line_start + column.saturating_sub(1)).min(bytes.len());
    let bare = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.');
    let mut start = at;
    while start > 0 && bare(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = at;
    while end < bytes.len() && bare(bytes[end]) {
        end += 1;
    }
    if start == end {
        return None;
    }
    let token = std::str::from_utf8(&bytes[start..end]).ok()?.to_owned();
    let colon = bytes[..start]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())?;
    if bytes[colon] != b':' {
        return None;
    }
    let closing = bytes[..colon]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())?;
    if bytes[closing] != b'"' {
        return None;
    }
    // The key's opening quote: the nearest one before that is not escaped (preceded by an
    // even number of backslashes).
    let opening = (0..closing).rev().find(|&quote| {
        bytes[quote] == b'"'
            && bytes[..quote]
                .iter()
                .rev()
                .take_while(|b| **b == b'\\')
                .count()
                % 2
                == 0
    })?;
    let field: String = serde_json::from_slice(&bytes[opening..=closing]).ok()?;
    Some((field, token))
}

/// Turn a parsed JSON value into a reading input.
pub fn reading_from_value(value: Value) -> Result<ReadingInput, Refusal> {
    let Value::Object(fields) = value else {
        return Err(Refusal::new(
            ReasonCode::Malformed,
            format!(
                "a reading must be a JSON object with {}, found {}",
                FIELDS.join(", "),
                kind(&value)
            ),
        ));
    };
    reading_from_object(fields)
}

fn reading_from_object(fields: Map<String, Value>) -> Result<ReadingInput, Refusal> {
    let mut input = ReadingInput::default();
    for (name, value) in fields {
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            "device" => input.device_id = text_field("device", value)?,
            "metric" => input.metric = text_field("metric", value)?,
            "id" => input.message_id = text_field("id", value)?,
            "value" => {
                input.value = Some(match value {
                    Value::Number(number) => InputValue::Number(number_as_f64(&number)?),
                    Value::String(text) => InputValue::Text(text),
                    other => {
                        return Err(Refusal::new(
                            ReasonCode::WrongType,
                            format!(
                                "value: expected a number or a string, found {}",
                                kind(&other)
                            ),
                        ));
                    }
                });
            }
            "ts" => {
                input.time = Some(match value {
                    Value::String(text) => Time::Ts(text),
                    Value::Number(number) => match number.as_i64() {
                        Some(epoch) => Time::Epoch(epoch),
                        // A fraction or a huge value: the text rule reads and judges it.
                        None => Time::Ts(number.to_string()),
                    },
                    other => {
                        return Err(Refusal::new(
                            ReasonCode::BadTimestamp,
                            format!(
                                "ts: expected RFC 3339 text or an epoch number, found {}",
                                kind(&other)
                            ),
                        ));
                    }
                });
            }
            unknown => {
                return Err(Refusal::new(
                    ReasonCode::Malformed,
                    format!(
                        "unknown field {unknown:?}; a reading has {}",
                        FIELDS.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(input)
}

/// A body or payload of readings, each with its own bytes.
#[derive(Debug, Default)]
pub struct SplitReadings {
    /// The batch id an object body gave, or empty.
    pub batch_id: String,
    /// Each reading's JSON text, as it arrived.
    pub readings: Vec<Bytes>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wrapped<'a> {
    #[serde(borrow)]
    readings: Vec<&'a RawValue>,
    #[serde(default)]
    batch_id: String,
}

/// Split a body into its readings: a JSON array of readings, an object
/// `{"readings": [...], "batchId": "..."}`, or one reading object. Fails, naming why, when
/// the body is none of these; the readings themselves are parsed later, one by one.
pub fn split_readings(body: &Bytes) -> Result<SplitReadings, Refusal> {
    let slice = |raw: &RawValue| body.slice_ref(raw.get().as_bytes());
    let not_json = |error: serde_json::Error| {
        let reason = match field_error(body, &error) {
            Some(found) => format!("{}: {}", found.field, found.reason),
            None => error.to_string(),
        };
        Refusal::new(
            ReasonCode::Malformed,
            format!("not a JSON array of readings or a reading: {reason}"),
        )
    };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(not_json)?;
            Ok(SplitReadings {
                batch_id: String::new(),
                readings: items.into_iter().map(slice).collect(),
            })
        }
        Some(b'{') => {
            // Values stay raw here, as in an array body: a reading holding a number no float
            // holds is refused on its own when it is parsed, not the whole body.
            let keys: std::collections::HashMap<String, &RawValue> =
                serde_json::from_slice(body).map_err(not_json)?;
            if !keys.contains_key("readings") {
                return Ok(SplitReadings {
                    batch_id: String::new(),
                    readings: vec![body.clone()],
                });
            }
            let wrapped: Wrapped<'_> = serde_json::from_slice(body).map_err(not_json)?;
            Ok(SplitReadings {
                batch_id: wrapped.batch_id,
                readings: wrapped.readings.into_iter().map(slice).collect(),
            })
        }
        _ => {
            serde_json::from_slice::<Value>(body).map_err(not_json)?;
            Err(Refusal::new(
                ReasonCode::Malformed,
                "expected a JSON array of readings, {\"readings\": [...]} or one reading object",
            ))
        }
    }
}

/// The JSON form of a reading input, as `sinter publish` and the tests write it.
pub fn to_json(input: &ReadingInput) -> Value {
    let mut fields = Map::new();
    if !input.device_id.is_empty() {
        fields.insert("device".into(), Value::from(input.device_id.clone()));
    }
    if !input.metric.is_empty() {
        fields.insert("metric".into(), Value::from(input.metric.clone()));
    }
    match &input.value {
        Some(InputValue::Number(number)) => {
            // JSON has no NaN or infinity: they travel as text and are refused as not finite.
            let value = serde_json::Number::from_f64(*number)
                .map(Value::Number)
                .unwrap_or_else(|| Value::from(number.to_string()));
            fields.insert("value".into(), value);
        }
        Some(InputValue::Text(text)) => {
            fields.insert("value".into(), Value::from(text.clone()));
        }
        None => {}
    }
    match &input.time {
        Some(Time::Ts(text)) => {
            fields.insert("ts".into(), Value::from(text.clone()));
        }
        Some(Time::Epoch(epoch)) => {
            fields.insert("ts".into(), Value::from(*epoch));
        }
        Some(Time::EventTime(proto)) => {
            let at = sinter_proto::time::from_proto(proto).unwrap_or_default();
            fields.insert("ts".into(), Value::from(at.to_string()));
        }
        None => {}
    }
    if !input.message_id.is_empty() {
        fields.insert("id".into(), Value::from(input.message_id.clone()));
    }
    Value::Object(fields)
}

fn text_field(name: &str, value: Value) -> Result<String, Refusal> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(Refusal::new(
            ReasonCode::Malformed,
            format!("{name}: expected a string, found {}", kind(&other)),
        )),
    }
}

fn number_as_f64(number: &serde_json::Number) -> Result<f64, Refusal> {
    number.as_f64().ok_or_else(|| {
        Refusal::new(
            ReasonCode::WrongType,
            format!("value: {number} cannot be held as a 64-bit float"),
        )
    })
}

/// What kind of JSON value this is, for messages.
fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the string {text:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_shape() {
        let input = parse_reading(
            br#"{"device":"p-17","metric":"bearing_temperature","value":91.2,
                "ts":"2026-12-03T10:00:00Z","id":"gw4-000123"}"#,
        )
        .unwrap();
        assert_eq!(input.device_id, "p-17");
        assert_eq!(input.metric, "bearing_temperature");
        assert_eq!(input.value, Some(InputValue::Number(91.2)));
        assert_eq!(input.time, Some(Time::Ts("2026-12-03T10:00:00Z".into())));
        assert_eq!(input.message_id, "gw4-000123");
        assert_eq!(
            parse_reading(&serde_json::to_vec(&to_json(&input)).unwrap()),
            Ok(input)
        );
    }

    #[test]
    fn epoch_numbers_and_strings_stay_as_written() {
        let input = parse_reading(br#"{"device":"d","metric":"m","value":"20.5","ts":1796292000}"#)
            .unwrap();
        assert_eq!(input.value, Some(InputValue::Text("20.5".into())));
        assert_eq!(input.time, Some(Time::Epoch(1_796_292_000)));
        let fraction = parse_reading(br#"{"ts":1796292000.5}"#).unwrap();
        assert_eq!(fraction.time, Some(Time::Ts("1796292000.5".into())));
    }

    #[test]
    fn splits_bodies_into_readings() {
        let array = Bytes::from_static(br#"[{"device":"a"}, {"device":"b"}]"#);
        let split = split_readings(&array).unwrap();
        assert_eq!(
            split.readings,
            [&br#"{"device":"a"}"#[..], br#"{"device":"b"}"#]
        );
        let wrapped = Bytes::from_static(br#"{"batchId":"b1","readings":[{"device":"a"}]}"#);
        let split = split_readings(&wrapped).unwrap();
        assert_eq!((split.batch_id.as_str(), split.readings.len()), ("b1", 1));
        let single = Bytes::from_static(br#"{"device":"a","metric":"m"}"#);
        assert_eq!(
            split_readings(&single).unwrap().readings,
            std::slice::from_ref(&single)
        );
        for bad in [
            &b"not json"[..],
            b"17",
            b"[1,",
            b"{\"readings\":[],\"x\":1}",
        ] {
            let refusal = split_readings(&Bytes::from_static(bad)).unwrap_err();
            assert_eq!(refusal.code, ReasonCode::Malformed);
        }
        // A reading holding a number no float holds is refused on its own, in either shape
        // of body.
        for body in [
            &br#"[{"device":"a","value":1e400}, {"device":"b","value":1}]"#[..],
            br#"{"readings":[{"device":"a","value":1e400}, {"device":"b","value":1}]}"#,
        ] {
            let split = split_readings(&Bytes::from_static(body)).unwrap();
            assert_eq!(split.readings.len(), 2);
            let refusal = parse_reading(&split.readings[0]).unwrap_err();
            assert_eq!(refusal.code, ReasonCode::NotFinite, "{refusal}");
            assert!(parse_reading(&split.readings[1]).is_ok());
        }
        // A body that is not JSON because of one value says which field holds it.
        let nan = Bytes::from_static(br#"[{"device":"a","value":1}, {"device":"b","value":NaN}]"#);
        let refusal = split_readings(&nan).unwrap_err();
        assert_eq!(refusal.code, ReasonCode::Malformed);
        assert!(
            refusal
                .message
                .ends_with("value: NaN is not a JSON number; JSON has no NaN or infinity"),
            "{refusal}"
        );
    }

    #[test]
    fn refuses_wrong_shapes_with_the_field() {
        for (body, code, needle) in [
            (&br#"[1]"#[..], ReasonCode::Malformed, "found an array"),
            (
                br#"{"device":17}"#,
                ReasonCode::Malformed,
                "device: expected a string",
            ),
            (
                br#"{"value":true}"#,
                ReasonCode::WrongType,
                "the boolean true",
            ),
            (br#"{"ts":[1]}"#, ReasonCode::BadTimestamp, "ts: expected"),
            (
                br#"{"vlaue":1}"#,
                ReasonCode::Malformed,
                "unknown field \"vlaue\"",
            ),
            (
                br#"{"device":"#,
                ReasonCode::Malformed,
                "not a JSON reading",
            ),
            (
                br#"{"device":"p-1","value": NaN}"#,
                ReasonCode::NotFinite,
                "value: NaN is not a JSON number; JSON has no NaN or infinity",
            ),
            (
                b"{\"device\":\"p-1\",\n \"value\":-Infinity}",
                ReasonCode::NotFinite,
                "value: -Infinity is not a JSON number",
            ),
            (
                br#"{"metric":"m","value":1e400,"device":"p-1"}"#,
                ReasonCode::NotFinite,
                "value: 1e400 is beyond what a 64-bit float holds",
            ),
            (
                br#"{"ts":17962920e999}"#,
                ReasonCode::BadTimestamp,
                "ts: 17962920e999 is beyond",
            ),
            (
                br#"{"device":p-1}"#,
                ReasonCode::Malformed,
                "device: not valid JSON",
            ),
            (
                br#"{"\u0076alue": NaN}"#,
                ReasonCode::NotFinite,
                "value: NaN is not",
            ),
            // Only a reading's own fields are named, read with their escapes.
            (
                br#"{"my\"value": NaN}"#,
                ReasonCode::Malformed,
                "not a JSON reading: expected value",
            ),
            (
                br#"{"value": {"x": NaN}}"#,
                ReasonCode::Malformed,
                "not a JSON reading: expected value",
            ),
            // A line cut short, or an unterminated string, blames no field.
            (
                br#"{"device":"p","value":61,"ts":1796292000"#,
                ReasonCode::Malformed,
                "not a JSON reading: EOF",
            ),
            (
                br#"{"id": "a\": NaN}"#,
                ReasonCode::Malformed,
                "not a JSON reading: EOF",
            ),
        ] {
            let refusal = parse_reading(body).unwrap_err();
            assert_eq!(refusal.code, code, "{refusal}");
            assert!(refusal.message.contains(needle), "{refusal}");
        }
    }
}
