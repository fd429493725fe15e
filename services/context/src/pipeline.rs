//! The enrichment loop of one Solution: detections in, situations out, undecodable
//! records to the dead-letter topic; an offset is acknowledged once its situation (or
//! dead letter) is on the bus.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use prost::Message;
use sinter_bus::deadletter::DeadLetters;
use sinter_bus::{Bus, BusError, Consumer, Delivered, Producer, Record};
use sinter_core::SharedClock;
use sinter_core::topic::Stream;
use sinter_proto::events::v1::{DeadLetter, Detection, ReasonCode, Stage};
use sinter_runtime::Shutdown;
use tracing::Instrument;

use crate::enrich::{Enricher, SolutionContext};

/// What every consumer group of the context service starts with.
pub const CONSUMER_GROUP_PREFIX: &str = "sinter-context";

/// The consumer group of one Solution's loop: `sinter-context.<namespace>.<solution>`.
///
/// One group per Solution, so adding, removing or restarting one Solution's loop
/// rebalances only that Solution, and its offsets can be inspected or reset alone.
pub fn consumer_group(namespace: &str, solution: &str) -> String {
    format!("{CONSUMER_GROUP_PREFIX}.{namespace}.{solution}")
}

/// Acknowledged offsets are committed at least this often.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Why the loop stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("the bus failed")]
    Bus(#[from] BusError),
}

/// Situations sent and not yet confirmed at most; records are acknowledged in order as
/// their sends complete.
const MAX_IN_FLIGHT: usize = 512;

/// A record's outcome once its situation (if any) is on the bus.
type Outcome = futures::future::BoxFuture<'static, (Delivered, Result<(), BusError>)>;

/// Consume `<solution>.detections` until shutdown.
pub async fn run(
    bus: Arc<dyn Bus>,
    enricher: Enricher,
    solution: SolutionContext,
    clock: SharedClock,
    shutdown: Shutdown,
) -> Result<(), PipelineError> {
    let topic = |stream| sinter_core::topic::name(&solution.namespace, &solution.name, stream);
    let detections = topic(Stream::Detections);
    let situations: Arc<str> = topic(Stream::Situations).into();
    let deadletter = topic(Stream::Deadletter);
    let group = consumer_group(&solution.namespace, &solution.name);
    let mut consumer = bus.subscribe(&group, &[detections.as_str()]).await?;
    let producer = bus.producer();
    let step = Step {
        undecodable: dead_letters(&producer, &deadletter, &clock, ReasonCode::Undecodable),
        incomplete: dead_letters(&producer, &deadletter, &clock, ReasonCode::MissingField),
        enricher: &enricher,
        solution: &solution,
        producer: producer.clone(),
        situations,
        shutdown: &shutdown,
    };
    tracing::info!(topic = %detections, group = %group, "Enriching detections.");
    let mut in_flight: FuturesOrdered<Outcome> = FuturesOrdered::new();
    let mut last_commit = tokio::time::Instant::now();
    let result = loop {
        tokio::select! {
            biased;
            () = shutdown.clone().wait() => break Ok(()),
            Some((delivered, sent)) = in_flight.next(), if !in_flight.is_empty() => {
                if let Err(error) = sent {
                    break Err(error.into());
                }
                if let Err(error) = consumer.ack(&delivered) {
                    break Err(error.into());
                }
                if last_commit.elapsed() >= COMMIT_EVERY {
                    if let Err(error) = consumer.commit().await {
                        break Err(error.into());
                    }
                    last_commit = tokio::time::Instant::now();
                }
            }
            delivered = consumer.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let delivered = match delivered {
                    Ok(delivered) => delivered,
                    Err(error) => break Err(error.into()),
                };
                let span = sinter_bus::trace::consume_span(&delivered);
                match step.handle(delivered).instrument(span).await {
                    Ok(Some(outcome)) => in_flight.push_back(outcome),
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(error.into()),
                }
            }
        }
    };
    // What was sent is acknowledged, so a restart does not redo it.
    while let Some((delivered, sent)) = in_flight.next().await {
        if sent.is_err() || consumer.ack(&delivered).is_err() {
            break;
        }
    }
    commit_on_exit(consumer.as_mut()).await;
    result
}

async fn commit_on_exit(consumer: &mut dyn Consumer) {
    if let Err(error) = consumer.commit().await {
        tracing::warn!(error = %error, "Cannot commit offsets on shutdown; they will be redone.");
    }
}

struct Step<'a> {
    enricher: &'a Enricher,
    solution: &'a SolutionContext,
    producer: Arc<dyn Producer>,
    situations: Arc<str>,
    undecodable: DeadLetters,
    incomplete: DeadLetters,
    shutdown: &'a Shutdown,
}

impl Step<'_> {
    /// Deal with one record: the future that completes once its situation is on the bus
    /// (dead letters are sent before returning); `None` when shutdown came first.
    async fn handle(&self, delivered: Delivered) -> Result<Option<Outcome>, BusError> {
        let decoded = self
            .undecodable
            .decode_or_divert(&delivered, |payload: &[u8]| Detection::decode(payload))
            .await?;
        let Some(detection) = decoded else {
            self.enricher.metrics().dead_letter("undecodable");
            return Ok(Some(Box::pin(async move { (delivered, Ok(())) })));
        };
        if let Some(field) = missing_field(&detection) {
            self.incomplete
                .divert(&delivered, &format!("detection.{field}: is required"))
                .await?;
            self.enricher.metrics().dead_letter("missing_field");
            return Ok(Some(Box::pin(async move { (delivered, Ok(())) })));
        }
        let enrich = || {
            self.enricher
                .enrich_encoded(self.solution, &detection, &delivered.payload)
        };
        let situation = tokio::select! {
            () = self.shutdown.clone().wait() => return Ok(None),
            situation = enrich
                .retry(registry_backoff())
                .notify(|error, pause| {
                    tracing::warn!(error = %error, retry_in_ms = pause.as_millis(),
                        "Registry not readable; retrying the detection.");
                }) => situation,
        };
        let Ok(situation) = situation else {
            return Ok(None);
        };
        let record = Record::new(detection.device_id.clone(), situation);
        let producer = self.producer.clone();
        let topic = self.situations.clone();
        // The send runs later, outside this call: it keeps the detection's span, so the
        // situation's headers carry the detection's trace.
        let span = tracing::Span::current();
        Ok(Some(Box::pin(
            async move {
                let send = || producer.send(&topic, record.clone());
                let sent = send
                    .retry(bus_backoff())
                    .notify(|error, pause| {
                        tracing::warn!(error = %error, retry_in_ms = pause.as_millis(),
                            "Cannot publish a situation; retrying.");
                    })
                    .await
                    .map(|_| ());
                (delivered, sent)
            }
            .instrument(span),
        )))
    }
}

fn missing_field(detection: &Detection) -> Option<&'static str> {
    if detection.id.is_empty() {
        Some("id")
    } else if detection.device_id.is_empty() {
        Some("device_id")
    } else {
        None
    }
}

fn registry_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
}

fn bus_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(8)
}

/// Dead letters as Sinter's `DeadLetter` message, with `code` as their reason code.
fn dead_letters(
    producer: &Arc<dyn Producer>,
    topic: &str,
    clock: &SharedClock,
    code: ReasonCode,
) -> DeadLetters {
    let clock = clock.clone();
    DeadLetters::new(producer.clone(), topic).with_encoder(move |rejected| {
        let original = rejected.delivered;
        let id = sinter_core::id::derive(
            "dl",
            &[
                b"context",
                original.topic.as_bytes(),
                &original.partition.to_be_bytes(),
                &original.offset.to_be_bytes(),
            ],
        );
        let letter = DeadLetter {
            id,
            stage: Stage::Context as i32,
            reason_code: code as i32,
            reason: rejected.reason.to_owned(),
            original: original.payload.to_vec(),
            source: original.topic.clone(),
            source_partition: original.partition,
            source_offset: original.offset,
            device_id: String::from_utf8_lossy(&original.key).into_owned(),
            refused_at: Some(sinter_proto::time::to_proto(clock.now())),
        };
        Record::new(original.key.clone(), letter.encode_to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_named_after_the_solution() {
        assert_eq!(
            consumer_group("plant", "pump-health"),
            "sinter-context.plant.pump-health"
        );
    }
}
