//! The embedded bus's consumer lag: each partition's log end against the group's position,
//! computed whenever it is read, so it follows sends, acknowledgements and rebalances at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::group::{Group, MemberId};
use super::lock;
use super::log::TopicLog;
use crate::lag::LagSource;
use crate::{OffsetReset, TopicPartition};

/// One member's lag, from the group's ownership and offsets and the topics' logs.
pub(crate) struct MemberLag {
    group: Arc<Group>,
    member: MemberId,
    topics: HashMap<String, Arc<TopicLog>>,
    offset_reset: OffsetReset,
    /// Where the member began reading each partition it holds: the position while the group
    /// has neither acknowledged nor committed an offset there.
    starts: Mutex<HashMap<TopicPartition, i64>>,
}

impl MemberLag {
    /// The lag of `member` of `group`, reading `topics`.
    pub(crate) fn new(
        group: Arc<Group>,
        member: MemberId,
        topics: HashMap<String, Arc<TopicLog>>,
        offset_reset: OffsetReset,
    ) -> Self {
        Self {
            group,
            member,
            topics,
            offset_reset,
            starts: Mutex::default(),
        }
    }

    /// Notes that the member took `partition` and reads it from `offset`.
    pub(crate) fn started(&self, partition: TopicPartition, offset: i64) {
        lock(&self.starts).insert(partition, offset);
    }

    /// Forgets partitions the member no longer holds.
    pub(crate) fn forget(&self, partitions: &[TopicPartition]) {
        let mut starts = lock(&self.starts);
        for partition in partitions {
            starts.remove(partition);
        }
    }
}

impl LagSource for MemberLag {
    fn current(&self) -> Vec<(TopicPartition, u64)> {
        // The group says what the member owns now, even when the member has not polled since
        // a rebalance took a partition away.
        let positions = self.group.positions(self.member);
        let starts = lock(&self.starts).clone();
        positions
            .into_iter()
            .filter_map(|(partition, position)| {
                let log = self.topics.get(&partition.topic)?;
                let (earliest, end) = log.bounds(partition.partition);
                let position = position
                    .or_else(|| starts.get(&partition).copied())
                    .unwrap_or(match self.offset_reset {
                        OffsetReset::Earliest => earliest,
                        OffsetReset::Latest => end,
                    });
                // Records retention dropped are lost, not waiting: they are no lag.
                let lag = end - position.max(earliest);
                Some((partition, u64::try_from(lag).unwrap_or(0)))
            })
            .collect()
    }
}
