//! The contract suite on a real Kafka-compatible broker, plus what only Kafka can get wrong.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sinter_bus::Bus;
use sinter_bus::kafka::{KafkaBus, KafkaConfig};

use crate::suite::Harness;

/// Where the broker is unless `SINTER_KAFKA_BROKERS` says otherwise.
const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

fn brokers() -> String {
    std::env::var("SINTER_KAFKA_BROKERS").unwrap_or_else(|_| DEFAULT_BROKERS.to_owned())
}

/// Short group timeouts so rebalances take seconds, and a short connect timeout so a missing
/// broker fails fast.
fn test_config() -> KafkaConfig {
    let mut config = KafkaConfig::new(brokers()).with_fast_rebalances();
    config.client_id = "sinter-bus-contract".to_owned();
    config.connect_timeout = Duration::from_secs(10);
    config.request_timeout = Duration::from_secs(5);
    config.delivery_timeout = Duration::from_secs(20);
    // Long, so the cases show the commits on rebalance and close, not the periodic one.
    config.auto_commit_interval = Duration::from_secs(60);
    // Statistics, and so lag readings, every second rather than every 5 s.
    config.with_property("statistics.interval.ms", "1000")
}

/// A fresh connection to the broker for every case; no broker is a failure, never a skip.
pub struct KafkaHarness;

#[async_trait]
impl Harness for KafkaHarness {
    async fn bus(&self) -> Arc<dyn Bus> {
        crate::suite::init_logs();
        let config = test_config();
        let brokers = config.brokers.clone();
        match KafkaBus::connect(config).await {
            Ok(bus) => Arc::new(bus),
            Err(error) => {
                let cause = std::error::Error::source(&error).map(ToString::to_string);
                panic!(
                    "the Kafka contract tests need a broker at {brokers} (set \
                     SINTER_KAFKA_BROKERS or start tansu): {error}: {}",
                    cause.unwrap_or_default()
                )
            }
        }
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(30)
    }
}

contract_suite!(crate::kafka::KafkaHarness);

#[tokio::test]
async fn unreachable_brokers_are_a_clear_error() {
    let mut config = KafkaConfig::new("127.0.0.1:1");
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let error = KafkaBus::connect(config)
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(error.kind(), "unreachable");
    let message = error.to_string();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
}
