//! The bus contract, written once and instantiated per implementation by `contract_suite!`.

mod admin;
mod groups;
mod lag;
mod records;
mod trace;

pub use admin::{
    a_deleted_name_can_be_created_again, deleted_topics_are_gone, topic_partitions_read_back,
};
pub use groups::{
    acked_offsets_survive_a_clean_close, group_members_split_the_partitions,
    rebalance_keeps_acknowledged_progress, redelivery_after_uncommitted_crash,
    separate_groups_each_see_everything,
};
pub use lag::{
    lag_counts_unacknowledged_records, lag_follows_the_assignment, lag_goes_with_the_consumer,
};
pub use records::{
    batches_deliver_every_record_in_order, ensure_topic_is_idempotent,
    headers_preserved_byte_for_byte, missing_topics_fail_clearly, ordering_per_key,
    same_key_same_partition,
};
pub use trace::trace_context_crosses_the_bus;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::try_join_all;
use sinter_bus::{Bus, Consumer, Delivered, Record, TopicSpec};

/// Makes the bus under test.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// A bus to run one case on; topic and group names are unique per case, so buses may
    /// share a broker.
    async fn bus(&self) -> Arc<dyn Bus>;

    /// How long a case waits for a record or a rebalance before it fails.
    fn patience(&self) -> Duration;
}

/// Turns every case of the suite into a `#[tokio::test]` for the harness `$harness`.
macro_rules! contract_suite {
    ($harness:expr) => {
        contract_suite!(@multi_thread $harness;
            ordering_per_key,
            same_key_same_partition,
            redelivery_after_uncommitted_crash,
            acked_offsets_survive_a_clean_close,
            group_members_split_the_partitions,
            rebalance_keeps_acknowledged_progress,
            separate_groups_each_see_everything,
            headers_preserved_byte_for_byte,
            batches_deliver_every_record_in_order,
            missing_topics_fail_clearly,
            ensure_topic_is_idempotent,
            topic_partitions_read_back,
            deleted_topics_are_gone,
            a_deleted_name_can_be_created_again,
            lag_counts_unacknowledged_records,
            lag_goes_with_the_consumer,
            lag_follows_the_assignment
        );

        // The tracing subscriber is per thread: this case keeps the bus on the test thread.
        #[tokio::test(flavor = "current_thread")]
        async fn trace_context_crosses_the_bus() -> anyhow::Result<()> {
            crate::suite::trace_context_crosses_the_bus(&$harness).await
        }
    };
    (@multi_thread $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() -> anyhow::Result<()> {
                crate::suite::$case(&$harness).await
            }
        )*
    };
}

/// Sends the bus's logs to the test output, filtered by `RUST_LOG` (warnings by default).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails when another case already installed it, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A name no other case or run uses.
pub fn unique(what: &str) -> String {
    format!("contract.{what}.{}", uuid::Uuid::new_v4().simple())
}

async fn new_topic(bus: &dyn Bus, what: &str, partitions: i32) -> Result<String> {
    let topic = unique(what);
    bus.ensure_topic(&TopicSpec::new(topic.clone(), partitions))
        .await?;
    Ok(topic)
}

async fn recv_within(consumer: &mut dyn Consumer, patience: Duration) -> Result<Delivered> {
    let received = tokio::time::timeout(patience, consumer.recv())
        .await
        .with_context(|| format!("no record within {patience:?}"))?;
    Ok(received?)
}

async fn recv_many(
    consumer: &mut dyn Consumer,
    count: usize,
    patience: Duration,
) -> Result<Vec<Delivered>> {
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        let delivered = recv_within(consumer, patience)
            .await
            .with_context(|| format!("after {} of {count} records", received.len()))?;
        received.push(delivered);
    }
    Ok(received)
}

/// Sends all records at once and waits for every delivery.
async fn send_all(
    bus: &dyn Bus,
    topic: &str,
    records: impl IntoIterator<Item = Record>,
) -> Result<Vec<sinter_bus::Delivery>> {
    let producer = bus.producer();
    let sends = records.into_iter().map(|record| {
        let producer = producer.clone();
        async move { producer.send(topic, record).await }
    });
    Ok(try_join_all(sends).await?)
}

fn positions(records: &[Delivered]) -> BTreeSet<(i32, i64)> {
    records
        .iter()
        .map(|delivered| (delivered.partition, delivered.offset))
        .collect()
}

fn text(bytes: &Bytes) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
