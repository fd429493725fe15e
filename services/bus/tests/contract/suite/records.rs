//! Contract cases about records: order, partitioning, headers and topics.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use sinter_bus::partition::partition_for_key;
use sinter_bus::{BusError, Headers, Record, TopicSpec};

use super::{Harness, new_topic, recv_many, recv_within, send_all, text, unique};

/// Records of one key arrive in the order sent; offsets grow along each partition.
pub async fn ordering_per_key(harness: &impl Harness) -> Result<()> {
    const PER_KEY: usize = 20;
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "ordering", 3).await?;
    let keys = ["pump-1", "pump-2", "pump-3", "pump-4", "pump-5"];
    let producer = bus.producer();
    for sequence in 0..PER_KEY {
        for key in keys {
            producer
                .send(&topic, Record::new(key, sequence.to_string()))
                .await?;
        }
    }

    let mut consumer = bus.subscribe(&unique("group"), &[&topic]).await?;
    let received = recv_many(&mut *consumer, keys.len() * PER_KEY, harness.patience()).await?;
    let mut sequences: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut last_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    for delivered in &received {
        let sequence = text(&delivered.payload).parse()?;
        sequences
            .entry(text(&delivered.key))
            .or_default()
            .push(sequence);
        if let Some(previous) = last_offsets.insert(delivered.partition, delivered.offset) {
            ensure!(
                delivered.offset > previous,
                "offsets went back on {}",
                delivered.partition
            );
        }
    }
    for key in keys {
        let expected: Vec<usize> = (0..PER_KEY).collect();
        ensure!(
            sequences.get(key) == Some(&expected),
            "{key} came as {:?}",
            sequences.get(key)
        );
    }
    Ok(())
}

/// A key always lands on the partition Kafka's default partitioner picks.
pub async fn same_key_same_partition(harness: &impl Harness) -> Result<()> {
    const PARTITIONS: i32 = 6;
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "partitioning", PARTITIONS).await?;
    let keys: Vec<String> = (0..30).map(|device| format!("device-{device}")).collect();
    let records = (0..3).flat_map(|_| keys.iter().map(|key| Record::new(key.clone(), "x")));
    let deliveries = send_all(&*bus, &topic, records).await?;

    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    for (index, delivery) in deliveries.iter().enumerate() {
        let key = &keys[index % keys.len()];
        let expected = partition_for_key(key.as_bytes(), PARTITIONS);
        ensure!(
            delivery.partition == expected,
            "{key} went to {} not {expected}",
            delivery.partition
        );
        let first = *partition_of
            .entry(key.clone())
            .or_insert(delivery.partition);
        ensure!(first == delivery.partition, "{key} moved partition");
    }
    let used: BTreeSet<i32> = partition_of.values().copied().collect();
    ensure!(used.len() > 1, "30 keys all landed on {used:?}");

    let mut consumer = bus.subscribe(&unique("group"), &[&topic]).await?;
    for delivered in recv_many(&mut *consumer, deliveries.len(), harness.patience()).await? {
        let expected = partition_for_key(&delivered.key, PARTITIONS);
        ensure!(
            delivered.partition == expected,
            "read {:?} from the wrong partition",
            delivered.key
        );
    }
    Ok(())
}

/// Key, payload and headers (order, duplicates, empty and non-UTF-8 values) come back exactly.
pub async fn headers_preserved_byte_for_byte(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "headers", 1).await?;
    let headers: Headers = [
        ("binary", Bytes::from_static(&[0x00, 0xff, 0x10, 0x80])),
        ("repeated", Bytes::from_static(b"first")),
        ("empty", Bytes::new()),
        ("repeated", Bytes::from_static(b"second")),
        ("unicode", Bytes::from("t\u{e9}l\u{e9}m\u{e9}trie")),
    ]
    .into_iter()
    .collect();
    let payload: Vec<u8> = (0..=255).collect();
    let mut record = Record::new(Bytes::from_static(b"\x00key\xff"), payload.clone());
    record.headers = headers.clone();
    bus.producer().send(&topic, record).await?;

    let mut consumer = bus.subscribe(&unique("group"), &[&topic]).await?;
    let delivered = recv_within(&mut *consumer, harness.patience()).await?;
    ensure!(
        delivered.headers == headers,
        "headers came back as {:?}",
        delivered.headers
    );
    ensure!(
        &delivered.key[..] == b"\x00key\xff",
        "key came back as {:?}",
        delivered.key
    );
    ensure!(delivered.payload[..] == payload[..], "payload changed");
    ensure!(delivered.timestamp.is_some(), "no timestamp");
    Ok(())
}

/// Probing or subscribing to missing topics fails with an error naming exactly those.
pub async fn missing_topics_fail_clearly(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let present = new_topic(&*bus, "present", 1).await?;
    let (missing_a, missing_b) = (unique("missing-a"), unique("missing-b"));
    bus.probe_topics(&[&present]).await?;

    let error = bus
        .probe_topics(&[&present, &missing_a, &missing_b])
        .await
        .err()
        .context("probing missing topics succeeded")?;
    ensure!(error.kind() == "missing_topic", "kind {}", error.kind());
    let message = error.to_string();
    ensure!(
        message.contains(&missing_a) && message.contains(&missing_b),
        "{message}"
    );
    ensure!(!message.contains(&present), "{message}");
    match &error {
        BusError::MissingTopics { topics } => ensure!(topics == &[missing_a.clone(), missing_b]),
        other => bail!("unexpected {other:?}"),
    }

    let refused = bus
        .subscribe(&unique("group"), &[&present, &missing_a])
        .await;
    ensure!(
        refused.as_ref().err().map(BusError::kind) == Some("missing_topic"),
        "subscribed"
    );
    Ok(())
}

/// Ensuring an existing topic, even with another partition count, succeeds and keeps it.
pub async fn ensure_topic_is_idempotent(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "idempotent", 2).await?;
    bus.ensure_topic(&TopicSpec::new(topic.clone(), 2)).await?;
    bus.ensure_topic(&TopicSpec::new(topic.clone(), 3)).await?;
    let delivery = bus
        .producer()
        .send(&topic, Record::new("device-1", "x"))
        .await?;
    ensure!(
        delivery.partition == partition_for_key(b"device-1", 2),
        "partition count changed"
    );
    Ok(())
}

/// A batch send gives one delivery per record, in the order given; each key's records
/// arrive in order with their headers, and the deliveries name the offsets consumers see.
pub async fn batches_deliver_every_record_in_order(harness: &impl Harness) -> Result<()> {
    const RECORDS: usize = 300;
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "batches", 3).await?;
    let producer = bus.producer();
    let records: Vec<Record> = (0..RECORDS)
        .map(|n| {
            Record::new(format!("pump-{}", n % 7), n.to_string()).with_header("n", n.to_string())
        })
        .collect();
    let deliveries = producer.send_batch(&topic, records).await;
    ensure!(
        deliveries.len() == RECORDS,
        "{} deliveries for {RECORDS}",
        deliveries.len()
    );
    let mut delivered_at = BTreeMap::new();
    for (n, delivery) in deliveries.into_iter().enumerate() {
        let delivery = delivery.with_context(|| format!("record {n}"))?;
        let key = format!("pump-{}", n % 7);
        ensure!(
            delivery.partition == partition_for_key(key.as_bytes(), 3),
            "record {n} went to partition {}",
            delivery.partition
        );
        delivered_at.insert((delivery.partition, delivery.offset), n);
    }
    ensure!(delivered_at.len() == RECORDS, "two records share an offset");

    let mut consumer = bus.subscribe(&unique("group"), &[&topic]).await?;
    let received = recv_many(&mut *consumer, RECORDS, harness.patience()).await?;
    let mut last_of_key: BTreeMap<String, usize> = BTreeMap::new();
    for delivered in &received {
        let n: usize = text(&delivered.payload).parse()?;
        ensure!(
            delivered_at.get(&(delivered.partition, delivered.offset)) == Some(&n),
            "record {n} was read at {}/{}, not where its delivery said",
            delivered.partition,
            delivered.offset
        );
        ensure!(
            delivered.headers.get("n").map(text) == Some(n.to_string()),
            "record {n} lost its header"
        );
        if let Some(previous) = last_of_key.insert(text(&delivered.key), n) {
            ensure!(
                previous < n,
                "record {n} came after {previous} of the same key"
            );
        }
    }

    Ok(())
}
