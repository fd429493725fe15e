//! The Kafka producer: idempotent, acks from all replicas, resolved on the delivery report.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::context::LogContext;
use super::{KafkaConfig, millis};
use crate::{BusError, Delivery, Headers, Producer, Record, trace};

/// How long a send waits for room in librdkafka's queue before it fails.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(30);

/// The bus's one Kafka producer.
pub(crate) struct KafkaProducer {
    inner: FutureProducer<LogContext>,
}

impl KafkaProducer {
    /// Creates the producer; it connects lazily.
    pub(crate) fn create(config: &KafkaConfig) -> Result<Self, BusError> {
        let mut client_config = config.client_config();
        client_config
            // Kafka's Java default for keyed records, so both buses place a key alike.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", millis(config.linger))
            .set("message.timeout.ms", millis(config.delivery_timeout));
        let inner = config
            .override_with_properties(&mut client_config)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Topics are created on purpose (ensure_topic, the operator), never by a typo.
            .set("allow.auto.create.topics", "false")
            .create_with_context(LogContext::new("producer"))
            .map_err(BusError::kafka("producer creation"))?;
        Ok(Self { inner })
    }
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send(&self, topic: &str, mut record: Record) -> Result<Delivery, BusError> {
        trace::inject_current_context(&mut record.headers);
        let mut outgoing = FutureRecord::to(topic)
            .key(&record.key[..])
            .payload(&record.payload[..])
            .headers(kafka_headers(&record.headers));
        if let Some(millis) = record.timestamp.and_then(epoch_millis) {
            outgoing = outgoing.timestamp(millis);
        }
        match self.inner.send(outgoing, QUEUE_FULL_TIMEOUT).await {
            Ok(delivery) => Ok(Delivery {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((source, _)) => Err(BusError::Delivery {
                topic: topic.to_owned(),
                source,
            }),
        }
    }
}

fn kafka_headers(headers: &Headers) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |kafka, header| {
            kafka.insert(KafkaHeader {
                key: &header.name,
                value: Some(&header.value[..]),
            })
        },
    )
}

fn epoch_millis(time: SystemTime) -> Option<i64> {
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_millis()).ok()
}
