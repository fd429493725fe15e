//! Checkpoints: each partition's analytics state with the next offset to read, in SQL.
//!
//! The state and the offset are written in one transaction, so after a restart the state
//! matches exactly the records before the offset: records the bus redelivers from an older
//! committed offset are recognised and skipped, so nothing is applied twice.

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::engine::PartitionState;

/// Why the checkpoint store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach the checkpoint database")]
    Connect(#[source] sqlx::Error),
    #[error("checkpoint query failed")]
    Query(#[from] sqlx::Error),
    #[error("stored state of {topic}[{partition}] does not decode")]
    Decode {
        topic: String,
        partition: i32,
        #[source]
        source: serde_json::Error,
    },
    #[error("state of {topic}[{partition}] does not encode")]
    Encode {
        topic: String,
        partition: i32,
        #[source]
        source: serde_json::Error,
    },
}

/// One partition's checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The first offset not reflected in `state`.
    pub next_offset: i64,
    pub state: PartitionState,
}

/// The checkpoint table, in PostgreSQL or SQLite.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    pool: AnyPool,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS analytics_checkpoints (
    consumer_group TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
)";

impl CheckpointStore {
    /// Connect to `url` (`postgres://...` or `sqlite:...`) and create the table if missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        // Each connection to an in-memory SQLite database has a database of its own.
        let in_memory = url.contains(":memory:");
        if in_memory {
            tracing::warn!("Checkpoints are kept in memory: a restart starts from nothing.");
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .idle_timeout((!in_memory).then_some(std::time::Duration::from_secs(600)))
            .max_lifetime((!in_memory).then_some(std::time::Duration::from_secs(1800)))
            .connect(url)
            .await
            .map_err(StoreError::Connect)?;
        sqlx::query(SCHEMA).execute(&pool).await?;
        Ok(CheckpointStore { pool })
    }

    /// The checkpoint of one partition, if any.
    pub async fn load(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT next_offset, state FROM analytics_checkpoints \
             WHERE consumer_group = $1 AND topic = $2 AND partition_id = $3",
        )
        .bind(group)
        .bind(topic)
        .bind(partition)
        .fetch_optional(&self.pool)
        .await?;
        let Some((next_offset, state)) = row else {
            return Ok(None);
        };
        let state = serde_json::from_str(&state).map_err(|source| StoreError::Decode {
            topic: topic.to_owned(),
            partition,
            source,
        })?;
        Ok(Some(Checkpoint { next_offset, state }))
    }

    /// Store several partitions' state and offsets in one transaction.
    pub async fn save(
        &self,
        group: &str,
        entries: &[(&str, i32, i64, &PartitionState)],
    ) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(entries.len());
        for (topic, partition, offset, state) in entries {
            let text = serde_json::to_string(state).map_err(|source| StoreError::Encode {
                topic: (*topic).to_owned(),
                partition: *partition,
                source,
            })?;
            encoded.push((*topic, *partition, *offset, text));
        }
        let mut transaction = self.pool.begin().await?;
        for (topic, partition, offset, state) in encoded {
            sqlx::query(
                "INSERT INTO analytics_checkpoints \
                 (consumer_group, topic, partition_id, next_offset, state) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (consumer_group, topic, partition_id) \
                 DO UPDATE SET next_offset = excluded.next_offset, state = excluded.state",
            )
            .bind(group)
            .bind(topic)
            .bind(partition)
            .bind(offset)
            .bind(state)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}
