//! Topic provisioning against the real Kafka-compatible broker on 127.0.0.1:9092
//! (`scripts/broker.sh start`): created once, found again, a partition conflict reported
//! and left alone, deleted on request. Fails when the broker cannot be reached.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sinter_bus::{Bus, TopicSpec};
use sinter_core::Solution;
use sinter_core::topic::Stream;
use sinter_operator::topics;

async fn broker() -> Arc<dyn Bus> {
    let url = std::env::var("SINTER_TEST_BUS").unwrap_or_else(|_| "kafka://127.0.0.1:9092".into());
    let url: sinter_runtime::BusUrl = url.parse().expect("a bus URL");
    sinter_runtime::connect_bus(&url, &[], "sinter-operator-test")
        .await
        .expect("the Kafka broker on 127.0.0.1:9092 answers (scripts/broker.sh start)")
}

fn solution(namespace: &str, partitions: u32) -> Solution {
    let yaml = format!(
        "apiVersion: sinter.dev/v1alpha1\nkind: Solution\nmetadata: {{name: pumps, namespace: \
         {namespace}}}\nspec:\n  devices:\n    - type: pump\n      match: ['p-*']\n      \
         metrics: [{{name: temp}}]\n  topics: {{partitions: {partitions}, retention: 1h}}\n"
    );
    Solution::from_yaml(&yaml).expect("valid")
}

fn unique_namespace(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("op-{what}-{}-{nanos}", std::process::id())
}

async fn wait_until_gone(bus: &dyn Bus, topic: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while bus
        .topic_partitions(topic)
        .await
        .expect("metadata")
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic} still exists"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_once_and_found_again() {
    let bus = broker().await;
    let solution = solution(&unique_namespace("create"), 3);
    let first = topics::reconcile(bus.as_ref(), &solution)
        .await
        .expect("reconciled");
    assert_eq!(first.created.len(), Stream::ALL.len());
    assert!(first.conflicts.is_empty());
    for (_, topic) in solution.topic_names() {
        assert_eq!(
            bus.topic_partitions(&topic).await.expect("metadata"),
            Some(3),
            "{topic}"
        );
    }
    let again = topics::reconcile(bus.as_ref(), &solution)
        .await
        .expect("reconciled");
    assert!(again.created.is_empty(), "{again:?}");
    assert_eq!(again.ready.len(), Stream::ALL.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_conflict_is_reported_and_left_alone() {
    let bus = broker().await;
    let namespace = unique_namespace("conflict");
    let solution = solution(&namespace, 4);
    let telemetry = solution.topic_name(Stream::Telemetry);
    bus.ensure_topic(&TopicSpec::new(telemetry.clone(), 2))
        .await
        .expect("topic");
    let report = topics::reconcile(bus.as_ref(), &solution)
        .await
        .expect("reconciled");
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert!(report.conflicts[0].contains("has 2 partitions, the spec asks for 4"));
    assert_eq!(report.ready.len(), Stream::ALL.len() - 1);
    assert_eq!(
        bus.topic_partitions(&telemetry).await.expect("metadata"),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_every_topic() {
    let bus = broker().await;
    let namespace = unique_namespace("delete");
    let solution = solution(&namespace, 1);
    topics::reconcile(bus.as_ref(), &solution)
        .await
        .expect("reconciled");
    let deleted = topics::delete(bus.as_ref(), &namespace, "pumps")
        .await
        .expect("deleted");
    assert_eq!(deleted.len(), Stream::ALL.len());
    for topic in &deleted {
        wait_until_gone(bus.as_ref(), topic).await;
    }
    // Deleting again finds nothing to do and is fine.
    topics::delete(bus.as_ref(), &namespace, "pumps")
        .await
        .expect("deleted again");
}
