//! The embedded bus's group coordinator: members, partition assignment and offsets per group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::watch;
use tracing::{debug, info};

use super::lock;
use crate::{BusError, TopicPartition};

/// Identifies one consumer within the bus; members are ordered by when they joined.
pub(crate) type MemberId = u64;

/// One consumer group: who is in it, who owns which partition, what was committed.
pub(crate) struct Group {
    name: String,
    state: Mutex<GroupState>,
    /// Raised with the new generation on every rebalance.
    generation: watch::Sender<u64>,
}

#[derive(Default)]
struct GroupState {
    generation: u64,
    /// Each member's subscription: topic name to partition count.
    members: BTreeMap<MemberId, BTreeMap<String, i32>>,
    owners: HashMap<TopicPartition, MemberId>,
    /// Next offset to read, per partition, as committed.
    committed: HashMap<TopicPartition, i64>,
    /// Next offset to read, per partition, as acknowledged but not yet committed.
    stored: HashMap<TopicPartition, i64>,
}

impl Group {
    /// An empty group.
    pub(crate) fn new(name: &str) -> Self {
        let (generation, _) = watch::channel(0);
        Self {
            name: name.to_owned(),
            state: Mutex::default(),
            generation,
        }
    }

    /// A receiver that changes on every rebalance.
    pub(crate) fn watch_generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Adds a member subscribed to `topics` (name and partition count) and rebalances.
    pub(crate) fn join(&self, member: MemberId, topics: BTreeMap<String, i32>) {
        let mut state = lock(&self.state);
        state.members.insert(member, topics);
        info!(group = %self.name, member, members = state.members.len(), "Member joined.");
        self.rebalance(&mut state);
    }

    /// Closes a member: commits what it acknowledged, removes it and rebalances.
    pub(crate) fn leave(&self, member: MemberId) {
        let mut state = lock(&self.state);
        commit_member(&mut state, member);
        if state.members.remove(&member).is_some() {
            info!(group = %self.name, member, members = state.members.len(), "Member left.");
            self.rebalance(&mut state);
        }
    }

    /// The generation and the partitions `member` owns in it, sorted.
    pub(crate) fn assignment(&self, member: MemberId) -> (u64, Vec<TopicPartition>) {
        let state = lock(&self.state);
        let mut partitions: Vec<_> = state
            .owners
            .iter()
            .filter(|(_, owner)| **owner == member)
            .map(|(partition, _)| partition.clone())
            .collect();
        partitions.sort();
        (state.generation, partitions)
    }

    /// The committed next offset of `partition`, if any.
    pub(crate) fn committed(&self, partition: &TopicPartition) -> Option<i64> {
        lock(&self.state).committed.get(partition).copied()
    }

    /// The partitions `member` owns, sorted, each with the group's position on it: the offset
    /// after the last acknowledged record, else the committed offset, if any.
    pub(crate) fn positions(&self, member: MemberId) -> Vec<(TopicPartition, Option<i64>)> {
        let state = lock(&self.state);
        let mut positions: Vec<_> = state
            .owners
            .iter()
            .filter(|(_, owner)| **owner == member)
            .map(|(partition, _)| {
                let position = state
                    .stored
                    .get(partition)
                    .or_else(|| state.committed.get(partition))
                    .copied();
                (partition.clone(), position)
            })
            .collect();
        positions.sort();
        positions
    }

    /// Records that `member` processed everything before `next_offset` on `partition`.
    pub(crate) fn store(
        &self,
        member: MemberId,
        partition: TopicPartition,
        next_offset: i64,
    ) -> Result<(), BusError> {
        let mut state = lock(&self.state);
        if state.owners.get(&partition) != Some(&member) {
            return Err(BusError::NotAssigned {
                topic: partition.topic,
                partition: partition.partition,
            });
        }
        state.stored.insert(partition, next_offset);
        Ok(())
    }

    /// Commits the offsets `member` acknowledged on the partitions it owns.
    pub(crate) fn commit(&self, member: MemberId) {
        let mut state = lock(&self.state);
        let committed = commit_member(&mut state, member);
        debug!(group = %self.name, member, partitions = committed, "Offsets committed.");
    }

    /// Reassigns every partition among the live members, range by range per topic as Kafka's
    /// default assignor does, after committing every acknowledged offset (each Kafka member
    /// commits on revocation).
    fn rebalance(&self, state: &mut GroupState) {
        let stored = std::mem::take(&mut state.stored);
        state.committed.extend(stored);

        let mut subscribers: BTreeMap<&str, (i32, BTreeSet<MemberId>)> = BTreeMap::new();
        for (member, topics) in &state.members {
            for (topic, partitions) in topics {
                let entry = subscribers
                    .entry(topic)
                    .or_insert((*partitions, BTreeSet::new()));
                entry.1.insert(*member);
            }
        }

        let mut owners = HashMap::new();
        for (topic, (partitions, members)) in subscribers {
            let members: Vec<MemberId> = members.into_iter().collect();
            for partition in 0..partitions {
                let owner = range_owner(partition, partitions, &members);
                owners.insert(TopicPartition::new(topic, partition), owner);
            }
        }
        state.owners = owners;
        state.generation += 1;
        debug!(group = %self.name, generation = state.generation, "Group rebalanced.");
        self.generation.send_replace(state.generation);
    }
}

/// Moves `member`'s acknowledged offsets to the committed ones; returns how many.
fn commit_member(state: &mut GroupState, member: MemberId) -> usize {
    let owned: Vec<TopicPartition> = state
        .stored
        .keys()
        .filter(|partition| state.owners.get(*partition) == Some(&member))
        .cloned()
        .collect();
    for partition in &owned {
        if let Some(offset) = state.stored.remove(partition) {
            state.committed.insert(partition.clone(), offset);
        }
    }
    owned.len()
}

/// Kafka's range assignment: members in order each take a contiguous run of partitions, the
/// first `partitions % members` one more than the rest.
fn range_owner(partition: i32, partitions: i32, members: &[MemberId]) -> MemberId {
    let member_count = i32::try_from(members.len()).unwrap_or(i32::MAX).max(1);
    let per_member = partitions / member_count;
    let with_extra = partitions % member_count;
    let boundary = with_extra * (per_member + 1);
    let index = if partition < boundary {
        partition / (per_member + 1)
    } else {
        with_extra + (partition - boundary) / per_member.max(1)
    };
    let index = usize::try_from(index).unwrap_or(0);
    members
        .get(index)
        .or(members.last())
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(partitions: i32, members: &[MemberId]) -> Vec<MemberId> {
        (0..partitions)
            .map(|p| range_owner(p, partitions, members))
            .collect()
    }

    #[test]
    fn range_assignment_matches_kafka() {
        assert_eq!(owners(4, &[1, 2]), vec![1, 1, 2, 2]);
        assert_eq!(owners(5, &[1, 2]), vec![1, 1, 1, 2, 2]);
        assert_eq!(owners(3, &[1, 2, 3, 4]), vec![1, 2, 3]);
        assert_eq!(owners(7, &[1, 2, 3]), vec![1, 1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn leaving_commits_and_hands_partitions_over() {
        let group = Group::new("g");
        let topics = BTreeMap::from([("t".to_owned(), 2)]);
        group.join(1, topics.clone());
        group.join(2, topics);
        let (_, first) = group.assignment(1);
        assert_eq!(first, vec![TopicPartition::new("t", 0)]);
        assert!(group.store(1, TopicPartition::new("t", 1), 5).is_err());
        group
            .store(1, TopicPartition::new("t", 0), 3)
            .expect("owner may store");
        group.leave(1);
        assert_eq!(group.committed(&TopicPartition::new("t", 0)), Some(3));
        let (_, second) = group.assignment(2);
        assert_eq!(second.len(), 2);
    }
}
