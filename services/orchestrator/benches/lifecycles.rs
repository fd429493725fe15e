//! Full recommendation lifecycles per second on PostgreSQL: open (situations, in batches
//! as the consumer applies them), escalate (due timers), acknowledge, resolve (one call
//! per recommendation, as people and integrations make them).
//!
//! `cargo bench -p sinter-orchestrator --bench lifecycles`; PostgreSQL from
//! `SINTER_TEST_DATABASE_URL` (admin connection, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); a database of its own is made and
//! dropped. `SINTER_BENCH_LIFECYCLES` (default 20000) and `SINTER_BENCH_CONCURRENCY`
//! (default 256) size the run; `SINTER_BENCH_COMMITTERS` sets how many groups of requests
//! commit side by side (default: the orchestrator's).
//!
//! The concurrency is how many acknowledge and resolve calls are under way at once. At a
//! plant's shift change, or when a CMMS integration syncs its work orders, hundreds of
//! technicians and integrations act at the same moment; the orchestrator commits their
//! concurrent requests together, so this is the load that shows what it sustains. The
//! pool stays at [`POOL_CONNECTIONS`] whatever the concurrency, as in service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sinter_bus::Bus;
use sinter_bus::embedded::EmbeddedBus;
use sinter_core::{ManualClock, Solution, Timestamp};
use sinter_orchestrator::{Orchestrator, OrchestratorConfig, Store, TaskRequest};
use sinter_proto::events::v1::{
    AssetContext, Detection, Severity, Situation, detection::Transition,
};
use sinter_proto::orchestrator::v1::Outcome;
use sqlx::Connection;

// The allocator the service binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SOLUTION: &str = r#"
apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {name: bench, namespace: bench}
spec:
  devices:
    - type: pump
      match: ["p-*"]
      metrics: [{name: temp, unit: degC}]
  recommendations:
    - name: overheat
      when: 'detection.metric == "temp" && asset.criticality == "high"'
      title: 'Inspect {{ asset.name }} at {{ detection.value }} degC'
      escalate: [{after: 15m, to: maintenance-lead}, {after: 1h, to: plant-manager}]
      resolveWhen: manual
      actions: [{topic: {}}]
"#;

/// Situations per transaction, as the consumer batches what waits on the bus.
const SITUATION_BATCH: usize = 64;

/// Batches of situations applied at once, as by four consumers (replicas) of the
/// situations topic; one process's consumer applies one batch at a time.
const OPEN_PARALLELISM: usize = 4;

/// Database connections, the service's default.
const POOL_CONNECTIONS: u32 = 16;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn situation(n: usize) -> Situation {
    Situation {
        id: format!("st-{n}"),
        detection: Some(Detection {
            incident_id: format!("inc-{n}"),
            transition: Transition::Raised as i32,
            device_id: format!("p-{n}"),
            metric: "temp".to_owned(),
            severity: Severity::Major as i32,
            value: 91.5,
            ..Detection::default()
        }),
        asset: Some(AssetContext {
            asset_id: format!("a-{n}"),
            asset_name: format!("Pump {n}"),
            criticality: "high".to_owned(),
            ..AssetContext::default()
        }),
        ..Situation::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let lifecycles = env_number("SINTER_BENCH_LIFECYCLES", 20_000);
    let concurrency = env_number("SINTER_BENCH_CONCURRENCY", 256).max(1);
    let committers = std::env::var("SINTER_BENCH_COMMITTERS")
        .ok()
        .and_then(|value| value.parse().ok());
    sqlx::any::install_default_drivers();
    let admin = std::env::var("SINTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!(
        "sinter_orchestrator_bench_{}",
        uuid::Uuid::new_v4().simple()
    );
    let mut conn = sqlx::AnyConnection::connect(&admin).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    let url = format!("{base}/{name}");
    let result = run(&url, lifecycles, concurrency, committers).await;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    result
}

async fn run(
    url: &str,
    lifecycles: usize,
    concurrency: usize,
    committers: Option<usize>,
) -> anyhow::Result<()> {
    let solution = Solution::from_yaml(SOLUTION).map_err(|e| anyhow::anyhow!("{e}"))?;
    let qualified = solution.qualified_name();
    let clock = ManualClock::new(Timestamp::from_secs(1_764_756_000));
    let store = Store::connect_with(url, POOL_CONNECTIONS).await?;
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    let mut config = OrchestratorConfig::new(url);
    config.committers = committers;
    let orchestrator =
        Orchestrator::with_store(&[solution], bus, Arc::new(clock.clone()), store, config).await?;
    let bench = Bench {
        orchestrator: &orchestrator,
        qualified: &qualified,
        concurrency,
    };

    // Each step alone, over every lifecycle, one step after the other.
    let started = Instant::now();
    let opened = bench.open(0..lifecycles).await?;
    let open_time = started.elapsed();
    clock.advance(RUNG);
    let escalate_started = Instant::now();
    let escalated = bench.escalate().await?;
    anyhow::ensure!(
        escalated == lifecycles,
        "{escalated} of {lifecycles} escalated"
    );
    let escalate_time = escalate_started.elapsed();
    let ack_started = Instant::now();
    bench.act(&opened, false).await?;
    let ack_time = ack_started.elapsed();
    let resolve_started = Instant::now();
    bench.act(&opened, true).await?;
    let resolve_time = resolve_started.elapsed();
    let one_after_another = started.elapsed();
    bench.check(lifecycles).await?;

    // The steps side by side, as in service: while one wave of recommendations opens, the
    // one before escalates, the one before that is acknowledged, and the oldest resolved.
    // A wave's first rung comes due one tick after it opened; it is acknowledged before its
    // second rung is due.
    clock.advance(Duration::from_secs(24 * 3600));
    let waves: Vec<std::ops::Range<usize>> = (0..lifecycles.div_ceil(WAVE))
        .map(|wave| lifecycles + wave * WAVE..lifecycles + ((wave + 1) * WAVE).min(lifecycles))
        .collect();
    let mut ids: Vec<Vec<String>> = Vec::with_capacity(waves.len());
    let mut escalated = 0;
    let started = Instant::now();
    for tick in 0..waves.len() + 3 {
        let opening = waves.get(tick).cloned();
        let opens = opening.is_some();
        let open = async {
            match opening {
                Some(wave) => bench.open(wave).await,
                None => Ok(Vec::new()),
            }
        };
        let acknowledge = async {
            match tick.checked_sub(2).and_then(|wave| ids.get(wave)) {
                Some(wave) => bench.act(wave, false).await,
                None => Ok(()),
            }
        };
        let resolve = async {
            match tick.checked_sub(3).and_then(|wave| ids.get(wave)) {
                Some(wave) => bench.act(wave, true).await,
                None => Ok(()),
            }
        };
        let (opened, fired, (), ()) =
            tokio::try_join!(open, bench.escalate(), acknowledge, resolve)?;
        if opens {
            ids.push(opened);
        }
        escalated += fired;
        clock.advance(RUNG);
    }
    let side_by_side = started.elapsed();
    anyhow::ensure!(
        escalated == lifecycles,
        "{escalated} of {lifecycles} escalated side by side"
    );
    bench.check(2 * lifecycles).await?;

    let rate = |count: usize, time: Duration| count as f64 / time.as_secs_f64();
    println!(
        "lifecycles: {lifecycles} on PostgreSQL, concurrency {concurrency}, \
         {POOL_CONNECTIONS} connections"
    );
    println!("each step alone:");
    println!("  open        {:>9.0}/s", rate(lifecycles, open_time));
    println!("  escalate    {:>9.0}/s", rate(lifecycles, escalate_time));
    println!("  acknowledge {:>9.0}/s", rate(lifecycles, ack_time));
    println!("  resolve     {:>9.0}/s", rate(lifecycles, resolve_time));
    println!(
        "  one step after another: {:.0} lifecycles/s",
        rate(lifecycles, one_after_another)
    );
    println!(
        "full lifecycles/s, steps side by side in waves of {WAVE}: {:.0}",
        rate(lifecycles, side_by_side)
    );
    orchestrator.store().close().await;
    Ok(())
}

/// The first rung of the bench rule's ladder.
const RUNG: Duration = Duration::from_secs(15 * 60);

/// Recommendations per wave when the steps run side by side.
const WAVE: usize = 1_000;

/// What each step of the bench drives.
struct Bench<'a> {
    orchestrator: &'a Orchestrator,
    qualified: &'a str,
    concurrency: usize,
}

impl Bench<'_> {
    /// Open a recommendation for each situation number in `numbers`, in batches as the
    /// consumer applies what waits on the bus; returns their ids.
    async fn open(&self, numbers: std::ops::Range<usize>) -> anyhow::Result<Vec<String>> {
        let expected = numbers.len();
        let batches: Vec<Vec<usize>> = numbers
            .collect::<Vec<_>>()
            .chunks(SITUATION_BATCH)
            .map(<[usize]>::to_vec)
            .collect();
        let opened: Vec<Vec<String>> = futures::stream::iter(batches)
            .map(|numbers| async move {
                let batch: Vec<_> = numbers.iter().map(|n| (situation(*n), None)).collect();
                let applied = self
                    .orchestrator
                    .apply_situations(self.qualified, &batch)
                    .await?;
                Ok::<_, anyhow::Error>(
                    applied
                        .into_iter()
                        .flat_map(|applied| applied.opened)
                        .collect(),
                )
            })
            .buffer_unordered(OPEN_PARALLELISM)
            .collect::<Vec<anyhow::Result<Vec<String>>>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let opened: Vec<String> = opened.into_iter().flatten().collect();
        anyhow::ensure!(
            opened.len() == expected,
            "{} of {expected} opened",
            opened.len()
        );
        Ok(opened)
    }

    /// Fire every timer due by the clock's now, in rounds; returns how many escalated.
    async fn escalate(&self) -> anyhow::Result<usize> {
        let mut escalated = 0;
        loop {
            let fired = self.orchestrator.fire_due_timers(1_000).await?;
            if fired == 0 {
                return Ok(escalated);
            }
            escalated += fired;
        }
    }

    /// Acknowledge (or resolve) each of `ids`, one call per recommendation, with
    /// `concurrency` calls under way at once.
    async fn act(&self, ids: &[String], resolve: bool) -> anyhow::Result<()> {
        step(self.orchestrator, ids, self.concurrency, resolve).await
    }

    /// `lifecycles` recommendations resolved, each with its four audit entries.
    async fn check(&self, lifecycles: usize) -> anyhow::Result<()> {
        let pool = self.orchestrator.store().pool();
        let resolved: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM recommendations WHERE state = 'resolved'")
                .fetch_one(pool)
                .await?;
        let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recommendation_history")
            .fetch_one(pool)
            .await?;
        anyhow::ensure!(
            usize::try_from(resolved)? == lifecycles && usize::try_from(entries)? == 4 * lifecycles,
            "{resolved} of {lifecycles} resolved, {entries} audit entries"
        );
        Ok(())
    }
}

async fn step(
    orchestrator: &Orchestrator,
    ids: &[String],
    concurrency: usize,
    resolve: bool,
) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(ids)
        .map(|id| async move {
            let request = TaskRequest {
                id,
                actor: "bench",
                comment: "",
            };
            if resolve {
                orchestrator.resolve(request, Outcome::Fixed).await?;
            } else {
                orchestrator.acknowledge(request).await?;
            }
            Ok(())
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}
