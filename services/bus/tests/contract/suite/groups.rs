//! Contract cases about consumer groups: redelivery, commits, rebalances, splitting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use sinter_bus::partition::partition_for_key;
use sinter_bus::{BusError, Consumer, Delivered, Rebalance, Record, TopicPartition};
use tokio::sync::{broadcast, mpsc};

use super::{Harness, new_topic, positions, recv_many, recv_within, send_all, unique};

/// What a consumer received but never acknowledged goes to the group's next consumer; what was
/// acknowledged and committed does not.
pub async fn redelivery_after_uncommitted_crash(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "redelivery", 2).await?;
    let group = unique("group");
    let records = (0..10).map(|device| Record::new(format!("device-{device}"), "reading"));
    send_all(&*bus, &topic, records).await?;

    let mut crashed = bus.subscribe(&group, &[&topic]).await?;
    let first_time = recv_many(&mut *crashed, 10, harness.patience()).await?;
    drop(crashed);

    let mut successor = bus.subscribe(&group, &[&topic]).await?;
    let second_time = recv_many(&mut *successor, 10, harness.patience()).await?;
    ensure!(
        positions(&first_time) == positions(&second_time),
        "redelivered other records"
    );
    for delivered in &second_time {
        successor.ack(delivered)?;
    }
    successor.commit().await?;
    drop(successor);

    let marker = bus
        .producer()
        .send(&topic, Record::new("device-0", "marker"))
        .await?;
    let mut next = bus.subscribe(&group, &[&topic]).await?;
    let delivered = recv_within(&mut *next, harness.patience()).await?;
    ensure!(
        (delivered.partition, delivered.offset) == (marker.partition, marker.offset),
        "committed record {}/{} came again",
        delivered.partition,
        delivered.offset
    );
    Ok(())
}

/// Offsets acknowledged but not explicitly committed are committed when a consumer closes.
pub async fn acked_offsets_survive_a_clean_close(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "close", 1).await?;
    let group = unique("group");
    send_all(
        &*bus,
        &topic,
        (0..5).map(|n| Record::new("device-1", n.to_string())),
    )
    .await?;

    let mut closing = bus.subscribe(&group, &[&topic]).await?;
    for delivered in recv_many(&mut *closing, 5, harness.patience()).await? {
        closing.ack(&delivered)?;
    }
    drop(closing);

    let marker = bus
        .producer()
        .send(&topic, Record::new("device-1", "marker"))
        .await?;
    let mut next = bus.subscribe(&group, &[&topic]).await?;
    let delivered = recv_within(&mut *next, harness.patience()).await?;
    ensure!(
        delivered.offset == marker.offset,
        "acknowledged offset {} came again",
        delivered.offset
    );
    Ok(())
}

/// Follows one member's assignment from its rebalance announcements.
async fn follow(
    events: &mut broadcast::Receiver<Rebalance>,
    assignment: &mut BTreeSet<TopicPartition>,
) -> Result<()> {
    match events.recv().await? {
        Rebalance::Assigned(partitions) => assignment.extend(partitions),
        Rebalance::Revoked(partitions) => {
            for partition in &partitions {
                assignment.remove(partition);
            }
        }
    }
    Ok(())
}

/// Waits until two members' announced assignments split all `partitions` of `topic`.
async fn settle(
    topic: &str,
    partitions: i32,
    [first_events, second_events]: [&mut broadcast::Receiver<Rebalance>; 2],
    patience: Duration,
) -> Result<()> {
    let all: BTreeSet<TopicPartition> = (0..partitions)
        .map(|partition| TopicPartition::new(topic, partition))
        .collect();
    let (mut first_owns, mut second_owns) = (BTreeSet::new(), BTreeSet::new());
    let settled = async {
        loop {
            let split = !first_owns.is_empty()
                && !second_owns.is_empty()
                && first_owns.is_disjoint(&second_owns)
                && first_owns
                    .union(&second_owns)
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    == all;
            if split {
                return Ok::<_, anyhow::Error>(());
            }
            tokio::select! {
                followed = follow(first_events, &mut first_owns) => followed?,
                followed = follow(second_events, &mut second_owns) => followed?,
            }
        }
    };
    tokio::time::timeout(patience * 2, settled)
        .await
        .with_context(|| format!("no split: {first_owns:?} / {second_owns:?}"))?
}

/// Keys, one per partition, that land on each of `partitions` partitions.
fn key_per_partition(partitions: i32) -> Vec<String> {
    (0..partitions)
        .filter_map(|partition| {
            (0..10_000)
                .map(|device| format!("device-{device}"))
                .find(|key| partition_for_key(key.as_bytes(), partitions) == partition)
        })
        .collect()
}

/// A rebalance commits what members acknowledged: a joining member does not get it again,
/// even though nobody called `commit`.
pub async fn rebalance_keeps_acknowledged_progress(harness: &impl Harness) -> Result<()> {
    const PARTITIONS: i32 = 4;
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "rebalance", PARTITIONS).await?;
    let group = unique("group");
    let records = (0..20).map(|device| Record::new(format!("device-{device}"), "old"));
    send_all(&*bus, &topic, records).await?;

    let mut first = bus.subscribe(&group, &[&topic]).await?;
    let mut first_events = first.rebalances();
    for delivered in recv_many(&mut *first, 20, harness.patience()).await? {
        first.ack(&delivered)?;
    }
    let (forward, mut received) = mpsc::unbounded_channel();
    let first_task = drain(0, first, forward.clone());
    let second = bus.subscribe(&group, &[&topic]).await?;
    let mut second_events = second.rebalances();
    let second_task = drain(1, second, forward);
    settle(
        &topic,
        PARTITIONS,
        [&mut first_events, &mut second_events],
        harness.patience(),
    )
    .await?;

    let markers = key_per_partition(PARTITIONS);
    ensure!(markers.len() == 4, "no key for some partition: {markers:?}");
    send_all(
        &*bus,
        &topic,
        markers.iter().map(|key| Record::new(key.clone(), "marker")),
    )
    .await?;
    for _ in 0..markers.len() {
        let (member, delivered) = tokio::time::timeout(harness.patience(), received.recv())
            .await
            .context("a marker did not arrive")?
            .context("both members stopped")?;
        ensure!(
            &delivered.payload[..] == b"marker",
            "member {member} got acknowledged record {}/{} again",
            delivered.partition,
            delivered.offset
        );
    }
    first_task.abort();
    second_task.abort();
    let _ = tokio::join!(first_task, second_task);
    Ok(())
}

/// Receives and acknowledges forever, forwarding every record tagged with `member`.
fn drain(
    member: usize,
    mut consumer: Box<dyn Consumer>,
    forward: mpsc::UnboundedSender<(usize, Delivered)>,
) -> tokio::task::JoinHandle<Result<(), BusError>> {
    tokio::spawn(async move {
        loop {
            let delivered = consumer.recv().await?;
            consumer.ack(&delivered)?;
            if forward.send((member, delivered)).is_err() {
                return Ok(());
            }
        }
    })
}

/// Two members of one group split the partitions and together see every record once.
pub async fn group_members_split_the_partitions(harness: &impl Harness) -> Result<()> {
    const PARTITIONS: i32 = 4;
    const RECORDS: usize = 40;
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "split", PARTITIONS).await?;
    let group = unique("group");
    let (forward, mut received) = mpsc::unbounded_channel();

    let first = bus.subscribe(&group, &[&topic]).await?;
    let mut first_events = first.rebalances();
    let first_task = drain(0, first, forward.clone());
    let second = bus.subscribe(&group, &[&topic]).await?;
    let mut second_events = second.rebalances();
    let second_task = drain(1, second, forward);

    settle(
        &topic,
        PARTITIONS,
        [&mut first_events, &mut second_events],
        harness.patience(),
    )
    .await?;

    let keys: Vec<String> = (0..RECORDS)
        .map(|device| format!("device-{device}"))
        .collect();
    let hit: BTreeSet<i32> = keys
        .iter()
        .map(|key| partition_for_key(key.as_bytes(), PARTITIONS))
        .collect();
    ensure!(
        hit.len() == 4,
        "the test's keys only cover partitions {hit:?}"
    );
    send_all(
        &*bus,
        &topic,
        keys.iter().map(|key| Record::new(key.clone(), "reading")),
    )
    .await?;

    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut served_by: BTreeMap<i32, BTreeSet<usize>> = BTreeMap::new();
    while seen.len() < RECORDS {
        let (member, delivered) = tokio::time::timeout(harness.patience(), received.recv())
            .await
            .with_context(|| format!("only {} of {RECORDS} records arrived", seen.len()))?
            .context("both members stopped")?;
        if seen
            .insert((delivered.partition, delivered.offset), member)
            .is_some()
        {
            bail!(
                "{}/{} delivered twice",
                delivered.partition,
                delivered.offset
            );
        }
        served_by
            .entry(delivered.partition)
            .or_default()
            .insert(member);
    }
    for (partition, members) in &served_by {
        ensure!(
            members.len() == 1,
            "partition {partition} was read by members {members:?}"
        );
    }
    let members: BTreeSet<usize> = seen.values().copied().collect();
    ensure!(members.len() == 2, "only members {members:?} read anything");

    first_task.abort();
    second_task.abort();
    let _ = tokio::join!(first_task, second_task);
    Ok(())
}

/// Every group gets every record.
pub async fn separate_groups_each_see_everything(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "groups", 2).await?;
    let records = (0..20).map(|n| Record::new(format!("device-{n}"), n.to_string()));
    send_all(&*bus, &topic, records).await?;

    let mut analytics = bus.subscribe(&unique("analytics"), &[&topic]).await?;
    let mut archive = bus.subscribe(&unique("archive"), &[&topic]).await?;
    let seen_by_analytics = recv_many(&mut *analytics, 20, harness.patience()).await?;
    let seen_by_archive = recv_many(&mut *archive, 20, harness.patience()).await?;
    ensure!(
        positions(&seen_by_analytics).len() == 20,
        "analytics saw duplicates"
    );
    ensure!(
        positions(&seen_by_analytics) == positions(&seen_by_archive),
        "groups saw different records"
    );
    Ok(())
}
