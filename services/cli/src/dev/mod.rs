//! `sinter dev`: the four services in one process, on the embedded bus and SQLite, with a
//! simulated pump fleet and a live summary of what happens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use sinter_core::{SharedClock, Solution, SystemClock};
use sinter_grpc::{Auth, Tokens};
use sinter_runtime::Shutdown;
use sinter_telemetry::TelemetryArgs;

use crate::exit;
use simulator::{Simulator, SimulatorConfig};
use summary::{Summary, watch_recommendations};

pub(crate) mod simulator;
pub(crate) mod stack;
pub(crate) mod summary;

/// The demo Solution, used when no `--solution` is given.
pub(crate) const DEMO_SOLUTION: &str = include_str!("../../../../examples/demo/solution.yaml");
/// The demo registry: the north plant, its pumps and machines, bound to their devices.
pub(crate) const DEMO_REGISTRY: &str = include_str!("../../../../examples/demo/registry.csv");

/// Run Sinter in one process: ingest, analytics, context and orchestrator on the embedded
/// bus, state in SQLite under `--data-dir` (kept across restarts), every gRPC API on one
/// port, and a simulated pump fleet unless `--no-simulator`.
///
/// Stops on Ctrl-C (or after `--run-for`).
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Solution files to run; the demo Solution (examples/demo/solution.yaml) by default.
    #[arg(long = "solution", value_name = "FILE")]
    solutions: Vec<PathBuf>,
    /// Where the services keep their SQLite databases.
    #[arg(long, env = "SINTER_DATA_DIR", default_value = ".sinter")]
    data_dir: PathBuf,
    /// Where every gRPC API listens.
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// Where the HTTP readings API listens; `off` turns it off.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_optional_addr)]
    http_addr: OptionalAddr,
    /// Registry (CSV or JSON lines) imported when the registry is empty; the demo registry
    /// by default.
    #[arg(long, value_name = "FILE")]
    registry: Option<PathBuf>,
    /// Require this bearer token on gRPC (required when --grpc-addr is not loopback).
    #[arg(long, env = "SINTER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Do not run the device simulator.
    #[arg(long)]
    no_simulator: bool,
    /// Simulated pumps (p-01, p-02, ...).
    #[arg(long, default_value_t = 36,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=999))]
    pumps: usize,
    /// Time between two readings of each simulated metric.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// When the simulator's first fault starts.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    first_fault: Duration,
    /// Subscribe to the Solutions' MQTT sources.
    #[arg(long)]
    mqtt: bool,
    /// Time between two summary lines.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    summary_every: Duration,
    /// Stop after this long (for scripts); runs until Ctrl-C otherwise.
    #[arg(long, value_parser = humantime::parse_duration)]
    run_for: Option<Duration>,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

impl DevArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the Tokio runtime")?;
        runtime.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        let telemetry = sinter_telemetry::init_with_filter("sinter-dev", &self.telemetry, "warn")
            .context("telemetry could not start")?;
        let solutions = match self.load_solutions() {
            Ok(solutions) => solutions,
            Err(code) => return Ok(code),
        };
        let auth = self.auth()?;
        let _lock = lock_data_dir(&self.data_dir)?;

        let shutdown = Shutdown::on_signals();
        let clock: SharedClock = Arc::new(SystemClock);
        let stack = stack::start(
            stack::StackConfig {
                solutions: solutions.clone(),
                data_dir: self.data_dir.clone(),
                grpc_addr: self.grpc_addr,
                http_addr: self.http_addr.0,
                mqtt: self.mqtt,
                auth,
                registry: self.registry.clone(),
                clock: clock.clone(),
            },
            shutdown.clone(),
        )
        .await?;
        let grpc_addr = stack.grpc_addr;
        let changes = stack.changes;
        let mut tasks = stack.tasks;
        if let Some(addr) = self.telemetry.metrics_socket() {
            let ready = sinter_telemetry::Readiness::default();
            ready.set(true);
            sinter_telemetry::serve_metrics(
                addr,
                telemetry.registry().clone(),
                ready,
                shutdown.clone().wait(),
            )
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        }

        self.print_banner(&solutions, grpc_addr);
        let solution = solutions[0].qualified_name();
        if !self.no_simulator {
            let simulator = Simulator::new(SimulatorConfig {
                endpoint: format!("http://{grpc_addr}"),
                token: self.token.clone(),
                solution: solution.clone(),
                pumps: self.pumps,
                interval: self.interval,
                first_fault: self.first_fault,
            });
            let stop = shutdown.clone();
            let clock = clock.clone();
            tasks.spawn(async move { simulator.run(clock, stop).await });
        }
        let summary = Summary::new(telemetry.registry().clone(), self.summary_every);
        tasks.spawn(summary.run(shutdown.clone()));
        tasks.spawn(watch_recommendations(changes, shutdown.clone()));
        if let Some(limit) = self.run_for {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                stop.trigger();
            });
        }

        let mut failed = None;
        loop {
            let joined = tokio::select! {
                joined = tasks.join_next() => joined,
                // Open gRPC streams (a `sinter recs watch`) keep the server's graceful stop
                // waiting; after the grace period whatever still runs is stopped.
                () = grace_after(shutdown.clone()) => {
                    tasks.abort_all();
                    break;
                }
            };
            let Some(joined) = joined else { break };
            let result = joined
                .map_err(anyhow::Error::from)
                .and_then(|result| result);
            if let Err(err) = result {
                eprintln!("sinter dev: {err:#}");
                failed.get_or_insert(err);
                shutdown.trigger();
            }
        }
        outln!(
            "Stopped at {}; state kept in {}.",
            clock.now(),
            self.data_dir.display()
        );
        telemetry.shutdown();
        Ok(if failed.is_some() {
            exit::cannot_run()
        } else {
            exit::OK
        })
    }

    /// The Solutions to run, or the exit status after printing why none can run.
    fn load_solutions(&self) -> Result<Vec<Solution>, ExitCode> {
        if self.solutions.is_empty() {
            return match Solution::from_yaml(DEMO_SOLUTION) {
                Ok(solution) => Ok(vec![solution]),
                Err(errors) => {
                    eprintln!("sinter dev: the demo Solution is invalid:\n{errors}");
                    Err(exit::cannot_run())
                }
            };
        }
        let loaded = sinter_runtime::load_solutions(&self.solutions);
        for (path, errors) in &loaded.refused {
            eprintln!("sinter dev: {} is refused:\n{errors}", path.display());
        }
        if loaded.solutions.is_empty() {
            return Err(exit::problems_found());
        }
        Ok(loaded.solutions)
    }

    fn auth(&self) -> anyhow::Result<Auth> {
        match self.token.as_deref().map(str::trim) {
            Some(token) if !token.is_empty() => Ok(Auth::new(Tokens::from_list(token))),
            _ if self.grpc_addr.ip().is_loopback() => Ok(Auth::disabled()),
            _ => bail!(
                "--grpc-addr {} is reachable from other machines: give --token (or \
                 SINTER_TOKEN) so that its callers must authenticate",
                self.grpc_addr
            ),
        }
    }

    fn print_banner(&self, solutions: &[Solution], grpc_addr: SocketAddr) {
        let names: Vec<String> = solutions.iter().map(Solution::qualified_name).collect();
        outln!("Sinter dev: {} on the embedded bus.", names.join(", "));
        outln!("  data      {}", self.data_dir.display());
        outln!("  gRPC      http://{grpc_addr} (ingest, analytics, context, orchestrator)");
        if let Some(http) = self.http_addr.0 {
            outln!(
                "  HTTP      http://{http}/v1/solutions/{}/readings",
                names[0]
            );
        }
        if let Some(addr) = self.telemetry.metrics_socket() {
            outln!("  metrics   http://{addr}/metrics");
        }
        if self.no_simulator {
            outln!("  simulator off");
        } else {
            outln!(
                "  simulator {} pumps, every metric every {}; first fault in {}",
                self.pumps,
                humantime::format_duration(self.interval),
                humantime::format_duration(self.first_fault)
            );
        }
        let endpoint = if grpc_addr == SocketAddr::from(([127, 0, 0, 1], 50051)) {
            String::new()
        } else {
            format!(" --endpoint http://{grpc_addr}")
        };
        outln!(
            "In another terminal: `sinter recs list{endpoint}`, `sinter recs watch{endpoint}`. \
             Ctrl-C stops."
        );
    }
}

/// How long the services may take to stop once asked.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Resolves `SHUTDOWN_GRACE` after `shutdown` fired.
async fn grace_after(shutdown: Shutdown) {
    shutdown.wait().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

/// Hold an exclusive lock on `DIR/lock` for as long as the file lives, so that two
/// processes never share one data directory.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    if dir.exists() && !dir.is_dir() {
        bail!("--data-dir {} is not a directory", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "{} is in use by another `sinter dev`; stop it or give another --data-dir",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// An address, or none for `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OptionalAddr(Option<SocketAddr>);

fn parse_optional_addr(text: &str) -> Result<OptionalAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(OptionalAddr(None));
    }
    text.parse()
        .map(|addr| OptionalAddr(Some(addr)))
        .map_err(|err| format!("{text:?} is not an address like 127.0.0.1:8080 or `off`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_solution_is_valid_and_every_simulated_device_is_in_the_demo_registry() {
        let solution = Solution::from_yaml(DEMO_SOLUTION).expect("demo Solution");
        assert_eq!(solution.qualified_name(), "demo/pump-health");
        let bound: Vec<&str> = DEMO_REGISTRY
            .lines()
            .filter_map(|line| line.strip_prefix("device,"))
            .filter_map(|rest| rest.split(',').next())
            .collect();
        for n in 1..=36 {
            let device = format!("p-{n:02}");
            assert!(
                bound.contains(&device.as_str()),
                "{device} is not in the demo registry"
            );
        }
        assert!(bound.contains(&"m-01"));
        // Every escalation step of the demo is short enough to watch.
        for rule in &solution.spec.recommendations {
            if rule.name != "machine-temperature" {
                assert!(
                    rule.escalate
                        .iter()
                        .all(|step| step.after <= Duration::from_secs(120)),
                    "{} escalates too slowly for a demo",
                    rule.name
                );
            }
        }
    }

    #[test]
    fn a_public_address_needs_a_token() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            dev: DevArgs,
        }
        let open = Wrapper::parse_from(["sinter", "--grpc-addr", "0.0.0.0:50051"]);
        let err = open.dev.auth().expect_err("refused without a token");
        assert!(err.to_string().contains("--token"), "{err}");
        let local = Wrapper::parse_from(["sinter"]);
        assert!(!local.dev.auth().expect("loopback").is_enabled());
        let tokened = Wrapper::parse_from(["sinter", "--grpc-addr", "0.0.0.0:1", "--token", "t"]);
        assert!(tokened.dev.auth().expect("token").is_enabled());
    }
}
