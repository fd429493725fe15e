//! Where recommendations live: one SQL schema on PostgreSQL or SQLite through sqlx's
//! `Any` driver.
//!
//! Both databases run the same statements: portable SQL (`$1` parameters, `ON CONFLICT`,
//! `RETURNING`, partial indexes), integers for times (microseconds since the epoch) and
//! enums, text and bytes for the rest. Only the migrations differ, one folder per
//! database under `migrations/`. SQLite gets a single connection, so its writers never
//! meet `SQLITE_BUSY`; PostgreSQL gets a pool and relies on its row locks and the
//! primary key of `active_recommendations`.

pub mod active;
pub mod batch;
pub mod rows;

use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Transaction};

pub use rows::{HistoryRow, RecommendationRow, history_entry, insert_histories, insert_history};

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Why the store could not be reached or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{url:?} is not a database URL this service supports \
         (postgres://... or sqlite://...)"
    )]
    UnsupportedUrl { url: String },
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("cannot bring the database schema up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("the database refused a statement")]
    Sql(#[from] sqlx::Error),
    #[error("stored {what} {id} does not decode")]
    Corrupt {
        what: &'static str,
        id: String,
        #[source]
        source: prost::DecodeError,
    },
}

/// The orchestrator's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static DRIVERS: Once = Once::new();

/// Prepared statements kept per PostgreSQL connection, unless the URL says otherwise.
const STATEMENT_CACHE: &str = "512";

/// Set on each PostgreSQL session. The orchestrator's statements look rows up by key, a
/// batch's worth at a time, in tables that stay in memory. With the default random page
/// cost (4, a disk's seek) the planner prefers reading a table of a few thousand rows
/// whole to a few hundred index lookups, and that scan costs several times more; 1.1 is
/// the usual setting for data in memory or on SSD, and makes it choose the lookups.
const POSTGRES_SESSION: &str = "SET random_page_cost = 1.1";

impl Store {
    /// Connect to `url` (`postgres://...` or `sqlite://...`; `sqlite::memory:` for a
    /// throwaway database) and bring the schema up to date.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, 16).await
    }

    /// [`Store::connect`] with at most `max_connections` for PostgreSQL.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::UnsupportedUrl { url: redact(url) });
        };
        let mut options = AnyConnectOptions::from_str(url).map_err(StoreError::Connect)?;
        if backend == Backend::Postgres {
            let set = options
                .database_url
                .query_pairs()
                .any(|(key, _)| key == "statement-cache-capacity");
            if !set {
                // Each table's statements come in a dozen sizes (see `batch::pieces`): room
                // for all of them to stay prepared.
                options
                    .database_url
                    .query_pairs_mut()
                    .append_pair("statement-cache-capacity", STATEMENT_CACHE);
            }
        }
        let connections = match backend {
            Backend::Postgres => max_connections.max(1),
            Backend::Sqlite => 1,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Postgres {
                        sqlx::Executor::execute(&mut *conn, POSTGRES_SESSION).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        };
        migrator.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Close every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Whether `error` is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether `error` is PostgreSQL ending a transaction so that it can be run again: a
/// deadlock (`40P01`) or a serialization failure (`40001`).
pub fn is_transient_conflict(error: &StoreError) -> bool {
    match error {
        StoreError::Sql(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01") | Some("40001"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://sinter:secret@db:5432/x"),
            "postgres://sinter:***@db:5432/x"
        );
        assert_eq!(redact("mysql://db/x"), "mysql://db/x");
    }
}
