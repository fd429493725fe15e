//! The bus's error type, with a low-cardinality label for metrics.

use std::time::Duration;

use rdkafka::error::KafkaError;

/// Everything that can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// No Kafka broker answered, after retrying with backoff.
    #[error(
        "cannot reach the Kafka brokers at {brokers}: no answer to {attempts} attempt(s) over \
         {waited:?}"
    )]
    Unreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// How many times they were tried.
        attempts: u32,
        /// How long was spent trying.
        waited: Duration,
        /// The last failure.
        #[source]
        source: KafkaError,
    },

    /// Topics that were named but do not exist.
    #[error("topic(s) missing on the bus: {}; create them first (ensure_topic or the operator)", topics.join(", "))]
    MissingTopics {
        /// The missing topics, in the order they were named.
        topics: Vec<String>,
    },

    /// A topic name or specification the bus refuses.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A configuration or argument the bus refuses.
    #[error("invalid bus configuration: {0}")]
    Config(String),

    /// A record was not accepted by the bus.
    #[error("record for topic {topic:?} was not delivered")]
    Delivery {
        /// The topic it was sent to.
        topic: String,
        /// Why.
        #[source]
        source: KafkaError,
    },

    /// A topic could not be created.
    #[error("cannot create topic {topic:?}")]
    TopicCreation {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        source: KafkaError,
    },

    /// A topic could not be deleted.
    #[error("cannot delete topic {topic:?}")]
    TopicDeletion {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        source: KafkaError,
    },

    /// An acknowledgement for a partition this consumer no longer owns.
    #[error("partition {partition} of topic {topic:?} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },

    /// Another Kafka operation failed.
    #[error("Kafka {operation} failed")]
    Kafka {
        /// What was being done, such as `"commit"`.
        operation: &'static str,
        /// Why it failed.
        #[source]
        source: KafkaError,
    },

    /// An operation did not finish in time.
    #[error("{operation} did not finish within {after:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// How long was waited.
        after: Duration,
    },
}

impl BusError {
    /// A short, fixed label for metrics and structured logs, such as `"unreachable"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::MissingTopics { .. } => "missing_topic",
            Self::InvalidTopic { .. } => "invalid_topic",
            Self::Config(_) => "config",
            Self::Delivery { .. } => "delivery",
            Self::TopicCreation { .. } => "topic_creation",
            Self::TopicDeletion { .. } => "topic_deletion",
            Self::NotAssigned { .. } => "not_assigned",
            Self::Kafka { .. } => "kafka",
            Self::Timeout { .. } => "timeout",
        }
    }

    /// Wraps a Kafka client error.
    pub(crate) fn kafka(operation: &'static str) -> impl FnOnce(KafkaError) -> Self {
        move |source| Self::Kafka { operation, source }
    }

    /// For creating a client: a property librdkafka refuses is a configuration error with
    /// librdkafka's reason (retrying cannot help), anything else a Kafka error.
    pub(crate) fn creation(operation: &'static str) -> impl FnOnce(KafkaError) -> Self {
        move |source| match source {
            KafkaError::ClientConfig(_, reason, key, value) => {
                Self::Config(format!("{operation}: {key}={value:?}: {reason}"))
            }
            KafkaError::ClientCreation(reason) => Self::Config(format!("{operation}: {reason}")),
            source => Self::Kafka { operation, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_topics_names_each() {
        let error = BusError::MissingTopics {
            topics: vec!["a.b".into(), "c.d".into()],
        };
        assert_eq!(error.kind(), "missing_topic");
        let message = error.to_string();
        assert!(message.contains("a.b, c.d"), "{message}");
    }
}
