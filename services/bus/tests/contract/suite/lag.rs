//! Contract cases about consumer lag: what `sinter_bus::lag` reports for a group's partitions.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use sinter_bus::lag::group_lag;
use sinter_bus::partition::partition_for_key;
use sinter_bus::{Consumer, Delivered, Record, TopicPartition};
use tokio::time::Instant;

use super::{Harness, new_topic, recv_many, send_all, unique};

/// How long one look for a record lasts while waiting for a lag reading; the Kafka bus reads
/// its statistics only while a receive runs.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// A key for each of `partitions` partitions, in partition order.
fn keys_by_partition(partitions: i32) -> Result<Vec<String>> {
    (0..partitions)
        .map(|partition| {
            (0..10_000)
                .map(|device| format!("device-{device}"))
                .find(|key| partition_for_key(key.as_bytes(), partitions) == partition)
                .ok_or_else(|| anyhow::anyhow!("no key lands on partition {partition}"))
        })
        .collect()
}

/// Waits until `group`'s lag reading satisfies `wanted`, receiving on `consumer` meanwhile
/// (records that arrive are returned); fails after `patience` with the last reading.
async fn await_lag(
    mut consumer: Option<&mut dyn Consumer>,
    group: &str,
    what: &str,
    wanted: impl Fn(&BTreeMap<TopicPartition, u64>) -> bool,
    patience: Duration,
) -> Result<Vec<Delivered>> {
    let deadline = Instant::now() + patience;
    let mut received = Vec::new();
    loop {
        let reading = group_lag(group);
        if wanted(&reading) {
            return Ok(received);
        }
        if Instant::now() >= deadline {
            bail!("lag never became {what} within {patience:?}; last reading: {reading:?}");
        }
        match consumer.as_deref_mut() {
            Some(consumer) => {
                if let Ok(delivered) = tokio::time::timeout(POLL_SLICE, consumer.recv()).await {
                    received.push(delivered?);
                }
            }
            None => tokio::time::sleep(POLL_SLICE).await,
        }
    }
}

/// Waits, receiving meanwhile, until the lag of `topic`'s partitions is `lags`; returns
/// the records received while waiting.
async fn await_exact_lag(
    consumer: &mut dyn Consumer,
    group: &str,
    topic: &str,
    lags: &[u64],
    what: &str,
    patience: Duration,
) -> Result<Vec<Delivered>> {
    let expected = lag_of(topic, lags);
    await_lag(Some(consumer), group, what, |r| *r == expected, patience).await
}

/// The lag of `topic`'s partitions, `lags[p]` for partition `p`.
fn lag_of(topic: &str, lags: &[u64]) -> BTreeMap<TopicPartition, u64> {
    (0..)
        .zip(lags)
        .map(|(partition, lag)| (TopicPartition::new(topic, partition), *lag))
        .collect()
}

/// A partition's lag is the records after the group's last acknowledged one: received but
/// unacknowledged records count, acknowledged ones stop counting before any commit, and new
/// records on the log add to it.
pub async fn lag_counts_unacknowledged_records(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "lag", 2).await?;
    let group = unique("group");
    let keys = keys_by_partition(2)?;
    let records = (0..6)
        .map(|n| Record::new(keys[0].clone(), n.to_string()))
        .chain((0..4).map(|n| Record::new(keys[1].clone(), n.to_string())));
    send_all(&*bus, &topic, records).await?;

    let mut consumer = bus.subscribe(&group, &[&topic]).await?;
    let mut received = recv_many(&mut *consumer, 10, harness.patience()).await?;
    received.sort_by_key(|delivered| (delivered.partition, delivered.offset));
    let (first, second): (Vec<Delivered>, Vec<Delivered>) = received
        .into_iter()
        .partition(|delivered| delivered.partition == 0);
    ensure!(
        (first.len(), second.len()) == (6, 4),
        "records landed {} and {} on the two partitions",
        first.len(),
        second.len()
    );
    let patience = harness.patience();

    let expected = lag_of(&topic, &[6, 4]);
    let what = "everything, before any acknowledgement";
    let early = await_lag(
        Some(&mut *consumer),
        &group,
        what,
        |r| *r == expected,
        patience,
    );
    ensure!(early.await?.is_empty(), "records came twice");

    for delivered in &first[..2] {
        consumer.ack(delivered)?;
    }
    await_exact_lag(
        &mut *consumer,
        &group,
        &topic,
        &[4, 4],
        "4 and 4 after acknowledging two records",
        patience,
    )
    .await?;

    for delivered in &second {
        consumer.ack(delivered)?;
    }
    consumer.commit().await?;
    await_exact_lag(
        &mut *consumer,
        &group,
        &topic,
        &[4, 0],
        "4 and 0 after acknowledging and committing a partition",
        patience,
    )
    .await?;

    let more = (0..3).map(|n| Record::new(keys[1].clone(), format!("more-{n}")));
    send_all(&*bus, &topic, more).await?;
    let mut late = await_exact_lag(
        &mut *consumer,
        &group,
        &topic,
        &[4, 3],
        "4 and 3 after three more records",
        patience,
    )
    .await?;
    let missing = 3 - late.len().min(3);
    late.extend(recv_many(&mut *consumer, missing, patience).await?);
    ensure!(
        late.iter().all(|delivered| delivered.partition == 1),
        "the new records came from partition 0"
    );

    for delivered in first[2..].iter().chain(&late) {
        consumer.ack(delivered)?;
    }
    await_exact_lag(
        &mut *consumer,
        &group,
        &topic,
        &[0, 0],
        "0 once everything is acknowledged",
        patience,
    )
    .await?;
    Ok(())
}

/// A closed consumer's partitions are no longer reported.
pub async fn lag_goes_with_the_consumer(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "lag-close", 1).await?;
    let group = unique("group");
    send_all(
        &*bus,
        &topic,
        (0..3).map(|n| Record::new("device-1", n.to_string())),
    )
    .await?;

    let mut consumer = bus.subscribe(&group, &[&topic]).await?;
    recv_many(&mut *consumer, 3, harness.patience()).await?;
    let expected = lag_of(&topic, &[3]);
    await_lag(
        Some(&mut *consumer),
        &group,
        "3 while the consumer lives",
        |r| *r == expected,
        harness.patience(),
    )
    .await?;

    drop(consumer);
    await_lag(
        None,
        &group,
        "unreported after the consumer closed",
        BTreeMap::is_empty,
        harness.patience(),
    )
    .await?;
    Ok(())
}

/// After a rebalance each partition is reported by its new owner only: the member that lost a
/// partition stops reporting it.
pub async fn lag_follows_the_assignment(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "lag-rebalance", 2).await?;
    let group = unique("group");
    let keys = keys_by_partition(2)?;
    let records = keys
        .iter()
        .flat_map(|key| (0..3).map(|n| Record::new(key.clone(), n.to_string())));
    send_all(&*bus, &topic, records).await?;

    // The first member reads everything and acknowledges nothing.
    let mut holder = bus.subscribe(&group, &[&topic]).await?;
    recv_many(&mut *holder, 6, harness.patience()).await?;
    let expected = lag_of(&topic, &[3, 3]);
    await_lag(
        Some(&mut *holder),
        &group,
        "3 and 3 before the second member joins",
        |r| *r == expected,
        harness.patience(),
    )
    .await?;
    let holding = tokio::spawn(async move {
        loop {
            holder.recv().await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), sinter_bus::BusError>(())
    });

    // The second member takes one partition and acknowledges all it gets there.
    let mut acker = bus.subscribe(&group, &[&topic]).await?;
    let split = |reading: &BTreeMap<TopicPartition, u64>| {
        let mut lags: Vec<u64> = reading.values().copied().collect();
        lags.sort_unstable();
        reading.len() == 2 && lags == [0, 3]
    };
    let deadline = Instant::now() + harness.patience() * 2;
    let outcome = loop {
        let reading = group_lag(&group);
        if split(&reading) {
            break Ok(());
        }
        if Instant::now() >= deadline {
            break Err(anyhow::anyhow!(
                "lag never became 3 on the first member's partition and 0 on the second's; \
                 last reading: {reading:?}, second member's assignment: {:?}",
                acker.assignment()
            ));
        }
        if let Ok(delivered) = tokio::time::timeout(POLL_SLICE, acker.recv()).await {
            acker.ack(&delivered?)?;
        }
    };
    holding.abort();
    let _ = holding.await;
    outcome
}
