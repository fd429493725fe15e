//! The Kafka producer: idempotent, acks from all replicas, resolved on the delivery report.
//!
//! Records go straight into librdkafka's queue; its polling thread hands each delivery
//! report to the record's [`Report`]: a channel for a lone record, a shared slot table for
//! a batch, whose sender wakes once when the last report of the batch is in.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use tokio::sync::oneshot;

use super::context::LogContext;
use super::{KafkaConfig, millis};
use crate::{BusError, Delivery, Headers, Producer, Record, trace};

/// How long a send waits for room in librdkafka's queue before it fails.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a send waits before trying a full queue again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// The bus's one Kafka producer.
pub(crate) struct KafkaProducer {
    inner: ThreadedProducer<ReportContext>,
}

impl KafkaProducer {
    /// Creates the producer; it connects lazily.
    pub(crate) fn create(config: &KafkaConfig) -> Result<Self, BusError> {
        let mut client_config = config.client_config();
        client_config
            // Kafka's Java default for keyed records, so both buses place a key alike.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", millis(config.linger))
            .set("message.timeout.ms", millis(config.delivery_timeout));
        let client_config = config
            .override_with_properties(&mut client_config)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Topics are created on purpose (ensure_topic, the operator), never by a typo.
            .set("allow.auto.create.topics", "false");
        let context = ReportContext {
            log: LogContext::new("producer"),
        };
        let inner = ThreadedProducer::from_config_and_context(client_config, context)
            .map_err(BusError::creation("producer creation"))?;
        Ok(Self { inner })
    }

    /// Puts `record` in librdkafka's queue with `report` to hear its delivery; waits while
    /// the queue is full, up to [`QUEUE_FULL_TIMEOUT`] from `started`.
    async fn enqueue(
        &self,
        topic: &str,
        record: &Record,
        headers: Option<&OwnedHeaders>,
        report: Box<Report>,
        started: Instant,
    ) -> Result<(), (KafkaError, Box<Report>)> {
        let mut outgoing = BaseRecord::with_opaque_to(topic, report)
            .key(&record.key[..])
            .payload(&record.payload[..]);
        if let Some(headers) = headers {
            outgoing = outgoing.headers(headers.clone());
        }
        if let Some(millis) = record.timestamp.and_then(epoch_millis) {
            outgoing = outgoing.timestamp(millis);
        }
        loop {
            match self.inner.send(outgoing) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < QUEUE_FULL_TIMEOUT =>
                {
                    outgoing = back;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((error, back)) => return Err((error, back.delivery_opaque)),
            }
        }
    }
}

#[async_trait]
impl Producer for KafkaProducer {
    async fn send(&self, topic: &str, mut record: Record) -> Result<Delivery, BusError> {
        trace::inject_current_context(&mut record.headers);
        let headers = kafka_headers(&record.headers);
        let (sender, receiver) = oneshot::channel();
        let report = Box::new(Report::One(sender));
        let failed = |source| BusError::Delivery {
            topic: topic.to_owned(),
            source,
        };
        if let Err((error, _)) = self
            .enqueue(topic, &record, headers.as_ref(), report, Instant::now())
            .await
        {
            return Err(failed(error));
        }
        match receiver.await {
            Ok(outcome) => outcome.map_err(failed),
            // The producer went away with the record still queued.
            Err(_) => Err(failed(KafkaError::Canceled)),
        }
    }

    async fn send_batch(
        &self,
        topic: &str,
        records: Vec<Record>,
    ) -> Vec<Result<Delivery, BusError>> {
        if records.is_empty() {
            return Vec::new();
        }
        let trace_headers = trace::current_headers();
        let (done, finished) = oneshot::channel();
        let batch = Arc::new(BatchReports::new(records.len(), done));
        let started = Instant::now();
        let mut last_headers: Option<(Headers, OwnedHeaders)> = None;
        for (index, mut record) in records.into_iter().enumerate() {
            trace_headers.apply(&mut record.headers);
            // Records of one batch usually carry the same headers: convert them once.
            if record.headers.is_empty() {
                last_headers = None;
            } else if last_headers
                .as_ref()
                .is_none_or(|(same, _)| *same != record.headers)
            {
                last_headers = kafka_headers(&record.headers)
                    .map(|converted| (record.headers.clone(), converted));
            }
            let headers = last_headers.as_ref().map(|(_, converted)| converted);
            let report = Box::new(Report::Slot {
                batch: batch.clone(),
                index,
            });
            if let Err((error, report)) =
                self.enqueue(topic, &record, headers, report, started).await
            {
                report.settle(Err(error));
            }
        }
        // Every record's report arrives once, from the polling thread or a failed enqueue.
        let _ = finished.await;
        batch.take(topic)
    }
}

/// Where one record's delivery report goes.
enum Report {
    /// A lone record's sender.
    One(oneshot::Sender<Result<Delivery, KafkaError>>),
    /// Slot `index` of a batch.
    Slot {
        batch: Arc<BatchReports>,
        index: usize,
    },
}

impl Report {
    fn settle(self, outcome: Result<Delivery, KafkaError>) {
        match self {
            // The sender stopped waiting: nobody is left to tell.
            Report::One(sender) => drop(sender.send(outcome)),
            Report::Slot { batch, index } => batch.settle(index, outcome),
        }
    }
}

/// The delivery reports of one batch, in the order its records were given.
struct BatchReports {
    state: Mutex<BatchState>,
}

struct BatchState {
    outcomes: Vec<Option<Result<Delivery, KafkaError>>>,
    waiting: usize,
    done: Option<oneshot::Sender<()>>,
}

impl BatchReports {
    fn new(records: usize, done: oneshot::Sender<()>) -> Self {
        BatchReports {
            state: Mutex::new(BatchState {
                outcomes: (0..records).map(|_| None).collect(),
                waiting: records,
                done: Some(done),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle(&self, index: usize, outcome: Result<Delivery, KafkaError>) {
        let mut state = self.lock();
        if let Some(slot) = state.outcomes.get_mut(index)
            && slot.is_none()
        {
            *slot = Some(outcome);
            state.waiting -= 1;
        }
        if state.waiting == 0
            && let Some(done) = state.done.take()
        {
            drop(state);
            let _ = done.send(());
        }
    }

    /// The outcomes; a slot with no report (the producer closed first) is a cancelled send.
    fn take(&self, topic: &str) -> Vec<Result<Delivery, BusError>> {
        let outcomes = std::mem::take(&mut self.lock().outcomes);
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome
                    .unwrap_or(Err(KafkaError::Canceled))
                    .map_err(|source| BusError::Delivery {
                        topic: topic.to_owned(),
                        source,
                    })
            })
            .collect()
    }
}

/// The producer's librdkafka context: logs like every client, and passes each delivery
/// report to its record's [`Report`].
struct ReportContext {
    log: LogContext,
}

impl ClientContext for ReportContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        self.log.stats_raw(statistics);
    }
}

impl ProducerContext for ReportContext {
    type DeliveryOpaque = Box<Report>;

    fn delivery(&self, result: &DeliveryResult<'_>, report: Box<Report>) {
        let outcome = match result {
            Ok(message) => Ok(Delivery {
                partition: message.partition(),
                offset: message.offset(),
            }),
            Err((error, _)) => Err(error.clone()),
        };
        report.settle(outcome);
    }
}

/// `headers` for librdkafka; none for a record without headers.
fn kafka_headers(headers: &Headers) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    Some(headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |kafka, header| {
            kafka.insert(KafkaHeader {
                key: &header.name,
                value: Some(&header.value[..]),
            })
        },
    ))
}

fn epoch_millis(time: SystemTime) -> Option<i64> {
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_millis()).ok()
}
