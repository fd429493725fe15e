//! Kafka topic administration: metadata probes, and creation where an existing topic is fine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{debug, info, warn};

use super::KafkaConfig;
use super::context::LogContext;
use crate::{BusError, TopicSpec};

/// Replication factor that asks the broker for its default.
const BROKER_DEFAULT_REPLICATION: i32 = -1;
/// Pause between two looks for a newly created topic.
const METADATA_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What the cluster's metadata says, in owned form.
pub(crate) struct MetadataSummary {
    /// How many brokers answered for the cluster.
    pub(crate) brokers: usize,
    /// Topics without error, with their partition counts.
    topics: HashMap<String, usize>,
}

impl MetadataSummary {
    /// Whether `topic` exists with at least one partition.
    pub(crate) fn has_topic(&self, topic: &str) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|partitions| *partitions > 0)
    }

    /// How many partitions `topic` has, `None` when the metadata does not list it.
    pub(crate) fn partitions(&self, topic: &str) -> Option<i32> {
        self.topics
            .get(topic)
            .filter(|partitions| **partitions > 0)
            .map(|partitions| i32::try_from(*partitions).unwrap_or(i32::MAX))
    }
}

/// Fetches the metadata of every topic (naming none, so no broker creates one on the fly).
pub(crate) async fn fetch_metadata(
    admin: &Arc<AdminClient<LogContext>>,
    timeout: Duration,
) -> Result<MetadataSummary, KafkaError> {
    let admin = admin.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        let metadata = admin.inner().fetch_metadata(None, timeout)?;
        let topics = metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none())
            .map(|topic| (topic.name().to_owned(), topic.partitions().len()))
            .collect();
        Ok(MetadataSummary {
            brokers: metadata.brokers().len(),
            topics,
        })
    })
    .await;
    fetched.unwrap_or_else(|join_error| {
        Err(KafkaError::MetadataFetch(if join_error.is_cancelled() {
            RDKafkaErrorCode::OperationTimedOut
        } else {
            RDKafkaErrorCode::Fail
        }))
    })
}

/// Creates the topic unless it exists, then waits until the metadata shows it.
pub(crate) async fn ensure_topic(
    admin: &Arc<AdminClient<LogContext>>,
    spec: &TopicSpec,
    config: &KafkaConfig,
) -> Result<(), BusError> {
    let replication = spec
        .replication_factor
        .unwrap_or(BROKER_DEFAULT_REPLICATION);
    let mut new_topic = NewTopic::new(
        &spec.name,
        spec.partitions,
        TopicReplication::Fixed(replication),
    );
    for (key, value) in &spec.config {
        new_topic = new_topic.set(key, value);
    }
    let options = AdminOptions::new()
        .operation_timeout(Some(config.request_timeout))
        .request_timeout(Some(config.request_timeout));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|source| BusError::TopicCreation {
            topic: spec.name.clone(),
            source,
        })?;
    for result in results {
        match result {
            Ok(name) => info!(topic = %name, partitions = spec.partitions, "Topic created."),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                debug!(topic = %name, "Topic exists already.");
            }
            Err((name, code)) => {
                return Err(BusError::TopicCreation {
                    topic: name,
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    wait_until_visible(admin, spec, config).await
}

/// Deletes the topic; one the broker does not know is success.
pub(crate) async fn delete_topic(
    admin: &Arc<AdminClient<LogContext>>,
    topic: &str,
    config: &KafkaConfig,
) -> Result<(), BusError> {
    let options = AdminOptions::new()
        .operation_timeout(Some(config.request_timeout))
        .request_timeout(Some(config.request_timeout));
    let results = admin
        .delete_topics(&[topic], &options)
        .await
        .map_err(|source| BusError::TopicDeletion {
            topic: topic.to_owned(),
            source,
        })?;
    for result in results {
        match result {
            Ok(name) => info!(topic = %name, "Topic deleted."),
            Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                debug!(topic = %name, "Topic to delete does not exist.");
            }
            Err((name, code)) => {
                return Err(BusError::TopicDeletion {
                    topic: name,
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    Ok(())
}

/// Waits until the cluster's metadata lists the topic, so producing and subscribing right
/// after creation work; warns when it has another partition count than asked for.
async fn wait_until_visible(
    admin: &Arc<AdminClient<LogContext>>,
    spec: &TopicSpec,
    config: &KafkaConfig,
) -> Result<(), BusError> {
    let deadline = Instant::now() + config.request_timeout;
    loop {
        let metadata = fetch_metadata(admin, config.request_timeout)
            .await
            .map_err(BusError::kafka("metadata fetch"))?;
        if let Some(&partitions) = metadata.topics.get(&spec.name)
            && partitions > 0
        {
            if partitions != usize::try_from(spec.partitions).unwrap_or(0) {
                warn!(
                    topic = %spec.name,
                    partitions,
                    wanted_partitions = spec.partitions,
                    "Topic exists with another partition count; keeping it."
                );
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BusError::Timeout {
                operation: "waiting for a created topic to appear in metadata",
                after: config.request_timeout,
            });
        }
        tokio::time::sleep(METADATA_POLL_INTERVAL).await;
    }
}
