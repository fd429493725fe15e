//! Connecting a service to the bus named on its command line.

use std::sync::Arc;

use sinter_bus::Bus;
use sinter_bus::kafka::{KafkaBus, KafkaConfig};

use crate::args::BusUrl;
use crate::service::RuntimeError;

/// Connect to the bus at `url`, with further librdkafka `properties` for Kafka. Kafka is
/// retried with backoff inside [`KafkaBus::connect`]; the embedded bus cannot be reached
/// from a separate process.
pub async fn connect_bus(
    url: &BusUrl,
    properties: &[(String, String)],
    client_id: &str,
) -> Result<Arc<dyn Bus>, RuntimeError> {
    match url {
        BusUrl::Kafka { brokers } => {
            let mut config = KafkaConfig::new(brokers.clone());
            config.client_id = client_id.to_owned();
            for (key, value) in properties {
                config = config.with_property(key, value);
            }
            let bus = KafkaBus::connect(config).await.map_err(RuntimeError::Bus)?;
            Ok(Arc::new(bus))
        }
        BusUrl::Embedded => Err(RuntimeError::EmbeddedBusOutOfProcess),
    }
}
