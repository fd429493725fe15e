//! The in-process bus: Kafka's partitions, offsets and consumer groups, kept in memory.
//!
//! For `sinter dev`, edge gateways and fast tests.
//!
//! Records are kept per partition up to [`EmbeddedConfig::retention_bytes_per_partition`];
//! older ones are dropped as Kafka's size retention would, and a group that had not read them
//! yet logs the loss and goes on from the oldest retained record. Nothing survives the
//! process: committed offsets matter between consumers of one process, not across restarts.

// Limitation: records and committed offsets live in this process's memory only. A restart
// loses every record not yet processed (a reading ingest already acknowledged to its device
// among them) and every group's progress; the bus comes back empty.
mod consumer;
mod group;
mod lag;
mod log;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;
use tracing::{info, warn};

use crate::partition::partition_for_key;
use crate::topic::validate_subscription;
use crate::{Bus, BusError, Consumer, Delivery, OffsetReset, Producer, Record, TopicSpec, trace};
use consumer::EmbeddedConsumer;
use group::Group;
use log::TopicLog;

/// Default retention: 16 MiB per partition.
const DEFAULT_RETENTION_BYTES_PER_PARTITION: usize = 16 * 1024 * 1024;

/// How the embedded bus behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Bytes of records (key, payload, headers and a small overhead) kept per partition
    /// before the oldest are dropped, read or not; 16 MiB by default. The bus holds up to
    /// this much per partition of every topic all the time, so size it to the memory there is
    /// and to how far behind the slowest group may fall.
    pub retention_bytes_per_partition: usize,
    /// Where a group without a committed offset starts; earliest by default.
    pub offset_reset: OffsetReset,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            retention_bytes_per_partition: DEFAULT_RETENTION_BYTES_PER_PARTITION,
            offset_reset: OffsetReset::Earliest,
        }
    }
}

/// The in-process bus. Cloning gives another handle on the same topics and groups.
#[derive(Clone, Default)]
pub struct EmbeddedBus {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    config: EmbeddedConfig,
    topics: RwLock<HashMap<String, Arc<TopicLog>>>,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    next_member: AtomicU64,
}

impl EmbeddedBus {
    /// An empty bus with the default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bus configured by `config`.
    pub fn with_config(config: EmbeddedConfig) -> Self {
        let shared = Shared {
            config,
            ..Shared::default()
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    fn topic(&self, name: &str) -> Option<Arc<TopicLog>> {
        read_lock(&self.shared.topics).get(name).cloned()
    }
}

impl std::fmt::Debug for EmbeddedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics = read_lock(&self.shared.topics).len();
        f.debug_struct("EmbeddedBus")
            .field("topics", &topics)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    fn implementation(&self) -> &'static str {
        "embedded"
    }

    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        spec.validate()?;
        let mut topics = self
            .shared
            .topics
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = topics.get(&spec.name) {
            if existing.partition_count() != spec.partitions {
                warn!(
                    topic = %spec.name,
                    partitions = existing.partition_count(),
                    wanted_partitions = spec.partitions,
                    "Topic exists with another partition count; keeping it."
                );
            }
            return Ok(());
        }
        let retention = self.shared.config.retention_bytes_per_partition;
        topics.insert(
            spec.name.clone(),
            Arc::new(TopicLog::new(&spec.name, spec.partitions, retention)),
        );
        info!(topic = %spec.name, partitions = spec.partitions, "Topic created.");
        Ok(())
    }

    async fn probe_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        let known = read_lock(&self.shared.topics);
        let missing: Vec<String> = topics
            .iter()
            .filter(|topic| !known.contains_key(**topic))
            .map(|topic| (*topic).to_owned())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(BusError::MissingTopics { topics: missing })
        }
    }

    async fn topic_partitions(&self, topic: &str) -> Result<Option<i32>, BusError> {
        Ok(self.topic(topic).map(|log| log.partition_count()))
    }

    /// Members subscribed before the deletion keep reading what the topic held; a topic
    /// created again under the name starts empty.
    async fn delete_topic(&self, topic: &str) -> Result<(), BusError> {
        let removed = self
            .shared
            .topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(topic);
        if removed.is_some() {
            info!(topic, "Topic deleted.");
        }
        Ok(())
    }

    fn producer(&self) -> Arc<dyn Producer> {
        Arc::new(EmbeddedProducer { bus: self.clone() })
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        validate_subscription(group, topics)?;
        self.probe_topics(topics).await?;
        let logs: Vec<Arc<TopicLog>> = topics.iter().filter_map(|name| self.topic(name)).collect();
        let coordinator = {
            let mut groups = lock(&self.shared.groups);
            groups
                .entry(group.to_owned())
                .or_insert_with(|| Arc::new(Group::new(group)))
                .clone()
        };
        let member = self.shared.next_member.fetch_add(1, Ordering::Relaxed) + 1;
        let offset_reset = self.shared.config.offset_reset;
        let consumer = EmbeddedConsumer::join(group, coordinator, member, logs, offset_reset);
        Ok(Box::new(consumer))
    }
}

/// Appends records to the embedded bus's logs.
struct EmbeddedProducer {
    bus: EmbeddedBus,
}

#[async_trait]
impl Producer for EmbeddedProducer {
    async fn send(&self, topic: &str, mut record: Record) -> Result<Delivery, BusError> {
        let Some(log) = self.bus.topic(topic) else {
            return Err(BusError::MissingTopics {
                topics: vec![topic.to_owned()],
            });
        };
        trace::inject_current_context(&mut record.headers);
        let partition = partition_for_key(&record.key, log.partition_count());
        let offset = log.append(partition, record);
        Ok(Delivery { partition, offset })
    }

    async fn send_batch(
        &self,
        topic: &str,
        records: Vec<Record>,
    ) -> Vec<Result<Delivery, BusError>> {
        let Some(log) = self.bus.topic(topic) else {
            let missing = || BusError::MissingTopics {
                topics: vec![topic.to_owned()],
            };
            return records.iter().map(|_| Err(missing())).collect();
        };
        let trace_headers = trace::current_headers();
        records
            .into_iter()
            .map(|mut record| {
                trace_headers.apply(&mut record.headers);
                let partition = partition_for_key(&record.key, log.partition_count());
                let offset = log.append(partition, record);
                Ok(Delivery { partition, offset })
            })
            .collect()
    }
}

/// Locks `mutex`, going on after a panic elsewhere: every critical section here leaves the
/// state consistent at each step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}
