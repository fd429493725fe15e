//! The MQTT source against the real Mosquitto: a message is acknowledged only once its
//! readings are on the bus, so what a stopped or stuck service had not acknowledged, and
//! what was published while it was away, reaches telemetry after it comes back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::TestSolution;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use sinter_bus::embedded::EmbeddedBus;
use sinter_bus::{Bus, BusError, Consumer, Delivery, Producer, Record, TopicSpec};
use sinter_core::solution::Source;
use sinter_core::topic::Stream;
use sinter_ingest::IngestConfig;

/// A bus that never accepts anything: the service stays stuck before its acknowledgement.
struct StuckBus(EmbeddedBus);

struct StuckProducer;

#[async_trait]
impl Producer for StuckProducer {
    async fn send(&self, _topic: &str, _record: Record) -> Result<Delivery, BusError> {
        futures::future::pending().await
    }
}

#[async_trait]
impl Bus for StuckBus {
    fn implementation(&self) -> &'static str {
        "stuck"
    }
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        self.0.ensure_topic(spec).await
    }
    async fn probe_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        self.0.probe_topics(topics).await
    }
    async fn topic_partitions(&self, topic: &str) -> Result<Option<i32>, BusError> {
        self.0.topic_partitions(topic).await
    }
    async fn delete_topic(&self, topic: &str) -> Result<(), BusError> {
        self.0.delete_topic(topic).await
    }
    fn producer(&self) -> Arc<dyn Producer> {
        Arc::new(StuckProducer)
    }
    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        self.0.subscribe(group, topics).await
    }
}

async fn publish(prefix: &str, id: &str, clean: Option<&str>) {
    let client_id = clean
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sinter-test-pub-{}", uuid::Uuid::new_v4().simple()));
    let mut options = MqttOptions::new(client_id, "127.0.0.1", 1883);
    options.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(options, 16);
    if clean.is_none() {
        let line = format!(r#"{{"metric":"vibration_rms","value":1.25,"id":"{id}"}}"#);
        client
            .publish(
                format!("{prefix}/p-5/telemetry"),
                QoS::AtLeastOnce,
                false,
                line,
            )
            .await
            .expect("publish");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), events.poll()).await {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => break,
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) if clean.is_some() => {
                break;
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("MQTT publisher: {error}"),
            Err(_) => {}
        }
    }
    client.disconnect().await.ok();
    let _ = tokio::time::timeout(Duration::from_millis(500), events.poll()).await;
}

async fn telemetry_ids(bus: &dyn Bus, solution: &TestSolution, wanted: &[&str]) -> Vec<String> {
    let records = common::read_topic(
        bus,
        &solution.topic(Stream::Telemetry),
        Duration::from_secs(10),
        |r| {
            let found: Vec<String> = common::readings(r)
                .into_iter()
                .map(|r| r.message_id)
                .collect();
            wanted.iter().all(|w| found.iter().any(|f| f == w))
        },
    )
    .await;
    common::readings(&records)
        .into_iter()
        .map(|r| r.message_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_and_queued_messages_arrive_after_a_restart() {
    common::require_mosquitto();
    let solution = TestSolution::new("session");
    let Source::Mqtt(source) = &solution.solution.spec.sources[0];
    let client_id = source
        .client_id
        .clone()
        .expect("the test Solution names its client");
    let open: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    solution.create_topics(open.as_ref()).await;
    let config = IngestConfig {
        http_addr: None,
        ..IngestConfig::default()
    };
    let (_clock, clock) = common::manual_clock();

    // The first run makes the broker keep a session for the source.
    let running = common::start(
        vec![solution.solution.clone()],
        open.clone(),
        clock.clone(),
        config.clone(),
    )
    .await;
    let mut subscribed = false;
    for attempt in 0..50 {
        let probe = format!("probe-{attempt}");
        publish(&solution.mqtt_prefix, &probe, None).await;
        if telemetry_ids(open.as_ref(), &solution, &[&probe])
            .await
            .contains(&probe)
        {
            subscribed = true;
            break;
        }
    }
    assert!(subscribed, "the MQTT source never subscribed");
    running.stop().await;

    // While nobody listens.
    publish(&solution.mqtt_prefix, "while-away", None).await;

    // A run whose bus never accepts: it gets the messages but must not acknowledge them.
    let stuck: Arc<dyn Bus> = Arc::new(StuckBus(EmbeddedBus::new()));
    solution.create_topics(stuck.as_ref()).await;
    let running = common::start(
        vec![solution.solution.clone()],
        stuck,
        clock.clone(),
        config.clone(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    publish(&solution.mqtt_prefix, "while-stuck", None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stop().await;

    // Back on a working bus, the broker redelivers both.
    let running = common::start(vec![solution.solution.clone()], open.clone(), clock, config).await;
    let found = telemetry_ids(open.as_ref(), &solution, &["while-away", "while-stuck"]).await;
    running.stop().await;
    assert!(found.iter().any(|id| id == "while-away"), "{found:?}");
    assert!(found.iter().any(|id| id == "while-stuck"), "{found:?}");
    assert_eq!(
        found.iter().filter(|id| *id == "while-stuck").count(),
        1,
        "{found:?}"
    );

    // Leave no session behind on the broker.
    publish(&solution.mqtt_prefix, "", Some(&client_id)).await;
}
