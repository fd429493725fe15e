//! A member of an embedded consumer group: reads, acknowledges and commits its partitions.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, select_all};
use tokio::sync::{broadcast, watch};
use tracing::{error, info};

use super::group::{Group, MemberId};
use super::lag::MemberLag;
use super::log::{Read, TopicLog};
use crate::lag::LagReporter;
use crate::{
    BusError, Consumer, Delivered, OffsetReset, REBALANCE_CHANNEL_CAPACITY, Rebalance,
    TopicPartition,
};

/// One embedded group member.
pub(crate) struct EmbeddedConsumer {
    group_name: String,
    group: Arc<Group>,
    member: MemberId,
    offset_reset: OffsetReset,
    /// The subscribed topics by name.
    topics: HashMap<String, Arc<TopicLog>>,
    /// One append signal per subscribed topic.
    appends: Vec<watch::Receiver<u64>>,
    generation: watch::Receiver<u64>,
    /// The generation `fetches` reflects; 0 before the first look.
    seen_generation: u64,
    /// Assigned partitions with the next offset to read, in partition order.
    fetches: Vec<Fetch>,
    /// Where the next read starts in `fetches`, so partitions take turns.
    cursor: usize,
    rebalances: broadcast::Sender<Rebalance>,
    /// This member's lag, read by [`crate::lag`]; told where reading starts on each partition.
    lag: Arc<MemberLag>,
    /// Keeps the lag reported while the member lives.
    _lag_reporter: LagReporter,
}

struct Fetch {
    partition: TopicPartition,
    log: Arc<TopicLog>,
    next_offset: i64,
}

impl EmbeddedConsumer {
    /// Joins `group` as `member` for `topics`.
    pub(crate) fn join(
        group_name: &str,
        group: Arc<Group>,
        member: MemberId,
        topics: Vec<Arc<TopicLog>>,
        offset_reset: OffsetReset,
    ) -> Self {
        let subscription = topics
            .iter()
            .map(|log| (log.name().to_owned(), log.partition_count()))
            .collect();
        let appends = topics.iter().map(|log| log.watch_appends()).collect();
        let generation = group.watch_generation();
        group.join(member, subscription);
        let (rebalances, _) = broadcast::channel(REBALANCE_CHANNEL_CAPACITY);
        let topics: HashMap<String, Arc<TopicLog>> = topics
            .into_iter()
            .map(|log| (log.name().to_owned(), log))
            .collect();
        let lag = Arc::new(MemberLag::new(
            group.clone(),
            member,
            topics.clone(),
            offset_reset,
        ));
        let lag_reporter = LagReporter::computed(group_name, lag.clone());
        Self {
            group_name: group_name.to_owned(),
            group,
            member,
            offset_reset,
            topics,
            appends,
            generation,
            seen_generation: 0,
            fetches: Vec::new(),
            cursor: 0,
            rebalances,
            lag,
            _lag_reporter: lag_reporter,
        }
    }

    /// Catches up with the group's latest assignment, announcing what changed.
    fn follow_rebalance(&mut self) {
        let announced = *self.generation.borrow_and_update();
        if announced == self.seen_generation {
            return;
        }
        let (generation, assigned) = self.group.assignment(self.member);

        let (kept, revoked): (Vec<Fetch>, Vec<Fetch>) = std::mem::take(&mut self.fetches)
            .into_iter()
            .partition(|fetch| assigned.contains(&fetch.partition));
        let revoked: Vec<TopicPartition> =
            revoked.into_iter().map(|fetch| fetch.partition).collect();
        self.lag.forget(&revoked);
        let mut fetches = kept;
        let mut newly_assigned = Vec::new();
        for partition in assigned {
            if fetches.iter().any(|fetch| fetch.partition == partition) {
                continue;
            }
            let Some(log) = self.topics.get(&partition.topic).cloned() else {
                continue;
            };
            let next_offset =
                self.group
                    .committed(&partition)
                    .unwrap_or_else(|| match self.offset_reset {
                        OffsetReset::Earliest => log.earliest_offset(partition.partition),
                        OffsetReset::Latest => log.end_offset(partition.partition),
                    });
            newly_assigned.push(partition.clone());
            self.lag.started(partition.clone(), next_offset);
            fetches.push(Fetch {
                partition,
                log,
                next_offset,
            });
        }
        fetches.sort_by(|a, b| a.partition.cmp(&b.partition));
        self.fetches = fetches;
        self.seen_generation = generation;
        if revoked.is_empty() && newly_assigned.is_empty() {
            return;
        }

        info!(
            group = %self.group_name,
            member = self.member,
            generation,
            assigned = newly_assigned.len(),
            revoked = revoked.len(),
            "Partition assignment changed."
        );
        // A send fails only when nobody listens, which is allowed.
        if !revoked.is_empty() {
            let _ = self.rebalances.send(Rebalance::Revoked(revoked));
        }
        if !newly_assigned.is_empty() {
            let _ = self.rebalances.send(Rebalance::Assigned(newly_assigned));
        }
    }

    /// The next readable record, partitions taking turns.
    fn next_ready(&mut self) -> Option<Delivered> {
        let count = self.fetches.len();
        for step in 0..count {
            let index = (self.cursor + step) % count;
            let fetch = &mut self.fetches[index];
            if let Read::Record { delivered, skipped } =
                fetch.log.read(fetch.partition.partition, fetch.next_offset)
            {
                if skipped > 0 {
                    error!(
                        group = %self.group_name,
                        topic = %fetch.partition.topic,
                        partition = fetch.partition.partition,
                        from_offset = fetch.next_offset,
                        lost_records = skipped,
                        "Records dropped by retention before this group read them."
                    );
                }
                fetch.next_offset = delivered.offset + 1;
                self.cursor = index + 1;
                return Some(delivered);
            }
        }
        None
    }

    /// Marks every signal seen so a change from now on wakes [`Self::wait_for_change`].
    fn mark_signals_seen(&mut self) {
        for appends in &mut self.appends {
            appends.borrow_and_update();
        }
    }

    /// Waits until a subscribed topic grows or the group rebalances.
    async fn wait_for_change(&mut self) {
        let mut signals: Vec<BoxFuture<'_, ()>> = Vec::with_capacity(self.appends.len() + 1);
        signals.push(self.generation.changed().map(|_| ()).boxed());
        for appends in &mut self.appends {
            signals.push(appends.changed().map(|_| ()).boxed());
        }
        // The senders live as long as the topics and the group, which this consumer holds,
        // so `changed` only returns on a change.
        select_all(signals).await;
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    fn group(&self) -> &str {
        &self.group_name
    }

    async fn recv(&mut self) -> Result<Delivered, BusError> {
        loop {
            self.mark_signals_seen();
            self.follow_rebalance();
            if let Some(delivered) = self.next_ready() {
                return Ok(delivered);
            }
            self.wait_for_change().await;
        }
    }

    fn ack(&mut self, delivered: &Delivered) -> Result<(), BusError> {
        self.group.store(
            self.member,
            delivered.topic_partition(),
            delivered.offset + 1,
        )
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        self.group.commit(self.member);
        Ok(())
    }

    fn assignment(&self) -> Result<Vec<TopicPartition>, BusError> {
        Ok(self.group.assignment(self.member).1)
    }

    fn rebalances(&self) -> broadcast::Receiver<Rebalance> {
        self.rebalances.subscribe()
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        self.group.leave(self.member);
    }
}
