//! librdkafka callbacks: logs and errors into `tracing`, commits and news on rebalances.

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use tokio::sync::broadcast;
use tracing::{debug, error, info, trace, warn};

use crate::{Rebalance as BusRebalance, TopicPartition};

/// Routes a client's librdkafka logs and errors to `tracing`, tagged with the client's role.
pub(crate) struct LogContext {
    role: &'static str,
}

impl LogContext {
    /// A context for a client playing `role` (`"producer"`, `"admin"`, `"consumer"`).
    pub(crate) fn new(role: &'static str) -> Self {
        Self { role }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(self.role, level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(self.role, &error, reason);
    }
}

/// A group member's context: logs like [`LogContext`], commits acknowledged offsets before
/// partitions are revoked, and announces assignment changes.
pub(crate) struct GroupContext {
    group: String,
    rebalances: broadcast::Sender<BusRebalance>,
}

impl GroupContext {
    /// A context for a member of `group` announcing on `rebalances`.
    pub(crate) fn new(group: &str, rebalances: broadcast::Sender<BusRebalance>) -> Self {
        Self {
            group: group.to_owned(),
            rebalances,
        }
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka("consumer", level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error("consumer", &error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        // Commit what was acknowledged on the partitions about to go, synchronously, so the
        // next owner (possibly this member again) resumes after it and nothing processed is
        // redone. (librdkafka's auto commit also commits on revocation; this makes it explicit
        // and synchronous whatever the auto-commit setting.)
        // Limitation: the callback runs inside `recv`, so the commit round trip blocks that
        // tokio worker thread, for up to the socket timeout when the broker is slow.
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => debug!(
                group = %self.group,
                partitions = partitions.count(),
                "Offsets committed before revocation."
            ),
            Err(error) if is_nothing_to_commit(&error) => {}
            Err(error) => warn!(
                group = %self.group,
                error = %error,
                "Commit before revocation failed; unacknowledged records will be redelivered."
            ),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(partitions) => BusRebalance::Assigned(topic_partitions(partitions)),
            Rebalance::Revoke(partitions) => BusRebalance::Revoked(topic_partitions(partitions)),
            Rebalance::Error(error) => {
                error!(group = %self.group, error = %error, "Rebalance failed.");
                return;
            }
        };
        let (BusRebalance::Assigned(partitions) | BusRebalance::Revoked(partitions)) = &event;
        info!(
            group = %self.group,
            assigned = matches!(event, BusRebalance::Assigned(_)),
            partitions = partitions.len(),
            "Partition assignment changed."
        );
        if !partitions.is_empty() {
            // A send fails only when nobody listens, which is allowed.
            let _ = self.rebalances.send(event);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                trace!(group = %self.group, partitions = offsets.count(), "Offsets committed.")
            }
            Err(error) if is_nothing_to_commit(&error) => {}
            Err(error) => warn!(group = %self.group, error = %error, "Offset commit failed."),
        }
    }
}

/// The partitions of a librdkafka list.
pub(crate) fn topic_partitions(list: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut partitions: Vec<TopicPartition> = list
        .elements()
        .iter()
        .map(|element| TopicPartition::new(element.topic(), element.partition()))
        .collect();
    partitions.sort();
    partitions
}

/// Whether a commit failed only because no offset had been stored since the last one.
pub(crate) fn is_nothing_to_commit(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)
    )
}

fn log_librdkafka(role: &'static str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    // librdkafka logs a refused connection at its error level, then reconnects with backoff:
    // recovered trouble, so a warning here; ERROR is kept for its emergency levels.
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
            error!(client = role, facility, "librdkafka: {message}");
        }
        RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
            warn!(client = role, facility, "librdkafka: {message}");
        }
        RDKafkaLogLevel::Notice => info!(client = role, facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Info => debug!(client = role, facility, "librdkafka: {message}"),
        RDKafkaLogLevel::Debug => trace!(client = role, facility, "librdkafka: {message}"),
    }
}

fn log_client_error(role: &'static str, error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Fatal) => {
            error!(client = role, error = %error, reason, "Kafka client failed for good.");
        }
        // librdkafka has just logged the failed connection itself and will retry it.
        Some(RDKafkaErrorCode::BrokerTransportFailure) => {
            debug!(client = role, error = %error, reason, "Kafka broker connection failed.");
        }
        _ => {
            warn!(client = role, error = %error, reason, "Kafka client error; librdkafka retries.")
        }
    }
}
