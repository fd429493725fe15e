//! The asset registry in SQL: one storage layer over PostgreSQL (cluster mode) and SQLite
//! (embedded mode).
//!
//! Both backends go through sqlx's `Any` driver with portable SQL: `$n` placeholders
//! (which sqlx's SQLite driver accepts too), `TEXT` and `BIGINT` columns only, times as
//! microseconds since the epoch, JSON attributes as text checked by the schema. What
//! differs lives in the two migration folders (`migrations/postgres`, `migrations/sqlite`)
//! and in [`Backend`]: PostgreSQL also announces every change through triggers and
//! `NOTIFY` (see [`crate::invalidation`]).

pub(crate) mod assets;
mod context;
pub(crate) mod devices;
mod paging;
pub(crate) mod sites;
pub(crate) mod validate;
pub(crate) mod work_orders;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use sinter_core::{SharedClock, Timestamp};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::error::RegistryError;

pub use assets::{ASSET_FIELDS, AssetFilter};
pub use context::{DeviceLookup, dependency_keys};
pub use devices::DEVICE_FIELDS;
pub use paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageRequest};
pub use sites::SITE_FIELDS;
pub use validate::CRITICALITIES;
pub use work_orders::{WORK_ORDER_FIELDS, parse_status, status_name};

/// The notification channel the PostgreSQL triggers announce changes on.
pub const CHANNEL: &str = "sinter_context_registry";

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Which database the registry lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The backend a URL names: `postgres://`/`postgresql://` or `sqlite:`.
    pub fn of_url(url: &str) -> Result<Backend, RegistryError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(RegistryError::BadUrl {
                url: redact(url),
                reason: "expected postgres://... or sqlite:...".to_owned(),
            })
        }
    }
}

/// Called with dependency keys (`device:<id>`, `asset:<id>`, `site:<id>`) after every
/// committed change made through this handle, or with `None` for "anything may have
/// changed" (an import).
pub type ChangeHook = Arc<dyn Fn(Option<&[String]>) + Send + Sync>;

/// The asset registry: sites, assets, devices, work orders.
#[derive(Clone)]
pub struct Registry {
    pool: AnyPool,
    backend: Backend,
    url: String,
    clock: SharedClock,
    hooks: Arc<RwLock<Vec<ChangeHook>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.backend)
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Connect to `url` and bring its schema up to date. A SQLite file is created when
    /// missing (`sqlite:path?mode=rwc` is implied).
    pub async fn connect(url: &str, clock: SharedClock) -> Result<Registry, RegistryError> {
        let backend = Backend::of_url(url)?;
        install_default_drivers();
        let connect_url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}mode=rwc")
            }
            _ => url.to_owned(),
        };
        // An in-memory SQLite database exists once per connection: keep to one.
        let max_connections = if url.contains(":memory:") { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&connect_url)
            .await?;
        let registry = Registry {
            pool,
            backend,
            url: url.to_owned(),
            clock,
            hooks: Arc::new(RwLock::new(Vec::new())),
        };
        registry.migrate().await?;
        Ok(registry)
    }

    async fn migrate(&self) -> Result<(), RegistryError> {
        let migrator = match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(RegistryError::Migrate)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL the registry was opened with (it may hold a password: never log it as is).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now().as_micros()
    }

    /// Call `hook` after every change committed through this registry (and its clones).
    pub fn on_change(&self, hook: ChangeHook) {
        self.hooks
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(hook);
    }

    pub(crate) fn changed(&self, keys: Option<&[String]>) {
        let hooks = self
            .hooks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for hook in hooks.iter() {
            hook(keys);
        }
    }

    /// How many assets the registry holds.
    pub async fn count_assets(&self) -> Result<i64, RegistryError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM assets")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    /// Close every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A protobuf timestamp from stored microseconds.
pub(crate) fn timestamp(micros: i64) -> Option<prost_types::Timestamp> {
    Some(sinter_proto::time::to_proto(Timestamp::from_micros(micros)))
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend_and_lose_their_password_in_logs() {
        assert_eq!(
            Backend::of_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_url("sqlite:x.db").ok(), Some(Backend::Sqlite));
        assert!(Backend::of_url("mysql://h/db").is_err());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite:x.db"), "sqlite:x.db");
    }
}
