//! Topic administration: what the operator relies on to provision and clean up.

use anyhow::{Result, ensure};
use sinter_bus::TopicSpec;

use super::{Harness, new_topic, unique};

/// A topic's partition count reads back; a missing topic reads as none.
pub async fn topic_partitions_read_back(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "partitions", 3).await?;
    let partitions = bus.topic_partitions(&topic).await?;
    ensure!(
        partitions == Some(3),
        "{topic} has {partitions:?} partitions, not 3"
    );
    let missing = unique("never-created");
    let partitions = bus.topic_partitions(&missing).await?;
    ensure!(partitions.is_none(), "{missing} reads as {partitions:?}");
    Ok(())
}

/// A deleted topic is gone, deleting it again is fine, and the name can be used again.
pub async fn deleted_topics_are_gone(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = new_topic(&*bus, "deleted", 2).await?;
    bus.delete_topic(&topic).await?;
    let deadline = tokio::time::Instant::now() + harness.patience();
    while bus.topic_partitions(&topic).await?.is_some() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{topic} still listed {:?} after deletion",
            harness.patience()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bus.delete_topic(&topic).await?;
    bus.delete_topic(&unique("never-created")).await?;
    Ok(())
}

/// Creating a topic whose name was deleted gives a working topic again.
pub async fn a_deleted_name_can_be_created_again(harness: &impl Harness) -> Result<()> {
    let bus = harness.bus().await;
    let topic = unique("recreated");
    bus.ensure_topic(&TopicSpec::new(topic.clone(), 1)).await?;
    bus.delete_topic(&topic).await?;
    let deadline = tokio::time::Instant::now() + harness.patience();
    while bus.topic_partitions(&topic).await?.is_some() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{topic} not deleted in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bus.ensure_topic(&TopicSpec::new(topic.clone(), 2)).await?;
    let partitions = bus.topic_partitions(&topic).await?;
    ensure!(
        partitions == Some(2),
        "{topic} re-created with {partitions:?} partitions"
    );
    Ok(())
}
