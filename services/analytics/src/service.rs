//! The analytics service: consume telemetry, run the core per partition, produce insights,
//! detections and dead letters, checkpoint state with offsets, answer queries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use sinter_bus::{Consumer, Delivered, Producer, Rebalance, Record};
use sinter_core::topic::{self, Stream};
use sinter_core::{SharedClock, Timestamp};
use sinter_proto::events::v1 as pb;
use sinter_runtime::{BoxError, Service, ServiceContext, Shutdown};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, warn};

use crate::convert;
use crate::engine::{Output, PartitionState, Rules, Sample};
use crate::store::{CheckpointStore, StoreError};

/// How the service runs, beyond its context.
#[derive(Clone, Debug)]
pub struct AnalyticsConfig {
    /// Where checkpoints live: `postgres://...` or `sqlite:...`.
    pub database_url: String,
    /// The consumer group on the telemetry topics.
    pub group: String,
    /// Checkpoint after this many records (20,000 by default: a checkpoint copies each
    /// changed partition's whole state, then writes it while records keep flowing)...
    pub checkpoint_every: u64,
    /// ...or this long after the last checkpoint, whichever comes first.
    pub checkpoint_interval: Duration,
    /// How often the silence timers run.
    pub tick_interval: Duration,
}

impl AnalyticsConfig {
    /// Defaults with checkpoints in `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        AnalyticsConfig {
            database_url: database_url.into(),
            group: "sinter-analytics".into(),
            checkpoint_every: 20_000,
            checkpoint_interval: Duration::from_secs(1),
            tick_interval: Duration::from_secs(1),
        }
    }
}

/// Why the service could not be built or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("checkpoint store")]
    Store(#[from] StoreError),
    #[error("bus")]
    Bus(#[from] sinter_bus::BusError),
    #[error("checkpoint task")]
    CheckpointTask(#[from] tokio::task::JoinError),
}

/// The last record handled per topic and partition, not yet acknowledged.
#[derive(Default)]
struct Handled(HashMap<String, HashMap<i32, Delivered>>);

impl Handled {
    /// Remember `delivered` as its partition's latest; allocates only for a new topic.
    fn record(&mut self, delivered: Delivered) {
        match self.0.get_mut(&delivered.topic) {
            Some(partitions) => {
                partitions.insert(delivered.partition, delivered);
            }
            None => {
                let topic = delivered.topic.clone();
                self.0
                    .entry(topic)
                    .or_default()
                    .insert(delivered.partition, delivered);
            }
        }
    }

    fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.0.get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    fn drain(&mut self) -> impl Iterator<Item = Delivered> + '_ {
        self.0
            .values_mut()
            .flat_map(|partitions| partitions.drain().map(|(_, d)| d))
    }
}

/// Changed partitions' state and offsets (topic, partition, next offset, state), and the
/// records that state reflects.
struct Snapshot {
    entries: Vec<(String, i32, i64, PartitionState)>,
    covers: Vec<Delivered>,
}

/// A checkpoint being written: acknowledged once stored.
struct Pending {
    save: JoinHandle<Result<(), StoreError>>,
    covers: Vec<Delivered>,
}

impl Pending {
    /// How the write ended.
    async fn saved(&mut self) -> Result<(), AnalyticsError> {
        Ok((&mut self.save).await??)
    }

    /// How the write in `pending` ended; never, when there is none.
    async fn wait(pending: &mut Option<Pending>) -> Result<(), AnalyticsError> {
        match pending {
            Some(pending) => pending.saved().await,
            None => std::future::pending().await,
        }
    }
}

/// One partition's state and where it is in the topic.
struct Slot {
    state: PartitionState,
    next_offset: i64,
    dirty: bool,
}

/// One Solution as the service runs it.
pub(crate) struct SolutionRun {
    pub(crate) key: String,
    pub(crate) rules: Rules,
    telemetry: String,
    insights: String,
    detections: String,
    deadletter: String,
    partitions: Mutex<HashMap<i32, Slot>>,
}

impl SolutionRun {
    fn slots(&self) -> MutexGuard<'_, HashMap<i32, Slot>> {
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `f` over every partition state held, for queries.
    pub(crate) fn each_state<T>(&self, mut f: impl FnMut(&PartitionState) -> Vec<T>) -> Vec<T> {
        self.slots()
            .values()
            .flat_map(|slot| f(&slot.state))
            .collect()
    }
}

/// What the gRPC API shares with the consuming loop.
pub(crate) struct Shared {
    pub(crate) solutions: Vec<SolutionRun>,
    pub(crate) detections: broadcast::Sender<(String, pb::Detection)>,
}

struct Metrics {
    readings: Counter<u64>,
    late: Counter<u64>,
    detections: Counter<u64>,
    dead_letters: Counter<u64>,
}

impl Metrics {
    fn new() -> Self {
        let meter = opentelemetry::global::meter("sinter-analytics");
        Metrics {
            readings: meter.u64_counter("sinter_analytics_readings").build(),
            late: meter.u64_counter("sinter_analytics_late_readings").build(),
            detections: meter.u64_counter("sinter_analytics_detections").build(),
            dead_letters: meter.u64_counter("sinter_analytics_dead_letters").build(),
        }
    }
}

/// The analytics service, built from a [`ServiceContext`].
pub struct Analytics {
    shared: Arc<Shared>,
    bus: Arc<dyn sinter_bus::Bus>,
    producer: Arc<dyn Producer>,
    clock: SharedClock,
    store: CheckpointStore,
    config: AnalyticsConfig,
}

impl Analytics {
    /// Build the service for every Solution of `context`.
    pub async fn build(
        context: &ServiceContext,
        config: AnalyticsConfig,
    ) -> Result<Self, AnalyticsError> {
        let store = CheckpointStore::connect(&config.database_url).await?;
        let solutions = context
            .solutions
            .iter()
            .map(|solution| {
                let name = |stream| topic::name(solution.namespace(), solution.name(), stream);
                SolutionRun {
                    key: format!("{}/{}", solution.namespace(), solution.name()),
                    rules: Rules::new(
                        format!("{}/{}", solution.namespace(), solution.name()),
                        &solution.spec.analytics,
                    ),
                    telemetry: name(Stream::Telemetry),
                    insights: name(Stream::Insights),
                    detections: name(Stream::Detections),
                    deadletter: name(Stream::Deadletter),
                    partitions: Mutex::new(HashMap::new()),
                }
            })
            .collect();
        let (detections, _) = broadcast::channel(1024);
        Ok(Analytics {
            shared: Arc::new(Shared {
                solutions,
                detections,
            }),
            producer: context.bus.producer(),
            bus: context.bus.clone(),
            clock: context.clock.clone(),
            store,
            config,
        })
    }

    /// The gRPC API over this service's state.
    pub fn api(&self) -> crate::api::AnalyticsApi {
        crate::api::AnalyticsApi::new(self.shared.clone())
    }

    async fn send(&self, topic: &str, record: Record) -> Result<(), AnalyticsError> {
        self.producer.send(topic, record).await?;
        Ok(())
    }

    /// Handle one delivered record. Returns whether anything changed.
    async fn handle(&self, metrics: &Metrics, delivered: &Delivered) -> Result<(), AnalyticsError> {
        let Some(index) = self
            .shared
            .solutions
            .iter()
            .position(|s| s.telemetry == delivered.topic)
        else {
            return Ok(());
        };
        let run = &self.shared.solutions[index];
        self.ensure_loaded(run, delivered).await?;
        let now = self.clock.now();
        let decoded = match convert::decode_reading(&delivered.payload) {
            Ok(decoded) => decoded,
            Err(reason) => {
                metrics
                    .dead_letters
                    .add(1, &[KeyValue::new("reason", "undecodable")]);
                warn!(
                    topic = %delivered.topic,
                    offset = delivered.offset,
                    %reason,
                    "Telemetry record dead-lettered."
                );
                self.send(
                    &run.deadletter,
                    convert::undecodable_record(delivered, &reason, now),
                )
                .await?;
                self.advance(run, delivered);
                return Ok(());
            }
        };
        let outputs = {
            let mut slots = run.slots();
            let Some(slot) = slots.get_mut(&delivered.partition) else {
                return Ok(());
            };
            if delivered.offset < slot.next_offset {
                // Already reflected in the checkpointed state: a redelivery after a restart.
                return Ok(());
            }
            let sample = Sample {
                device_id: &decoded.device_id,
                device_type: &decoded.device_type,
                metric: &decoded.metric,
                value: &decoded.value,
                event_time: decoded.event_time,
            };
            slot.state.ingest(&run.rules, sample, now)
        };
        metrics.readings.add(1, &[]);
        self.emit(run, metrics, outputs, Some(delivered), now)
            .await?;
        self.advance(run, delivered);
        Ok(())
    }

    fn advance(&self, run: &SolutionRun, delivered: &Delivered) {
        if let Some(slot) = run.slots().get_mut(&delivered.partition) {
            slot.next_offset = slot.next_offset.max(delivered.offset + 1);
            slot.dirty = true;
        }
    }

    async fn emit(
        &self,
        run: &SolutionRun,
        metrics: &Metrics,
        outputs: Vec<Output>,
        delivered: Option<&Delivered>,
        now: Timestamp,
    ) -> Result<(), AnalyticsError> {
        for output in outputs {
            match output {
                Output::Insight(insight) => {
                    self.send(&run.insights, convert::insight_record(&insight))
                        .await?;
                }
                Output::Detection(detection) => {
                    let message = convert::detection(&detection);
                    metrics.detections.add(
                        1,
                        &[
                            KeyValue::new("detector", detection.detector),
                            KeyValue::new(
                                "transition",
                                if detection.raised {
                                    "raised"
                                } else {
                                    "cleared"
                                },
                            ),
                        ],
                    );
                    info!(
                        device_id = %detection.device_id,
                        metric = %detection.metric,
                        detector = %detection.detector_name,
                        incident_id = %detection.incident_id,
                        raised = detection.raised,
                        "Detection."
                    );
                    let record = Record::new(
                        detection.device_id.clone().into_bytes(),
                        prost::Message::encode_to_vec(&message),
                    );
                    self.send(&run.detections, record).await?;
                    let _ = self.shared.detections.send((run.key.clone(), message));
                }
                Output::Late(late) => {
                    metrics.late.add(1, &[]);
                    if let Some(delivered) = delivered {
                        metrics
                            .dead_letters
                            .add(1, &[KeyValue::new("reason", "late")]);
                        self.send(&run.deadletter, convert::late_record(&late, delivered, now))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Load a partition's checkpoint the first time one of its records is seen.
    async fn ensure_loaded(
        &self,
        run: &SolutionRun,
        delivered: &Delivered,
    ) -> Result<(), AnalyticsError> {
        let partition = delivered.partition;
        if run.slots().contains_key(&partition) {
            return Ok(());
        }
        let checkpoint = self
            .store
            .load(&self.config.group, &run.telemetry, partition)
            .await?;
        let slot = match checkpoint {
            Some(checkpoint) => {
                info!(
                    topic = %run.telemetry,
                    partition,
                    next_offset = checkpoint.next_offset,
                    first_offset = delivered.offset,
                    "Partition state restored."
                );
                let missing = delivered.offset - checkpoint.next_offset;
                if missing > 0 {
                    // The bus resumes at or before the checkpoint; past it, a broker or
                    // retention has lost records that the restored state never saw.
                    warn!(
                        partition,
                        missing, "Records after the partition's checkpoint were never delivered."
                    );
                }
                Slot {
                    state: checkpoint.state,
                    next_offset: checkpoint.next_offset,
                    dirty: false,
                }
            }
            None => Slot {
                state: PartitionState::default(),
                next_offset: 0,
                dirty: false,
            },
        };
        run.slots().entry(partition).or_insert(slot);
        Ok(())
    }

    /// Take every changed partition's state and offset, and the records they reflect.
    /// Partitions in `drop` are let go of after their state is taken.
    fn snapshot(&self, handled: &mut Handled, drop: &[(String, i32)]) -> Snapshot {
        let mut entries = Vec::new();
        for run in &self.shared.solutions {
            let mut slots = run.slots();
            for (partition, slot) in slots.iter_mut().filter(|(_, slot)| slot.dirty) {
                slot.dirty = false;
                entries.push((
                    run.telemetry.clone(),
                    *partition,
                    slot.next_offset,
                    slot.state.clone(),
                ));
            }
            for (topic, partition) in drop {
                if *topic == run.telemetry {
                    slots.remove(partition);
                }
            }
        }
        // Revoked partitions are no longer this consumer's to acknowledge.
        for (topic, partition) in drop {
            handled.forget(topic, *partition);
        }
        Snapshot {
            entries,
            covers: handled.drain().collect(),
        }
    }

    /// Write a snapshot in the background, so that records keep flowing meanwhile.
    fn start_checkpoint(&self, snapshot: Snapshot) -> Pending {
        let store = self.store.clone();
        let group = self.config.group.clone();
        let Snapshot { entries, covers } = snapshot;
        let save = tokio::spawn(async move {
            let rows: Vec<(&str, i32, i64, &PartitionState)> = entries
                .iter()
                .map(|(topic, partition, offset, state)| {
                    (topic.as_str(), *partition, *offset, state)
                })
                .collect();
            store.save(&group, &rows).await?;
            for (topic, partition, next_offset, _) in &entries {
                debug!(%topic, partition, next_offset, "Checkpoint saved.");
            }
            Ok(())
        });
        Pending { save, covers }
    }

    /// Once a checkpoint is stored, acknowledge the records it reflects and commit them,
    /// except those of partitions in `drop`, which another member may own by now.
    async fn finish_checkpoint(
        consumer: &mut dyn Consumer,
        saved: Result<(), AnalyticsError>,
        covers: Vec<Delivered>,
        drop: &[(String, i32)],
    ) -> Result<(), AnalyticsError> {
        saved?;
        for delivered in covers {
            if drop.iter().any(|(topic, partition)| {
                *topic == delivered.topic && *partition == delivered.partition
            }) {
                continue;
            }
            debug!(
                topic = %delivered.topic,
                partition = delivered.partition,
                next_offset = delivered.offset + 1,
                "Offset acknowledged."
            );
            consumer.ack(&delivered)?;
        }
        consumer.commit().await?;
        Ok(())
    }

    /// Store every changed partition with its offset, then commit the consumer, all before
    /// returning: after the one in the background (if any) is done.
    // Limitation: a partition's whole state is written at each checkpoint, and the table
    // has no fencing: an instance that lost a partition and saves after its new owner did
    // would overwrite the newer state. Revoked partitions are saved when the bus reports
    // the revocation, which may come after the new owner has loaded them.
    async fn checkpoint(
        &self,
        consumer: &mut dyn Consumer,
        handled: &mut Handled,
        pending: &mut Option<Pending>,
        drop: &[(String, i32)],
    ) -> Result<(), AnalyticsError> {
        if let Some(mut earlier) = pending.take() {
            let saved = earlier.saved().await;
            Self::finish_checkpoint(consumer, saved, earlier.covers, drop).await?;
        }
        let mut current = self.start_checkpoint(self.snapshot(handled, drop));
        let saved = current.saved().await;
        Self::finish_checkpoint(consumer, saved, current.covers, drop).await
    }

    // Limitation: after the service itself was down longer than a silence's `after`, the
    // timer may raise for devices whose readings are still waiting on the topic.
    async fn tick(&self, metrics: &Metrics) -> Result<(), AnalyticsError> {
        let now = self.clock.now();
        for run in &self.shared.solutions {
            let outputs: Vec<Output> = run
                .slots()
                .values_mut()
                .flat_map(|slot| {
                    let out = slot.state.tick(&run.rules, now);
                    if !out.is_empty() {
                        slot.dirty = true;
                    }
                    out
                })
                .collect();
            self.emit(run, metrics, outputs, None, now).await?;
        }
        Ok(())
    }

    async fn consume(self: Box<Self>, shutdown: Shutdown) -> Result<(), AnalyticsError> {
        let topics: Vec<&str> = self
            .shared
            .solutions
            .iter()
            .map(|s| s.telemetry.as_str())
            .collect();
        let mut consumer = self.bus.subscribe(&self.config.group, &topics).await?;
        let mut rebalances = consumer.rebalances();
        let metrics = Metrics::new();
        let mut tick = tokio::time::interval(self.config.tick_interval);
        let mut checkpoint = tokio::time::interval(self.config.checkpoint_interval);
        let mut since_checkpoint = 0u64;
        // The last record handled per partition, acknowledged only once a checkpoint holds
        // the state it produced: the committed offset never runs ahead of the stored state,
        // so a crash between checkpoints redoes those records instead of losing them.
        let mut handled = Handled::default();
        // At most one checkpoint is written at a time, in the background.
        let mut pending: Option<Pending> = None;
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                saved = Pending::wait(&mut pending) => {
                    let covers = pending.take().map(|done| done.covers).unwrap_or_default();
                    Self::finish_checkpoint(consumer.as_mut(), saved, covers, &[]).await?;
                }
                delivered = consumer.recv() => {
                    let delivered = delivered?;
                    let span = sinter_bus::trace::consume_span(&delivered);
                    self.handle(&metrics, &delivered).instrument(span).await?;
                    handled.record(delivered);
                    since_checkpoint += 1;
                    if since_checkpoint >= self.config.checkpoint_every && pending.is_none() {
                        pending = Some(self.start_checkpoint(self.snapshot(&mut handled, &[])));
                        since_checkpoint = 0;
                    }
                }
                _ = tick.tick() => self.tick(&metrics).await?,
                _ = checkpoint.tick() => {
                    if since_checkpoint > 0 && pending.is_none() {
                        pending = Some(self.start_checkpoint(self.snapshot(&mut handled, &[])));
                        since_checkpoint = 0;
                    }
                }
                rebalance = rebalances.recv() => {
                    if let Ok(Rebalance::Revoked(partitions)) = rebalance {
                        let drop: Vec<(String, i32)> =
                            partitions.into_iter().map(|tp| (tp.topic, tp.partition)).collect();
                        self.checkpoint(consumer.as_mut(), &mut handled, &mut pending, &drop)
                            .await?;
                        since_checkpoint = 0;
                    }
                }
            }
        }
        self.checkpoint(consumer.as_mut(), &mut handled, &mut pending, &[])
            .await?;
        info!("Analytics stopped; state checkpointed.");
        Ok(())
    }
}

#[async_trait::async_trait]
impl Service for Analytics {
    fn register(&self, server: sinter_grpc::GrpcServer) -> sinter_grpc::GrpcServer {
        server.add_service(self.api().into_server())
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) -> Result<(), BoxError> {
        self.consume(shutdown)
            .await
            .map_err(|error| Box::new(error) as BoxError)
    }
}
