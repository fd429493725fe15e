//! Delivering the outbox: webhooks over HTTP and records on `<solution>.actions`, retried
//! with exponential backoff, parked with their error after the last attempt.
//!
//! A dispatcher first *claims* an entry (moves its next attempt past a lease, by the
//! Clock), then delivers it and marks it delivered. A crash between delivery and marking
//! delivers it again once the lease ran out: webhooks carry the action id as their
//! `Idempotency-Key` header and topic records carry it as their id, so the receiver sees
//! the same action once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use prost::Message;
use sinter_bus::Record;
use sinter_core::Timestamp;
use sinter_proto::events::v1::Action;
use sinter_proto::orchestrator::v1::ParkedAction;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::OrchestratorError;
use crate::orchestrator::Orchestrator;
use crate::outbox::{DELIVERED, KIND_TOPIC, KIND_WEBHOOK, PARKED, PENDING};
use crate::store::StoreError;

/// The header carrying the action id on every webhook.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// How many entries one dispatcher delivers at once.
const PARALLEL_DELIVERIES: usize = 16;

/// One entry of the outbox.
#[derive(Clone, Debug)]
pub struct OutboxEntry {
    pub id: String,
    pub recommendation_id: String,
    pub solution: String,
    pub kind: String,
    pub target: String,
    pub secret_header: String,
    pub secret_ref: String,
    pub action: Action,
    pub state: String,
    pub attempts: i64,
    pub last_error: String,
    pub parked_at: Option<i64>,
}

const OUTBOX_COLUMNS: &str = "id, recommendation_id, solution, kind, target, secret_header, \
     secret_ref, action, state, attempts, last_error, parked_at";

impl OutboxEntry {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let id: String = row.try_get("id")?;
        let bytes: Vec<u8> = row.try_get("action")?;
        let action = Action::decode(bytes.as_slice()).map_err(|source| StoreError::Corrupt {
            what: "action",
            id: id.clone(),
            source,
        })?;
        Ok(OutboxEntry {
            id,
            recommendation_id: row.try_get("recommendation_id")?,
            solution: row.try_get("solution")?,
            kind: row.try_get("kind")?,
            target: row.try_get("target")?,
            secret_header: row.try_get("secret_header")?,
            secret_ref: row.try_get("secret_ref")?,
            action,
            state: row.try_get("state")?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            parked_at: row.try_get("parked_at")?,
        })
    }

    /// As the API shows a parked action.
    pub fn to_parked(&self) -> ParkedAction {
        ParkedAction {
            id: self.id.clone(),
            recommendation_id: self.recommendation_id.clone(),
            kind: self.kind.clone(),
            target: self.target.clone(),
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_error: self.last_error.clone(),
            parked_at: self
                .parked_at
                .map(|at| sinter_proto::time::to_proto(Timestamp::from_micros(at))),
            action: Some(self.action.clone()),
        }
    }
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    /// Worth another attempt: the receiver or the network may recover.
    #[error("{0}")]
    Transient(String),
    /// Another attempt would fail the same way.
    #[error("{0}")]
    Permanent(String),
}

impl DeliveryError {
    fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Transient(_))
    }
}

/// Why an action id could not be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("no action {0}")]
    NotFound(String),
    #[error("action {id} is {state}, not parked; only a parked action can be retried")]
    NotParked { id: String, state: String },
    #[error(transparent)]
    Orchestrator(#[from] OrchestratorError),
}

impl Orchestrator {
    /// Deliver every outbox entry due by the Clock, at most `limit`; returns how many were
    /// delivered (the others are parked or wait for their lease).
    pub async fn dispatch_due_actions(&self, limit: usize) -> Result<usize, OrchestratorError> {
        let now = self.inner.clock.now();
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM action_outbox WHERE state = '{PENDING}' \
             AND next_attempt_at <= $1 ORDER BY created_at, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(now.as_micros())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.inner.store.pool())
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            entries.push(OutboxEntry::from_row(row)?);
        }
        let results: Vec<Result<bool, OrchestratorError>> = futures::stream::iter(entries)
            .map(|entry| self.dispatch_one(entry, now))
            .buffer_unordered(PARALLEL_DELIVERIES)
            .collect()
            .await;
        let mut delivered = 0;
        for result in results {
            if result? {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    async fn dispatch_one(
        &self,
        entry: OutboxEntry,
        now: Timestamp,
    ) -> Result<bool, OrchestratorError> {
        let lease_until = now.saturating_add(self.inner.config.delivery.lease);
        let claimed = sqlx::query(&format!(
            "UPDATE action_outbox SET next_attempt_at = $1 WHERE id = $2 \
             AND state = '{PENDING}' AND next_attempt_at <= $3"
        ))
        .bind(lease_until.as_micros())
        .bind(&entry.id)
        .bind(now.as_micros())
        .execute(self.inner.store.pool())
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            return Ok(false);
        }
        // Limitation: the pauses between attempts are wall-clock (tokio) pauses, not Clock
        // time; only the lease follows the Clock.
        let policy = &self.inner.config.delivery;
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = attempts.clone();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.attempts.saturating_sub(1));
        let attempt = || async {
            counter.fetch_add(1, Ordering::SeqCst);
            self.deliver(&entry).await
        };
        let outcome = attempt
            .retry(backoff)
            .when(DeliveryError::is_transient)
            .notify(|error, pause| {
                tracing::warn!(action = %entry.id, kind = %entry.kind, error = %error,
                    retry_in_ms = pause.as_millis(), "Action delivery failed; retrying.");
            })
            .await;
        let tried = i64::try_from(attempts.load(Ordering::SeqCst)).unwrap_or(i64::MAX);
        let done_at = self.inner.clock.now().as_micros();
        match outcome {
            Ok(()) => {
                sqlx::query(&format!(
                    "UPDATE action_outbox SET state = '{DELIVERED}', \
                     attempts = attempts + $1, delivered_at = $2 WHERE id = $3"
                ))
                .bind(tried)
                .bind(done_at)
                .bind(&entry.id)
                .execute(self.inner.store.pool())
                .await?;
                self.inner.metrics.action_delivered(&entry.kind);
                Ok(true)
            }
            Err(error) => {
                sqlx::query(&format!(
                    "UPDATE action_outbox SET state = '{PARKED}', attempts = attempts + $1, \
                     last_error = $2, parked_at = $3 WHERE id = $4"
                ))
                .bind(tried)
                .bind(error.to_string())
                .bind(done_at)
                .bind(&entry.id)
                .execute(self.inner.store.pool())
                .await?;
                self.inner.metrics.action_parked(&entry.kind);
                tracing::error!(action = %entry.id, kind = %entry.kind, target = %entry.target,
                    attempts = tried, error = %error,
                    "Action parked after its last attempt; retry it through the API.");
                Ok(false)
            }
        }
    }

    async fn deliver(&self, entry: &OutboxEntry) -> Result<(), DeliveryError> {
        match entry.kind.as_str() {
            KIND_WEBHOOK => self.post_webhook(entry).await,
            KIND_TOPIC => {
                let record =
                    Record::new(entry.action.device_id.clone(), entry.action.encode_to_vec());
                self.inner
                    .bus
                    .producer()
                    .send(&entry.target, record)
                    .await
                    .map(|_| ())
                    .map_err(|error| {
                        DeliveryError::Transient(format!("the bus refused the record: {error}"))
                    })
            }
            other => Err(DeliveryError::Permanent(format!(
                "unknown action kind {other:?}"
            ))),
        }
    }

    async fn post_webhook(&self, entry: &OutboxEntry) -> Result<(), DeliveryError> {
        let mut request = self
            .inner
            .http
            .post(&entry.target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, &entry.id)
            .body(entry.action.body_json.clone());
        if !entry.secret_ref.is_empty() {
            let secret = read_secret(&entry.secret_ref)?;
            request = request.header(entry.secret_header.as_str(), secret);
        }
        let response = request.send().await.map_err(|error| {
            DeliveryError::Transient(format!("POST {} failed: {error}", entry.target))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        let message = format!("POST {} answered {status}: {body}", entry.target);
        let transient = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        if transient {
            Err(DeliveryError::Transient(message))
        } else {
            Err(DeliveryError::Permanent(message))
        }
    }

    /// Parked actions, oldest first; `solution` empty for all. Pages by offset token.
    pub async fn parked_actions(
        &self,
        solution: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<OutboxEntry>, OrchestratorError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM action_outbox WHERE state = '{PARKED}' \
             AND ($1 = '' OR solution = $1) ORDER BY parked_at, id LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&sql)
            .bind(solution)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(self.inner.store.pool())
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            entries.push(OutboxEntry::from_row(row)?);
        }
        Ok(entries)
    }

    /// Every outbox entry of recommendation `id`, for tools and tests.
    pub async fn actions_of(&self, id: &str) -> Result<Vec<OutboxEntry>, OrchestratorError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM action_outbox WHERE recommendation_id = $1 \
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(id)
            .fetch_all(self.inner.store.pool())
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            entries.push(OutboxEntry::from_row(row)?);
        }
        Ok(entries)
    }

    /// Put parked action `id` back in line for delivery, with a fresh set of attempts.
    pub async fn retry_action(&self, id: &str, actor: &str) -> Result<OutboxEntry, RetryError> {
        let now = self.inner.clock.now();
        let result = sqlx::query(&format!(
            "UPDATE action_outbox SET state = '{PENDING}', next_attempt_at = $1 \
             WHERE id = $2 AND state = '{PARKED}'"
        ))
        .bind(now.as_micros())
        .bind(id)
        .execute(self.inner.store.pool())
        .await
        .map_err(OrchestratorError::from)?;
        let row = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM action_outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.inner.store.pool())
        .await
        .map_err(OrchestratorError::from)?
        .ok_or_else(|| RetryError::NotFound(id.to_owned()))?;
        let entry = OutboxEntry::from_row(&row).map_err(OrchestratorError::from)?;
        if result.rows_affected() != 1 {
            return Err(RetryError::NotParked {
                id: id.to_owned(),
                state: entry.state,
            });
        }
        tracing::info!(action = %id, actor = %actor, "Parked action put back for delivery.");
        Ok(entry)
    }
}

/// Read a secret from `env:NAME` or `file:PATH`; a file's trailing newline is dropped.
fn read_secret(reference: &str) -> Result<String, DeliveryError> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| {
            DeliveryError::Transient(format!(
                "the secret's environment variable {name} is not set"
            ))
        });
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|error| {
                DeliveryError::Transient(format!("cannot read the secret file {path}: {error}"))
            });
    }
    Err(DeliveryError::Permanent(format!(
        "{reference:?} is not a secret reference"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(read_secret("env:PATH").unwrap(), path);
        let missing = read_secret("env:SINTER_ORCHESTRATOR_NO_SUCH_SECRET").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("SINTER_ORCHESTRATOR_NO_SUCH_SECRET")
        );
        assert!(missing.is_transient());
        let file = std::env::temp_dir().join(format!("sinter-secret-{}", std::process::id()));
        std::fs::write(&file, "s3cret\r\n").unwrap();
        assert_eq!(
            read_secret(&format!("file:{}", file.display())).unwrap(),
            "s3cret"
        );
        std::fs::remove_file(&file).unwrap();
        assert!(!read_secret("vault:x").unwrap_err().is_transient());
    }
}
