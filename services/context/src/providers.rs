//! Context providers: the Solution's read-only SQL lookups against external databases
//! (an ERP or CMMS replica), with parameters always bound and a timeout.

use std::time::Duration;

use sinter_core::solution::{DatabaseUrl, Provider};
use sinter_proto::events::v1::{AssetContext, Detection, ProviderResult, Severity};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Column, Executor, Row};

use crate::registry::{Backend, redact};

/// Rows kept per provider and situation. Each row is a JSON object (keys in sorted order).
// Limitation: a provider returning more rows has the rest cut off (and says so in its
// result's error); situations are records on a topic and must stay small.
pub const MAX_ROWS: usize = 100;

/// Where a provider's query runs: a lazily connected read-only pool, or the reason there
/// is none.
enum Connection {
    Ready { pool: AnyPool, backend: Backend },
    Broken(String),
}

/// One provider of one Solution, ready to run.
pub struct ContextProvider {
    name: String,
    /// The query with `$n` placeholders, wrapped for the backend.
    sql: String,
    params: Vec<String>,
    timeout: Duration,
    connection: Connection,
}

/// The values a query's parameters are bound to.
#[derive(Clone, Debug)]
pub struct QueryValues<'a> {
    pub detection: &'a Detection,
    pub namespace: &'a str,
    pub solution: &'a str,
    /// The device's asset, when the registry knows it.
    pub asset: Option<&'a AssetContext>,
}

enum Value<'a> {
    Text(&'a str),
    Owned(String),
    Number(f64),
    Null,
}

impl<'a> QueryValues<'a> {
    fn value(&self, name: &str) -> Option<Value<'a>> {
        let detection = self.detection;
        Some(match name {
            "device" => Value::Text(&detection.device_id),
            "deviceType" => Value::Text(&detection.device_type),
            "metric" => Value::Text(&detection.metric),
            "detector" => Value::Text(&detection.detector_name),
            "severity" => Value::Owned(severity_name(detection.severity())),
            "value" => Value::Number(detection.value),
            "namespace" => Value::Text(self.namespace),
            "solution" => Value::Text(self.solution),
            "assetId" | "assetExternalId" | "assetName" | "criticality" | "ownerTeam"
            | "siteId" => match self.asset {
                None => Value::Null,
                Some(asset) => Value::Text(match name {
                    "assetId" => &asset.asset_id,
                    "assetExternalId" => &asset.external_id,
                    "assetName" => &asset.asset_name,
                    "criticality" => &asset.criticality,
                    "ownerTeam" => &asset.owner_team,
                    _ => &asset.site_id,
                }),
            },
            _ => return None,
        })
    }
}

fn severity_name(severity: Severity) -> String {
    match severity {
        Severity::Unspecified => String::new(),
        other => other
            .as_str_name()
            .trim_start_matches("SEVERITY_")
            .to_ascii_lowercase(),
    }
}

/// Read a provider's database URL from where the Solution says it is.
pub fn resolve_url(url: &DatabaseUrl) -> Result<String, String> {
    match url {
        DatabaseUrl::Env(name) => std::env::var(name)
            .map(|value| value.trim().to_owned())
            .map_err(|_| format!("environment variable {name} (urlEnv) is not set")),
        DatabaseUrl::File(path) => std::fs::read_to_string(path)
            .map(|value| value.trim().to_owned())
            .map_err(|error| format!("cannot read urlFile {}: {error}", path.display())),
    }
}

impl ContextProvider {
    /// Prepare `provider`; a URL that cannot be read or used makes every lookup fail with
    /// that reason, without stopping the service.
    pub fn new(provider: &Provider) -> ContextProvider {
        let connection = match resolve_url(&provider.url).and_then(|url| {
            let backend = Backend::of_url(&url).map_err(|error| error.to_string())?;
            Ok((url, backend))
        }) {
            Ok((url, backend)) => match read_only_pool(&url, backend, provider.timeout) {
                Ok(pool) => Connection::Ready { pool, backend },
                Err(error) => {
                    Connection::Broken(format!("cannot use database {}: {error}", redact(&url)))
                }
            },
            Err(reason) => Connection::Broken(reason),
        };
        if let Connection::Broken(reason) = &connection {
            tracing::error!(provider = %provider.name, reason = %reason,
                "Context provider cannot run; its situations will carry the error.");
        }
        let backend = match &connection {
            Connection::Ready { backend, .. } => *backend,
            Connection::Broken(_) => Backend::Postgres,
        };
        ContextProvider {
            name: provider.name.clone(),
            sql: wrapped_sql(&provider.query.to_positional(|n| format!("${n}")), backend),
            params: provider.query.params().to_vec(),
            timeout: provider.timeout,
            connection,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQL sent to the database: the values are never part of it.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Run the query for one detection; a failure or a timeout is the result's error.
    pub async fn lookup(&self, values: &QueryValues<'_>) -> ProviderResult {
        let outcome = match &self.connection {
            Connection::Broken(reason) => Err(reason.clone()),
            Connection::Ready { pool, backend } => {
                match tokio::time::timeout(self.timeout, self.run(pool, *backend, values)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!(
                        "timed out after {}",
                        humantime_duration(self.timeout)
                    )),
                }
            }
        };
        match outcome {
            Ok((rows, truncated)) => ProviderResult {
                provider: self.name.clone(),
                rows_json: serde_json::Value::Array(rows).to_string(),
                error: if truncated {
                    format!("more than {MAX_ROWS} rows; only the first {MAX_ROWS} are kept")
                } else {
                    String::new()
                },
            },
            Err(error) => ProviderResult {
                provider: self.name.clone(),
                rows_json: String::new(),
                error,
            },
        }
    }

    async fn run(
        &self,
        pool: &AnyPool,
        backend: Backend,
        values: &QueryValues<'_>,
    ) -> Result<(Vec<serde_json::Value>, bool), String> {
        let mut query = sqlx::query(&self.sql);
        for name in &self.params {
            query = match values.value(name) {
                Some(Value::Text(text)) => query.bind(text),
                Some(Value::Owned(text)) => query.bind(text),
                Some(Value::Number(number)) => query.bind(number),
                Some(Value::Null) => query.bind(None::<String>),
                None => return Err(format!("unknown query parameter :{name}")),
            };
        }
        let rows = query
            .fetch_all(pool)
            .await
            .map_err(|error| format!("query failed: {error}"))?;
        let truncated = rows.len() > MAX_ROWS;
        let rows = rows
            .iter()
            .take(MAX_ROWS)
            .map(|row| row_json(row, backend))
            .collect::<Result<Vec<_>, String>>()?;
        Ok((rows, truncated))
    }
}

/// A pool that connects on first use and refuses to write: PostgreSQL sessions default
/// to read-only transactions, SQLite connections to `query_only`.
fn read_only_pool(url: &str, backend: Backend, timeout: Duration) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let statement = match backend {
        Backend::Postgres => "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        Backend::Sqlite => "PRAGMA query_only = ON",
    };
    AnyPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(timeout)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                connection.execute(statement).await?;
                Ok(())
            })
        })
        .connect_lazy(url)
}

/// On PostgreSQL every row comes back as one JSON text (`row_to_json`), so any column
/// type works; SQLite's few types are read directly. One row more than kept is asked
/// for, to tell when rows were cut off.
fn wrapped_sql(positional: &str, backend: Backend) -> String {
    let inner = positional.trim().trim_end_matches(';').trim_end();
    let limit = MAX_ROWS + 1;
    match backend {
        Backend::Postgres => format!(
            "SELECT row_to_json(provider_rows)::text AS row_json FROM ({inner}\n) AS \
             provider_rows LIMIT {limit}"
        ),
        Backend::Sqlite => format!("SELECT * FROM ({inner}\n) LIMIT {limit}"),
    }
}

fn row_json(row: &AnyRow, backend: Backend) -> Result<serde_json::Value, String> {
    if backend == Backend::Postgres {
        let text: String = row
            .try_get("row_json")
            .map_err(|error| format!("cannot read a row: {error}"))?;
        return serde_json::from_str(&text).map_err(|error| format!("cannot read a row: {error}"));
    }
    let mut object = serde_json::Map::new();
    for (index, column) in row.columns().iter().enumerate() {
        object.insert(column.name().to_owned(), sqlite_value(row, index)?);
    }
    Ok(serde_json::Value::Object(object))
}

fn sqlite_value(row: &AnyRow, index: usize) -> Result<serde_json::Value, String> {
    if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
        return Ok(value.map_or(serde_json::Value::Null, serde_json::Value::from));
    }
    if let Ok(value) = row.try_get::<Option<f64>, _>(index) {
        return Ok(value.map_or(serde_json::Value::Null, serde_json::Value::from));
    }
    if let Ok(value) = row.try_get::<Option<String>, _>(index) {
        return Ok(value.map_or(serde_json::Value::Null, serde_json::Value::from));
    }
    if let Ok(value) = row.try_get::<Option<Vec<u8>>, _>(index) {
        let hex: Option<String> =
            value.map(|bytes| bytes.iter().map(|byte| format!("{byte:02x}")).collect());
        return Ok(hex.map_or(serde_json::Value::Null, serde_json::Value::from));
    }
    Err(format!("column {index} has a type that cannot be read"))
}

fn humantime_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_placeholders_in_the_sql_and_the_query_is_wrapped() {
        let query = sinter_core::solution::NamedQuery::parse(
            "SELECT name FROM assets WHERE device = :device AND kind = :deviceType;",
        )
        .unwrap();
        let sql = wrapped_sql(&query.to_positional(|n| format!("${n}")), Backend::Postgres);
        assert_eq!(
            sql,
            "SELECT row_to_json(provider_rows)::text AS row_json FROM (SELECT name FROM \
             assets WHERE device = $1 AND kind = $2\n) AS provider_rows LIMIT 101"
        );
    }
}
