//! A Kafka consumer group member that stores an offset only once its record is acknowledged.
//!
//! Stored offsets are committed in the background, on demand and before revocation.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::context::{GroupContext, is_nothing_to_commit, topic_partitions};
use super::{KafkaConfig, millis};
use crate::{
    BusError, Consumer, Delivered, Headers, REBALANCE_CHANNEL_CAPACITY, Rebalance, TopicPartition,
};

/// First pause after a receive error.
const FIRST_RECEIVE_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause after repeated receive errors.
const MAX_RECEIVE_BACKOFF: Duration = Duration::from_secs(5);
/// How often librdkafka hands a member its statistics, whose per-partition lag feeds
/// [`crate::lag`], unless the `statistics.interval.ms` property says otherwise (0 turns the
/// statistics, and so the lag, off).
const STATISTICS_INTERVAL: Duration = Duration::from_secs(5);
/// The librdkafka property for [`STATISTICS_INTERVAL`].
const STATISTICS_INTERVAL_PROPERTY: &str = "statistics.interval.ms";

type GroupStream = StreamConsumer<GroupContext>;

/// One Kafka group member.
pub(crate) struct KafkaConsumer {
    /// Present from creation until `drop` hands it to a blocking task to close.
    stream: Option<Arc<GroupStream>>,
    group: String,
    rebalances: broadcast::Sender<Rebalance>,
    /// Pause before the next receive, after errors in a row.
    backoff: Option<Duration>,
}

impl KafkaConsumer {
    /// Creates a member of `group` subscribed to `topics`.
    pub(crate) fn subscribe(
        config: &KafkaConfig,
        group: &str,
        topics: &[&str],
    ) -> Result<Self, BusError> {
        let (rebalances, _) = broadcast::channel(REBALANCE_CHANNEL_CAPACITY);
        let max_poll_interval = config.max_poll_interval.max(config.session_timeout);
        let given_interval = config
            .properties
            .iter()
            .rev()
            .find(|(key, _)| key == STATISTICS_INTERVAL_PROPERTY)
            .map(|(_, value)| value.trim().parse::<u64>().ok());
        // A value that is no number is librdkafka's to refuse when the client is made.
        let statistics_interval = given_interval
            .flatten()
            .map_or(STATISTICS_INTERVAL, Duration::from_millis);
        // Readings lapse once the member has gone without polling for longer than the group
        // allows, or has missed a few statistics in a row.
        let lag_max_age = max_poll_interval.max(statistics_interval * 3);
        let context =
            GroupContext::new(group, rebalances.clone(), config.offset_reset, lag_max_age);
        let mut client_config = config.client_config();
        if given_interval.is_none() {
            client_config.set(STATISTICS_INTERVAL_PROPERTY, millis(STATISTICS_INTERVAL));
        }
        client_config
            .set("enable.auto.commit", "true")
            .set(
                "auto.commit.interval.ms",
                millis(config.auto_commit_interval),
            )
            .set("auto.offset.reset", config.offset_reset.as_kafka())
            .set("session.timeout.ms", millis(config.session_timeout))
            .set("heartbeat.interval.ms", millis(config.heartbeat_interval))
            .set("max.poll.interval.ms", millis(max_poll_interval))
            .set("fetch.wait.max.ms", millis(config.fetch_wait_max))
            .set("enable.partition.eof", "false");
        let stream: GroupStream = config
            .override_with_properties(&mut client_config)
            .set("group.id", group)
            .set("enable.auto.offset.store", "false")
            .create_with_context(context)
            .map_err(BusError::creation("consumer creation"))?;
        stream
            .subscribe(topics)
            .map_err(BusError::kafka("subscription"))?;
        info!(group, topics = ?topics, "Subscribed.");
        Ok(Self {
            stream: Some(Arc::new(stream)),
            group: group.to_owned(),
            rebalances,
            backoff: None,
        })
    }

    fn stream(&self) -> &Arc<GroupStream> {
        // Only `drop` takes the stream out.
        self.stream
            .as_ref()
            .expect("the stream consumer lives until the member is dropped")
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    fn group(&self) -> &str {
        &self.group
    }

    async fn recv(&mut self) -> Result<Delivered, BusError> {
        loop {
            if let Some(pause) = self.backoff {
                tokio::time::sleep(pause).await;
            }
            let error = match self.stream().recv().await {
                Ok(message) => {
                    let delivered = delivered(&message);
                    self.backoff = None;
                    return Ok(delivered);
                }
                Err(error) => error,
            };
            if let KafkaError::MessageConsumptionFatal(_) = error {
                return Err(BusError::Kafka {
                    operation: "receive",
                    source: error,
                });
            }
            let pause = self.backoff.map_or(FIRST_RECEIVE_BACKOFF, |previous| {
                (previous * 2).min(MAX_RECEIVE_BACKOFF)
            });
            warn!(
                group = %self.group,
                error = %error,
                retry_in_ms = pause.as_millis(),
                "Receive failed; retrying."
            );
            self.backoff = Some(pause);
        }
    }

    fn ack(&mut self, delivered: &Delivered) -> Result<(), BusError> {
        let mut offsets = TopicPartitionList::with_capacity(1);
        offsets
            .add_partition_offset(
                &delivered.topic,
                delivered.partition,
                Offset::Offset(delivered.offset + 1),
            )
            .map_err(BusError::kafka("offset store"))?;
        match self.stream().store_offsets(&offsets) {
            Ok(()) => Ok(()),
            Err(KafkaError::StoreOffset(
                RDKafkaErrorCode::State | RDKafkaErrorCode::UnknownPartition,
            )) => Err(BusError::NotAssigned {
                topic: delivered.topic.clone(),
                partition: delivered.partition,
            }),
            Err(error) => Err(BusError::Kafka {
                operation: "offset store",
                source: error,
            }),
        }
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        let stream = self.stream().clone();
        let committed =
            tokio::task::spawn_blocking(move || stream.commit_consumer_state(CommitMode::Sync))
                .await
                .map_err(|_| BusError::Kafka {
                    operation: "commit",
                    source: KafkaError::ConsumerCommit(RDKafkaErrorCode::Fail),
                })?;
        match committed {
            Ok(()) => Ok(()),
            Err(error) if is_nothing_to_commit(&error) => Ok(()),
            Err(error) => Err(BusError::Kafka {
                operation: "commit",
                source: error,
            }),
        }
    }

    fn assignment(&self) -> Result<Vec<TopicPartition>, BusError> {
        let assignment = self
            .stream()
            .assignment()
            .map_err(BusError::kafka("assignment"))?;
        Ok(topic_partitions(&assignment))
    }

    fn rebalances(&self) -> broadcast::Receiver<Rebalance> {
        self.rebalances.subscribe()
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        // Closing commits the stored offsets and leaves the group: a round trip or more, so
        // off the async threads when there is a runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || drop(stream));
            }
            Err(_) => drop(stream),
        }
    }
}

/// Copies a received message into a [`Delivered`].
fn delivered(message: &BorrowedMessage<'_>) -> Delivered {
    let mut headers = Headers::new();
    if let Some(kafka_headers) = message.headers() {
        for header in kafka_headers.iter() {
            let value = header.value.map(Bytes::copy_from_slice).unwrap_or_default();
            headers.push(header.key, value);
        }
    }
    let timestamp = message
        .timestamp()
        .to_millis()
        .and_then(|millis| u64::try_from(millis).ok())
        .map(|millis| UNIX_EPOCH + Duration::from_millis(millis));
    Delivered {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .map(Bytes::copy_from_slice)
            .unwrap_or_default(),
        payload: message
            .payload()
            .map(Bytes::copy_from_slice)
            .unwrap_or_default(),
        headers,
        timestamp,
    }
}
