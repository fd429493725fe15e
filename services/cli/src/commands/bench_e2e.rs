//! `sinter bench e2e`: readings in at one end, recommendations out at the other, through
//! all four services; sustained readings/s and the latency from a reading to the
//! recommendation it opens.
//!
//! The load is many machines (`m-bench-0001`, ...) reporting a steady temperature; at
//! evenly spaced points one machine's reading jumps, its anomaly detector raises, and a
//! recommendation opens. The time from sending that reading to the recommendation's
//! `opened` change is one latency sample. Every machine is in the registry, so each
//! recommendation is enriched as in production.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use sinter_core::{SharedClock, Solution, SystemClock, Timestamp};
use sinter_grpc::{Auth, BearerToken};
use sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use sinter_proto::ingest::v1::{PublishRequest, ReadingInput, reading_input};
use sinter_proto::orchestrator::v1 as pb;
use sinter_runtime::Shutdown;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel that sends the bearer token.
type Authed = InterceptedService<Channel, BearerToken>;

use crate::dev::DEMO_SOLUTION;
use crate::dev::stack::{self, StackConfig};

/// Readings each machine sends before the measurement, so its detector is past warm-up.
const WARMUP_READINGS: u64 = 400;

/// Drive Sinter end to end: in-process on the embedded bus (the default), or a running
/// Sinter at `--ingest`, `--context` and `--orchestrator` (cluster mode).
#[derive(Debug, Args)]
pub(crate) struct E2eArgs {
    /// Ingest endpoint of a running Sinter; with `--context` and `--orchestrator`.
    #[arg(long, requires_all = ["context", "orchestrator"])]
    ingest: Option<String>,
    #[arg(long, requires = "ingest")]
    context: Option<String>,
    #[arg(long, requires = "ingest")]
    orchestrator: Option<String>,
    /// The Solution on the running Sinter; it must have the demo's `machine` devices and
    /// `machine-temperature` rule.
    #[arg(long, default_value = "demo/pump-health")]
    solution: String,
    #[arg(long, env = "SINTER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Simulated machines.
    #[arg(long, default_value_t = 500)]
    devices: u64,
    /// Readings in the measurement (after the warm-up).
    #[arg(long, default_value_t = 1_000_000)]
    readings: u64,
    /// Readings per second to send at, warm-up included: the measurement then starts on a
    /// pipeline in its steady state, not behind a backlog of warm-up readings. As fast as
    /// the service takes them when absent.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Jumps in the measurement, one latency sample each (at most one per machine).
    #[arg(long, default_value_t = 100)]
    spikes: u64,
    /// Readings per Publish call.
    #[arg(long, default_value_t = 1000)]
    batch_size: u64,
    /// Publish calls in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Also print every jump's latency, in the order sent, with when it was sent.
    #[arg(long)]
    samples: bool,
}

/// Where each spiking machine's jump was sent, and where its recommendation came back.
#[derive(Default)]
struct Spikes {
    sent: HashMap<String, Instant>,
    opened: HashMap<String, Instant>,
    /// Recommendations opened for machines that had not jumped (false alarms).
    unprompted: u64,
}

impl E2eArgs {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        if self.spikes > self.devices {
            bail!(
                "--spikes ({}) must not exceed --devices ({})",
                self.spikes,
                self.devices
            );
        }
        let shutdown = Shutdown::new();
        let (ingest, context, orchestrator, mode) = match &self.ingest {
            Some(ingest) => (
                ingest.clone(),
                self.context.clone().unwrap_or_default(),
                self.orchestrator.clone().unwrap_or_default(),
                "cluster (the given endpoints)",
            ),
            None => {
                let addr = self.start_embedded(shutdown.clone()).await?;
                let endpoint = format!("http://{addr}");
                (
                    endpoint.clone(),
                    endpoint.clone(),
                    endpoint,
                    "embedded (in this process)",
                )
            }
        };
        let token = BearerToken::new(self.token.as_deref())?;
        let mut registry = sinter_context::client::connect(&context, token.clone()).await?;
        let imported = sinter_context::client::import_bytes(
            &mut registry,
            sinter_proto::context::v1::import_registry_request::Format::Csv,
            bench_registry(self.devices).into_bytes(),
            false,
        )
        .await?;
        if imported.refused > 0 {
            bail!(
                "the bench registry was refused in part: {:?}",
                imported.rows
            );
        }
        let channel = sinter_grpc::connect(&ingest, token.clone()).await?;
        let orchestrator_client =
            sinter_orchestrator::client::connect(&orchestrator, token.clone()).await?;
        let spikes = Arc::new(Mutex::new(Spikes::default()));
        let watcher = tokio::spawn(watch(
            orchestrator_client,
            self.solution.clone(),
            spikes.clone(),
        ));
        // Let the watch stream open before anything can be opened.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let load = Load::new(&self);
        outln!(
            "bench e2e: {mode}; {} machines, {} warm-up readings each, then {} readings{}",
            self.devices,
            WARMUP_READINGS,
            self.readings,
            self.rate.map_or(String::new(), |r| format!(" at {r}/s"))
        );
        self.send(&channel, &load, Phase::Warmup, &spikes).await?;
        let started = Instant::now();
        self.send(&channel, &load, Phase::Measure, &spikes).await?;
        let sent_in = started.elapsed();

        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = {
                let spikes = spikes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                spikes.opened.len() >= spikes.sent.len()
            };
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watcher.abort();
        shutdown.trigger();
        report(&spikes, self.readings, started, sent_in, self.samples)
    }

    async fn start_embedded(&self, shutdown: Shutdown) -> anyhow::Result<SocketAddr> {
        let data_dir =
            std::env::temp_dir().join(format!("sinter-bench-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let solution = Solution::from_yaml(DEMO_SOLUTION)
            .map_err(|errors| anyhow::anyhow!("the demo Solution is invalid:\n{errors}"))?;
        let clock: SharedClock = Arc::new(SystemClock);
        let stack = stack::start(
            StackConfig {
                solutions: vec![solution],
                data_dir,
                grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                http_addr: None,
                mqtt: false,
                auth: Auth::disabled(),
                registry: None,
                clock,
            },
            shutdown,
        )
        .await?;
        let mut tasks = stack.tasks;
        tokio::spawn(async move {
            while let Some(joined) = tasks.join_next().await {
                if let Ok(Err(err)) = joined {
                    eprintln!("bench e2e: a service failed: {err:#}");
                }
            }
        });
        Ok(stack.grpc_addr)
    }

    /// Send one phase's readings: `concurrency` calls in flight, paced at `--rate`.
    async fn send(
        &self,
        channel: &Authed,
        load: &Load,
        phase: Phase,
        spikes: &Arc<Mutex<Spikes>>,
    ) -> anyhow::Result<()> {
        let total = match phase {
            Phase::Warmup => WARMUP_READINGS * self.devices,
            Phase::Measure => self.readings,
        };
        let batches = total.div_ceil(self.batch_size);
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency.max(1) {
            let mut client = IngestServiceClient::new(channel.clone())
                .max_encoding_message_size(64 << 20)
                .max_decoding_message_size(64 << 20);
            let next = next.clone();
            let load = load.clone();
            let spikes = spikes.clone();
            let solution = self.solution.clone();
            let (batch_size, rate) = (self.batch_size, self.rate);
            workers.spawn(async move {
                loop {
                    let batch = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if batch >= batches {
                        return anyhow::Ok(());
                    }
                    let first = batch * batch_size;
                    let count = batch_size.min(total - first);
                    if let Some(rate) = rate {
                        let due = Duration::from_secs_f64(first as f64 / rate as f64);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    let (readings, jumped) = load.batch(phase, first, count);
                    let sent_at = Instant::now();
                    if !jumped.is_empty()
                        && let Ok(mut spikes) = spikes.lock()
                    {
                        for device in jumped {
                            spikes.sent.insert(device, sent_at);
                        }
                    }
                    let response = client
                        .publish(PublishRequest {
                            solution: solution.clone(),
                            batch_id: format!("bench-{batch}"),
                            readings,
                        })
                        .await
                        .context("a Publish call failed")?
                        .into_inner();
                    if response.refused > 0 {
                        let first_refusal = response.results.iter().find(|r| !r.accepted);
                        bail!("readings refused: {first_refusal:?}");
                    }
                }
            });
        }
        while let Some(joined) = workers.join_next().await {
            joined??;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
}

/// The readings, made on demand from their position in the stream.
#[derive(Clone)]
struct Load {
    devices: u64,
    /// Event time of the first warm-up round.
    base: Timestamp,
    /// Every `spike_every`-th reading of the measurement is a jump, `spikes` of them.
    spike_every: u64,
    spikes: u64,
    /// Part of every message id, so that a second run is not taken for duplicates.
    run: u64,
}

impl Load {
    fn new(args: &E2eArgs) -> Load {
        let rounds = WARMUP_READINGS + args.readings.div_ceil(args.devices) + 10;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Load {
            devices: args.devices,
            // One round a second of event time, ending in the past.
            base: Timestamp::from_secs(now - rounds as i64 - 60),
            spike_every: (args.readings / args.spikes.max(1)).max(1),
            spikes: args.spikes,
            run: now as u64,
        }
    }

    fn device(&self, index: u64) -> String {
        format!("m-bench-{:04}", index + 1)
    }

    /// `count` readings from position `first` of `phase`, and the machines that jump in it.
    fn batch(&self, phase: Phase, first: u64, count: u64) -> (Vec<ReadingInput>, Vec<String>) {
        let offset = match phase {
            Phase::Warmup => 0,
            Phase::Measure => WARMUP_READINGS * self.devices,
        };
        let mut jumped = Vec::new();
        let readings = (first..first + count)
            .map(|position| {
                let global = offset + position;
                let (round, device) = (global / self.devices, global % self.devices);
                // A small, deterministic wobble around 70 degF.
                let mut value =
                    70.0 + ((global.wrapping_mul(2_654_435_761) % 1000) as f64) / 1000.0;
                let spike = phase == Phase::Measure
                    && position % self.spike_every == self.spike_every - 1
                    && position / self.spike_every < self.spikes;
                let id = self.device(if spike {
                    position / self.spike_every
                } else {
                    device
                });
                if spike {
                    value += 60.0;
                    jumped.push(id.clone());
                }
                let micros = self.base.as_micros() + round as i64 * 1_000_000;
                ReadingInput {
                    device_id: id,
                    metric: "temperature".into(),
                    value: Some(reading_input::Value::Number(value)),
                    time: Some(reading_input::Time::EventTime(
                        sinter_proto::time::to_proto(Timestamp::from_micros(micros)),
                    )),
                    message_id: format!("bench-{}-{global}", self.run),
                }
            })
            .collect();
        (readings, jumped)
    }
}

/// The bench machines as registry rows: a site, an area, one asset and device each.
fn bench_registry(devices: u64) -> String {
    let mut csv = String::from(
        "kind,id,name,site_id,parent_id,level,external_id,criticality,owner_team,\
         attributes_json,timezone,asset_id,device_type,title,status\n\
         site,bench,Bench plant,,,,,,,,UTC,,,,\n\
         asset,bench-hall,Bench hall,bench,,area,,medium,bench,,,,,,\n",
    );
    for n in 1..=devices {
        csv.push_str(&format!(
            "asset,bench-{n:04},Machine B-{n:04},bench,bench-hall,asset,,high,bench,,,,,,\n\
             device,m-bench-{n:04},,,,,,,,,,bench-{n:04},machine,,\n"
        ));
    }
    csv
}

/// Record when each machine's first recommendation opened.
async fn watch(
    mut client: sinter_orchestrator::client::Client,
    solution: String,
    spikes: Arc<Mutex<Spikes>>,
) -> anyhow::Result<()> {
    let mut stream = client
        .watch_recommendations(pb::WatchRecommendationsRequest {
            solution,
            include_open: false,
        })
        .await?
        .into_inner();
    while let Some(change) = stream.next().await {
        let change = change?;
        let opened = change.change.as_ref().is_some_and(|c| c.event == "opened");
        if let (true, Some(recommendation)) = (opened, change.recommendation) {
            let now = Instant::now();
            if let Ok(mut spikes) = spikes.lock() {
                if spikes.sent.contains_key(&recommendation.device_id) {
                    spikes.opened.entry(recommendation.device_id).or_insert(now);
                } else {
                    spikes.unprompted += 1;
                }
            }
        }
    }
    Ok(())
}

fn report(
    spikes: &Arc<Mutex<Spikes>>,
    readings: u64,
    started: Instant,
    sent_in: Duration,
    samples: bool,
) -> anyhow::Result<()> {
    let spikes = spikes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut latencies: Vec<Duration> = spikes
        .sent
        .iter()
        .filter_map(|(device, sent)| spikes.opened.get(device).map(|opened| *opened - *sent))
        .collect();
    latencies.sort_unstable();
    if samples {
        let mut samples: Vec<(Duration, Duration)> = spikes
            .sent
            .iter()
            .filter_map(|(device, sent)| {
                spikes
                    .opened
                    .get(device)
                    .map(|opened| (*sent - started, *opened - *sent))
            })
            .collect();
        samples.sort_unstable();
        for (at, latency) in samples {
            outln!(
                "jump at {:.3} s: {:.1} ms",
                at.as_secs_f64(),
                latency.as_secs_f64() * 1e3
            );
        }
    }
    let last_opened = spikes.opened.values().max().copied();
    let through = last_opened.map_or(sent_in, |at| (at - started).max(sent_in));
    outln!(
        "sent: {readings} readings in {:.2} s = {:.0} readings/s accepted",
        sent_in.as_secs_f64(),
        readings as f64 / sent_in.as_secs_f64()
    );
    outln!(
        "end to end: {:.0} readings/s (until the last jump's recommendation opened, {:.2} s)",
        readings as f64 / through.as_secs_f64(),
        through.as_secs_f64()
    );
    if latencies.is_empty() {
        bail!(
            "no recommendation opened for any of {} jumps",
            spikes.sent.len()
        );
    }
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    outln!(
        "reading to recommendation: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of {} jumps)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        latencies.len(),
        spikes.sent.len()
    );
    outln!(
        "recommendations opened without a jump: {}",
        spikes.unprompted
    );
    if latencies.len() < spikes.sent.len() {
        let mut missing: Vec<&str> = spikes
            .sent
            .keys()
            .filter(|device| !spikes.opened.contains_key(*device))
            .map(String::as_str)
            .collect();
        missing.sort_unstable();
        bail!(
            "{} jumps opened no recommendation within 120 s: {}",
            missing.len(),
            missing.join(", ")
        );
    }
    Ok(())
}
