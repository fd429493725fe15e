//! Sinter's publish/subscribe layer: named topics of keyed records with Kafka's semantics.
//!
//! Services talk to a [`Bus`] trait object and never learn which implementation is behind it:
//! [`embedded::EmbeddedBus`] keeps everything in the process (`sinter dev`, edge gateways, fast
//! tests), [`kafka::KafkaBus`] talks to a Kafka cluster through librdkafka. Both give the same
//! guarantees, which `tests/contract` checks against each:
//!
//! - a record's key picks its partition with Kafka's default partitioner
//!   ([`partition::partition_for_key`]), so one key's records stay in order on one partition;
//! - [`Producer::send`] resolves once the record is durably accepted, with its offset;
//! - consumers in one group split the partitions between them; each group sees every record;
//! - delivery is at least once: [`Consumer::ack`] marks a record processed, acknowledged offsets
//!   are committed by [`Consumer::commit`], on a rebalance and when a consumer closes, and a
//!   record that was never acknowledged is delivered again to the group's next owner of its
//!   partition.
//!
//! ```
//! # async fn example() -> Result<(), sinter_bus::BusError> {
//! use sinter_bus::{Bus, Record, TopicSpec, embedded::EmbeddedBus};
//!
//! let bus = EmbeddedBus::new();
//! bus.ensure_topic(&TopicSpec::new("sinter.plant.pumps.telemetry", 4)).await?;
//! let delivery = bus
//!     .producer()
//!     .send("sinter.plant.pumps.telemetry", Record::new("p-17", "91.2"))
//!     .await?;
//!
//! let mut consumer = bus.subscribe("analytics", &["sinter.plant.pumps.telemetry"]).await?;
//! let reading = consumer.recv().await?;
//! assert_eq!(reading.offset, delivery.offset);
//! consumer.ack(&reading)?;
//! consumer.commit().await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod deadletter;
pub mod embedded;
mod error;
pub mod kafka;
pub mod lag;
pub mod partition;
mod record;
mod topic;
pub mod trace;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use error::BusError;
pub use record::{Delivered, Delivery, Header, Headers, Record, TopicPartition};
pub use topic::{OffsetReset, TopicSpec};

/// A publish/subscribe bus: creates and checks topics, hands out producers and consumers.
///
/// Object safe: services hold an `Arc<dyn Bus>`.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Which implementation this is, `"embedded"` or `"kafka"`, for logs and reports.
    fn implementation(&self) -> &'static str;

    /// Creates the topic unless it exists; an existing topic is success, whatever its
    /// partition count (a different count is logged, never changed).
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError>;

    /// Checks that every named topic exists; fails with [`BusError::MissingTopics`] naming
    /// each one that does not. Services call it at start so a missing topic is a clear error.
    async fn probe_topics(&self, topics: &[&str]) -> Result<(), BusError>;

    /// How many partitions `topic` has, or `None` when it does not exist.
    async fn topic_partitions(&self, topic: &str) -> Result<Option<i32>, BusError>;

    /// Deletes `topic` with its records; a topic that does not exist is success.
    async fn delete_topic(&self, topic: &str) -> Result<(), BusError>;

    /// The bus's producer, shared by every caller.
    fn producer(&self) -> Arc<dyn Producer>;

    /// Joins consumer group `group` for `topics` (which must exist) and returns the new
    /// member. Partitions are (re)assigned among the group's live members.
    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError>;
}

/// Sends records to topics.
#[async_trait]
pub trait Producer: Send + Sync {
    /// Sends `record` to `topic` and resolves once the bus has durably accepted it (on Kafka:
    /// the delivery report, acknowledged by all in-sync replicas). The topic must exist: the
    /// embedded bus refuses a missing one at once, Kafka fails the send once librdkafka gives
    /// up waiting for it to appear.
    ///
    /// The W3C trace context of the current `tracing` span is added to the record's headers
    /// (see [`trace`]).
    async fn send(&self, topic: &str, record: Record) -> Result<Delivery, BusError>;

    /// Sends every record of `records` to `topic`, as [`Producer::send`] would each, and
    /// resolves once every one is durably accepted or has failed: one outcome per record, in
    /// the order given. Records of one key keep their order. One failure costs only its
    /// record.
    async fn send_batch(
        &self,
        topic: &str,
        records: Vec<Record>,
    ) -> Vec<Result<Delivery, BusError>> {
        futures::future::join_all(records.into_iter().map(|record| self.send(topic, record))).await
    }
}

/// One member of a consumer group.
///
/// Dropping it closes it: its acknowledged offsets are committed and it leaves the group,
/// whose partitions are then reassigned among the remaining members.
#[async_trait]
pub trait Consumer: Send {
    /// The consumer group this member belongs to.
    fn group(&self) -> &str;

    /// Waits for the next record from an assigned partition. Records of one partition come in
    /// offset order. Cancel safe: dropping the future loses no record.
    async fn recv(&mut self) -> Result<Delivered, BusError>;

    /// Marks `delivered` as processed: its offset will be committed by [`Consumer::commit`],
    /// by a rebalance or by closing this consumer (on Kafka also by the periodic auto
    /// commit). Fails with [`BusError::NotAssigned`] when its partition has moved to another
    /// member since; that member will get the record again.
    ///
    /// As on Kafka, the stored position is this record's offset + 1, whatever was acknowledged
    /// before: acknowledge a partition's records in order, or a later acknowledgement commits
    /// past earlier records that were not processed yet.
    fn ack(&mut self, delivered: &Delivered) -> Result<(), BusError>;

    /// Commits the acknowledged offsets now and waits until the bus has stored them.
    async fn commit(&mut self) -> Result<(), BusError>;

    /// The partitions currently assigned to this member.
    fn assignment(&self) -> Result<Vec<TopicPartition>, BusError>;

    /// Announces partitions assigned to and revoked from this member, so a stateful consumer
    /// can load or hand over per-partition state. Take the receiver before the first
    /// [`Consumer::recv`]: events are sent while `recv` runs and a receiver only sees events
    /// sent after it was made. Kafka revokes every partition then assigns the new set on each
    /// rebalance; the embedded bus announces only partitions that changed hands.
    fn rebalances(&self) -> broadcast::Receiver<Rebalance>;
}

/// A change in a consumer's partition assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    /// These partitions are now this member's; reading resumes from the group's committed
    /// offset.
    Assigned(Vec<TopicPartition>),
    /// These partitions are no longer this member's; offsets acknowledged for them were
    /// committed before the revocation.
    Revoked(Vec<TopicPartition>),
}

/// Capacity of each consumer's rebalance announcement channel; a receiver that falls further
/// behind gets `RecvError::Lagged` and should read [`Consumer::assignment`].
pub(crate) const REBALANCE_CHANNEL_CAPACITY: usize = 64;
