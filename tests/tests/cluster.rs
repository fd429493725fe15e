//! Cluster mode: the demo Solution run by the four service binaries as separate processes
//! on the real broker and PostgreSQL gives the recommendations the detector raises, with
//! the asset's context; and one trace id links the readings a client sent to the
//! recommendation they caused.

use std::time::Duration;

use sinter_grpc::BearerToken;
use sinter_orchestrator::client::{Client, connect};
use sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use sinter_proto::ingest::v1::{PublishRequest, ReadingInput, reading_input};
use sinter_proto::orchestrator::v1 as pb;
use sinter_tests::cluster::Cluster;
use sinter_tests::replay::{Log, original_time, sinter_json, wait_for_recommendations};

async fn orchestrator(cluster: &Cluster) -> Client {
    connect(&cluster.endpoint("orchestrator"), BearerToken::default())
        .await
        .expect("connect to the orchestrator")
}

/// Recommendations of `rule`, polled until there are `wanted` (or two minutes passed).
async fn recommendations(
    client: &mut Client,
    solution: &str,
    rule: &str,
    wanted: usize,
) -> Vec<pb::Recommendation> {
    wait_for_recommendations(client, solution, rule, wanted, Duration::from_secs(120)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_through_separate_processes_gives_the_same_recommendations() {
    let yaml = std::fs::read_to_string(sinter_tests::demo_solution()).expect("demo Solution");
    let cluster = Cluster::start(&yaml).await;
    cluster.import_demo_registry();
    let log = Log::machine_temperature();
    let raises = log.offline_raises();

    let (code, replayed) = sinter_json(&[
        "replay",
        &log.csv.display().to_string(),
        "--device",
        "m-01",
        "--metric",
        "temperature",
        "--solution",
        &cluster.solution,
        "--endpoint",
        &cluster.endpoint("ingest"),
    ]);
    assert_eq!(code, 0, "{replayed}");
    assert_eq!(replayed["accepted"].as_u64(), Some(log.rows.len() as u64));
    let shift = replayed["shiftMicros"].as_i64().expect("shift");

    let mut client = orchestrator(&cluster).await;
    let found = recommendations(
        &mut client,
        &cluster.solution,
        "machine-temperature",
        raises.len(),
    )
    .await;
    let mut opened_at: Vec<i64> = found.iter().map(|r| original_time(r, shift)).collect();
    opened_at.sort_unstable();
    assert_eq!(
        opened_at,
        raises,
        "cluster mode opens one recommendation per raise, as the embedded mode does;\n\
         analytics:\n{}",
        cluster.output("analytics")
    );
    for recommendation in &found {
        let asset = recommendation
            .situation
            .as_ref()
            .and_then(|s| s.asset.as_ref())
            .expect("asset context");
        assert_eq!(asset.asset_id, "machine-01");
        assert_eq!(recommendation.solution, cluster.solution);
    }
    // Nothing more arrives in the next seconds: no duplicate from a redelivery.
    let settled = wait_for_recommendations(
        &mut client,
        &cluster.solution,
        "machine-temperature",
        raises.len() + 1,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        settled.len(),
        raises.len(),
        "no recommendation is duplicated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_links_the_readings_to_the_recommendation_they_caused() {
    let yaml = std::fs::read_to_string(sinter_tests::demo_solution()).expect("demo Solution");
    let cluster = Cluster::start(&yaml).await;
    cluster.import_demo_registry();

    // A gateway's batch in its own trace: a bearing at 95 degC for two and a half minutes.
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let traceparent = format!("00-{trace_id}-{:016x}-01", 0x5eed_u64);
    let start = std::time::SystemTime::now() - Duration::from_secs(300);
    let readings = (0..31)
        .map(|step| ReadingInput {
            device_id: "p-05".into(),
            metric: "bearing_temperature".into(),
            value: Some(reading_input::Value::Number(95.0)),
            time: Some(reading_input::Time::EventTime(
                prost_types::Timestamp::from(start + Duration::from_secs(5 * step)),
            )),
            message_id: format!("trace-test-{step}"),
        })
        .collect();
    let channel = sinter_grpc::connect(&cluster.endpoint("ingest"), BearerToken::default())
        .await
        .expect("connect to ingest");
    let mut ingest = IngestServiceClient::new(channel);
    let mut request = tonic::Request::new(PublishRequest {
        solution: cluster.solution.clone(),
        batch_id: "traced".into(),
        readings,
    });
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().expect("metadata value"));
    let response = ingest.publish(request).await.expect("publish").into_inner();
    assert_eq!(response.accepted, 31, "{response:?}");

    let mut client = orchestrator(&cluster).await;
    let found = recommendations(&mut client, &cluster.solution, "bearing-overheat", 1).await;
    assert_eq!(
        found.len(),
        1,
        "the hot bearing opens one recommendation;\nanalytics:\n{}",
        cluster.output("analytics")
    );
    let situation = found[0].situation.as_ref().expect("situation");
    assert_eq!(
        situation.asset.as_ref().map(|a| a.asset_id.as_str()),
        Some("pump-05")
    );
    assert_eq!(
        situation.trace_id, trace_id,
        "the recommendation belongs to the trace the readings were sent in"
    );
}
