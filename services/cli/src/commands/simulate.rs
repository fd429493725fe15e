//! `sinter simulate`: the demo fleet's telemetry as JSON lines, the shape that
//! `POST /v1/solutions/{solution}/readings`, MQTT payloads and `sinter publish` take.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sinter_core::{Clock, SystemClock, Timestamp};
use sinter_proto::ingest::v1::ReadingInput;

use crate::demo::fleet::{FaultKind, Fleet, FleetConfig, number};
use crate::exit;

/// Print simulated pump telemetry, one reading per line.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// How many pumps (`p-01`, `p-02`, ...).
    #[arg(long, default_value_t = 36)]
    pumps: usize,
    /// Simulated time between two readings of a pump.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How much simulated time to cover.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Pace the output in real time instead of printing as fast as possible.
    #[arg(long)]
    realtime: bool,
    /// Seed of the simulation: the same seed gives the same values (timestamps start
    /// at the current time).
    #[arg(long, default_value_t = 17)]
    seed: u64,
}

impl SimulateArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self.print() {
            // A reader that stops early (`| head`) ends the simulation, not an error.
            Err(err)
                if err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
            {
                Ok(exit::OK)
            }
            other => other,
        }
    }

    fn print(self) -> anyhow::Result<ExitCode> {
        anyhow::ensure!(self.pumps > 0, "--pumps must be at least 1");
        anyhow::ensure!(
            !self.interval.is_zero(),
            "--interval must be longer than zero"
        );
        let start = SystemClock.now();
        let config = FleetConfig {
            pumps: self.pumps,
            seed: self.seed,
            ..FleetConfig::default()
        };
        let mut fleet = Fleet::new(config, start);
        let ids: Vec<&str> = fleet.device_ids().collect();
        eprintln!(
            "simulating {} pumps ({}..{}), a reading of each metric every {}",
            ids.len(),
            ids.first().unwrap_or(&"-"),
            ids.last().unwrap_or(&"-"),
            humantime::format_duration(self.interval)
        );
        let mut announced: Vec<(String, FaultKind)> = Vec::new();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let ticks = (self.duration.as_secs_f64() / self.interval.as_secs_f64()).ceil() as u64;
        for tick in 0..ticks {
            let at = start.saturating_add(self.interval.mul_f64(tick as f64));
            if self.realtime {
                let wait = at.duration_since(SystemClock.now());
                out.flush()?;
                std::thread::sleep(wait);
            }
            for reading in fleet.tick(at) {
                writeln!(out, "{}", json_line(&reading, at))?;
            }
            let faults: Vec<(String, FaultKind)> = fleet
                .faults()
                .map(|(id, kind)| (id.to_owned(), kind))
                .collect();
            for fault in &faults {
                if !announced.contains(fault) {
                    eprintln!("{at}: {} develops a fault: {:?}", fault.0, fault.1);
                }
            }
            announced = faults;
        }
        out.flush()?;
        Ok(exit::OK)
    }
}

fn json_line(reading: &ReadingInput, at: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "device": reading.device_id,
        "metric": reading.metric,
        "value": number(reading),
        "ts": at.to_string(),
        "id": reading.message_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_the_documented_shape() {
        let at = Timestamp::from_secs(1_764_756_000);
        let mut fleet = Fleet::new(
            FleetConfig {
                pumps: 1,
                ..FleetConfig::default()
            },
            at,
        );
        let line = json_line(&fleet.tick(at)[0], at);
        assert_eq!(line["device"], "p-01");
        assert_eq!(line["metric"], "bearing_temperature");
        assert!(line["value"].is_f64());
        assert_eq!(line["ts"], "2025-12-03T10:00:00.000000Z");
        assert_eq!(line["id"], "sim-1");
    }
}
