//! Undecodable records: decode a payload, or dead-letter its raw bytes with a reason.
//!
//! The bus knows nothing of Sinter's protobuf messages: a service decodes with a closure and,
//! if it wants the dead letter to be its own `DeadLetter` message rather than the raw record,
//! gives [`DeadLetters::with_encoder`] a function that builds it.
//!
//! ```
//! # async fn example(
//! #     mut consumer: Box<dyn sinter_bus::Consumer>,
//! #     producer: std::sync::Arc<dyn sinter_bus::Producer>,
//! # ) -> Result<(), sinter_bus::BusError> {
//! use sinter_bus::deadletter::DeadLetters;
//!
//! let dead_letters = DeadLetters::new(producer, "sinter.plant.pumps.deadletter");
//! let delivered = consumer.recv().await?;
//! let decoded = dead_letters
//!     .decode_or_divert(&delivered, |payload| std::str::from_utf8(payload).map(str::to_owned))
//!     .await?;
//! if let Some(reading) = decoded {
//!     // process the reading
//! #   drop(reading);
//! }
//! // Either way the record is dealt with.
//! consumer.ack(&delivered)?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use tracing::warn;

use crate::{BusError, Delivered, Delivery, Producer, Record};

/// Header naming why the record was dead-lettered.
pub const REASON_HEADER: &str = "sinter-deadletter-reason";
/// Header naming the topic the record came from.
pub const SOURCE_TOPIC_HEADER: &str = "sinter-deadletter-topic";
/// Header giving the partition the record came from, in decimal.
pub const SOURCE_PARTITION_HEADER: &str = "sinter-deadletter-partition";
/// Header giving the record's offset in its partition, in decimal.
pub const SOURCE_OFFSET_HEADER: &str = "sinter-deadletter-offset";

/// A record that could not be processed, and why.
#[derive(Debug, Clone, Copy)]
pub struct Undecodable<'a> {
    /// The record as received.
    pub delivered: &'a Delivered,
    /// Why it was rejected.
    pub reason: &'a str,
}

/// Builds the dead-letter record for a rejected one.
pub type DeadLetterEncoder = dyn Fn(&Undecodable<'_>) -> Record + Send + Sync;

/// Sends rejected records to a dead-letter topic.
#[derive(Clone)]
pub struct DeadLetters {
    producer: Arc<dyn Producer>,
    topic: String,
    encode: Arc<DeadLetterEncoder>,
}

impl DeadLetters {
    /// Dead letters to `topic` as [`raw_dead_letter`] builds them.
    pub fn new(producer: Arc<dyn Producer>, topic: impl Into<String>) -> Self {
        Self {
            producer,
            topic: topic.into(),
            encode: Arc::new(raw_dead_letter),
        }
    }

    /// Builds dead letters with `encode` instead, for instance as a protobuf `DeadLetter`.
    pub fn with_encoder(
        mut self,
        encode: impl Fn(&Undecodable<'_>) -> Record + Send + Sync + 'static,
    ) -> Self {
        self.encode = Arc::new(encode);
        self
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Decodes `delivered`'s payload with `decode`; when that fails, sends the dead letter
    /// with the error as reason and returns `None`. Either way the record can then be
    /// acknowledged. Fails only when the dead letter cannot be sent.
    pub async fn decode_or_divert<T, E, F>(
        &self,
        delivered: &Delivered,
        decode: F,
    ) -> Result<Option<T>, BusError>
    where
        F: FnOnce(&[u8]) -> Result<T, E>,
        E: fmt::Display,
    {
        let reason = match decode(&delivered.payload) {
            Ok(decoded) => return Ok(Some(decoded)),
            Err(error) => error.to_string(),
        };
        self.divert(delivered, &reason).await?;
        Ok(None)
    }

    /// Sends the dead letter for `delivered` with `reason` and waits until it is accepted.
    pub async fn divert(&self, delivered: &Delivered, reason: &str) -> Result<Delivery, BusError> {
        let record = (self.encode)(&Undecodable { delivered, reason });
        let delivery = self.producer.send(&self.topic, record).await?;
        warn!(
            topic = %delivered.topic,
            partition = delivered.partition,
            offset = delivered.offset,
            dead_letter_topic = %self.topic,
            reason,
            "Record dead-lettered."
        );
        Ok(delivery)
    }
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// The default dead letter: the original key, payload bytes and headers, plus headers naming
/// the reason ([`REASON_HEADER`]) and where the record came from.
pub fn raw_dead_letter(rejected: &Undecodable<'_>) -> Record {
    let original = rejected.delivered;
    let mut record = Record::new(original.key.clone(), original.payload.clone());
    record.headers = original.headers.clone();
    record
        .headers
        .push(REASON_HEADER, rejected.reason.to_owned());
    record
        .headers
        .push(SOURCE_TOPIC_HEADER, original.topic.clone());
    record
        .headers
        .push(SOURCE_PARTITION_HEADER, original.partition.to_string());
    record
        .headers
        .push(SOURCE_OFFSET_HEADER, original.offset.to_string());
    record.timestamp = original.timestamp;
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedBus;
    use crate::{Bus, TopicSpec};

    #[tokio::test]
    async fn undecodable_records_go_to_the_dead_letter_topic() -> Result<(), BusError> {
        let bus = EmbeddedBus::new();
        bus.ensure_topic(&TopicSpec::new("in", 1)).await?;
        bus.ensure_topic(&TopicSpec::new("dead", 1)).await?;
        let producer = bus.producer();
        producer.send("in", Record::new("d1", "42")).await?;
        producer
            .send("in", Record::new("d1", vec![0xff, 0xfe]))
            .await?;

        let dead_letters = DeadLetters::new(producer, "dead");
        let mut consumer = bus.subscribe("g", &["in"]).await?;
        let decode = |payload: &[u8]| std::str::from_utf8(payload).map(str::to_owned);
        let first = consumer.recv().await?;
        let decoded = dead_letters.decode_or_divert(&first, decode).await?;
        assert_eq!(decoded.as_deref(), Some("42"));
        let second = consumer.recv().await?;
        assert_eq!(dead_letters.decode_or_divert(&second, decode).await?, None);

        let mut dead = bus.subscribe("g", &["dead"]).await?;
        let letter = dead.recv().await?;
        assert_eq!(&letter.payload[..], &[0xff, 0xfe]);
        assert_eq!(
            letter.headers.get(SOURCE_OFFSET_HEADER).map(|v| &v[..]),
            Some(&b"1"[..])
        );
        let reason = letter
            .headers
            .get(REASON_HEADER)
            .cloned()
            .unwrap_or_default();
        assert!(
            std::str::from_utf8(&reason).is_ok_and(|r| r.contains("utf-8")),
            "{reason:?}"
        );
        Ok(())
    }
}
