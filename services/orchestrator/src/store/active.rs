//! The one-active rule: a row per Solution, rule and asset naming its active
//! recommendation, held while that recommendation is open, acknowledged or in progress.
//!
//! Its primary key is what makes two concurrent situations unable to open two
//! recommendations for one rule and asset: the second insert meets the first. Every
//! change that makes a recommendation active (opening, reopening) claims its key in the
//! same transaction, and every change that ends one releases it.

use std::collections::HashSet;

use sqlx::any::AnyArguments;
use sqlx::{AnyConnection, Arguments};

use super::{RecommendationRow, StoreError, batch};

/// The key a recommendation holds while active.
#[derive(Clone, Copy, Debug)]
pub struct ActiveKey<'a> {
    pub solution: &'a str,
    pub rule: &'a str,
    pub asset_key: &'a str,
    pub recommendation_id: &'a str,
}

impl<'a> From<&'a RecommendationRow> for ActiveKey<'a> {
    fn from(row: &'a RecommendationRow) -> Self {
        ActiveKey {
            solution: &row.solution,
            rule: &row.rule,
            asset_key: &row.asset_key,
            recommendation_id: &row.id,
        }
    }
}

const COLUMNS: usize = 4;

/// The parameters of `keys`, a row of [`COLUMNS`] each.
fn arguments<'q>(keys: &[ActiveKey<'q>]) -> Result<AnyArguments<'q>, sqlx::Error> {
    let mut arguments = AnyArguments::default();
    for key in keys {
        for value in [key.solution, key.rule, key.asset_key, key.recommendation_id] {
            arguments.add(value).map_err(sqlx::Error::Encode)?;
        }
    }
    Ok(arguments)
}

/// Claim each key that no active recommendation holds; returns the recommendation ids
/// whose claim succeeded. A key held already is left as it is.
pub async fn claim_free(
    conn: &mut AnyConnection,
    keys: &[ActiveKey<'_>],
) -> Result<HashSet<String>, StoreError> {
    let mut claimed = HashSet::with_capacity(keys.len());
    for chunk in batch::pieces(keys, COLUMNS) {
        let sql = format!(
            "INSERT INTO active_recommendations (solution, rule, asset_key, recommendation_id) \
             VALUES {} ON CONFLICT DO NOTHING RETURNING recommendation_id",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        let query = sqlx::query_scalar_with::<_, String, _>(&sql, arguments(chunk)?);
        claimed.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(claimed)
}

/// Claim every key, failing with a unique violation when one is held (a reopen while
/// another recommendation is active for the rule and asset).
pub async fn claim(conn: &mut AnyConnection, keys: &[ActiveKey<'_>]) -> Result<(), sqlx::Error> {
    for chunk in batch::pieces(keys, COLUMNS) {
        let sql = format!(
            "INSERT INTO active_recommendations (solution, rule, asset_key, recommendation_id) \
             VALUES {}",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        sqlx::query_with(&sql, arguments(chunk)?)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Release the keys the recommendations of `keys` hold; a key another recommendation
/// holds is left alone.
pub async fn release(conn: &mut AnyConnection, keys: &[ActiveKey<'_>]) -> Result<(), sqlx::Error> {
    for chunk in batch::pieces(keys, COLUMNS) {
        let sql = format!(
            "DELETE FROM active_recommendations \
             WHERE (solution, rule, asset_key, recommendation_id) IN (VALUES {})",
            batch::values(chunk.len(), COLUMNS, 1)
        );
        sqlx::query_with(&sql, arguments(chunk)?)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The recommendation active for `solution`, `rule` and `asset_key`, if any.
pub async fn holder(
    conn: &mut AnyConnection,
    solution: &str,
    rule: &str,
    asset_key: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT recommendation_id FROM active_recommendations \
         WHERE solution = $1 AND rule = $2 AND asset_key = $3",
    )
    .bind(solution)
    .bind(rule)
    .bind(asset_key)
    .fetch_optional(conn)
    .await
}
