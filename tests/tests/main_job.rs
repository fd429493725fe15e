//! The main job on the embedded default, as a user runs it: `sinter dev`, a machine's
//! temperature log replayed with `sinter replay`, and the recommendations it causes,
//! acknowledged and resolved with `sinter recs` and over gRPC.
//!
//! The log is NAB's `machine_temperature_system_failure` when `../shared/data/nab` is
//! there, the project's own generated sample otherwise.

use std::path::Path;
use std::time::{Duration, Instant};

use sinter_grpc::BearerToken;
use sinter_orchestrator::client::{Client, connect};
use sinter_proto::orchestrator::v1 as pb;
use sinter_tests::process::ChildProcess;
use sinter_tests::replay::{Log, original_time, sinter_json};
use sinter_tests::services::free_port;

const DEVICE: &str = "m-01";
const METRIC: &str = "temperature";
const RULE: &str = "machine-temperature";

fn dev(data_dir: &Path, grpc: u16, http: u16) -> ChildProcess {
    ChildProcess::spawn(
        "sinter",
        &[
            "dev".into(),
            "--no-simulator".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--grpc-addr".into(),
            format!("127.0.0.1:{grpc}"),
            "--http-addr".into(),
            format!("127.0.0.1:{http}"),
            "--metrics-addr".into(),
            "off".into(),
        ],
        &[],
    )
}

/// Run the `sinter` CLI against `endpoint`, for its JSON output.
fn cli(endpoint: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let mut full = args.to_vec();
    full.extend(["--endpoint", endpoint]);
    sinter_json(&full)
}

/// Connect to the orchestrator API of `sinter dev`, waiting until it answers.
async fn client(endpoint: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut client) = connect(endpoint, BearerToken::default()).await
            && client.list_recommendations(list_request()).await.is_ok()
        {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "sinter dev never answered on {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn list_request() -> pb::ListRecommendationsRequest {
    pb::ListRecommendationsRequest {
        solution: "demo/pump-health".into(),
        rule: RULE.into(),
        page_size: 1000,
        ..Default::default()
    }
}

/// Poll until `wanted` recommendations of the rule exist (or a minute passed).
async fn wait_for_recommendations(client: &mut Client, wanted: usize) -> Vec<pb::Recommendation> {
    sinter_tests::replay::wait_for_recommendations(
        client,
        "demo/pump-health",
        RULE,
        wanted,
        Duration::from_secs(60),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_failure_log_becomes_recommendations_with_context() {
    let log = Log::machine_temperature();
    let rows = &log.rows;
    // What the Solution's detector (the NAB settings) raises on this log, offline.
    let raises = log.offline_raises();
    assert!(
        raises.len() >= 2,
        "the log raises at least twice offline: {raises:?}"
    );
    let first_raise = rows
        .iter()
        .position(|(time, _)| *time == raises[0])
        .expect("row");

    let data_dir = std::env::temp_dir().join(format!("sinter-main-job-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let (grpc, http) = (free_port(), free_port());
    let sinter = dev(&data_dir, grpc, http);
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let mut client = client(&endpoint).await;
    let csv = log.csv.display().to_string();

    // Part one: up to just after the first raise, so that its recommendation is open.
    let take = (first_raise + 5).to_string();
    let (code, first) = cli(
        &endpoint,
        &[
            "replay", &csv, "--device", DEVICE, "--metric", METRIC, "--take", &take,
        ],
    );
    assert_eq!(code, 0, "replay part one: {first}");
    assert_eq!(
        first["accepted"].as_u64(),
        Some(first_raise as u64 + 5),
        "{first}"
    );
    let shift_one = first["shiftMicros"].as_i64().expect("shift");
    let open = wait_for_recommendations(&mut client, 1).await;
    assert_eq!(open.len(), 1, "one recommendation after the first raise");
    let opened = &open[0];
    assert_eq!(opened.state(), pb::RecommendationState::Open);
    assert_eq!(original_time(opened, shift_one), raises[0]);
    let asset = opened
        .situation
        .as_ref()
        .and_then(|s| s.asset.as_ref())
        .expect("asset context");
    assert_eq!(asset.asset_id, "machine-01");
    assert_eq!(asset.asset_name, "Machine M-01");
    assert_eq!(asset.criticality, "high");
    assert_eq!(asset.site_name, "North plant");
    let path: Vec<&str> = asset.path.iter().map(|p| p.name.as_str()).collect();
    assert!(path.contains(&"Workshop"), "{path:?}");
    assert_eq!(
        opened.title.split(':').next(),
        Some("Unusual temperature on Machine M-01")
    );

    let (code, acked) = cli(
        &endpoint,
        &[
            "recs",
            "ack",
            &opened.id,
            "--as",
            "ana",
            "--comment",
            "looking at it",
        ],
    );
    assert_eq!(code, 0, "{acked}");
    assert_eq!(acked["state"], "acknowledged", "{acked}");

    let (code, assigned) = cli(
        &endpoint,
        &["recs", "assign", &opened.id, "ben", "--as", "ana"],
    );
    assert_eq!(code, 0, "{assigned}");
    assert_eq!(assigned["assignee"], "ben", "{assigned}");
    let (code, commented) = cli(
        &endpoint,
        &[
            "recs",
            "comment",
            &opened.id,
            "bearing ordered",
            "--as",
            "ben",
        ],
    );
    assert_eq!(code, 0, "{commented}");
    let (code, listed) = cli(
        &endpoint,
        &["recs", "list", "--state", "in_progress,acknowledged"],
    );
    assert_eq!(code, 0, "{listed}");
    let ids: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [opened.id.as_str()], "{listed}");
    let (code, assets) = cli(&endpoint, &["assets", "list", "--name", "Machine"]);
    assert_eq!(code, 0, "{assets}");
    let names: Vec<&str> = assets
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["Machine M-01", "Machine M-02"], "{assets}");

    // Part two: the rest of the log.
    let skip = (first_raise + 5).to_string();
    let (code, rest) = cli(
        &endpoint,
        &[
            "replay", &csv, "--device", DEVICE, "--metric", METRIC, "--skip", &skip,
        ],
    );
    assert_eq!(code, 0, "replay part two: {rest}");
    assert_eq!(
        first["accepted"].as_u64().unwrap_or(0) + rest["accepted"].as_u64().unwrap_or(0),
        rows.len() as u64,
        "every row accepted"
    );
    let shift_two = rest["shiftMicros"].as_i64().expect("shift");
    let all = wait_for_recommendations(&mut client, raises.len()).await;
    let mut opened_at: Vec<i64> = all
        .iter()
        .map(|r| {
            let shift = if r.id == opened.id {
                shift_one
            } else {
                shift_two
            };
            original_time(r, shift)
        })
        .collect();
    opened_at.sort_unstable();
    assert_eq!(
        opened_at, raises,
        "one recommendation per raise of the detector, at the same readings"
    );

    // Near the labelled failures: the recommendations fall inside the labelled windows far
    // more often than the windows' share of the log's time would give by chance.
    let inside = |t: i64| {
        log.windows
            .iter()
            .any(|(start, end)| (*start..=*end).contains(&t))
    };
    let span = (rows[rows.len() - 1].0 - rows[0].0) as f64;
    let covered: f64 = log.windows.iter().map(|(s, e)| (e - s) as f64).sum::<f64>() / span;
    let hits = opened_at.iter().filter(|t| inside(**t)).count();
    let share = hits as f64 / opened_at.len() as f64;
    let windows_found = log
        .windows
        .iter()
        .filter(|(start, end)| opened_at.iter().any(|t| (*start..=*end).contains(t)))
        .count();
    println!(
        "{} recommendations, {hits} inside the labelled windows ({:.0} % of them; the windows \
         cover {:.0} % of the log); {windows_found} of {} windows found",
        opened_at.len(),
        share * 100.0,
        covered * 100.0,
        log.windows.len()
    );
    assert!(
        windows_found * 2 >= log.windows.len(),
        "at least half the failures are found"
    );
    assert!(
        share > 1.5 * covered,
        "recommendations cluster in the labelled windows"
    );

    // The acknowledged one keeps its history; the clear of its detection closed it.
    let (code, shown) = cli(&endpoint, &["recs", "show", &opened.id]);
    assert_eq!(code, 0, "{shown}");
    let events: Vec<&str> = shown["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["event"].as_str())
        .collect();
    assert_eq!(events.first(), Some(&"opened"), "{shown}");
    for event in ["acknowledged", "assigned", "commented"] {
        assert!(events.contains(&event), "{event} missing: {shown}");
    }
    let ack = shown["history"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["event"] == "acknowledged"))
        .expect("ack entry");
    assert_eq!(ack["actor"], "ana");
    assert_eq!(ack["comment"], "looking at it");

    // Resolve one over gRPC: a still active one, or a closed one reopened first.
    let target = all
        .iter()
        .find(|r| r.state() == pb::RecommendationState::Open)
        .cloned();
    let target = match target {
        Some(active) => active,
        None => client
            .reopen_recommendation(pb::ReopenRecommendationRequest {
                id: all[0].id.clone(),
                actor: "ana".into(),
                comment: "the alarm came back".into(),
            })
            .await
            .expect("reopen")
            .into_inner(),
    };
    let resolved = client
        .resolve_recommendation(pb::ResolveRecommendationRequest {
            id: target.id.clone(),
            actor: "ben".into(),
            outcome: pb::Outcome::FalseAlarm as i32,
            comment: "sensor cable".into(),
        })
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(resolved.state(), pb::RecommendationState::FalseAlarm);
    let again = client
        .resolve_recommendation(pb::ResolveRecommendationRequest {
            id: target.id.clone(),
            actor: "ben".into(),
            outcome: pb::Outcome::Fixed as i32,
            comment: String::new(),
        })
        .await
        .expect_err("an ended recommendation cannot be resolved again");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);

    // From the command line: the false alarm reopened, then ended as one again.
    let (code, reopened) = cli(
        &endpoint,
        &[
            "recs",
            "reopen",
            &target.id,
            "--as",
            "ana",
            "--comment",
            "it came back",
        ],
    );
    assert_eq!(code, 0, "{reopened}");
    assert_eq!(reopened["state"], "open", "{reopened}");
    let (code, ended) = cli(
        &endpoint,
        &[
            "recs",
            "resolve",
            &target.id,
            "--outcome",
            "false_alarm",
            "--as",
            "ben",
        ],
    );
    assert_eq!(code, 0, "{ended}");
    assert_eq!(ended["state"], "false_alarm", "{ended}");

    // State is kept across a restart of `sinter dev`.
    assert!(
        sinter.terminate(Duration::from_secs(20)).is_some(),
        "sinter dev stops"
    );
    let _restarted = dev(&data_dir, grpc, http);
    let mut client = self::client(&endpoint).await;
    let after = wait_for_recommendations(&mut client, raises.len()).await;
    assert_eq!(after.len(), all.len(), "recommendations survive a restart");
    let kept = after
        .iter()
        .find(|r| r.id == target.id)
        .expect("resolved one kept");
    assert_eq!(kept.state(), pb::RecommendationState::FalseAlarm);
    let _ = std::fs::remove_dir_all(&data_dir);
}
