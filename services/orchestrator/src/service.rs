//! The orchestrator as a `sinter_runtime::Service`: the gRPC API, and three loops until
//! shutdown: the situation consumer, the escalation timers and the action dispatcher.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::FutureExt;
use prost::Message;
use sinter_bus::Delivered;
use sinter_bus::deadletter::DeadLetters;
use sinter_grpc::GrpcServer;
use sinter_proto::events::v1::{DeadLetter, ReasonCode, Situation, Stage};
use sinter_runtime::{BoxError, Service, Shutdown};
use tracing::Instrument;

use crate::api::OrchestratorApi;
use crate::orchestrator::Orchestrator;
use crate::situations::{Position, SituationBatch};

/// How many due timers or actions one look handles.
const BATCH: usize = 256;

/// How many records already waiting on the bus one transaction applies.
const CONSUME_BATCH: usize = 128;

#[async_trait::async_trait]
impl Service for Orchestrator {
    fn register(&self, server: GrpcServer) -> GrpcServer {
        server.add_service(OrchestratorApi::new(self.clone()).into_server())
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) -> Result<(), BoxError> {
        let timers = tokio::spawn(self.clone().timer_loop(shutdown.clone()));
        let dispatcher = tokio::spawn(self.clone().dispatch_loop(shutdown.clone()));
        let consumed = self.consume(shutdown.clone()).await;
        shutdown.trigger();
        for task in [timers, dispatcher] {
            if let Err(error) = task.await {
                tracing::error!(error = %error, "Orchestrator task failed.");
            }
        }
        self.inner.store.close().await;
        consumed
    }
}

impl Orchestrator {
    /// Fire due timers every tick until shutdown.
    pub async fn timer_loop(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.inner.config.tick);
        loop {
            tokio::select! {
                () = shutdown.clone().wait() => return,
                _ = tick.tick() => {}
            }
            loop {
                match self.fire_due_timers(BATCH).await {
                    Ok(fired) if fired >= BATCH => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(error = %error, "Cannot fire due timers; trying again.");
                        break;
                    }
                }
            }
        }
    }

    /// Deliver pending actions every tick until shutdown.
    pub async fn dispatch_loop(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.inner.config.tick);
        loop {
            tokio::select! {
                () = shutdown.clone().wait() => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.dispatch_due_actions(BATCH).await {
                tracing::warn!(error = %error, "Cannot deliver actions; trying again.");
            }
        }
    }

    /// Consume every Solution's situations until shutdown.
    async fn consume(&self, shutdown: Shutdown) -> Result<(), BoxError> {
        let topics: Vec<String> = self
            .inner
            .solutions
            .values()
            .map(|runtime| runtime.situations_topic.clone())
            .collect();
        if topics.is_empty() {
            shutdown.wait().await;
            return Ok(());
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let group = self.inner.config.consumer_group.clone();
        let mut consumer = self.inner.bus.subscribe(&group, &names).await?;
        let producer = self.inner.bus.producer();
        loop {
            let first = tokio::select! {
                () = shutdown.clone().wait() => break,
                delivered = consumer.recv() => delivered?,
            };
            // Whatever else is already there joins the batch: one transaction for all.
            let mut batch = vec![first];
            while batch.len() < CONSUME_BATCH {
                match consumer.recv().now_or_never() {
                    Some(delivered) => batch.push(delivered?),
                    None => break,
                }
            }
            let span = sinter_bus::trace::consume_span(&batch[0]);
            let started = std::time::Instant::now();
            let outcome = self
                .handle_batch(&batch, &group, producer.clone(), &shutdown)
                .instrument(span)
                .await;
            if outcome.is_none() {
                // Shutdown while the database was unreachable: the records stay
                // unacknowledged and are delivered again.
                break;
            }
            let applied = started.elapsed();
            for delivered in &batch {
                consumer.ack(delivered)?;
            }
            consumer.commit().await?;
            tracing::debug!(
                situations = batch.len(),
                applied_ms = applied.as_secs_f64() * 1e3,
                committed_ms = (started.elapsed() - applied).as_secs_f64() * 1e3,
                "Situations applied and their offsets committed."
            );
        }
        consumer.commit().await?;
        Ok(())
    }

    /// Apply a batch of records, one transaction per Solution; retried while the database
    /// fails. `None` on shutdown before it could be applied.
    async fn handle_batch(
        &self,
        batch: &[Delivered],
        group: &str,
        producer: std::sync::Arc<dyn sinter_bus::Producer>,
        shutdown: &Shutdown,
    ) -> Option<()> {
        let mut by_solution: Vec<(String, SituationBatch)> = Vec::new();
        for delivered in batch {
            let Some(runtime) = self
                .inner
                .solutions
                .values()
                .find(|runtime| runtime.situations_topic == delivered.topic)
            else {
                continue;
            };
            let Some(mut situation) = self
                .decode_or_divert(
                    delivered,
                    &runtime.deadletter_topic,
                    producer.clone(),
                    shutdown,
                )
                .await?
            else {
                continue;
            };
            if situation.trace_id.is_empty() {
                situation.trace_id = trace_id_of(delivered).unwrap_or_default();
            }
            let position = Position {
                group: group.to_owned(),
                topic: delivered.topic.clone(),
                partition: delivered.partition,
                offset: delivered.offset,
            };
            match by_solution
                .iter_mut()
                .find(|(name, _)| *name == runtime.qualified)
            {
                Some((_, items)) => items.push((situation, Some(position))),
                None => {
                    by_solution.push((runtime.qualified.clone(), vec![(situation, Some(position))]))
                }
            }
        }
        for (solution, items) in &by_solution {
            let apply = || self.apply_situations(solution, items);
            let backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(10))
                .without_max_times();
            let result = apply
                .retry(backoff)
                .when(|_| !shutdown.is_triggered())
                .notify(|error, pause| {
                    tracing::warn!(solution = %solution, situations = items.len(),
                        error = %error, retry_in_ms = pause.as_millis(),
                        "Cannot apply situations; retrying.");
                })
                .await;
            if let Err(error) = result {
                tracing::warn!(solution = %solution, error = %error,
                    "Situations not applied before shutdown; they will be delivered again.");
                return None;
            }
        }
        Some(())
    }

    /// The situation in `delivered`, or `Some(None)` once an undecodable record went to the
    /// dead-letter topic; `None` on shutdown while the dead letter could not be sent.
    async fn decode_or_divert(
        &self,
        delivered: &Delivered,
        deadletter_topic: &str,
        producer: std::sync::Arc<dyn sinter_bus::Producer>,
        shutdown: &Shutdown,
    ) -> Option<Option<Situation>> {
        let now = self.inner.clock.now();
        let dead_letters =
            DeadLetters::new(producer, deadletter_topic.to_owned()).with_encoder(move |rejected| {
                let original = rejected.delivered;
                let letter = DeadLetter {
                    id: sinter_core::id::derive(
                        "dl",
                        &[
                            b"orchestrator",
                            original.topic.as_bytes(),
                            original.partition.to_string().as_bytes(),
                            original.offset.to_string().as_bytes(),
                        ],
                    ),
                    stage: Stage::Orchestrator as i32,
                    reason_code: ReasonCode::Undecodable as i32,
                    reason: rejected.reason.to_owned(),
                    original: original.payload.to_vec(),
                    source: original.topic.clone(),
                    source_partition: original.partition,
                    source_offset: original.offset,
                    device_id: String::from_utf8_lossy(&original.key).into_owned(),
                    refused_at: Some(sinter_proto::time::to_proto(now)),
                };
                sinter_bus::Record::new(original.key.clone(), letter.encode_to_vec())
            });
        let decode = |payload: &[u8]| {
            Situation::decode(payload)
                .map_err(|error| format!("not a sinter.events.v1.Situation: {error}"))
        };
        loop {
            match dead_letters.decode_or_divert(delivered, decode).await {
                Ok(decoded) => return Some(decoded),
                Err(error) => {
                    tracing::warn!(error = %error, "Cannot dead-letter a record; retrying.");
                    if shutdown.is_triggered() {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The W3C trace id in `delivered`'s headers, as 32 hex digits.
fn trace_id_of(delivered: &Delivered) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = delivered.trace_context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}
