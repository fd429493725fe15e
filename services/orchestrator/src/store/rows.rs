//! Rows of the recommendations and history tables, and their protobuf form.

use std::collections::HashMap;

use prost::Message;
use sinter_core::Timestamp;
use sinter_proto::events::v1::Situation;
use sinter_proto::orchestrator::v1::{HistoryEntry, Recommendation, RecommendationState};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::StoreError;
use super::batch;
use crate::state::State;

/// The columns [`RecommendationRow::from_row`] reads, in a `SELECT`.
pub const RECOMMENDATION_COLUMNS: &str = "id, solution, rule, asset_key, asset_id, device_id, \
     state, severity, title, description, situation, incident_id, occurrences, assignee, \
     escalation_level, escalated_to, outcome, opened_at, acknowledged_at, resolved_at, \
     updated_at";

/// One stored recommendation.
#[derive(Clone, Debug)]
pub struct RecommendationRow {
    pub id: String,
    pub solution: String,
    pub rule: String,
    pub asset_key: String,
    pub asset_id: String,
    pub device_id: String,
    pub state: State,
    pub severity: i32,
    pub title: String,
    pub description: String,
    pub situation: Vec<u8>,
    pub incident_id: String,
    pub occurrences: i64,
    pub assignee: String,
    pub escalation_level: i64,
    pub escalated_to: String,
    pub outcome: i32,
    pub opened_at: i64,
    pub acknowledged_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub updated_at: i64,
}

impl RecommendationRow {
    pub fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let state_word: String = row.try_get("state")?;
        let state = State::from_word(&state_word).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "state".into(),
            source: format!("{state_word:?} is not a recommendation state").into(),
        })?;
        Ok(RecommendationRow {
            id: row.try_get("id")?,
            solution: row.try_get("solution")?,
            rule: row.try_get("rule")?,
            asset_key: row.try_get("asset_key")?,
            asset_id: row.try_get("asset_id")?,
            device_id: row.try_get("device_id")?,
            state,
            severity: narrow(row.try_get::<i64, _>("severity")?),
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            situation: row.try_get("situation")?,
            incident_id: row.try_get("incident_id")?,
            occurrences: row.try_get("occurrences")?,
            assignee: row.try_get("assignee")?,
            escalation_level: row.try_get("escalation_level")?,
            escalated_to: row.try_get("escalated_to")?,
            outcome: narrow(row.try_get::<i64, _>("outcome")?),
            opened_at: row.try_get("opened_at")?,
            acknowledged_at: row.try_get("acknowledged_at")?,
            resolved_at: row.try_get("resolved_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Load recommendation `id`.
    pub async fn load(
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<Option<RecommendationRow>, StoreError> {
        let sql = format!("SELECT {RECOMMENDATION_COLUMNS} FROM recommendations WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
        Ok(row
            .map(|row| RecommendationRow::from_row(&row))
            .transpose()?)
    }

    /// Load the recommendations among `ids` that exist, by id, in one statement per
    /// [`batch::MAX_PARAMETERS`] ids.
    pub async fn load_many(
        conn: &mut AnyConnection,
        ids: &[&str],
    ) -> Result<HashMap<String, RecommendationRow>, StoreError> {
        let mut rows = HashMap::with_capacity(ids.len());
        for chunk in batch::pieces(ids, 1) {
            let sql = format!(
                "SELECT {RECOMMENDATION_COLUMNS} FROM recommendations WHERE id IN ({})",
                batch::list(chunk.len(), 1)
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let row = RecommendationRow::from_row(&row)?;
                rows.insert(row.id.clone(), row);
            }
        }
        Ok(rows)
    }

    /// The protobuf form, without history.
    pub fn to_proto(&self) -> Result<Recommendation, StoreError> {
        let situation =
            Situation::decode(self.situation.as_slice()).map_err(|source| StoreError::Corrupt {
                what: "situation of recommendation",
                id: self.id.clone(),
                source,
            })?;
        Ok(Recommendation {
            id: self.id.clone(),
            solution: self.solution.clone(),
            rule: self.rule.clone(),
            state: self.state.to_proto() as i32,
            title: self.title.clone(),
            description: self.description.clone(),
            severity: self.severity,
            asset_id: self.asset_id.clone(),
            device_id: self.device_id.clone(),
            situation: Some(situation),
            occurrences: u32::try_from(self.occurrences).unwrap_or(u32::MAX),
            assignee: self.assignee.clone(),
            escalation_level: u32::try_from(self.escalation_level).unwrap_or(u32::MAX),
            escalated_to: self.escalated_to.clone(),
            outcome: self.outcome,
            opened_at: Some(micros(self.opened_at)),
            acknowledged_at: self.acknowledged_at.map(micros),
            resolved_at: self.resolved_at.map(micros),
            updated_at: Some(micros(self.updated_at)),
            history: Vec::new(),
        })
    }
}

/// One entry of the audit trail, as stored.
#[derive(Clone, Debug)]
pub struct HistoryRow<'a> {
    pub recommendation_id: &'a str,
    pub at: Timestamp,
    pub actor: &'a str,
    pub event: &'a str,
    pub from: Option<State>,
    pub to: Option<State>,
    pub comment: &'a str,
}

/// Append `entry` to its recommendation's audit trail; returns it in protobuf form.
pub async fn insert_history(
    conn: &mut AnyConnection,
    entry: &HistoryRow<'_>,
) -> Result<HistoryEntry, StoreError> {
    let mut entries = insert_histories(conn, std::slice::from_ref(entry)).await?;
    entries
        .pop()
        .ok_or(StoreError::Sql(sqlx::Error::RowNotFound))
}

/// Append `entries` to their recommendations' audit trails, in this order, in one
/// statement per [`batch::MAX_PARAMETERS`]; returns them in protobuf form.
pub async fn insert_histories(
    conn: &mut AnyConnection,
    entries: &[HistoryRow<'_>],
) -> Result<Vec<HistoryEntry>, StoreError> {
    const COLUMNS: usize = 7;
    for chunk in batch::pieces(entries, COLUMNS) {
        // Both databases number the rows of one VALUES list in list order (PostgreSQL takes
        // the `seq` default row by row as it scans the list), so the trail keeps its order.
        let sql = format!(
            "INSERT INTO recommendation_history \
             (recommendation_id, at, actor, event, from_state, to_state, comment) VALUES {}",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let mut query = sqlx::query(&sql);
        for entry in chunk {
            query = query
                .bind(entry.recommendation_id)
                .bind(entry.at.as_micros())
                .bind(entry.actor)
                .bind(entry.event)
                .bind(entry.from.map(State::as_str).unwrap_or(""))
                .bind(entry.to.map(State::as_str).unwrap_or(""))
                .bind(entry.comment);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(entries.iter().map(HistoryRow::to_proto).collect())
}

impl HistoryRow<'_> {
    /// The protobuf form of this entry.
    pub fn to_proto(&self) -> HistoryEntry {
        HistoryEntry {
            at: Some(micros(self.at.as_micros())),
            actor: self.actor.to_owned(),
            event: self.event.to_owned(),
            from_state: proto_state(self.from),
            to_state: proto_state(self.to),
            comment: self.comment.to_owned(),
        }
    }
}

/// The audit trail of recommendation `id`, oldest first.
pub async fn history_entry(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, actor, event, from_state, to_state, comment FROM recommendation_history \
         WHERE recommendation_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let from: String = row.try_get("from_state")?;
        let to: String = row.try_get("to_state")?;
        entries.push(HistoryEntry {
            at: Some(micros(row.try_get("at")?)),
            actor: row.try_get("actor")?,
            event: row.try_get("event")?,
            from_state: proto_state(State::from_word(&from)),
            to_state: proto_state(State::from_word(&to)),
            comment: row.try_get("comment")?,
        });
    }
    Ok(entries)
}

fn proto_state(state: Option<State>) -> i32 {
    state.map_or(RecommendationState::Unspecified, State::to_proto) as i32
}

fn micros(value: i64) -> prost_types::Timestamp {
    sinter_proto::time::to_proto(Timestamp::from_micros(value))
}

fn narrow(value: i64) -> i32 {
    i32::try_from(value).unwrap_or_default()
}
