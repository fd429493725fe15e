//! The enrichment loop on the Kafka path, against the real broker.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDatabase, seed, solution};
use prost::Message;
use sinter_bus::kafka::{KafkaBus, KafkaConfig};
use sinter_bus::{Bus, Record, TopicSpec};
use sinter_context::{ContextConfig, ContextService, situation_id};
use sinter_core::topic::Stream;
use sinter_proto::events::v1::situation::ContextStatus;
use sinter_proto::events::v1::{Detection, Situation};
use sinter_runtime::{Service, ServiceContext, Shutdown};

#[tokio::test]
async fn situations_over_kafka_with_postgres() {
    let brokers = sinter_tests::services::require_kafka();
    let database = TestDatabase::postgres().await;
    let name = format!("ctx-{}", uuid::Uuid::new_v4().simple());
    let solution = solution(&name, "");
    let bus: Arc<dyn Bus> = Arc::new(
        KafkaBus::connect(KafkaConfig::new(brokers))
            .await
            .expect("kafka"),
    );
    for stream in [Stream::Detections, Stream::Situations, Stream::Deadletter] {
        bus.ensure_topic(&TopicSpec::new(solution.topic_name(stream), 2))
            .await
            .expect("topic");
    }
    let clock = common::clock();
    let shutdown = Shutdown::new();
    let context = ServiceContext {
        solutions: Arc::new(vec![solution.clone()]),
        bus: bus.clone(),
        clock: Arc::new(clock),
        shutdown: shutdown.clone(),
    };
    let service = ContextService::build(context, &ContextConfig::new(&database.url))
        .await
        .expect("service");
    seed(service.registry()).await;
    let running = tokio::spawn(Box::new(service).run(shutdown.clone()));

    let mut situations = bus
        .subscribe(
            &format!("test-{name}"),
            &[solution.topic_name(Stream::Situations).as_str()],
        )
        .await
        .expect("subscribe");
    let detection = Detection {
        id: "dt-kafka-1".into(),
        device_id: "p-17".into(),
        metric: "temp".into(),
        value: 90.0,
        ..Detection::default()
    };
    bus.producer()
        .send(
            &solution.topic_name(Stream::Detections),
            Record::new("p-17", detection.encode_to_vec()),
        )
        .await
        .expect("send");
    let delivered = tokio::time::timeout(Duration::from_secs(60), situations.recv())
        .await
        .expect("a situation within 60 s")
        .expect("record");
    assert_eq!(&delivered.key[..], b"p-17");
    let situation = Situation::decode(&delivered.payload[..]).expect("decodes");
    assert_eq!(situation.id, situation_id("dt-kafka-1"));
    assert_eq!(situation.context_status(), ContextStatus::Complete);
    assert_eq!(
        situation.asset.map(|asset| asset.asset_name),
        Some("Pump P-17".to_owned())
    );
    shutdown.trigger();
    running.await.expect("join").expect("service stops cleanly");
}
