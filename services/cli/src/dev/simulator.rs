//! The device simulator of `sinter dev`: the simulated fleet's readings, sent to the ingest
//! service over gRPC as a gateway would send them, on the wall clock.

use std::time::Duration;

use sinter_core::SharedClock;
use sinter_grpc::BearerToken;
use sinter_proto::ingest::v1::PublishRequest;
use sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use sinter_runtime::Shutdown;

use crate::demo::fleet::{Fleet, FleetConfig};

/// Where and what the simulator sends.
#[derive(Clone, Debug)]
pub(crate) struct SimulatorConfig {
    pub(crate) endpoint: String,
    pub(crate) token: Option<String>,
    /// `<namespace>/<name>`.
    pub(crate) solution: String,
    pub(crate) pumps: usize,
    pub(crate) interval: Duration,
    pub(crate) first_fault: Duration,
}

/// A simulated fleet publishing every `interval`.
pub(crate) struct Simulator {
    config: SimulatorConfig,
}

impl Simulator {
    pub(crate) fn new(config: SimulatorConfig) -> Self {
        Simulator { config }
    }

    /// Publish one batch per tick until shutdown. A batch the service fails as a whole is
    /// reported and the simulator goes on with the next tick, as a gateway would.
    pub(crate) async fn run(self, clock: SharedClock, shutdown: Shutdown) -> anyhow::Result<()> {
        let token = BearerToken::new(self.config.token.as_deref())?;
        let channel = sinter_grpc::connect(&self.config.endpoint, token).await?;
        let mut client = IngestServiceClient::new(channel);
        let mut fleet = Fleet::new(
            FleetConfig {
                pumps: self.config.pumps,
                first_fault_after: self.config.first_fault,
                ..FleetConfig::default()
            },
            clock.now(),
        );
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut batch = 0u64;
        let mut faulty: Vec<String> = Vec::new();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.clone().wait() => return Ok(()),
            }
            let readings = fleet.tick(clock.now());
            announce_faults(&fleet, &mut faulty);
            batch += 1;
            let request = PublishRequest {
                solution: self.config.solution.clone(),
                batch_id: format!("sim-{batch}"),
                readings,
            };
            if let Err(status) = client.publish(request).await {
                tracing::warn!(batch, code = ?status.code(), message = status.message(),
                    "Simulated batch not accepted.");
            }
        }
    }
}

/// Print a line when a pump develops a fault, once per fault.
fn announce_faults(fleet: &Fleet, faulty: &mut Vec<String>) {
    let now: Vec<(String, String)> = fleet
        .faults()
        .map(|(device, kind)| (device.to_owned(), format!("{kind}")))
        .collect();
    for (device, kind) in &now {
        if !faulty.contains(device) {
            outln!(
                "{}  simulator: {device} develops a fault: {kind}",
                clock_time()
            );
        }
    }
    *faulty = now.into_iter().map(|(device, _)| device).collect();
}

/// The wall-clock time of day, `HH:MM:SS` UTC, for the start of a summary line.
pub(crate) fn clock_time() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let day = seconds % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}
