//! The temperature log the main-job tests replay, what the detector raises on it offline,
//! and the `sinter` CLI run for its JSON output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sinter_analytics::nab::NabDetector;
use sinter_analytics::nab::corpus::parse_time;
use sinter_orchestrator::client::Client;
use sinter_proto::orchestrator::v1 as pb;

use crate::process;

/// A `timestamp,value` log and its labelled anomaly windows (seconds since the epoch).
pub struct Log {
    pub csv: PathBuf,
    pub windows: Vec<(i64, i64)>,
    /// `(seconds, value)` of each row.
    pub rows: Vec<(i64, f64)>,
}

impl Log {
    /// NAB's `machine_temperature_system_failure` when `../shared/data/nab` is there, the
    /// project's own generated sample otherwise.
    pub fn machine_temperature() -> Log {
        let root = crate::repo_root();
        let nab = root.join("../shared/data/nab");
        let (csv, labels, key) = if nab.join("labels/windows.json").exists() {
            (
                nab.join("data/realKnownCause/machine_temperature_system_failure.csv"),
                nab.join("labels/windows.json"),
                "realKnownCause/machine_temperature_system_failure.csv",
            )
        } else {
            (
                root.join("examples/data/machine_temperature_sample.csv"),
                root.join("examples/data/machine_temperature_sample.windows.json"),
                "sample/machine_temperature_sample.csv",
            )
        };
        let text = std::fs::read_to_string(&labels).expect("labels");
        let all: BTreeMap<String, Vec<(String, String)>> =
            serde_json::from_str(&text).expect("windows JSON");
        let windows = all[key]
            .iter()
            .map(|(start, end)| {
                (
                    parse_time(start).expect("start"),
                    parse_time(end).expect("end"),
                )
            })
            .collect();
        let rows = rows(&csv);
        Log { csv, windows, rows }
    }

    /// The times of the rows where the demo Solution's anomaly detector (the settings
    /// `sinter nab` scores) raises, computed offline.
    pub fn offline_raises(&self) -> Vec<i64> {
        let times: Vec<i64> = self.rows.iter().map(|(time, _)| *time).collect();
        let values: Vec<f64> = self.rows.iter().map(|(_, value)| *value).collect();
        NabDetector::default()
            .detections(&times, &values)
            .iter()
            .zip(&self.rows)
            .filter(|(score, _)| **score > 0.0)
            .map(|(_, (time, _))| *time)
            .collect()
    }
}

fn rows(csv: &Path) -> Vec<(i64, f64)> {
    std::fs::read_to_string(csv)
        .expect("log")
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (time, value) = line.split_once(',')?;
            Some((parse_time(time)?, value.trim().parse().ok()?))
        })
        .collect()
}

/// The event time of the detection that opened `recommendation`, in seconds, moved back
/// by the replay's shift.
pub fn original_time(recommendation: &pb::Recommendation, shift_micros: i64) -> i64 {
    let detection = recommendation
        .situation
        .as_ref()
        .and_then(|s| s.detection.as_ref())
        .expect("the recommendation carries its detection");
    let time = detection.event_time.as_ref().expect("event time");
    (time.seconds * 1_000_000 + i64::from(time.nanos) / 1000 - shift_micros) / 1_000_000
}

/// Run `sinter ARGS --output json`; its exit status and its standard output as JSON.
pub fn sinter_json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut full: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    full.extend(["--output".into(), "json".into()]);
    let (code, output) = process::run("sinter", &full);
    let json_start = output.find(['{', '[']).unwrap_or(0);
    let value = serde_json::from_str(output[json_start..].trim())
        .unwrap_or_else(|err| panic!("sinter {args:?} did not print JSON ({err}):\n{output}"));
    (code, value)
}

/// The recommendations of `rule` in `solution`, polled until there are `wanted` or
/// `within` has passed.
pub async fn wait_for_recommendations(
    client: &mut Client,
    solution: &str,
    rule: &str,
    wanted: usize,
    within: Duration,
) -> Vec<pb::Recommendation> {
    let deadline = Instant::now() + within;
    loop {
        let listed = client
            .list_recommendations(pb::ListRecommendationsRequest {
                solution: solution.to_owned(),
                rule: rule.to_owned(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("list recommendations")
            .into_inner()
            .recommendations;
        if listed.len() >= wanted || Instant::now() > deadline {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
