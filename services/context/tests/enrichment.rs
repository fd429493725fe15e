//! Detections in, situations out, over the embedded bus with a real registry.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{TestDatabase, seed, service_context, solution};
use prost::Message;
use sinter_bus::{Consumer, Record};
use sinter_context::{ContextConfig, ContextService, situation_id};
use sinter_core::topic::Stream;
use sinter_proto::events::v1::situation::ContextStatus;
use sinter_proto::events::v1::{DeadLetter, Detection, ReasonCode, Situation};
use sinter_runtime::Service;

fn detection(id: &str, device: &str) -> Detection {
    Detection {
        id: id.into(),
        incident_id: format!("inc-{id}"),
        device_id: device.into(),
        metric: "temp".into(),
        detector_name: "bearing-hot".into(),
        value: 91.2,
        ..Detection::default()
    }
}

async fn next<M: Message + Default>(consumer: &mut Box<dyn Consumer>) -> M {
    let delivered = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
        .await
        .expect("a record within 10 s")
        .expect("record");
    consumer.ack(&delivered).expect("ack");
    M::decode(&delivered.payload[..]).expect("decodes")
}

async fn detections_become_situations(database: TestDatabase) {
    let solution = solution("enrich", "");
    let clock = common::clock();
    let context = service_context(solution.clone(), &clock).await;
    let bus = context.bus.clone();
    let shutdown = context.shutdown.clone();
    let service = ContextService::build(context, &ContextConfig::new(&database.url))
        .await
        .expect("service");
    seed(service.registry()).await;
    let counts = service.enricher().metrics().clone();
    let running = tokio::spawn(Box::new(service).run(shutdown.clone()));

    let detections = solution.topic_name(Stream::Detections);
    let mut situations = bus
        .subscribe("test", &[solution.topic_name(Stream::Situations).as_str()])
        .await
        .unwrap();
    let mut dead = bus
        .subscribe("test", &[solution.topic_name(Stream::Deadletter).as_str()])
        .await
        .unwrap();
    let producer = bus.producer();
    for (id, device) in [("dt-1", "p-17"), ("dt-2", "p-404")] {
        let payload = detection(id, device).encode_to_vec();
        producer
            .send(&detections, Record::new(device, payload))
            .await
            .unwrap();
    }
    producer
        .send(&detections, Record::new("p-17", vec![0xff, 0x01, 0x02]))
        .await
        .unwrap();
    let no_device = Detection {
        device_id: String::new(),
        ..detection("dt-3", "")
    };
    producer
        .send(&detections, Record::new("", no_device.encode_to_vec()))
        .await
        .unwrap();

    let mut found: Vec<Situation> = vec![next(&mut situations).await, next(&mut situations).await];
    found.sort_by(|a, b| {
        a.detection
            .as_ref()
            .map(|d| d.id.clone())
            .cmp(&b.detection.as_ref().map(|d| d.id.clone()))
    });
    let known = &found[0];
    assert_eq!(known.id, situation_id("dt-1"));
    assert_eq!(known.context_status(), ContextStatus::Complete);
    let asset = known.asset.as_ref().expect("asset context");
    assert_eq!(asset.asset_name, "Pump P-17");
    assert_eq!(asset.site_name, "North plant");
    assert_eq!(asset.criticality, "high");
    assert_eq!(asset.owner_team, "reliability");
    assert_eq!(asset.path.len(), 4);
    assert_eq!(asset.open_work_orders[0].external_id, "CMMS-wo-1");
    assert_eq!(
        known.enriched_at.as_ref().map(|t| t.seconds),
        Some(1_764_756_000)
    );

    let unknown = &found[1];
    assert_eq!(unknown.id, situation_id("dt-2"));
    assert_eq!(unknown.context_status(), ContextStatus::MissingAsset);
    assert!(unknown.asset.is_none());
    assert_eq!(unknown.detection.as_ref().map(|d| d.value), Some(91.2));
    assert_eq!(counts.counts().missing_assets.load(Ordering::Relaxed), 1);

    let mut letters: Vec<DeadLetter> = vec![next(&mut dead).await, next(&mut dead).await];
    letters.sort_by_key(|letter| letter.reason_code);
    assert_eq!(letters[0].reason_code(), ReasonCode::Undecodable);
    assert_eq!(letters[0].original, vec![0xff, 0x01, 0x02]);
    assert_eq!(letters[0].source, detections);
    assert_eq!(letters[1].reason_code(), ReasonCode::MissingField);
    assert_eq!(letters[1].reason, "detection.device_id: is required");

    shutdown.trigger();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn postgres_detections_become_situations() {
    detections_become_situations(TestDatabase::postgres().await).await;
}

#[tokio::test]
async fn sqlite_detections_become_situations() {
    detections_become_situations(TestDatabase::sqlite()).await;
}

/// Regression: every Solution's loop joined the one group `sinter-context`, so one
/// Solution's rebalance stopped all of them. Offsets now belong to
/// `sinter-context.<namespace>.<solution>`.
#[tokio::test]
async fn each_solution_consumes_in_a_group_of_its_own() {
    let database = TestDatabase::sqlite();
    let solution = solution("grouped", "");
    let clock = common::clock();
    let context = service_context(solution.clone(), &clock).await;
    let bus = context.bus.clone();
    let shutdown = context.shutdown.clone();
    let service = ContextService::build(context, &ContextConfig::new(&database.url))
        .await
        .expect("service");
    seed(service.registry()).await;
    let running = tokio::spawn(Box::new(service).run(shutdown.clone()));
    let detections = solution.topic_name(Stream::Detections);
    let mut situations = bus
        .subscribe("test", &[solution.topic_name(Stream::Situations).as_str()])
        .await
        .unwrap();
    let producer = bus.producer();
    let first = detection("dt-g-1", "p-17").encode_to_vec();
    producer
        .send(&detections, Record::new("p-17", first))
        .await
        .unwrap();
    let situation: Situation = next(&mut situations).await;
    assert_eq!(situation.id, situation_id("dt-g-1"));
    shutdown.trigger();
    running.await.unwrap().unwrap();

    // The group named after the Solution has the first detection behind it.
    let second = detection("dt-g-2", "p-17").encode_to_vec();
    producer
        .send(&detections, Record::new("p-17", second))
        .await
        .unwrap();
    assert_eq!(
        sinter_context::pipeline::consumer_group("plant", "grouped"),
        "sinter-context.plant.grouped"
    );
    let mut group = bus
        .subscribe("sinter-context.plant.grouped", &[detections.as_str()])
        .await
        .unwrap();
    let resumed: Detection = next(&mut group).await;
    assert_eq!(resumed.id, "dt-g-2");
}

/// The pipeline's encoded situations are the very bytes of the situation message, for a
/// bound device and an unknown one, from a cold and from a warm cache.
#[tokio::test]
async fn encoded_situations_are_the_situation_message() {
    let database = TestDatabase::sqlite();
    let clock = common::clock();
    let context = service_context(solution("encoded", ""), &clock).await;
    let service = ContextService::build(context, &ContextConfig::new(&database.url))
        .await
        .expect("service");
    seed(service.registry()).await;
    let enricher = service.enricher();
    let solution = sinter_context::enrich::SolutionContext::new(&solution("encoded", ""));
    for device in ["p-17", "p-404", "p-17", "p-404"] {
        let detection = detection(&format!("dt-{device}"), device);
        let payload = detection.encode_to_vec();
        let encoded = enricher
            .enrich_encoded(&solution, &detection, &payload)
            .await
            .unwrap();
        let whole = enricher.enrich(&solution, detection).await.unwrap();
        assert_eq!(encoded, whole.encode_to_vec(), "{device}");
    }
    assert!(enricher.metrics().counts().hits.load(Ordering::Relaxed) >= 4);
}
