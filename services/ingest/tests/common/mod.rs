//! Shared pieces of the ingest tests: Solutions with unique topics, the service in process,
//! a consumer that reads a topic back, and the mixed batch every transport is given.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::{Value, json};
use sinter_bus::kafka::{KafkaBus, KafkaConfig};
use sinter_bus::{Bus, Delivered, TopicSpec};
use sinter_core::topic::{self, Stream};
use sinter_core::{ManualClock, SharedClock, Solution, Timestamp};
use sinter_grpc::{Auth, BearerToken, GrpcServer};
use sinter_ingest::{IngestConfig, IngestService};
use sinter_proto::events::v1::{DeadLetter, Reading, ReasonCode};
use sinter_runtime::{Service, ServiceContext, Shutdown};

/// The time every in-process test runs at: 2026-12-03T10:00:00Z.
pub const NOW_SECS: i64 = 1_796_292_000;

/// A Solution with a unique name (so unique topics), an MQTT source on the local Mosquitto
/// under a unique topic prefix, and small limits.
pub struct TestSolution {
    pub solution: Solution,
    pub yaml: String,
    /// MQTT topic prefix; readings go to `<prefix>/<device>/telemetry`.
    pub mqtt_prefix: String,
}

impl TestSolution {
    /// With its MQTT source on the machine's Mosquitto (127.0.0.1:1883).
    pub fn new(label: &str) -> Self {
        TestSolution::with_mqtt_port(label, 1883)
    }

    /// With its MQTT source on a broker at 127.0.0.1:`port`.
    pub fn with_mqtt_port(label: &str, port: u16) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{label}-{}", &unique[..10]);
        let mqtt_prefix = format!("sinter-test/{unique}");
        let yaml = format!(
            "apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {{name: {name}, namespace: ingest-test}}
spec:
  devices:
    - type: centrifugal-pump
      match: [\"p-*\"]
      metrics:
        - {{name: bearing_temperature, unit: degC, min: -40, max: 200}}
        - {{name: vibration_rms, unit: mm/s, min: 0, max: 100}}
        - {{name: serial, type: string}}
  sources:
    - mqtt:
        url: \"mqtt://127.0.0.1:{port}\"
        topic: \"{mqtt_prefix}/{{device}}/telemetry\"
        clientId: \"sinter-test-{}\"
  ingest:
    maxReadingBytes: 2048
    maxBatchReadings: 20
    clockSkew: 2m
    maxAge: 3d
    dedupWindow: 15m
    numericStrings: parse
  topics: {{partitions: 3}}
",
            &unique[..16],
            port = port,
        );
        let solution = Solution::from_yaml(&yaml).expect("test Solution is valid");
        TestSolution {
            solution,
            yaml,
            mqtt_prefix,
        }
    }

    pub fn qualified(&self) -> String {
        self.solution.qualified_name()
    }

    pub fn topic(&self, stream: Stream) -> String {
        topic::name(self.solution.namespace(), self.solution.name(), stream)
    }

    pub async fn create_topics(&self, bus: &dyn Bus) {
        for stream in [Stream::Telemetry, Stream::Deadletter] {
            bus.ensure_topic(&TopicSpec::new(self.topic(stream), 3))
                .await
                .expect("create topic");
        }
    }
}

pub async fn kafka_bus() -> Arc<dyn Bus> {
    let brokers = sinter_tests::services::require_kafka();
    let config = KafkaConfig::new(brokers).with_fast_rebalances();
    Arc::new(KafkaBus::connect(config).await.expect("connect to Kafka"))
}

pub fn require_mosquitto() {
    sinter_tests::services::require_tcp("Mosquitto", "127.0.0.1:1883", "systemctl start mosquitto");
}

pub fn manual_clock() -> (ManualClock, SharedClock) {
    let clock = ManualClock::new(Timestamp::from_secs(NOW_SECS));
    (clock.clone(), Arc::new(clock))
}

/// The service running in this process: gRPC on a free port, HTTP on another.
pub struct Running {
    pub grpc: String,
    pub http: String,
    pub shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    pub async fn grpc_client(
        &self,
    ) -> sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
    > {
        let channel = sinter_grpc::connect(&self.grpc, BearerToken::default())
            .await
            .expect("connect gRPC");
        sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient::new(channel)
    }
}

pub async fn start(
    solutions: Vec<Solution>,
    bus: Arc<dyn Bus>,
    clock: SharedClock,
    config: IngestConfig,
) -> Running {
    let shutdown = Shutdown::new();
    let context = ServiceContext {
        solutions: Arc::new(solutions),
        bus,
        clock,
        shutdown: shutdown.clone(),
    };
    let service = IngestService::build(context, config).await.expect("build");
    let http = service
        .http_addr()
        .map(|addr| format!("http://{addr}"))
        .unwrap_or_default();
    let server = service.register(GrpcServer::new(Auth::disabled()));
    let (addr, serving) = server
        .bind(
            "127.0.0.1:0".parse().expect("addr"),
            shutdown.clone().wait(),
        )
        .await
        .expect("bind gRPC");
    let run = Box::new(service).run(shutdown.clone());
    let task = tokio::spawn(async move {
        let (served, ran) = tokio::join!(serving, run);
        served.expect("gRPC served");
        ran.expect("service ran");
    });
    Running {
        grpc: format!("http://{addr}"),
        http,
        shutdown,
        task,
    }
}

/// Read `topic` from the start with a fresh group until `until` says enough, or `within`.
pub async fn read_topic(
    bus: &dyn Bus,
    topic: &str,
    within: Duration,
    until: impl Fn(&[Delivered]) -> bool,
) -> Vec<Delivered> {
    let group = format!("ingest-test-{}", uuid::Uuid::new_v4().simple());
    let mut consumer = bus.subscribe(&group, &[topic]).await.expect("subscribe");
    let deadline = Instant::now() + within;
    let mut records = Vec::new();
    while !until(&records) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(record)) => records.push(record),
            Ok(Err(error)) => panic!("reading {topic}: {error}"),
            Err(_) => break,
        }
    }
    records
}

pub fn readings(records: &[Delivered]) -> Vec<Reading> {
    records
        .iter()
        .map(|r| Reading::decode(&r.payload[..]).expect("a Reading"))
        .collect()
}

pub fn dead_letters(records: &[Delivered]) -> Vec<DeadLetter> {
    records
        .iter()
        .map(|r| DeadLetter::decode(&r.payload[..]).expect("a DeadLetter"))
        .collect()
}

/// The mixed batch as JSON lines, each with an `id` so its fate can be found on the topics.
/// `tag` makes the ids unique per run.
pub fn mixed_batch(tag: &str) -> Vec<String> {
    let minute_ago = Timestamp::from_secs(NOW_SECS - 60);
    let rfc3339 = "2026-12-03T09:59:00Z";
    assert_eq!(chrono_free_rfc3339(minute_ago), rfc3339);
    let far_future_ms = (NOW_SECS + 86_400) * 1_000;
    let oversized = "x".repeat(3_000);
    let temperature = "bearing_temperature";
    let line = |n: usize, device: &str, metric: &str, value: Value, ts: Value| {
        let mut reading = json!({"device": device, "metric": metric, "value": value});
        if !ts.is_null() {
            reading["ts"] = ts;
        }
        reading["id"] = json!(format!("{tag}-{n}"));
        reading.to_string()
    };
    vec![
        line(0, "p-1", temperature, json!(91.2), json!(rfc3339)),
        line(1, "p-1", temperature, json!("NaN"), json!(rfc3339)),
        line(2, "p-1", "humidity", json!(40), json!(rfc3339)),
        line(3, "p-1", temperature, json!("20.5"), json!(rfc3339)),
        line(4, "p-2", "vibration_rms", json!(3.5), json!(NOW_SECS - 30)),
        line(5, "p-2", "vibration_rms", json!(3.5), json!(far_future_ms)),
        line(6, "p-2", "serial", json!(oversized), Value::Null),
        line(7, "p-2", "serial", json!("241408E4"), json!(rfc3339)),
        line(8, "p-2", "vibration_rms", json!(500), json!(rfc3339)),
    ]
}

fn chrono_free_rfc3339(at: Timestamp) -> String {
    at.to_string().replace(".000000Z", "Z")
}

/// What the mixed batch must give, reading by reading: `None` accepted, else the refusal.
pub const MIXED_OUTCOMES: [Option<ReasonCode>; 9] = [
    None,
    Some(ReasonCode::NotFinite),
    Some(ReasonCode::UnknownMetric),
    None,
    None,
    Some(ReasonCode::TooFarInFuture),
    Some(ReasonCode::TooLarge),
    None,
    Some(ReasonCode::OutOfRange),
];

/// The outcome of each reading of the mixed batch as the topics tell it: accepted when its
/// message id is on telemetry, refused with the dead letter's code when its original bytes
/// carry its id.
pub fn outcomes_on_topics(
    tag: &str,
    telemetry: &[Reading],
    letters: &[DeadLetter],
) -> Vec<Option<ReasonCode>> {
    (0..MIXED_OUTCOMES.len())
        .map(|index| {
            let id = format!("{tag}-{index}");
            let published = telemetry.iter().filter(|r| r.message_id == id).count();
            let refused: Vec<&DeadLetter> = letters
                .iter()
                .filter(|letter| {
                    let original = String::from_utf8_lossy(&letter.original).into_owned();
                    original.contains(&format!("\"{id}\""))
                        || sinter_proto::ingest::v1::ReadingInput::decode(&letter.original[..])
                            .is_ok_and(|input| input.message_id == id)
                })
                .collect();
            match (published, refused.as_slice()) {
                (1, []) => None,
                (0, [letter]) => Some(
                    ReasonCode::try_from(letter.reason_code).unwrap_or(ReasonCode::Unspecified),
                ),
                other => panic!(
                    "reading {id}: {} on telemetry, {} dead letters",
                    other.0,
                    other.1.len()
                ),
            }
        })
        .collect()
}

/// Publish one QoS 1 message to the broker at 127.0.0.1:`port` and wait for its PUBACK.
/// `false` when the broker is not there or did not acknowledge within a few seconds.
pub async fn mqtt_publish_one(port: u16, topic: &str, payload: &str) -> bool {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let client_id = format!("sinter-test-pub-{}", uuid::Uuid::new_v4().simple());
    let (client, mut events) = AsyncClient::new(MqttOptions::new(client_id, "127.0.0.1", port), 8);
    if client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_owned())
        .await
        .is_err()
    {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut acked = false;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                acked = true;
                break;
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(_)) => break,
        }
    }
    client.disconnect().await.ok();
    let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
    acked
}
