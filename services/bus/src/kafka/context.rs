//! librdkafka callbacks: logs and errors into `tracing`, commits and news on rebalances,
//! consumer lag from the statistics.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::{Partition, Statistics};
use tokio::sync::broadcast;
use tracing::{debug, error, info, trace, warn};

use crate::lag::LagReporter;
use crate::{OffsetReset, Rebalance as BusRebalance, TopicPartition};

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

    /// Ignored unparsed: producers and admin clients report no lag, and rdkafka's default
    /// would log every report at INFO when `statistics.interval.ms` is set for all clients.
    fn stats_raw(&self, _statistics: &[u8]) {}
}

/// A group member's context: logs like [`LogContext`], commits acknowledged offsets before
/// partitions are revoked, announces assignment changes, and reports the lag of the assigned
/// partitions from librdkafka's statistics.
pub(crate) struct GroupContext {
    group: String,
    rebalances: broadcast::Sender<BusRebalance>,
    offset_reset: OffsetReset,
    /// The partitions assigned now, as the rebalance callbacks told.
    assigned: Mutex<BTreeSet<TopicPartition>>,
    lag: LagReporter,
}

impl GroupContext {
    /// A context for a member of `group` announcing on `rebalances`, whose group starts at
    /// `offset_reset` where it has no committed offset; its lag readings lapse when the
    /// statistics have not refreshed them for `lag_max_age`.
    pub(crate) fn new(
        group: &str,
        rebalances: broadcast::Sender<BusRebalance>,
        offset_reset: OffsetReset,
        lag_max_age: Duration,
    ) -> Self {
        Self {
            group: group.to_owned(),
            rebalances,
            offset_reset,
            assigned: Mutex::default(),
            lag: LagReporter::recorded(group, lag_max_age),
        }
    }

    /// Follows an assignment change and drops the lag of partitions no longer assigned.
    fn follow_assignment(&self, event: &BusRebalance) {
        let mut assigned = lock(&self.assigned);
        match event {
            BusRebalance::Assigned(partitions) => assigned.extend(partitions.iter().cloned()),
            BusRebalance::Revoked(partitions) => {
                for partition in partitions {
                    assigned.remove(partition);
                }
            }
        }
        self.lag.retain(|partition| assigned.contains(partition));
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka("consumer", level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error("consumer", &error, reason);
    }

    /// Runs inside the member's `recv`, every `statistics.interval.ms`: only updates a map.
    fn stats(&self, statistics: Statistics) {
        let assigned = lock(&self.assigned);
        let fresh: Vec<(TopicPartition, u64)> = statistics
            .topics
            .iter()
            .flat_map(|(topic, stats)| {
                stats.partitions.iter().filter_map(|(partition, stats)| {
                    let partition = TopicPartition::new(topic.as_str(), *partition);
                    if !assigned.contains(&partition) {
                        return None;
                    }
                    partition_lag(stats, self.offset_reset).map(|lag| (partition, lag))
                })
            })
            .collect();
        let reported = fresh.len();
        // A partition whose log end is unknown for a moment keeps its last reading.
        self.lag.update(|readings| {
            readings.retain(|partition, _| assigned.contains(partition));
            readings.extend(fresh);
        });
        trace!(
            group = %self.group,
            assigned = assigned.len(),
            reported,
            "Consumer lag read from statistics."
        );
    }
}

/// A partition's lag from its statistics: the log end (high watermark) less the group's
/// position, the later of the stored (acknowledged) and committed offsets. With neither
/// known, the lag counts from the log start under [`OffsetReset::Earliest`], and from what the
/// member has received under [`OffsetReset::Latest`]. `None` while the log end is not known yet.
fn partition_lag(stats: &Partition, offset_reset: OffsetReset) -> Option<u64> {
    // librdkafka gives -1 for a lag it cannot compute.
    let acknowledged = [stats.consumer_lag_stored, stats.consumer_lag]
        .into_iter()
        .filter(|lag| *lag >= 0)
        .min();
    if let Some(lag) = acknowledged {
        return u64::try_from(lag).ok();
    }
    if stats.hi_offset < 0 {
        return None;
    }
    let start = match offset_reset {
        OffsetReset::Earliest => stats.lo_offset,
        OffsetReset::Latest => stats.app_offset,
    };
    if start < 0 {
        return None;
    }
    Some(u64::try_from(stats.hi_offset - start).unwrap_or(0))
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
        self.follow_assignment(&event);
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(lag_stored: i64, lag_committed: i64, lo: i64, hi: i64, app: i64) -> Partition {
        Partition {
            consumer_lag_stored: lag_stored,
            consumer_lag: lag_committed,
            lo_offset: lo,
            hi_offset: hi,
            app_offset: app,
            ..Partition::default()
        }
    }

    #[test]
    fn the_later_of_stored_and_committed_positions_counts() {
        assert_eq!(
            partition_lag(&stats(4, 6, 0, 10, 10), OffsetReset::Earliest),
            Some(4)
        );
        // A committed offset ahead of an old stored one (another member moved on).
        assert_eq!(
            partition_lag(&stats(8, 3, 0, 10, 10), OffsetReset::Earliest),
            Some(3)
        );
        assert_eq!(
            partition_lag(&stats(-1, 6, 0, 10, 10), OffsetReset::Earliest),
            Some(6)
        );
    }

    #[test]
    fn without_any_position_the_lag_counts_from_where_reading_starts() {
        assert_eq!(
            partition_lag(&stats(-1, -1, 2, 10, 10), OffsetReset::Earliest),
            Some(8)
        );
        assert_eq!(
            partition_lag(&stats(-1, -1, 2, 10, 7), OffsetReset::Latest),
            Some(3)
        );
        assert_eq!(
            partition_lag(&stats(-1, -1, 0, 10, -1001), OffsetReset::Latest),
            None
        );
        assert_eq!(
            partition_lag(&stats(-1, -1, -1, -1, -1), OffsetReset::Earliest),
            None
        );
    }
}
