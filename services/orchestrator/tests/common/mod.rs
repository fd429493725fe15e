//! What the orchestrator's tests share: a throwaway database (PostgreSQL or SQLite), a
//! Solution, situations, a manual clock and a real HTTP server as webhook target.
#![allow(dead_code)]

pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use sinter_bus::embedded::EmbeddedBus;
use sinter_bus::{Bus, TopicSpec};
use sinter_core::topic::{self, Stream};
use sinter_core::{ManualClock, Solution, Timestamp};
use sinter_orchestrator::{Orchestrator, OrchestratorConfig, Store};
use sinter_proto::events::v1::{
    AssetContext, Detection, DetectorKind, Severity, Situation, detection::Transition,
};
use sqlx::Connection;

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A database of its own for one test, dropped afterwards.
pub struct TestDatabase {
    pub url: String,
    backend: Backend,
    name: String,
    sqlite_dir: Option<std::path::PathBuf>,
}

pub fn admin_url() -> String {
    std::env::var("SINTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> TestDatabase {
        sqlx::any::install_default_drivers();
        let name = format!("sinter_orchestrator_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Postgres => {
                let admin = admin_url();
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|error| {
                        panic!("PostgreSQL is not reachable at {admin}: {error}")
                    });
                sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create the test database");
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(base, _)| base);
                TestDatabase {
                    url: format!("{base}/{name}"),
                    backend,
                    name,
                    sqlite_dir: None,
                }
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("make a directory for SQLite");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.join("orchestrator.db").display()
                );
                TestDatabase {
                    url,
                    backend,
                    name,
                    sqlite_dir: Some(dir),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        if self.backend == Backend::Postgres {
            let name = self.name.clone();
            let admin = admin_url();
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime to drop the test database");
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                        let _ =
                            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The Solution of the tests; `{webhook}` is the receiver's URL.
pub fn solution(webhook: &str, secret_file: &std::path::Path) -> Solution {
    solution_in("test", webhook, secret_file)
}

/// The test Solution in `namespace`, so that its topics are a test's own.
pub fn solution_in(namespace: &str, webhook: &str, secret_file: &std::path::Path) -> Solution {
    let yaml = format!(
        r#"
apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {{name: pump-health, namespace: {namespace}}}
spec:
  devices:
    - type: centrifugal-pump
      match: ["p-*"]
      metrics:
        - {{name: bearing_temperature, unit: degC}}
        - {{name: vibration_rms, unit: mm/s}}
  matchPolicy: all
  recommendations:
    - name: bearing-overheat
      when: 'detection.metric == "bearing_temperature" && asset.criticality == "high"'
      title: 'Inspect {{{{ asset.name }}}}: bearing at {{{{ detection.value }}}} degC'
      description: 'At {{{{ site.name }}}}.'
      escalate:
        - {{after: 15m, to: maintenance-lead}}
        - {{after: 1h, to: plant-manager}}
      resolveWhen: cleared
      actions:
        - webhook:
            url: {webhook}
            secretRef: {{file: {secret}}}
            header: X-Cmms-Token
            body: >-
              {{"asset": "{{{{ asset.name }}}}", "title": "{{{{ recommendation.title }}}}",
              "priority": "{{{{ recommendation.severity }}}}"}}
        - topic: {{}}
    - name: vibration-alarm
      when: 'detection.metric == "vibration_rms"'
      title: 'Check {{{{ detection.device }}}}'
      severity: critical
      resolveWhen: manual
      actions:
        - topic: {{}}
    - name: extreme-temperature
      when: 'detection.value > 150.0'
      title: 'Stop {{{{ detection.device }}}}'
      resolveWhen: manual
"#,
        secret = secret_file.display()
    );
    Solution::from_yaml(&yaml).expect("the test Solution is valid")
}

pub const SOLUTION: &str = "test/pump-health";
pub const START: Timestamp = Timestamp::from_secs(1_764_756_000);

/// A situation of device `device` on asset `asset` (empty: the registry knows no asset).
pub fn situation(
    id: &str,
    incident: &str,
    metric: &str,
    asset: &str,
    transition: Transition,
    value: f64,
) -> Situation {
    let device = format!("p-{asset}");
    Situation {
        id: id.to_owned(),
        detection: Some(Detection {
            id: format!("dt-{id}"),
            incident_id: incident.to_owned(),
            transition: transition as i32,
            device_id: device,
            metric: metric.to_owned(),
            detector: DetectorKind::Threshold as i32,
            detector_name: "bearing-hot".to_owned(),
            severity: Severity::Major as i32,
            value,
            device_type: "centrifugal-pump".to_owned(),
            ..Detection::default()
        }),
        asset: (!asset.is_empty()).then(|| AssetContext {
            asset_id: asset.to_owned(),
            asset_name: format!("Pump {asset}"),
            criticality: "high".to_owned(),
            site_id: "north".to_owned(),
            site_name: "North plant".to_owned(),
            ..AssetContext::default()
        }),
        ..Situation::default()
    }
}

/// Apply `situation` to the test Solution, which must open exactly one recommendation;
/// returns its id.
pub async fn open_one(orchestrator: &Orchestrator, situation: &Situation) -> String {
    let applied = orchestrator
        .apply_situation(SOLUTION, situation, None)
        .await
        .expect("apply a situation");
    assert_eq!(applied.opened.len(), 1, "{applied:?}");
    applied.opened[0].clone()
}

pub fn raised(id: &str, incident: &str, asset: &str) -> Situation {
    situation(
        id,
        incident,
        "bearing_temperature",
        asset,
        Transition::Raised,
        91.5,
    )
}

pub fn cleared(id: &str, incident: &str, asset: &str) -> Situation {
    situation(
        id,
        incident,
        "bearing_temperature",
        asset,
        Transition::Cleared,
        78.0,
    )
}

/// An orchestrator on `database`, its clock and its bus.
pub struct Harness {
    pub orchestrator: Orchestrator,
    pub clock: ManualClock,
    pub bus: Arc<EmbeddedBus>,
    pub solution: Solution,
}

pub fn test_config(url: &str) -> OrchestratorConfig {
    let mut config = OrchestratorConfig::new(url);
    config.tick = Duration::from_millis(20);
    config.delivery.attempts = 3;
    config.delivery.min_delay = Duration::from_millis(10);
    config.delivery.max_delay = Duration::from_millis(40);
    config.delivery.timeout = Duration::from_secs(5);
    config.delivery.lease = Duration::from_secs(60);
    config
}

impl Harness {
    pub async fn start(database: &TestDatabase, webhook: &str) -> Harness {
        Harness::start_with(database, webhook, ManualClock::new(START), None).await
    }

    /// Start on `database` with `clock` and, when given, an existing bus (a restart).
    pub async fn start_with(
        database: &TestDatabase,
        webhook: &str,
        clock: ManualClock,
        bus: Option<Arc<EmbeddedBus>>,
    ) -> Harness {
        Harness::start_configured(database, webhook, clock, bus, test_config(&database.url)).await
    }

    /// [`Harness::start_with`] with `config`.
    pub async fn start_configured(
        database: &TestDatabase,
        webhook: &str,
        clock: ManualClock,
        bus: Option<Arc<EmbeddedBus>>,
        config: OrchestratorConfig,
    ) -> Harness {
        let solution = solution(webhook, &secret_file());
        let bus = match bus {
            Some(bus) => bus,
            None => {
                let bus = Arc::new(EmbeddedBus::new());
                for stream in [Stream::Situations, Stream::Actions, Stream::Deadletter] {
                    let name = topic::name(solution.namespace(), solution.name(), stream);
                    bus.ensure_topic(&TopicSpec::new(name, 2))
                        .await
                        .expect("make a topic");
                }
                bus
            }
        };
        let store = Store::connect(&database.url)
            .await
            .expect("connect the store");
        let orchestrator = Orchestrator::with_store(
            std::slice::from_ref(&solution),
            bus.clone() as Arc<dyn Bus>,
            Arc::new(clock.clone()),
            store,
            config,
        )
        .await
        .expect("build the orchestrator");
        Harness {
            orchestrator,
            clock,
            bus,
            solution,
        }
    }

    pub fn actions_topic(&self) -> String {
        topic::name(
            self.solution.namespace(),
            self.solution.name(),
            Stream::Actions,
        )
    }

    pub fn situations_topic(&self) -> String {
        topic::name(
            self.solution.namespace(),
            self.solution.name(),
            Stream::Situations,
        )
    }
}

/// The secret the webhook tests expect in `X-Cmms-Token`, read from a file.
pub const CMMS_TOKEN: &str = "cmms-secret-42";

/// A file holding [`CMMS_TOKEN`] with a trailing newline, as a mounted secret has.
/// Written once per test process, so that no test reads it while another rewrites it.
pub fn secret_file() -> std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let name = format!("sinter-orchestrator-test-cmms-token-{}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, format!("{CMMS_TOKEN}\n")).expect("write the secret file");
        path
    })
    .clone()
}

/// Generate one test per database for an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )+
        }
    };
}
