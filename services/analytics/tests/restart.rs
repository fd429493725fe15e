//! The service end to end: a restart in the middle of an open incident neither raises it
//! again nor loses its clear. Against the embedded bus with SQLite, and against the real
//! broker with real PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use sinter_analytics::{Analytics, AnalyticsConfig};
use sinter_bus::{Bus, Consumer, Record, TopicSpec};
use sinter_core::topic::{self, Stream};
use sinter_core::{ManualClock, Solution, Timestamp};
use sinter_proto::analytics::v1 as api;
use sinter_proto::analytics::v1::analytics_service_server::AnalyticsService;
use sinter_proto::events::v1 as pb;
use sinter_proto::time::to_proto;
use sinter_runtime::{Service, ServiceContext, Shutdown};
use sqlx::Connection;
use tokio_stream::StreamExt;
use tonic::Request;

fn solution(name: &str) -> Solution {
    Solution::from_yaml(&format!(
        r#"
apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {{name: {name}, namespace: analytics-test}}
spec:
  devices:
    - type: pump
      metrics:
        - {{name: temp, unit: degC, min: -40, max: 200}}
  analytics:
    - metric: temp
      window: {{size: 1m}}
      detect:
        - threshold: {{above: 85, clearBelow: 80}}
"#
    ))
    .expect("valid Solution")
}

const T0: i64 = 1_800_000_000;

fn reading(secs: i64, value: f64) -> Record {
    let reading = pb::Reading {
        id: format!("r-{secs}"),
        device_id: "p-1".into(),
        metric: "temp".into(),
        value: Some(pb::reading::Value::Number(value)),
        event_time: Some(to_proto(Timestamp::from_secs(T0 + secs))),
        device_type: "pump".into(),
        ..Default::default()
    };
    Record::new(b"p-1".to_vec(), reading.encode_to_vec())
}

struct Running {
    api: sinter_analytics::api::AnalyticsApi,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

async fn start(bus: Arc<dyn Bus>, solution: &Solution, database_url: &str) -> Running {
    let clock = ManualClock::new(Timestamp::from_secs(T0 + 86_400));
    let shutdown = Shutdown::new();
    let context = ServiceContext {
        solutions: Arc::new(vec![solution.clone()]),
        bus,
        clock: Arc::new(clock),
        shutdown: shutdown.clone(),
    };
    let mut config = AnalyticsConfig::new(database_url);
    config.checkpoint_every = 1;
    // A group of this scenario's own, the same across its restart: a group shared with
    // other runs would wait on members that died without leaving it.
    config.group = format!("sinter-analytics.{}", solution.name());
    let service = Analytics::build(&context, config)
        .await
        .expect("service builds");
    let api = service.api();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        Box::new(service).run(stop).await.expect("service runs");
    });
    Running {
        api,
        shutdown,
        task,
    }
}

async fn stop(running: Running) {
    running.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running.task)
        .await
        .expect("service stops")
        .expect("service task");
}

/// Read detections until `count` have come or 30 s pass.
async fn detections(
    consumer: &mut Box<dyn Consumer>,
    count: usize,
    wait: u64,
) -> Vec<pb::Detection> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    while found.len() < count {
        let Ok(delivered) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let delivered = delivered.expect("recv");
        found.push(pb::Detection::decode(&delivered.payload[..]).expect("a Detection"));
        consumer.ack(&delivered).expect("ack");
    }
    found
}

async fn scenario(bus: Arc<dyn Bus>, database_url: &str) {
    let name = format!("t-{}", uuid::Uuid::new_v4().simple());
    let solution = solution(&name);
    let topic_of = |stream| topic::name("analytics-test", &name, stream);
    for stream in [
        Stream::Telemetry,
        Stream::Insights,
        Stream::Detections,
        Stream::Deadletter,
    ] {
        bus.ensure_topic(&TopicSpec::new(topic_of(stream), 2))
            .await
            .expect("topic");
    }
    let telemetry = topic_of(Stream::Telemetry);
    let mut watcher = bus
        .subscribe("watcher", &[&topic_of(Stream::Detections)])
        .await
        .expect("watch");
    let mut dead = bus
        .subscribe("dead", &[&topic_of(Stream::Deadletter)])
        .await
        .expect("dead");
    let producer = bus.producer();

    let first = start(bus.clone(), &solution, database_url).await;
    producer
        .send(
            &telemetry,
            Record::new(b"p-1".to_vec(), b"\xffnot protobuf".to_vec()),
        )
        .await
        .expect("send");
    for (secs, value) in [(5, 90.0), (65, 91.0), (125, 92.0)] {
        producer
            .send(&telemetry, reading(secs, value))
            .await
            .expect("send");
    }
    let raised = detections(&mut watcher, 1, 30).await;
    assert_eq!(raised.len(), 1, "one raise: {raised:?}");
    assert_eq!(
        raised[0].transition,
        pb::detection::Transition::Raised as i32
    );
    let evidence = raised[0].evidence.as_ref().expect("evidence");
    assert_eq!((evidence.count, evidence.mean), (1, 90.0));
    let solution_key = format!("analytics-test/{name}");
    // The raise came with the second reading; wait until the third is in as well.
    let mut state = api::DeviceState::default();
    for _ in 0..100 {
        state = first
            .api
            .get_device_state(Request::new(api::GetDeviceStateRequest {
                solution: solution_key.clone(),
                device_id: "p-1".into(),
            }))
            .await
            .expect("device state")
            .into_inner();
        if state.metrics[0].latest == Some(api::metric_state::Latest::Number(92.0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state.metrics.len(), 1);
    assert_eq!(
        state.metrics[0].latest,
        Some(api::metric_state::Latest::Number(92.0))
    );
    assert_eq!(state.open_incidents.len(), 1);
    assert_eq!(state.open_incidents[0].incident_id, raised[0].incident_id);
    stop(first).await;

    // A second instance on the same checkpoint: the open incident stays open, the readings
    // the first one handled are not applied again, and the clear comes.
    let second = start(bus.clone(), &solution, database_url).await;
    let mut stream = second
        .api
        .watch_detections(Request::new(api::WatchDetectionsRequest {
            solution: solution_key.clone(),
            device_id: "p-1".into(),
        }))
        .await
        .expect("watch")
        .into_inner();
    for (secs, value) in [(185, 75.0), (245, 74.0)] {
        producer
            .send(&telemetry, reading(secs, value))
            .await
            .expect("send");
    }
    let later = detections(&mut watcher, 2, 8).await;
    let watched = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a watched detection")
        .expect("stream open")
        .expect("no error");
    assert_eq!(
        watched.transition,
        pb::detection::Transition::Cleared as i32
    );
    let open = second
        .api
        .list_incidents(Request::new(api::ListIncidentsRequest {
            solution: solution_key.clone(),
            ..Default::default()
        }))
        .await
        .expect("incidents")
        .into_inner();
    assert!(open.incidents.is_empty(), "{open:?}");
    stop(second).await;
    assert_eq!(later.len(), 1, "only the clear: {later:?}");
    assert_eq!(
        later[0].transition,
        pb::detection::Transition::Cleared as i32
    );
    assert_eq!(later[0].incident_id, raised[0].incident_id);

    let delivered = tokio::time::timeout(Duration::from_secs(30), dead.recv())
        .await
        .expect("a dead letter")
        .expect("recv");
    let letter = pb::DeadLetter::decode(&delivered.payload[..]).expect("a DeadLetter");
    assert_eq!(letter.reason_code, pb::ReasonCode::Undecodable as i32);
    assert!(
        letter.reason.starts_with("not a Reading"),
        "{}",
        letter.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_incident_embedded_bus_and_sqlite() {
    let dir = std::env::temp_dir().join(format!("sinter-analytics-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.join("state.db").display());
    let bus: Arc<dyn Bus> = Arc::new(sinter_bus::embedded::EmbeddedBus::new());
    scenario(bus, &url).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_incident_kafka_and_postgres() {
    let brokers = sinter_tests::services::require_kafka();
    let admin_url = std::env::var("SINTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let database = format!("sinter_analytics_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL is reachable");
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .unwrap();
    let url = format!("{base}/{database}");
    let config = sinter_bus::kafka::KafkaConfig::new(brokers).with_fast_rebalances();
    let bus: Arc<dyn Bus> = Arc::new(
        sinter_bus::kafka::KafkaBus::connect(config)
            .await
            .expect("broker"),
    );
    scenario(bus, &url).await;
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
