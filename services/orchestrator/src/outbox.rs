//! The transactional outbox: actions are written in the same transaction as the state
//! change that causes them, and delivered afterwards (see `dispatch`).
//!
//! Which actions a change starts:
//! - a recommendation is **opened**: every action of its rule (webhooks and topic records);
//! - it **escalates** or **ends**: a topic record (trigger `ESCALATED` / `RESOLVED`, target
//!   the escalation step's role or the assignee) for each `topic` action of its rule.
//!   Webhooks fire on opening only, so a CMMS gets one work order per recommendation.

use prost::Message;
use serde_json::{Map, Value};
use sinter_core::solution::{Action as ActionSpec, Recommendation as Rule, SecretRef};
use sinter_core::topic::{self, Stream};
use sinter_core::{Solution, Timestamp};
use sinter_proto::events::v1::{Action, action::Trigger};
use sqlx::AnyConnection;

use crate::store::{RecommendationRow, StoreError, batch};
use crate::variables::severity_word;

/// How an outbox entry is delivered.
pub const KIND_WEBHOOK: &str = "webhook";
pub const KIND_TOPIC: &str = "topic";

/// The outbox entry states.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const PARKED: &str = "parked";

/// What caused actions: the trigger, the escalation step (0 otherwise) and the target.
#[derive(Clone, Copy, Debug)]
pub struct Cause<'a> {
    pub trigger: Trigger,
    pub step: usize,
    pub target: &'a str,
}

/// Write the actions `cause` starts for `recommendation` into the outbox.
///
/// `variables` are the situation's; webhook bodies also see `recommendation`. A body that
/// does not render to a JSON object is written parked with the reason, so it shows in the
/// API instead of vanishing.
pub async fn enqueue(
    conn: &mut AnyConnection,
    solution: &Solution,
    rule: &Rule,
    recommendation: &RecommendationRow,
    cause: Cause<'_>,
    variables: &Map<String, Value>,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let rows = entries(solution, rule, recommendation, cause, variables, now);
    insert(conn, &rows).await
}

/// One outbox row, ready to be written.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    id: String,
    recommendation_id: String,
    solution: String,
    kind: &'static str,
    target: String,
    secret_header: String,
    secret_ref: String,
    action: Vec<u8>,
    state: &'static str,
    last_error: String,
    created_at: i64,
    parked_at: Option<i64>,
}

/// The outbox rows of the actions `cause` starts for `recommendation`, as [`enqueue`]
/// writes them.
pub fn entries(
    solution: &Solution,
    rule: &Rule,
    recommendation: &RecommendationRow,
    cause: Cause<'_>,
    variables: &Map<String, Value>,
    now: Timestamp,
) -> Vec<OutboxRow> {
    let mut rows = Vec::new();
    for (index, spec) in rule.actions.iter().enumerate() {
        if cause.trigger != Trigger::Opened && matches!(spec, ActionSpec::Webhook(_)) {
            continue;
        }
        let id = action_id(recommendation, cause, index);
        let mut action = Action {
            id: id.clone(),
            recommendation_id: recommendation.id.clone(),
            rule: rule.name.clone(),
            trigger: cause.trigger as i32,
            target: cause.target.to_owned(),
            asset_id: recommendation.asset_id.clone(),
            device_id: recommendation.device_id.clone(),
            severity: recommendation.severity,
            title: recommendation.title.clone(),
            body_json: String::new(),
            created_at: Some(sinter_proto::time::to_proto(now)),
        };
        let body = RecommendationBody::new(recommendation, cause);
        let entry = match spec {
            ActionSpec::Webhook(webhook) => {
                let (body, error) = match render_body(webhook, variables, &body) {
                    Ok(body) => (body, None),
                    Err(reason) => (String::new(), Some(reason)),
                };
                action.body_json = body;
                let (secret_header, secret_ref) = match &webhook.secret_ref {
                    Some(SecretRef::Env(name)) => (webhook.header.clone(), format!("env:{name}")),
                    Some(SecretRef::File(path)) => {
                        (webhook.header.clone(), format!("file:{}", path.display()))
                    }
                    None => (String::new(), String::new()),
                };
                Entry {
                    kind: KIND_WEBHOOK,
                    target: webhook.url.clone(),
                    secret_header,
                    secret_ref,
                    error,
                }
            }
            ActionSpec::Topic(_) => {
                // Strings and numbers always encode.
                action.body_json = serde_json::to_string(&body).unwrap_or_default();
                Entry {
                    kind: KIND_TOPIC,
                    target: topic::name(solution.namespace(), solution.name(), Stream::Actions),
                    secret_header: String::new(),
                    secret_ref: String::new(),
                    error: None,
                }
            }
        };
        let (state, parked_at) = match entry.error {
            Some(_) => (PARKED, Some(now.as_micros())),
            None => (PENDING, None),
        };
        rows.push(OutboxRow {
            id,
            recommendation_id: recommendation.id.clone(),
            solution: recommendation.solution.clone(),
            kind: entry.kind,
            target: entry.target,
            secret_header: entry.secret_header,
            secret_ref: entry.secret_ref,
            action: action.encode_to_vec(),
            state,
            last_error: entry.error.unwrap_or_default(),
            created_at: now.as_micros(),
            parked_at,
        });
    }
    rows
}

/// Write `rows` into the outbox, one statement per [`batch::MAX_PARAMETERS`]; an id
/// already there is left as it is. Returns how many were written.
pub async fn insert(conn: &mut AnyConnection, rows: &[OutboxRow]) -> Result<usize, StoreError> {
    const COLUMNS: usize = 14;
    let mut written = 0;
    for chunk in batch::pieces(rows, COLUMNS) {
        let sql = format!(
            "INSERT INTO action_outbox (id, recommendation_id, solution, kind, target, \
             secret_header, secret_ref, action, state, attempts, last_error, created_at, \
             next_attempt_at, parked_at) VALUES {} ON CONFLICT DO NOTHING",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            // A new action is due at once: `next_attempt_at` is `created_at`.
            query = query
                .bind(row.id.as_str())
                .bind(row.recommendation_id.as_str())
                .bind(row.solution.as_str())
                .bind(row.kind)
                .bind(row.target.as_str())
                .bind(row.secret_header.as_str())
                .bind(row.secret_ref.as_str())
                .bind(row.action.as_slice())
                .bind(row.state)
                .bind(0_i64)
                .bind(row.last_error.as_str())
                .bind(row.created_at)
                .bind(row.created_at)
                .bind(row.parked_at);
        }
        let result = query.execute(&mut *conn).await?;
        written += usize::try_from(result.rows_affected()).unwrap_or_default();
    }
    Ok(written)
}

struct Entry {
    kind: &'static str,
    target: String,
    secret_header: String,
    secret_ref: String,
    error: Option<String>,
}

/// The action's id, and so the webhook's idempotency key: the recommendation, what
/// caused it (trigger and escalation step) and which of the rule's actions it is. An
/// ending also counts its time: a recommendation reopened and ended again starts its
/// ending's actions anew.
// Limitation: two endings of one recommendation in the same microsecond (possible only
// with a manual clock) share their actions' ids, and the second's records are dropped.
pub fn action_id(recommendation: &RecommendationRow, cause: Cause<'_>, index: usize) -> String {
    let trigger = cause.trigger.as_str_name();
    let step = cause.step.to_string();
    let index = index.to_string();
    let mut parts = vec![
        recommendation.id.as_bytes(),
        trigger.as_bytes(),
        step.as_bytes(),
        index.as_bytes(),
    ];
    let ended = recommendation.resolved_at.map(|at| at.to_string());
    if let (Trigger::Resolved, Some(ended)) = (cause.trigger, &ended) {
        parts.push(ended.as_bytes());
    }
    // Ordered by the recommendation's opening, as the recommendation's own id.
    sinter_core::id::derive_ordered("ac", recommendation.opened_at, &parts)
}

/// The `recommendation` variable of webhook bodies, also the topic record's body. The
/// fields are in the order of their names, as a JSON object's keys print.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RecommendationBody<'a> {
    asset_id: &'a str,
    assignee: &'a str,
    description: &'a str,
    device_id: &'a str,
    escalation_level: i64,
    id: &'a str,
    occurrences: i64,
    rule: &'a str,
    severity: &'static str,
    solution: &'a str,
    state: &'static str,
    target: &'a str,
    title: &'a str,
    trigger: &'static str,
}

impl<'a> RecommendationBody<'a> {
    fn new(recommendation: &'a RecommendationRow, cause: Cause<'a>) -> Self {
        let severity = sinter_proto::events::v1::Severity::try_from(recommendation.severity)
            .map(severity_word)
            .unwrap_or_default();
        let trigger = match cause.trigger {
            Trigger::Opened => "opened",
            Trigger::Escalated => "escalated",
            Trigger::Resolved => "resolved",
            Trigger::Unspecified => "",
        };
        RecommendationBody {
            asset_id: &recommendation.asset_id,
            assignee: &recommendation.assignee,
            description: &recommendation.description,
            device_id: &recommendation.device_id,
            escalation_level: recommendation.escalation_level,
            id: &recommendation.id,
            occurrences: recommendation.occurrences,
            rule: &recommendation.rule,
            severity,
            solution: &recommendation.solution,
            state: recommendation.state.as_str(),
            target: cause.target,
            title: &recommendation.title,
            trigger,
        }
    }
}

fn render_body(
    webhook: &sinter_core::solution::WebhookAction,
    variables: &Map<String, Value>,
    recommendation: &RecommendationBody<'_>,
) -> Result<String, String> {
    let Some(template) = &webhook.body else {
        return serde_json::to_string(recommendation)
            .map_err(|error| format!("the recommendation does not encode: {error}"));
    };
    let recommendation = serde_json::to_value(recommendation)
        .map_err(|error| format!("the recommendation does not encode: {error}"))?;
    let mut context = variables.clone();
    context.insert("recommendation".into(), recommendation);
    let body = template
        .render(&context)
        .map_err(|error| format!("the webhook body does not render: {error}"))?;
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(_)) => Ok(body),
        Ok(_) => Err("the webhook body renders to JSON that is not an object".to_owned()),
        Err(error) => Err(format!("the webhook body renders to invalid JSON: {error}")),
    }
}
