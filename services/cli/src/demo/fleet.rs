//! A simulated fleet of centrifugal pumps: steady, noisy telemetry with occasional
//! faults (an overheating bearing, rising vibration, lost suction pressure), each of
//! which rises, holds and recovers, so a detection is raised and later cleared.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal};
use sinter_core::Timestamp;
use sinter_proto::ingest::v1::{ReadingInput, reading_input};

/// What goes wrong with a pump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// The drive-end bearing runs hot: temperature climbs past 90 degC.
    BearingOverheat,
    /// Misalignment or a worn bearing: vibration climbs into ISO 10816 zone D.
    Vibration,
    /// Loss of prime: discharge pressure collapses.
    PressureLoss,
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultKind::BearingOverheat => "overheating bearing",
            FaultKind::Vibration => "rising vibration",
            FaultKind::PressureLoss => "loss of suction pressure",
        })
    }
}

impl FaultKind {
    const ALL: [FaultKind; 3] = [
        FaultKind::BearingOverheat,
        FaultKind::Vibration,
        FaultKind::PressureLoss,
    ];
}

/// How the fleet behaves.
#[derive(Clone, Debug)]
pub(crate) struct FleetConfig {
    pub(crate) pumps: usize,
    pub(crate) seed: u64,
    /// When the first fault starts, after the simulation's start.
    pub(crate) first_fault_after: Duration,
    /// Mean time between later faults (exponentially distributed).
    pub(crate) mean_fault_interval: Duration,
    /// How long a fault takes to reach its peak, how long it stays, how long it takes
    /// to recover.
    pub(crate) rise: Duration,
    pub(crate) hold: Duration,
    pub(crate) recover: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            pumps: 36,
            seed: 17,
            first_fault_after: Duration::from_secs(20),
            mean_fault_interval: Duration::from_secs(240),
            rise: Duration::from_secs(60),
            hold: Duration::from_secs(240),
            recover: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug)]
struct Fault {
    kind: FaultKind,
    started: Timestamp,
}

#[derive(Clone, Debug)]
struct Pump {
    id: String,
    bearing_temperature: f64,
    vibration_rms: f64,
    discharge_pressure: f64,
    fault: Option<Fault>,
}

/// The simulated fleet. Deterministic for a given seed and sequence of ticks.
#[derive(Debug)]
pub(crate) struct Fleet {
    config: FleetConfig,
    pumps: Vec<Pump>,
    rng: ChaCha8Rng,
    next_fault: Timestamp,
    faults_started: u64,
    sequence: u64,
}

impl Fleet {
    pub(crate) fn new(config: FleetConfig, start: Timestamp) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let pumps = (1..=config.pumps)
            .map(|n| Pump {
                id: format!("p-{n:02}"),
                bearing_temperature: rng.random_range(52.0..64.0),
                vibration_rms: rng.random_range(1.6..3.2),
                discharge_pressure: rng.random_range(5.2..6.8),
                fault: None,
            })
            .collect();
        let next_fault = start.saturating_add(config.first_fault_after);
        Fleet {
            config,
            pumps,
            rng,
            next_fault,
            faults_started: 0,
            sequence: 0,
        }
    }

    /// The ids of the simulated pumps.
    pub(crate) fn device_ids(&self) -> impl Iterator<Item = &str> {
        self.pumps.iter().map(|p| p.id.as_str())
    }

    /// Pumps with a fault in progress at `now`, with its kind.
    pub(crate) fn faults(&self) -> impl Iterator<Item = (&str, FaultKind)> {
        self.pumps
            .iter()
            .filter_map(|p| p.fault.as_ref().map(|f| (p.id.as_str(), f.kind)))
    }

    /// One reading of every metric of every pump, stamped `now`.
    pub(crate) fn tick(&mut self, now: Timestamp) -> Vec<ReadingInput> {
        self.schedule_faults(now);
        let fault_span = self.config.rise + self.config.hold + self.config.recover;
        let mut readings = Vec::with_capacity(self.pumps.len() * 3);
        let noise_t = normal(0.25);
        let noise_v = normal(0.08);
        let noise_p = normal(0.05);
        // A slow daily swing of the cooling water, a few degrees.
        let day = 86_400.0;
        let phase = (now.as_micros() as f64 / 1e6 / day) * std::f64::consts::TAU;
        let swing = 2.5 * phase.sin();
        for pump in &mut self.pumps {
            if pump
                .fault
                .as_ref()
                .is_some_and(|f| now.duration_since(f.started) >= fault_span)
            {
                pump.fault = None;
            }
            let (mut temperature, mut vibration, mut pressure) = (
                pump.bearing_temperature + swing,
                pump.vibration_rms,
                pump.discharge_pressure,
            );
            if let Some(fault) = &pump.fault {
                let level = fault_level(now.duration_since(fault.started), &self.config);
                match fault.kind {
                    FaultKind::BearingOverheat => temperature += level * (96.0 - temperature),
                    FaultKind::Vibration => vibration += level * (8.6 - vibration),
                    FaultKind::PressureLoss => pressure -= level * (pressure - 0.6),
                }
            }
            temperature += noise_t.sample(&mut self.rng);
            vibration = (vibration + noise_v.sample(&mut self.rng)).max(0.0);
            pressure = (pressure + noise_p.sample(&mut self.rng)).max(0.0);
            for (metric, value) in [
                ("bearing_temperature", round(temperature, 2)),
                ("vibration_rms", round(vibration, 3)),
                ("discharge_pressure", round(pressure, 3)),
            ] {
                self.sequence += 1;
                readings.push(ReadingInput {
                    device_id: pump.id.clone(),
                    metric: metric.to_owned(),
                    value: Some(reading_input::Value::Number(value)),
                    time: Some(reading_input::Time::EventTime(
                        sinter_proto::time::to_proto(now),
                    )),
                    message_id: format!("sim-{}", self.sequence),
                });
            }
        }
        readings
    }

    fn schedule_faults(&mut self, now: Timestamp) {
        while now >= self.next_fault {
            let healthy: Vec<usize> = (0..self.pumps.len())
                .filter(|i| self.pumps[*i].fault.is_none())
                .collect();
            if !healthy.is_empty() {
                let pick = healthy[self.rng.random_range(0..healthy.len())];
                // The first fault is the one the walk-through describes: a hot bearing.
                let kind = if self.faults_started == 0 {
                    FaultKind::BearingOverheat
                } else {
                    FaultKind::ALL[self.rng.random_range(0..FaultKind::ALL.len())]
                };
                self.pumps[pick].fault = Some(Fault {
                    kind,
                    started: self.next_fault,
                });
                self.faults_started += 1;
            }
            let mean = self.config.mean_fault_interval.as_secs_f64().max(1.0);
            let gap = Exp::new(1.0 / mean)
                .map(|e| e.sample(&mut self.rng))
                .unwrap_or(mean);
            self.next_fault = self.next_fault.saturating_add(Duration::from_secs_f64(gap));
        }
    }
}

/// How far into its fault a pump is, from 0 (healthy) to 1 (the fault's peak).
fn fault_level(elapsed: Duration, config: &FleetConfig) -> f64 {
    let rise = config.rise.as_secs_f64().max(1e-3);
    let recover = config.recover.as_secs_f64().max(1e-3);
    let t = elapsed.as_secs_f64();
    let hold_end = rise + config.hold.as_secs_f64();
    if t < rise {
        t / rise
    } else if t < hold_end {
        1.0
    } else {
        (1.0 - (t - hold_end) / recover).max(0.0)
    }
}

fn normal(std_dev: f64) -> Normal<f64> {
    Normal::new(0.0, std_dev).expect("a positive, finite standard deviation")
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// The value of a numeric reading, for tests and summaries.
pub(crate) fn number(reading: &ReadingInput) -> Option<f64> {
    match reading.value {
        Some(reading_input::Value::Number(v)) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> Timestamp {
        Timestamp::from_secs(1_764_756_000)
    }

    fn temperature_of(readings: &[ReadingInput], device: &str) -> f64 {
        readings
            .iter()
            .find(|r| r.device_id == device && r.metric == "bearing_temperature")
            .and_then(number)
            .expect("a temperature reading")
    }

    #[test]
    fn every_pump_reports_every_metric_each_tick() {
        let mut fleet = Fleet::new(
            FleetConfig {
                pumps: 5,
                ..FleetConfig::default()
            },
            start(),
        );
        let readings = fleet.tick(start());
        assert_eq!(readings.len(), 15);
        let ids: Vec<&str> = fleet.device_ids().collect();
        assert_eq!(ids, ["p-01", "p-02", "p-03", "p-04", "p-05"]);
        let mut message_ids: Vec<&str> = readings.iter().map(|r| r.message_id.as_str()).collect();
        message_ids.dedup();
        assert_eq!(message_ids.len(), 15, "message ids are unique");
    }

    #[test]
    fn healthy_pumps_stay_in_their_normal_band() {
        let config = FleetConfig {
            first_fault_after: Duration::from_secs(86_400),
            ..Default::default()
        };
        let mut fleet = Fleet::new(config, start());
        for second in 0..120 {
            let now = start().saturating_add(Duration::from_secs(second * 5));
            for reading in fleet.tick(now) {
                let value = number(&reading).expect("numeric");
                let (low, high) = match reading.metric.as_str() {
                    "bearing_temperature" => (45.0, 72.0),
                    "vibration_rms" => (1.0, 4.0),
                    _ => (4.5, 7.5),
                };
                assert!((low..high).contains(&value), "{} {value}", reading.metric);
            }
        }
    }

    #[test]
    fn the_first_fault_is_a_hot_bearing_that_rises_holds_and_recovers() {
        let config = FleetConfig::default();
        let first = config.first_fault_after;
        let span = config.rise + config.hold + config.recover;
        let mut fleet = Fleet::new(config.clone(), start());
        let mut hot_device = None;
        let mut peak: f64 = 0.0;
        let mut step = 0;
        while Duration::from_secs(step * 5) <= first + span + Duration::from_secs(30) {
            let now = start().saturating_add(Duration::from_secs(step * 5));
            let readings = fleet.tick(now);
            if hot_device.is_none() {
                hot_device = fleet
                    .faults()
                    .find(|(_, kind)| *kind == FaultKind::BearingOverheat)
                    .map(|(id, _)| id.to_owned());
            }
            if let Some(device) = &hot_device {
                peak = peak.max(temperature_of(&readings, device));
            }
            step += 1;
        }
        let device = hot_device.expect("a bearing fault within the first minute");
        assert!(peak > 90.0, "peak {peak}");
        let after = fleet.tick(start().saturating_add(first + span + Duration::from_secs(40)));
        assert!(temperature_of(&after, &device) < 75.0, "it recovers");
    }

    #[test]
    fn the_same_seed_gives_the_same_readings() {
        let mut a = Fleet::new(FleetConfig::default(), start());
        let mut b = Fleet::new(FleetConfig::default(), start());
        for step in 0..50 {
            let now = start().saturating_add(Duration::from_secs(step * 5));
            assert_eq!(a.tick(now), b.tick(now));
        }
    }
}
