//! The Kafka bus, through librdkafka (rdkafka's `FutureProducer` and `StreamConsumer`).
//!
//! An idempotent producer, group consumers that store offsets after processing, topic checks
//! and creation through the admin API.
//!
//! [`KafkaBus::connect`] waits for the brokers, retrying with backoff, and fails with
//! [`BusError::Unreachable`] once [`KafkaConfig::connect_timeout`] has passed. After that
//! librdkafka reconnects by itself; consumers log transport errors and back off rather than
//! fail.

mod admin;
mod consumer;
mod context;
mod producer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::error::KafkaError;
use tracing::{info, warn};

use crate::topic::validate_subscription;
use crate::{Bus, BusError, Consumer, OffsetReset, Producer, TopicSpec};
use context::LogContext;
use producer::KafkaProducer;

/// Longest pause between two attempts to reach the brokers.
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(5);
/// First pause between two attempts to reach the brokers.
const FIRST_CONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// librdkafka properties that [`KafkaConfig::with_property`] may not change: the group a
/// member is in, offsets stored only once a record is acknowledged and then committed
/// in the background, and an idempotent
/// producer that reports delivery once every replica has the record.
pub const PROTECTED_PROPERTIES: [&str; 8] = [
    "group.id",
    "enable.auto.offset.store",
    "enable.auto.commit",
    "auto.commit.enable",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "allow.auto.create.topics",
];

/// How to reach Kafka and how its clients behave.
///
/// Its `Debug` output names the extra properties but not their values, which may be secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// `client.id` of every client, seen in broker logs.
    pub client_id: String,
    /// Where a group without a committed offset starts; earliest by default.
    pub offset_reset: OffsetReset,
    /// How long the group waits for a silent member before reassigning its partitions
    /// (`session.timeout.ms`); 30 s by default.
    pub session_timeout: Duration,
    /// How often a member tells the group it lives (`heartbeat.interval.ms`); 3 s by default.
    pub heartbeat_interval: Duration,
    /// Longest time between two receives before a member is deemed stuck and leaves the
    /// group (`max.poll.interval.ms`, at least the session timeout); 5 min by default.
    pub max_poll_interval: Duration,
    /// How often acknowledged offsets are committed in the background
    /// (`auto.commit.interval.ms`); 5 s by default.
    pub auto_commit_interval: Duration,
    /// Longest wait of a fetch for new records (`fetch.wait.max.ms`); 10 ms by default:
    /// each hop of a sparse stream (detections, situations) can wait this long, so it is
    /// kept short for the latency from a reading to its recommendation. Consumers only.
    pub fetch_wait_max: Duration,
    /// How long the producer gathers records into a batch (`linger.ms`); 1 ms by default:
    /// three hops lie between a reading and its recommendation and each may wait this
    /// long, while at high rates a batch fills within the millisecond anyway. Producers
    /// only.
    pub linger: Duration,
    /// How long a send may take, retries included, before it fails (`message.timeout.ms`);
    /// 60 s by default.
    pub delivery_timeout: Duration,
    /// Timeout of one metadata or admin request; 10 s by default.
    pub request_timeout: Duration,
    /// How long [`KafkaBus::connect`] keeps trying to reach the brokers; 60 s by default.
    pub connect_timeout: Duration,
    /// Further librdkafka properties for every client (`security.protocol`, SASL and so on).
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Defaults for a cluster at `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            client_id: "sinter".to_owned(),
            offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            auto_commit_interval: Duration::from_secs(5),
            fetch_wait_max: Duration::from_millis(10),
            linger: Duration::from_millis(1),
            delivery_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(60),
            properties: Vec::new(),
        }
    }

    /// Short group timeouts, so rebalances after a member joins or dies take seconds: for
    /// tests and a single developer's broker.
    pub fn with_fast_rebalances(mut self) -> Self {
        self.session_timeout = Duration::from_secs(6);
        self.heartbeat_interval = Duration::from_millis(500);
        self.max_poll_interval = Duration::from_secs(10);
        self.auto_commit_interval = Duration::from_secs(1);
        self
    }

    /// Sets a further librdkafka property for every client. It overrides the value Sinter
    /// would choose, except for the properties its delivery guarantees rest on
    /// ([`PROTECTED_PROPERTIES`]), which [`KafkaBus::connect`] refuses. `linger.ms` and
    /// `fetch.wait.max.ms` in whole milliseconds set [`Self::linger`] and
    /// [`Self::fetch_wait_max`], so that each reaches only the clients it is for.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        let millis = value.trim().parse::<u64>().ok().map(Duration::from_millis);
        match (key.as_str(), millis) {
            ("linger.ms", Some(linger)) => self.linger = linger,
            ("fetch.wait.max.ms", Some(wait)) => self.fetch_wait_max = wait,
            _ => self.properties.push((key, value)),
        }
        self
    }

    /// The first given property that Sinter does not let a configuration change.
    fn protected_property(&self) -> Option<&str> {
        self.properties
            .iter()
            .map(|(key, _)| key.as_str())
            .find(|key| PROTECTED_PROPERTIES.contains(key))
    }

    /// Sets the given properties on `config`, over Sinter's own choices; each client
    /// applies them after its own settings and before the protected ones.
    fn override_with_properties<'a>(&self, config: &'a mut ClientConfig) -> &'a mut ClientConfig {
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The settings every client shares, before the given properties.
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("socket.timeout.ms", millis(self.request_timeout))
            .set("log.connection.close", "false");
        config
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let property_names: Vec<&str> = self
            .properties
            .iter()
            .map(|(key, _)| key.as_str())
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("offset_reset", &self.offset_reset)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_poll_interval", &self.max_poll_interval)
            .field("auto_commit_interval", &self.auto_commit_interval)
            .field("fetch_wait_max", &self.fetch_wait_max)
            .field("linger", &self.linger)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("properties", &property_names)
            .finish()
    }
}

/// The Kafka bus: one shared producer and admin client; a consumer per subscription.
#[derive(Clone)]
pub struct KafkaBus {
    config: Arc<KafkaConfig>,
    producer: Arc<KafkaProducer>,
    admin: Arc<AdminClient<LogContext>>,
}

impl KafkaBus {
    /// Creates the clients and waits until the brokers answer, retrying with backoff for up
    /// to [`KafkaConfig::connect_timeout`].
    pub async fn connect(config: KafkaConfig) -> Result<Self, BusError> {
        if let Some(key) = config.protected_property() {
            return Err(BusError::Config(format!(
                "the Kafka property {key:?} cannot be set: acknowledged records and offsets \
                 rest on Sinter's own value"
            )));
        }
        let config = Arc::new(config);
        let producer = Arc::new(KafkaProducer::create(&config)?);
        let admin: AdminClient<LogContext> = config
            .override_with_properties(&mut config.client_config())
            .create_with_context(LogContext::new("admin"))
            .map_err(BusError::creation("admin client creation"))?;
        let bus = Self {
            config,
            producer,
            admin: Arc::new(admin),
        };
        bus.wait_for_brokers().await?;
        Ok(bus)
    }

    /// The configuration this bus was made with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    async fn wait_for_brokers(&self) -> Result<(), BusError> {
        let started = Instant::now();
        let attempts = AtomicU32::new(0);
        let fetch = || {
            attempts.fetch_add(1, Ordering::Relaxed);
            admin::fetch_metadata(&self.admin, self.config.request_timeout)
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(FIRST_CONNECT_BACKOFF)
            .with_max_delay(MAX_CONNECT_BACKOFF)
            .with_total_delay(Some(self.config.connect_timeout))
            .without_max_times();
        let result = fetch
            .retry(backoff)
            .notify(|error, pause| {
                warn!(
                    brokers = %self.config.brokers,
                    attempts = attempts.load(Ordering::Relaxed),
                    error = %error,
                    retry_in_ms = pause.as_millis(),
                    "Kafka brokers unreachable; retrying."
                );
            })
            .await;
        let attempts = attempts.load(Ordering::Relaxed);
        match result {
            Ok(metadata) => {
                info!(
                    brokers = %self.config.brokers,
                    attempts,
                    broker_count = metadata.brokers,
                    "Connected to Kafka."
                );
                Ok(())
            }
            Err(source) => Err(BusError::Unreachable {
                brokers: self.config.brokers.clone(),
                attempts,
                waited: started.elapsed(),
                source,
            }),
        }
    }
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("brokers", &self.config.brokers)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Bus for KafkaBus {
    fn implementation(&self) -> &'static str {
        "kafka"
    }

    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        spec.validate()?;
        admin::ensure_topic(&self.admin, spec, &self.config).await
    }

    async fn probe_topics(&self, topics: &[&str]) -> Result<(), BusError> {
        let metadata = admin::fetch_metadata(&self.admin, self.config.request_timeout)
            .await
            .map_err(|source| self.unreachable(source))?;
        let missing: Vec<String> = topics
            .iter()
            .filter(|topic| !metadata.has_topic(topic))
            .map(|topic| (*topic).to_owned())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(BusError::MissingTopics { topics: missing })
        }
    }

    async fn topic_partitions(&self, topic: &str) -> Result<Option<i32>, BusError> {
        let metadata = admin::fetch_metadata(&self.admin, self.config.request_timeout)
            .await
            .map_err(|source| self.unreachable(source))?;
        Ok(metadata.partitions(topic))
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), BusError> {
        admin::delete_topic(&self.admin, topic, &self.config).await
    }

    fn producer(&self) -> Arc<dyn Producer> {
        self.producer.clone()
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        validate_subscription(group, topics)?;
        self.probe_topics(topics).await?;
        let consumer = consumer::KafkaConsumer::subscribe(&self.config, group, topics)?;
        Ok(Box::new(consumer))
    }
}

impl KafkaBus {
    fn unreachable(&self, source: KafkaError) -> BusError {
        BusError::Unreachable {
            brokers: self.config.brokers.clone(),
            attempts: 1,
            waited: self.config.request_timeout,
            source,
        }
    }
}

/// A duration as librdkafka's milliseconds property value.
fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn properties_that_guarantees_rest_on_are_refused() {
        for key in PROTECTED_PROPERTIES {
            let config = KafkaConfig::new("127.0.0.1:1").with_property(key, "x");
            match KafkaBus::connect(config).await {
                Err(BusError::Config(message)) => assert!(message.contains(key), "{message}"),
                Err(other) => panic!("{key}: {other}"),
                Ok(_) => panic!("{key} was accepted"),
            }
        }
    }

    #[tokio::test]
    async fn a_property_librdkafka_refuses_is_a_configuration_error_naming_it() {
        let config = KafkaConfig::new("127.0.0.1:1").with_property("fetch.wait.max.ms", "abc");
        match KafkaBus::connect(config).await {
            Err(BusError::Config(message)) => {
                assert!(message.contains("fetch.wait.max.ms"), "{message}");
                assert!(message.contains("abc"), "{message}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("an invalid value was accepted"),
        }
    }

    #[test]
    fn given_properties_override_sinter_defaults() {
        let config = KafkaConfig::new("kafka:9092").with_property("batch.num.messages", "7");
        let mut client = ClientConfig::new();
        client.set("batch.num.messages", "10000");
        config.override_with_properties(&mut client);
        assert_eq!(client.get("batch.num.messages"), Some("7"));
    }

    #[test]
    fn linger_and_fetch_wait_reach_only_their_own_clients() {
        let config = KafkaConfig::new("kafka:9092")
            .with_property("linger.ms", "0")
            .with_property("fetch.wait.max.ms", " 2");
        assert_eq!(config.linger, Duration::ZERO);
        assert_eq!(config.fetch_wait_max, Duration::from_millis(2));
        assert!(config.properties.is_empty(), "{:?}", config.properties);
        // What is not whole milliseconds is left for librdkafka to judge.
        let config = KafkaConfig::new("kafka:9092").with_property("linger.ms", "0.5");
        assert_eq!(config.properties, vec![("linger.ms".into(), "0.5".into())]);
    }

    #[test]
    fn debug_output_hides_property_values() {
        let config = KafkaConfig::new("kafka:9092").with_property("sasl.password", "hunter2");
        let shown = format!("{config:?}");
        assert!(shown.contains("sasl.password"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn fast_rebalances_keep_librdkafka_constraints() {
        let config = KafkaConfig::new("kafka:9092").with_fast_rebalances();
        assert!(config.heartbeat_interval < config.session_timeout);
        assert!(config.max_poll_interval >= config.session_timeout);
    }
}
