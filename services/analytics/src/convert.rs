//! Between the core's types and the records on the topics (`sinter.events.v1`).

use prost::Message;
use sinter_bus::{Delivered, Record};
use sinter_core::solution::Severity;
use sinter_core::{Timestamp, id};
use sinter_proto::events::v1 as pb;
use sinter_proto::time::{from_proto, to_proto};

use crate::engine::{DetectionOut, InsightOut, LateOut, Value};
use crate::window::ClosedWindow;

/// A telemetry record decoded for the core.
#[derive(Clone, Debug)]
pub struct DecodedReading {
    pub device_id: String,
    pub device_type: String,
    pub metric: String,
    pub value: Value,
    pub event_time: Timestamp,
}

/// Decode a `Reading`; the reason names the field when it is unusable.
pub fn decode_reading(payload: &[u8]) -> Result<DecodedReading, String> {
    let reading =
        pb::Reading::decode(payload).map_err(|error| format!("not a Reading: {error}"))?;
    if reading.device_id.is_empty() {
        return Err("device_id: is empty".into());
    }
    if reading.metric.is_empty() {
        return Err("metric: is empty".into());
    }
    let value = match reading.value {
        Some(pb::reading::Value::Number(number)) if number.is_finite() => Value::Number(number),
        Some(pb::reading::Value::Number(number)) => {
            return Err(format!("value: {number} is not a finite number"));
        }
        Some(pb::reading::Value::Text(text)) => Value::Text(text),
        None => return Err("value: is missing".into()),
    };
    let event_time = reading
        .event_time
        .as_ref()
        .and_then(from_proto)
        .ok_or_else(|| "event_time: is missing or out of range".to_owned())?;
    Ok(DecodedReading {
        device_id: reading.device_id,
        device_type: reading.device_type,
        metric: reading.metric,
        value,
        event_time,
    })
}

/// A closed window as `WindowStats`.
pub fn window_stats(window: &ClosedWindow) -> pb::WindowStats {
    let summary = &window.summary;
    pb::WindowStats {
        window_start: Some(to_proto(window.start)),
        window_end: Some(to_proto(window.end)),
        count: summary.count,
        min: summary.min,
        max: summary.max,
        mean: summary.mean,
        stddev: summary.stddev,
        last: summary.last,
        quantiles: summary
            .quantiles
            .iter()
            .map(|&(q, value)| pb::Quantile { q, value })
            .collect(),
        late: summary.late,
    }
}

/// The `Insight` record of a closed window, keyed by device.
pub fn insight_record(insight: &InsightOut) -> Record {
    let start = insight.window.start.as_micros().to_be_bytes();
    let end = insight.window.end.as_micros().to_be_bytes();
    let message = pb::Insight {
        id: id::derive(
            "insight",
            &[
                insight.device_id.as_bytes(),
                insight.metric.as_bytes(),
                &start,
                &end,
            ],
        ),
        device_id: insight.device_id.clone(),
        metric: insight.metric.clone(),
        stats: Some(window_stats(&insight.window)),
    };
    Record::new(
        insight.device_id.clone().into_bytes(),
        message.encode_to_vec(),
    )
}

fn severity(severity: Severity) -> pb::Severity {
    match severity {
        Severity::Info => pb::Severity::Info,
        Severity::Minor => pb::Severity::Minor,
        Severity::Major => pb::Severity::Major,
        Severity::Critical => pb::Severity::Critical,
    }
}

/// The protobuf detector kind of a core detector kind name.
pub fn detector_kind(kind: &str) -> pb::DetectorKind {
    match kind {
        "threshold" => pb::DetectorKind::Threshold,
        "rate-of-change" => pb::DetectorKind::RateOfChange,
        "silence" => pb::DetectorKind::Silence,
        "anomaly" => pb::DetectorKind::Anomaly,
        _ => pb::DetectorKind::Unspecified,
    }
}

/// A detection as the protobuf message.
pub fn detection(detection: &DetectionOut) -> pb::Detection {
    let transition = if detection.raised {
        pb::detection::Transition::Raised
    } else {
        pb::detection::Transition::Cleared
    };
    let transition_name: &[u8] = if detection.raised {
        b"raised"
    } else {
        b"cleared"
    };
    pb::Detection {
        id: id::derive(
            "detection",
            &[detection.incident_id.as_bytes(), transition_name],
        ),
        incident_id: detection.incident_id.clone(),
        transition: transition as i32,
        device_id: detection.device_id.clone(),
        metric: detection.metric.clone(),
        detector: detector_kind(detection.detector) as i32,
        detector_name: detection.detector_name.clone(),
        severity: severity(detection.severity) as i32,
        score: detection.score,
        value: detection.value,
        event_time: Some(to_proto(detection.event_time)),
        evidence: detection.evidence.as_ref().map(window_stats),
        message: detection.message.clone(),
        device_type: detection.device_type.clone(),
    }
}

/// The protobuf severity, for queries.
pub fn severity_proto(value: Severity) -> pb::Severity {
    severity(value)
}

/// The dead letter of a reading that came after its windows had closed.
pub fn late_record(late: &LateOut, delivered: &Delivered, refused_at: Timestamp) -> Record {
    let message = pb::DeadLetter {
        id: id::derive(
            "deadletter",
            &[
                b"analytics",
                delivered.topic.as_bytes(),
                &delivered.partition.to_be_bytes(),
                &delivered.offset.to_be_bytes(),
            ],
        ),
        stage: pb::Stage::Analytics as i32,
        reason_code: pb::ReasonCode::Late as i32,
        reason: format!(
            "event_time: {} is behind the watermark {} of its windows (allowed lateness passed)",
            late.event_time, late.watermark
        ),
        original: delivered.payload.to_vec(),
        source: delivered.topic.clone(),
        source_partition: delivered.partition,
        source_offset: delivered.offset,
        device_id: late.device_id.clone(),
        refused_at: Some(to_proto(refused_at)),
    };
    Record::new(delivered.key.clone(), message.encode_to_vec())
}

/// The dead letter of a record that does not decode as a `Reading`.
pub fn undecodable_record(delivered: &Delivered, reason: &str, refused_at: Timestamp) -> Record {
    let message = pb::DeadLetter {
        id: id::derive(
            "deadletter",
            &[
                b"analytics",
                delivered.topic.as_bytes(),
                &delivered.partition.to_be_bytes(),
                &delivered.offset.to_be_bytes(),
            ],
        ),
        stage: pb::Stage::Analytics as i32,
        reason_code: pb::ReasonCode::Undecodable as i32,
        reason: reason.to_owned(),
        original: delivered.payload.to_vec(),
        source: delivered.topic.clone(),
        source_partition: delivered.partition,
        source_offset: delivered.offset,
        device_id: String::from_utf8_lossy(&delivered.key).into_owned(),
        refused_at: Some(to_proto(refused_at)),
    };
    Record::new(delivered.key.clone(), message.encode_to_vec())
}
