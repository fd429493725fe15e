//! The orchestrator: the Solutions' rules, the store, the clock and the bus, shared by the
//! situation consumer, the escalation timers, the action dispatcher and the gRPC API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Map;
use sinter_bus::Bus;
use sinter_core::topic::{self, Stream};
use sinter_core::{SharedClock, Solution, Timestamp};
use sinter_proto::orchestrator::v1::{HistoryEntry, RecommendationChange};
use sinter_runtime::ServiceContext;
use sqlx::Row;
use tokio::sync::broadcast;

use crate::error::OrchestratorError;
use crate::group;
use crate::metrics::Metrics;
use crate::outbox::{self, Cause, OutboxRow};
use crate::rules::RuleSet;
use crate::state::ACTIVE_STATES_SQL;
use crate::store::{Backend, RecommendationRow, Store};

/// How the orchestrator runs, beyond what the [`ServiceContext`] says.
#[derive(Clone, Debug)]
pub struct OrchestratorConfig {
    /// `postgres://...` or `sqlite://...`.
    pub database_url: String,
    /// The consumer group on the situations topics.
    pub consumer_group: String,
    /// How often due timers and pending actions are looked for (wall time between looks;
    /// what is due is decided by the Clock).
    pub tick: Duration,
    /// How webhooks are retried before an action is parked.
    pub delivery: DeliveryPolicy,
    /// How many groups of people's requests commit side by side on PostgreSQL (`None`:
    /// two); SQLite, with its one connection, always has one.
    pub committers: Option<usize>,
}

/// Retries of one action delivery.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// Attempts in all, the first included, before the action is parked.
    pub attempts: usize,
    /// The first pause between attempts; each next pause doubles, up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How long one HTTP request may take.
    pub timeout: Duration,
    /// How long a dispatcher owns an action it picked up; after that (by the Clock) another
    /// dispatcher, or this one after a restart, may deliver it again.
    pub lease: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 6,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(120),
        }
    }
}

impl OrchestratorConfig {
    /// Defaults for everything but the database.
    pub fn new(database_url: impl Into<String>) -> Self {
        OrchestratorConfig {
            database_url: database_url.into(),
            consumer_group: "sinter-orchestrator".to_owned(),
            tick: Duration::from_secs(1),
            delivery: DeliveryPolicy::default(),
            committers: None,
        }
    }
}

/// One Solution as the orchestrator runs it.
pub struct SolutionRuntime {
    pub solution: Solution,
    /// `namespace/name`.
    pub qualified: String,
    pub rules: RuleSet,
    pub situations_topic: String,
    pub deadletter_topic: String,
}

pub(crate) struct Inner {
    pub store: Store,
    pub clock: SharedClock,
    pub bus: Arc<dyn Bus>,
    pub solutions: HashMap<String, Arc<SolutionRuntime>>,
    pub changes: broadcast::Sender<RecommendationChange>,
    pub metrics: Metrics,
    pub config: OrchestratorConfig,
    pub http: reqwest::Client,
    /// People's requests, applied in groups by the committers (see `group`).
    pub requests: group::Queues,
}

/// The orchestration service; cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field(
                "solutions",
                &self.inner.solutions.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Changes kept for slow watchers before they are told they fell behind.
const WATCH_CAPACITY: usize = 4_096;

impl Orchestrator {
    /// Build from a service context: connect to the database named in `config`, migrate,
    /// compile every Solution's rules.
    pub async fn build(
        context: &ServiceContext,
        config: OrchestratorConfig,
    ) -> Result<Orchestrator, OrchestratorError> {
        let store = Store::connect(&config.database_url).await?;
        Orchestrator::with_store(
            context.solutions.as_slice(),
            context.bus.clone(),
            context.clock.clone(),
            store,
            config,
        )
        .await
    }

    /// Build on an already connected store.
    pub async fn with_store(
        solutions: &[Solution],
        bus: Arc<dyn Bus>,
        clock: SharedClock,
        store: Store,
        config: OrchestratorConfig,
    ) -> Result<Orchestrator, OrchestratorError> {
        let mut runtimes = HashMap::new();
        for solution in solutions {
            let rules = RuleSet::compile(solution)?;
            let runtime = SolutionRuntime {
                qualified: solution.qualified_name(),
                rules,
                situations_topic: topic::name(
                    solution.namespace(),
                    solution.name(),
                    Stream::Situations,
                ),
                deadletter_topic: topic::name(
                    solution.namespace(),
                    solution.name(),
                    Stream::Deadletter,
                ),
                solution: solution.clone(),
            };
            runtimes.insert(runtime.qualified.clone(), Arc::new(runtime));
        }
        let http = reqwest::Client::builder()
            .timeout(config.delivery.timeout)
            .build()
            .map_err(OrchestratorError::Http)?;
        let (changes, _) = broadcast::channel(WATCH_CAPACITY);
        let committers = match store.backend() {
            Backend::Postgres => config.committers.unwrap_or(group::POSTGRES_COMMITTERS),
            Backend::Sqlite => 1,
        };
        let metrics = Metrics::new(&opentelemetry::global::meter("sinter-orchestrator"));
        let orchestrator = Orchestrator {
            inner: Arc::new_cyclic(|inner| Inner {
                store,
                clock,
                bus,
                solutions: runtimes,
                changes,
                metrics,
                config,
                http,
                requests: group::start(inner, committers),
            }),
        };
        orchestrator.seed_metrics().await?;
        Ok(orchestrator)
    }

    /// The store, for tools and tests.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The business metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Every change from now on, as the watch stream sends them.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<RecommendationChange> {
        self.inner.changes.subscribe()
    }

    pub(crate) fn solution(&self, qualified: &str) -> Option<&Arc<SolutionRuntime>> {
        self.inner.solutions.get(qualified)
    }

    /// The `<namespace>/<name>` of every Solution this orchestrator runs.
    pub(crate) fn solution_names(&self) -> impl Iterator<Item = &str> {
        self.inner.solutions.keys().map(String::as_str)
    }

    /// The actions a later step of `row` (an escalation, an ending) starts: a topic record
    /// per `topic` action of its rule. Webhooks fire on opening only, and only their bodies
    /// read the situation, so no situation variables are built.
    pub(crate) fn later_actions(
        &self,
        row: &RecommendationRow,
        cause: Cause<'_>,
        now: Timestamp,
    ) -> Vec<OutboxRow> {
        let Some(runtime) = self.solution(&row.solution) else {
            return Vec::new();
        };
        let Some(rule) = runtime.rules.rule(&row.rule) else {
            return Vec::new();
        };
        outbox::entries(&runtime.solution, rule, row, cause, &Map::new(), now)
    }

    /// Whether anyone watches the changes: without a watcher, nothing needs building.
    /// Asked after the commit, so a watcher that subscribed while the change was being
    /// written still sees it.
    pub(crate) fn watched(&self) -> bool {
        self.inner.changes.receiver_count() > 0
    }

    /// Tell watchers of committed changes, each a recommendation as it now stands and its
    /// audit entry; they are built only when someone watches.
    pub(crate) fn publish_rows(&self, rows: Vec<(RecommendationRow, HistoryEntry)>) {
        if rows.is_empty() || !self.watched() {
            return;
        }
        let mut changes = Vec::with_capacity(rows.len());
        for (row, entry) in rows {
            match row.to_proto() {
                Ok(recommendation) => changes.push(RecommendationChange {
                    recommendation: Some(recommendation),
                    change: Some(entry),
                }),
                Err(error) => tracing::warn!(recommendation = %row.id, error = %error,
                    "Cannot show a committed change to watchers."),
            }
        }
        self.publish(changes);
    }

    pub(crate) fn publish(&self, changes: Vec<RecommendationChange>) {
        for change in changes {
            // No watcher is fine: changes are not kept for later.
            let _ = self.inner.changes.send(change);
        }
    }

    async fn seed_metrics(&self) -> Result<(), OrchestratorError> {
        let pool = self.inner.store.pool();
        let open_sql = format!(
            "SELECT rule, COUNT(*) AS n FROM recommendations WHERE state IN {ACTIVE_STATES_SQL} \
             GROUP BY rule"
        );
        let open_rows = sqlx::query(&open_sql)
            .fetch_all(pool)
            .await
            .map_err(crate::store::StoreError::from)?;
        let mut open = Vec::new();
        for row in open_rows {
            let rule: String = row
                .try_get("rule")
                .map_err(crate::store::StoreError::from)?;
            let count: i64 = row.try_get("n").map_err(crate::store::StoreError::from)?;
            open.push((rule, count));
        }
        let ended_sql = format!(
            "SELECT rule, state, COUNT(*) AS n FROM recommendations \
             WHERE state NOT IN {ACTIVE_STATES_SQL} GROUP BY rule, state"
        );
        let ended_rows = sqlx::query(&ended_sql)
            .fetch_all(pool)
            .await
            .map_err(crate::store::StoreError::from)?;
        let mut outcomes: HashMap<String, (u64, u64)> = HashMap::new();
        for row in ended_rows {
            let rule: String = row
                .try_get("rule")
                .map_err(crate::store::StoreError::from)?;
            let state: String = row
                .try_get("state")
                .map_err(crate::store::StoreError::from)?;
            let count: i64 = row.try_get("n").map_err(crate::store::StoreError::from)?;
            let count = u64::try_from(count).unwrap_or_default();
            let entry = outcomes.entry(rule).or_default();
            entry.1 += count;
            if state == "false_alarm" {
                entry.0 += count;
            }
        }
        self.inner.metrics.seed(
            open,
            outcomes
                .into_iter()
                .map(|(rule, (false_alarms, ended))| (rule, false_alarms, ended))
                .collect(),
        );
        Ok(())
    }
}
