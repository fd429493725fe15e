//! The ingest pipeline every transport hands its batches to: size and batch limits,
//! validation, dedup, publishing to telemetry, dead-lettering what was refused, and the
//! per-reading results. A batch's answer comes once every reading of it is durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use prost::Message;
use sinter_bus::{BusError, Producer, Record};
use sinter_core::topic::{self, Stream};
use sinter_core::{SharedClock, Solution, Timestamp};
use sinter_proto::events::v1::{ReasonCode, Transport};
use sinter_proto::ingest::v1::{PublishResponse, ReadingInput, ReadingResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::dedup::{self, Claim, Dedup, Ticket};
use crate::metrics::{IngestMetrics, transport_label};
use crate::refusal::Refusal;
use crate::{deadletter, validate};

/// One reading as a transport received it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The reading as parsed, or why it could not be parsed.
    pub input: Result<ReadingInput, Refusal>,
    /// The bytes as they arrived: measured against `spec.ingest.maxReadingBytes` and kept
    /// in its dead letter if it is refused.
    pub original: Original,
}

/// A reading's original bytes.
#[derive(Clone, Debug)]
pub enum Original {
    /// Its text as it arrived (JSON).
    Bytes(Bytes),
    /// Its protobuf encoding, made only when needed (for a dead letter): the parsed input
    /// encodes back to the bytes it was decoded from (fields unknown to this version aside).
    Protobuf { encoded_len: usize },
}

impl Candidate {
    /// A reading that arrived over gRPC: its protobuf encoding is the original.
    pub fn from_proto(input: ReadingInput) -> Self {
        let encoded_len = input.encoded_len();
        Candidate {
            input: Ok(input),
            original: Original::Protobuf { encoded_len },
        }
    }

    /// A reading that arrived as JSON text.
    pub fn from_json(bytes: Bytes) -> Self {
        Candidate {
            input: crate::json::parse_reading(&bytes),
            original: Original::Bytes(bytes),
        }
    }

    /// Something that is not a reading at all, refused as it stands.
    pub fn refused(refusal: Refusal, bytes: Bytes) -> Self {
        Candidate {
            input: Err(refusal),
            original: Original::Bytes(bytes),
        }
    }

    /// The size of the original, in bytes.
    pub fn size(&self) -> usize {
        match &self.original {
            Original::Bytes(bytes) => bytes.len(),
            Original::Protobuf { encoded_len } => *encoded_len,
        }
    }
}

/// A batch of readings for one Solution, from one place.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `<namespace>/<name>`, or `<name>` in the `default` namespace.
    pub solution: String,
    pub transport: Transport,
    /// Where it came from within the transport: gRPC peer, MQTT topic, HTTP path.
    pub source: String,
    pub candidates: Vec<Candidate>,
    /// The sender's W3C trace context (`traceparent`, `tracestate`), if it sent one: the
    /// batch's span joins that trace.
    pub trace_headers: Vec<(String, String)>,
}

/// The W3C trace-context headers among a request's headers, found with `get`.
pub fn trace_headers(get: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| get(name).map(|value| (name.to_owned(), value)))
        .collect()
}

/// How long a batch may wait for room when too many readings are in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// As long as it takes: the caller's flow control slows its sender (gRPC, MQTT).
    Wait,
    /// At most this long, then [`BatchError::Busy`] (HTTP answers 503).
    WaitAtMost(Duration),
}

/// Why a batch as a whole got no answer per reading.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(
        "no Solution {0:?} is served here; name it as <namespace>/<name> (or <name> in the \
         default namespace)"
    )]
    UnknownSolution(String),
    #[error("ingest has too many readings in flight; retry shortly")]
    Busy,
    #[error("the bus did not accept a reading; resend the batch (accepted ones are deduplicated)")]
    Bus(#[source] BusError),
    #[error("an earlier copy of a reading in this batch did not reach the bus; resend the batch")]
    CopyFailed,
    #[error("the bus gave no outcome for a reading; resend the batch")]
    Unreported,
}

/// Settings of the pipeline that are not the Solution's.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// The most readings being published at once, over every transport and Solution.
    pub max_in_flight: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_in_flight: 20_000,
        }
    }
}

/// One served Solution: its model, topics and dedup window.
pub struct SolutionIngest {
    pub solution: Solution,
    pub qualified_name: String,
    pub telemetry_topic: String,
    pub deadletter_topic: String,
    pub dedup: Dedup,
}

/// The pipeline, shared by every transport.
pub struct Ingestor {
    solutions: HashMap<String, Arc<SolutionIngest>>,
    producer: Arc<dyn Producer>,
    clock: SharedClock,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    metrics: IngestMetrics,
}

/// What happened to one reading.
enum Outcome {
    Accepted { reading_id: String },
    Duplicate { reading_id: String },
    Refused(Refusal),
}

impl Ingestor {
    /// A pipeline serving `solutions`, publishing with `producer`.
    pub fn new(
        solutions: &[Solution],
        producer: Arc<dyn Producer>,
        clock: SharedClock,
        config: &PipelineConfig,
    ) -> Self {
        let solutions = solutions
            .iter()
            .map(|solution| {
                let (namespace, name) = (solution.namespace(), solution.name());
                let limits = &solution.spec.ingest;
                let capacity = usize::try_from(limits.dedup_capacity).unwrap_or(usize::MAX);
                let served = SolutionIngest {
                    qualified_name: format!("{namespace}/{name}"),
                    telemetry_topic: topic::name(namespace, name, Stream::Telemetry),
                    deadletter_topic: topic::name(namespace, name, Stream::Deadletter),
                    dedup: Dedup::new(limits.dedup_window, capacity),
                    solution: solution.clone(),
                };
                (served.qualified_name.clone(), Arc::new(served))
            })
            .collect();
        let max_in_flight = config.max_in_flight.max(1);
        Ingestor {
            solutions,
            producer,
            clock,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            metrics: IngestMetrics::new(),
        }
    }

    /// The Solution called `name` (`<namespace>/<name>`, or `<name>` for `default`).
    pub fn solution(&self, name: &str) -> Option<&Arc<SolutionIngest>> {
        match name.contains('/') {
            true => self.solutions.get(name),
            false => self.solutions.get(&format!("default/{name}")),
        }
    }

    /// Every served Solution.
    pub fn solutions(&self) -> impl Iterator<Item = &Arc<SolutionIngest>> {
        self.solutions.values()
    }

    /// The clock readings are judged by.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Handle one batch: every reading is accepted, a duplicate, or refused with a reason
    /// (and dead-lettered). Resolves once every accepted reading and every dead letter is
    /// durable on the bus. `batch_id` is left empty for the caller to fill in.
    pub async fn ingest(
        &self,
        batch: Batch,
        admission: Admission,
    ) -> Result<PublishResponse, BatchError> {
        let span = tracing::info_span!(
            "ingest_batch",
            solution = %batch.solution,
            transport = transport_label(batch.transport),
            source = %batch.source,
            readings = batch.candidates.len(),
        );
        if !batch.trace_headers.is_empty() {
            let carrier: HashMap<String, String> = batch.trace_headers.iter().cloned().collect();
            let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract(&carrier)
            });
            // Fails only without an OpenTelemetry layer: then there is no trace to join.
            let _ = span.set_parent(parent);
        }
        self.ingest_in_span(batch, admission).instrument(span).await
    }

    async fn ingest_in_span(
        &self,
        batch: Batch,
        admission: Admission,
    ) -> Result<PublishResponse, BatchError> {
        let started = Instant::now();
        let Some(served) = self.solution(&batch.solution).cloned() else {
            tracing::warn!(solution = %batch.solution, source = %batch.source,
                "Batch for an unknown Solution refused.");
            return Err(BatchError::UnknownSolution(batch.solution));
        };
        let _permit = self.admit(batch.candidates.len(), admission).await?;
        let now = self.clock.now();
        let limits = &served.solution.spec.ingest;
        let max_batch = usize::try_from(limits.max_batch_readings).unwrap_or(usize::MAX);
        let batch_refusal = (batch.candidates.len() > max_batch).then(|| {
            Refusal::new(
                ReasonCode::BatchTooLarge,
                format!(
                    "the batch has {} readings; at most {max_batch} are allowed \
                     (spec.ingest.maxBatchReadings)",
                    batch.candidates.len()
                ),
            )
        });
        let outcomes = self
            .outcomes(
                &served,
                batch.transport,
                &batch.source,
                batch.candidates,
                batch_refusal.as_ref(),
                now,
            )
            .await;

        let mut response = PublishResponse::default();
        let mut failure = None;
        for (index, outcome) in outcomes.into_iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let result = match outcome {
                Ok(Outcome::Accepted { reading_id }) => {
                    response.accepted += 1;
                    ReadingResult {
                        index,
                        accepted: true,
                        reading_id,
                        ..Default::default()
                    }
                }
                Ok(Outcome::Duplicate { reading_id }) => {
                    response.accepted += 1;
                    response.duplicates += 1;
                    ReadingResult {
                        index,
                        accepted: true,
                        duplicate: true,
                        reading_id,
                        ..Default::default()
                    }
                }
                Ok(Outcome::Refused(refusal)) => {
                    response.refused += 1;
                    self.metrics
                        .refused(&served.qualified_name, batch.transport, refusal.label());
                    ReadingResult {
                        index,
                        reason_code: refusal.code as i32,
                        message: refusal.message,
                        ..Default::default()
                    }
                }
                Err(error) => {
                    failure.get_or_insert(error);
                    continue;
                }
            };
            response.results.push(result);
        }
        let fresh = u64::from(response.accepted - response.duplicates);
        self.metrics
            .accepted(&served.qualified_name, batch.transport, fresh);
        self.metrics.duplicates(
            &served.qualified_name,
            batch.transport,
            u64::from(response.duplicates),
        );
        let elapsed = started.elapsed().as_secs_f64();
        if let Some(error) = failure {
            tracing::warn!(error = %error, source = %batch.source, "Batch not fully delivered.");
            self.metrics
                .batch(&served.qualified_name, batch.transport, "failed", elapsed);
            return Err(error);
        }
        self.metrics
            .batch(&served.qualified_name, batch.transport, "done", elapsed);
        tracing::debug!(
            accepted = response.accepted,
            refused = response.refused,
            duplicates = response.duplicates,
            "Batch ingested."
        );
        Ok(response)
    }

    async fn admit(
        &self,
        readings: usize,
        admission: Admission,
    ) -> Result<OwnedSemaphorePermit, BatchError> {
        let wanted = u32::try_from(readings.clamp(1, self.max_in_flight)).unwrap_or(u32::MAX);
        let acquire = self.in_flight.clone().acquire_many_owned(wanted);
        let acquired = match admission {
            Admission::Wait => acquire.await,
            Admission::WaitAtMost(limit) => match tokio::time::timeout(limit, acquire).await {
                Ok(acquired) => acquired,
                Err(_) => return Err(BatchError::Busy),
            },
        };
        // The semaphore is never closed.
        acquired.map_err(|_| BatchError::Busy)
    }

    /// What becomes of each candidate: checked and claimed one by one, then every accepted
    /// reading and every dead letter sent as one batch each, then the copies of readings
    /// already on their way waited for.
    async fn outcomes(
        &self,
        served: &SolutionIngest,
        transport: Transport,
        source: &str,
        candidates: Vec<Candidate>,
        batch_refusal: Option<&Refusal>,
        now: Timestamp,
    ) -> Vec<Result<Outcome, BatchError>> {
        let mut steps = Vec::with_capacity(candidates.len());
        let mut readings = Vec::with_capacity(candidates.len());
        let mut letters = Vec::new();
        for candidate in candidates {
            let step = match self.check(served, candidate, batch_refusal, now) {
                Err((refusal, letter)) => {
                    let letter = deadletter::record(
                        &refusal,
                        &letter.original,
                        source,
                        &letter.device_hint,
                        now,
                    );
                    letters.push(letter);
                    Step::Refused(refusal)
                }
                Ok(valid) => {
                    let reading_id = valid.id();
                    match served.dedup.claim(&reading_id, now) {
                        Claim::Seen => Step::Done(Outcome::Duplicate { reading_id }),
                        Claim::InFlight(copy) => Step::Copy { copy, reading_id },
                        Claim::Fresh(ticket) => {
                            let device = valid.device_id.clone();
                            let reading =
                                valid.into_reading(reading_id.clone(), now, transport, source);
                            readings.push(Record::new(device, reading.encode_to_vec()));
                            Step::Publish { ticket, reading_id }
                        }
                    }
                }
            };
            steps.push(step);
        }

        let (published, lettered) = futures::join!(
            self.producer.send_batch(&served.telemetry_topic, readings),
            self.producer.send_batch(&served.deadletter_topic, letters),
        );
        let (mut published, mut lettered) = (published.into_iter(), lettered.into_iter());
        // Tickets are settled before any copy is waited for: a copy may wait on a reading of
        // this very batch.
        let settled: Vec<Step> = steps
            .into_iter()
            .map(|step| match step {
                Step::Publish { ticket, reading_id } => match published.next() {
                    Some(Ok(_)) => {
                        ticket.published(now);
                        Step::Done(Outcome::Accepted { reading_id })
                    }
                    Some(Err(error)) => Step::Failed(BatchError::Bus(error)),
                    None => Step::Failed(BatchError::Unreported),
                },
                Step::Refused(refusal) => match lettered.next() {
                    Some(Ok(_)) => Step::Done(Outcome::Refused(refusal)),
                    Some(Err(error)) => Step::Failed(BatchError::Bus(error)),
                    None => Step::Failed(BatchError::Unreported),
                },
                other => other,
            })
            .collect();
        // Only copies of readings on their way need waiting for; the rest are known now.
        let mut outcomes = Vec::with_capacity(settled.len());
        let mut copies = Vec::new();
        for step in settled {
            outcomes.push(match step {
                Step::Done(outcome) => Ok(outcome),
                Step::Failed(error) => Err(error),
                Step::Copy { copy, reading_id } => {
                    copies.push((outcomes.len(), copy, reading_id));
                    Err(BatchError::Unreported)
                }
                Step::Publish { .. } | Step::Refused(_) => Err(BatchError::Unreported),
            });
        }
        let waited = join_all(
            copies
                .into_iter()
                .map(|(index, copy, reading_id)| async move {
                    let outcome = match dedup::wait_for_copy(copy).await {
                        true => Ok(Outcome::Duplicate { reading_id }),
                        false => Err(BatchError::CopyFailed),
                    };
                    (index, outcome)
                }),
        )
        .await;
        for (index, outcome) in waited {
            outcomes[index] = outcome;
        }
        outcomes
    }

    /// Checks one candidate against the limits and the device model: the valid reading, or
    /// the refusal with what its dead letter keeps.
    fn check(
        &self,
        served: &SolutionIngest,
        candidate: Candidate,
        batch_refusal: Option<&Refusal>,
        now: Timestamp,
    ) -> Result<validate::ValidReading, (Refusal, Letter)> {
        let size = candidate.size();
        let Candidate { input, original } = candidate;
        let limits = &served.solution.spec.ingest;
        let checked = match (batch_refusal, input) {
            (Some(refusal), input) => Err((refusal.clone(), input.ok())),
            (None, input) if size as u64 > limits.max_reading_bytes => Err((
                Refusal::new(
                    ReasonCode::TooLarge,
                    format!(
                        "the reading is {} bytes; at most {} are allowed \
                         (spec.ingest.maxReadingBytes)",
                        size, limits.max_reading_bytes
                    ),
                ),
                input.ok(),
            )),
            (None, Err(refusal)) => Err((refusal, None)),
            (None, Ok(input)) => {
                validate::check_owned(input, &served.solution.spec, now).map_err(|refused| {
                    let (refusal, input) = *refused;
                    (refusal, Some(input))
                })
            }
        };
        checked.map_err(|(refusal, input)| {
            let device_hint = input
                .as_ref()
                .map(|i| i.device_id.clone())
                .unwrap_or_default();
            tracing::debug!(device = %device_hint, reason = refusal.label(),
                message = %refusal.message, "Reading refused.");
            let original = match (original, &input) {
                (Original::Bytes(bytes), _) => bytes,
                (Original::Protobuf { .. }, Some(input)) => Bytes::from(input.encode_to_vec()),
                (Original::Protobuf { .. }, None) => Bytes::new(),
            };
            (
                refusal,
                Letter {
                    original,
                    device_hint,
                },
            )
        })
    }
}

/// What a refused reading's dead letter keeps of it.
struct Letter {
    original: Bytes,
    device_hint: String,
}

/// Where one candidate is on its way to its outcome.
enum Step<'a> {
    /// Known already.
    Done(Outcome),
    /// Did not reach the bus.
    Failed(BatchError),
    /// Refused; its dead letter is on its way.
    Refused(Refusal),
    /// Accepted; on its way to telemetry.
    Publish {
        ticket: Ticket<'a>,
        reading_id: String,
    },
    /// A copy of a reading on its way from another batch (or earlier in this one).
    Copy {
        copy: watch::Receiver<Option<bool>>,
        reading_id: String,
    },
}
