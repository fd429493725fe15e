//! Dead letters of refused readings: the original bytes, the reason code and message, the
//! stage, where they came from and when, on `<solution>.deadletter`.

use bytes::Bytes;
use prost::Message;
use sinter_bus::Record;
use sinter_core::{Timestamp, id};
use sinter_proto::events::v1::{DeadLetter, Stage};

use crate::refusal::Refusal;

/// `source_partition` and `source_offset` of a dead letter that did not come from a topic.
pub const NOT_FROM_A_TOPIC: i64 = -1;

/// The dead-letter record for a reading refused at ingest, keyed by its device id (empty
/// when the reading named none).
///
/// The id is derived from the stage, the source and the original bytes, so the same bytes
/// refused twice from the same place give the same dead-letter id.
pub fn record(
    refusal: &Refusal,
    original: &Bytes,
    source: &str,
    device_id: &str,
    refused_at: Timestamp,
) -> Record {
    let letter = DeadLetter {
        id: id::derive("dl", &[b"ingest", source.as_bytes(), original]),
        stage: Stage::Ingest as i32,
        reason_code: refusal.code as i32,
        reason: refusal.message.clone(),
        original: original.to_vec(),
        source: source.to_owned(),
        source_partition: NOT_FROM_A_TOPIC as i32,
        source_offset: NOT_FROM_A_TOPIC,
        device_id: device_id.to_owned(),
        refused_at: Some(sinter_proto::time::to_proto(refused_at)),
    };
    Record::new(device_id.to_owned(), letter.encode_to_vec())
}
