//! The orchestrator as a running service: situations read from the bus (embedded, and
//! Kafka against the real broker) become recommendations, undecodable records go to the
//! dead-letter topic, timers escalate and webhooks go out, until shutdown.
// A test that cannot unwrap has failed: panicking is how it says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::webhook::Receiver;
use common::{Backend, TestDatabase, raised, secret_file, solution_in, test_config};
use prost::Message;
use sinter_bus::kafka::{KafkaBus, KafkaConfig};
use sinter_bus::{Bus, Record, TopicSpec};
use sinter_core::topic::{self, Stream};
use sinter_core::{ManualClock, Timestamp};
use sinter_orchestrator::Orchestrator;
use sinter_orchestrator::listing::ListQuery;
use sinter_proto::events::v1::{DeadLetter, ReasonCode};
use sinter_runtime::{Service, ServiceContext, Shutdown};

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn runs_as_a_service(bus: Arc<dyn Bus>, backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let receiver = Receiver::start().await;
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    let solution = solution_in(&namespace, &receiver.url, &secret_file());
    let qualified = solution.qualified_name();
    for stream in [Stream::Situations, Stream::Actions, Stream::Deadletter] {
        let name = topic::name(&namespace, solution.name(), stream);
        bus.ensure_topic(&TopicSpec::new(name, 2)).await.unwrap();
    }
    let situations = topic::name(&namespace, solution.name(), Stream::Situations);
    let deadletter = topic::name(&namespace, solution.name(), Stream::Deadletter);
    let clock = ManualClock::new(Timestamp::from_secs(1_764_756_000));
    let shutdown = Shutdown::new();
    let context = ServiceContext {
        solutions: Arc::new(vec![solution]),
        bus: bus.clone(),
        clock: Arc::new(clock.clone()),
        shutdown: shutdown.clone(),
    };
    let mut config = test_config(&database.url);
    config.consumer_group = format!("orchestrator-{namespace}");
    let orchestrator = Orchestrator::build(&context, config).await.unwrap();
    let handle = orchestrator.clone();
    let running = tokio::spawn(Box::new(orchestrator).run(shutdown.clone()));

    let producer = bus.producer();
    producer
        .send(&situations, Record::new("p-a-17", vec![0xff, 0x01, 0x02]))
        .await
        .unwrap();
    let situation = raised("st-1", "inc-1", "a-17");
    for _ in 0..2 {
        // Sent twice: the second is a redelivery and changes nothing.
        producer
            .send(
                &situations,
                Record::new("p-a-17", situation.encode_to_vec()),
            )
            .await
            .unwrap();
    }
    let query = ListQuery {
        solution: qualified.clone(),
        ..ListQuery::default()
    };
    wait_for("the recommendation", || async {
        handle
            .list_recommendations(&query)
            .await
            .is_ok_and(|(page, _)| page.len() == 1)
    })
    .await;
    wait_for("the webhook", || async { receiver.work_orders() == 1 }).await;
    let mut dead = bus
        .subscribe("dead-reader", &[deadletter.as_str()])
        .await
        .unwrap();
    let letter = tokio::time::timeout(Duration::from_secs(30), dead.recv())
        .await
        .expect("a dead letter")
        .unwrap();
    let letter = DeadLetter::decode(letter.payload.as_ref()).unwrap();
    assert_eq!(letter.reason_code(), ReasonCode::Undecodable);
    assert_eq!(letter.original, vec![0xff, 0x01, 0x02]);
    assert!(letter.reason.contains("Situation"), "{}", letter.reason);

    clock.advance(Duration::from_secs(15 * 60));
    let (page, _) = handle.list_recommendations(&query).await.unwrap();
    let id = page[0].id.clone();
    wait_for("the escalation", || async {
        handle
            .recommendation(&id)
            .await
            .is_ok_and(|r| r.escalation_level == 1)
    })
    .await;
    let recommendation = handle.recommendation(&id).await.unwrap();
    assert_eq!(recommendation.occurrences, 1);
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the service stops on shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_the_embedded_bus_with_sqlite() {
    let bus = Arc::new(sinter_bus::embedded::EmbeddedBus::new());
    runs_as_a_service(bus, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_kafka_with_postgres() {
    let brokers = sinter_tests::services::require_kafka();
    let bus = KafkaBus::connect(KafkaConfig::new(brokers)).await.unwrap();
    runs_as_a_service(Arc::new(bus), Backend::Postgres).await;
}
