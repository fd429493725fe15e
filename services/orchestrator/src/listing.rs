//! Listing recommendations: filters by state, asset, severity and rule, newest first,
//! paged by a token that names the last one shown (opening time and id).

use sinter_proto::orchestrator::v1::Recommendation;

use crate::error::OrchestratorError;
use crate::orchestrator::Orchestrator;
use crate::state::State;
use crate::store::RecommendationRow;
use crate::store::rows::RECOMMENDATION_COLUMNS;

pub const PAGE_SIZE_DEFAULT: usize = 50;
pub const PAGE_SIZE_MAX: usize = 500;

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// `namespace/name`; empty for every Solution.
    pub solution: String,
    /// Empty for every state.
    pub states: Vec<State>,
    pub asset_id: String,
    /// A `sinter.events.v1.Severity` number; 0 for every severity.
    pub severity: i32,
    pub rule: String,
    pub page_size: usize,
    /// Empty for the first page.
    pub page_token: String,
}

/// Why a list could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("page_token: not a token this API gave")]
    BadToken,
    #[error(transparent)]
    Orchestrator(#[from] OrchestratorError),
}

impl From<sqlx::Error> for ListError {
    fn from(error: sqlx::Error) -> Self {
        ListError::Orchestrator(error.into())
    }
}

/// An offset token, as parked-action pages use: empty is the start.
pub fn decode_offset_token(token: &str) -> Option<usize> {
    if token.is_empty() {
        Some(0)
    } else {
        token.parse().ok()
    }
}

impl Orchestrator {
    /// One page of recommendations matching `query`, and the token of the next page
    /// (empty after the last).
    pub async fn list_recommendations(
        &self,
        query: &ListQuery,
    ) -> Result<(Vec<Recommendation>, String), ListError> {
        let page_size = if query.page_size == 0 {
            PAGE_SIZE_DEFAULT
        } else {
            query.page_size.min(PAGE_SIZE_MAX)
        };
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let mut bind = |value: Bind| {
            binds.push(value);
            binds.len()
        };
        if !query.solution.is_empty() {
            let n = bind(Bind::Text(query.solution.clone()));
            conditions.push(format!("solution = ${n}"));
        }
        if !query.states.is_empty() {
            let placeholders: Vec<String> = query
                .states
                .iter()
                .map(|state| format!("${}", bind(Bind::Text(state.as_str().to_owned()))))
                .collect();
            conditions.push(format!("state IN ({})", placeholders.join(", ")));
        }
        if !query.asset_id.is_empty() {
            let n = bind(Bind::Text(query.asset_id.clone()));
            conditions.push(format!("asset_id = ${n}"));
        }
        if !query.rule.is_empty() {
            let n = bind(Bind::Text(query.rule.clone()));
            conditions.push(format!("rule = ${n}"));
        }
        if query.severity != 0 {
            let n = bind(Bind::Number(i64::from(query.severity)));
            conditions.push(format!("severity = ${n}"));
        }
        if !query.page_token.is_empty() {
            let (opened_at, id) = query
                .page_token
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id)))
                .ok_or(ListError::BadToken)?;
            let at_n = bind(Bind::Number(opened_at));
            let id_n = bind(Bind::Text(id.to_owned()));
            conditions.push(format!(
                "(opened_at < ${at_n} OR (opened_at = ${at_n} AND id < ${id_n}))"
            ));
        }
        let limit_n = bind(Bind::Number(
            i64::try_from(page_size + 1).unwrap_or(i64::MAX),
        ));
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {RECOMMENDATION_COLUMNS} FROM recommendations {filter} \
             ORDER BY opened_at DESC, id DESC LIMIT ${limit_n}"
        );
        let mut statement = sqlx::query(&sql);
        for value in binds {
            statement = match value {
                Bind::Text(value) => statement.bind(value),
                Bind::Number(value) => statement.bind(value),
            };
        }
        let rows = statement.fetch_all(self.inner.store.pool()).await?;
        let mut page = Vec::with_capacity(rows.len().min(page_size));
        let mut last: Option<RecommendationRow> = None;
        for row in rows.iter().take(page_size) {
            let row = RecommendationRow::from_row(row)?;
            page.push(row.to_proto().map_err(OrchestratorError::from)?);
            last = Some(row);
        }
        let next_page_token = match last {
            Some(last) if rows.len() > page_size => format!("{}:{}", last.opened_at, last.id),
            _ => String::new(),
        };
        Ok((page, next_page_token))
    }
}

enum Bind {
    Text(String),
    Number(i64),
}
