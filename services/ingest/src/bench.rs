//! The ingest load generator behind `sinter bench ingest`: batches of readings pushed over
//! gRPC through the real ingest pipeline into a bus, beside the raw rdkafka producer on the
//! same broker with records of the same size, and the same load on the embedded bus.
//!
//! ```no_run
//! # async fn example() -> Result<(), sinter_ingest::bench::BenchError> {
//! use sinter_ingest::bench::{BenchSpec, run};
//! let report = run(&BenchSpec::new("127.0.0.1:9092")).await?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sinter_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use sinter_bus::kafka::{KafkaBus, KafkaConfig};
use sinter_bus::{Bus, BusError, TopicSpec};
use sinter_core::topic::{self, Stream};
use sinter_core::{Clock, SharedClock, Solution, SystemClock};
use sinter_grpc::{Auth, BearerToken, GrpcServer};
use sinter_proto::events::v1::Transport;
use sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use sinter_proto::ingest::v1::reading_input::{Time, Value};
use sinter_proto::ingest::v1::{PublishRequest, ReadingInput};
use sinter_runtime::{Service, ServiceContext, Shutdown};

use crate::{IngestConfig, IngestService, validate};

/// How many distinct devices the generated readings come from.
const DEVICES: usize = 1_000;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    /// The Kafka-compatible broker, `host:port`.
    pub brokers: String,
    /// Readings sent in each measurement; rounded up to whole batches.
    pub readings: usize,
    /// Readings per `Publish` call; 500 by default.
    pub batch_size: usize,
    /// Bytes of each reading as it lands on the telemetry topic (the protobuf `Reading`);
    /// 200 by default. The raw producer sends records of this size.
    pub record_bytes: usize,
    /// `Publish` calls in flight at once; 32 by default. Each waits for its delivery reports,
    /// so this and the broker's latency bound the rate.
    pub concurrent_batches: usize,
    /// Raw producer sends in flight at once; 10 000 by default.
    pub raw_in_flight: usize,
    /// Partitions of each topic; 4 by default.
    pub partitions: i32,
    /// Whether to measure the embedded bus too; yes by default.
    pub embedded: bool,
    /// `linger.ms` of the Kafka producers, raw and ingest's alike; 5 ms by default, as the
    /// services use.
    pub linger: Duration,
    /// Rounds of the Kafka measurements, taken in turn (ingest, raw, bus producer) so that
    /// a load elsewhere on the machine weighs on all three alike; 3 by default. The report
    /// gives each rate's median and the median of the rounds' ratios.
    pub rounds: usize,
}

impl BenchSpec {
    /// Defaults: 100 000 readings in batches of 500, 200-byte records.
    pub fn new(brokers: impl Into<String>) -> Self {
        BenchSpec {
            brokers: brokers.into(),
            readings: 100_000,
            batch_size: 500,
            record_bytes: 200,
            concurrent_batches: 32,
            raw_in_flight: 10_000,
            partitions: 4,
            embedded: true,
            linger: Duration::from_millis(5),
            rounds: 3,
        }
    }
}

/// A measured rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub records: usize,
    pub elapsed: Duration,
    pub per_sec: f64,
}

impl Rate {
    fn new(records: usize, elapsed: Duration) -> Self {
        Rate {
            records,
            elapsed,
            per_sec: records as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        }
    }
}

/// What [`run`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Bytes of each record on the topics.
    pub record_bytes: usize,
    pub batch_size: usize,
    /// Readings over gRPC through ingest into Kafka, each acknowledged after its delivery report.
    pub ingest_kafka: Rate,
    /// The rdkafka producer alone, same broker, same record size, same producer settings.
    pub raw_kafka: Rate,
    /// sinter-bus's Kafka producer alone (what ingest publishes through), same records.
    pub bus_kafka: Rate,
    /// Readings over gRPC through ingest into the embedded bus.
    pub ingest_embedded: Option<Rate>,
    /// Each round's ingest rate over its raw producer rate.
    pub round_ratios: Vec<f64>,
}

impl BenchReport {
    /// The median of the rounds' ratios of ingest's rate over the raw producer's (the mean
    /// of the middle two for an even count); the target is at least 0.8. Each round pairs
    /// measurements taken one after the other, under the same load.
    pub fn ratio(&self) -> f64 {
        let mut ratios = self.round_ratios.clone();
        if ratios.is_empty() {
            return self.ingest_kafka.per_sec / self.raw_kafka.per_sec.max(f64::EPSILON);
        }
        ratios.sort_by(f64::total_cmp);
        let middle = ratios.len() / 2;
        match ratios.len() % 2 {
            0 => (ratios[middle - 1] + ratios[middle]) / 2.0,
            _ => ratios[middle],
        }
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |f: &mut fmt::Formatter<'_>, what: &str, rate: &Rate| {
            writeln!(
                f,
                "{what:<34} {:>8} records of {} B in {:>7.3} s: {:>10.0} records/s",
                rate.records,
                self.record_bytes,
                rate.elapsed.as_secs_f64(),
                rate.per_sec
            )
        };
        line(
            f,
            &format!("ingest gRPC (batches of {}) -> kafka", self.batch_size),
            &self.ingest_kafka,
        )?;
        line(f, "raw rdkafka producer -> kafka", &self.raw_kafka)?;
        line(f, "sinter-bus Kafka producer -> kafka", &self.bus_kafka)?;
        let rounds: Vec<String> = self
            .round_ratios
            .iter()
            .map(|ratio| format!("{ratio:.2}"))
            .collect();
        writeln!(
            f,
            "{:<34} {:.2} (target >= 0.80; the median of {} rounds' ratios: {})",
            "ratio ingest / raw",
            self.ratio(),
            rounds.len(),
            rounds.join(", ")
        )?;
        if let Some(embedded) = &self.ingest_embedded {
            line(f, "ingest gRPC -> embedded bus", embedded)?;
        }
        Ok(())
    }
}

/// Why the benchmark could not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("the bus failed")]
    Bus(#[source] Box<BusError>),
    #[error("the benchmark Solution is invalid: {0}")]
    Solution(String),
    #[error("the ingest service could not start: {0}")]
    Service(String),
    #[error("cannot connect to the ingest service")]
    Connect(#[source] tonic::transport::Error),
    #[error("a batch failed: {0}")]
    Publish(Box<tonic::Status>),
    #[error("{refused} readings were refused: {first}")]
    Refused { refused: usize, first: String },
    #[error("the raw producer failed: {0}")]
    Raw(rdkafka::error::KafkaError),
}

impl From<BusError> for BenchError {
    fn from(error: BusError) -> Self {
        BenchError::Bus(Box::new(error))
    }
}

fn publish_failed(status: tonic::Status) -> BenchError {
    BenchError::Publish(Box::new(status))
}

/// Run the three measurements of `spec` and report them.
pub async fn run(spec: &BenchSpec) -> Result<BenchReport, BenchError> {
    let name = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let solution = bench_solution(&name, spec)?;
    let batches = spec.readings.div_ceil(spec.batch_size.max(1));
    let clock: SharedClock = Arc::new(SystemClock);
    let record_bytes = reading_record_bytes(&solution, spec.record_bytes, clock.as_ref());

    let mut kafka_config = KafkaConfig::new(spec.brokers.clone());
    kafka_config.linger = spec.linger;
    let kafka = KafkaBus::connect(kafka_config).await?;
    let kafka: Arc<dyn Bus> = Arc::new(kafka);
    let raw_topic = format!("sinter.sinter-bench.{name}.raw");
    kafka
        .ensure_topic(&TopicSpec::new(raw_topic.clone(), spec.partitions))
        .await?;
    let records = batches * spec.batch_size;
    let (mut ingest_rates, mut raw_rates, mut bus_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..spec.rounds.max(1) {
        let ingest = measure_ingest(kafka.clone(), &solution, spec, batches, clock.clone()).await?;
        let raw = measure_raw(spec, &raw_topic, records, record_bytes).await?;
        let bus = measure_bus(kafka.as_ref(), spec, &raw_topic, records, record_bytes).await?;
        tracing::info!(
            round,
            ingest = ingest.per_sec,
            raw = raw.per_sec,
            bus = bus.per_sec,
            "Kafka round measured."
        );
        ingest_rates.push(ingest);
        raw_rates.push(raw);
        bus_rates.push(bus);
    }
    let round_ratios = ingest_rates
        .iter()
        .zip(&raw_rates)
        .map(|(ingest, raw)| ingest.per_sec / raw.per_sec.max(f64::EPSILON))
        .collect();
    let (ingest_kafka, raw_kafka, bus_kafka) =
        (median(ingest_rates), median(raw_rates), median(bus_rates));

    let ingest_embedded = if spec.embedded {
        let retention = (batches * spec.batch_size * (record_bytes + 256))
            / usize::try_from(spec.partitions.max(1)).unwrap_or(1)
            * 2;
        let bus = EmbeddedBus::with_config(EmbeddedConfig {
            retention_bytes_per_partition: retention.max(16 << 20),
            ..EmbeddedConfig::default()
        });
        Some(measure_ingest(Arc::new(bus), &solution, spec, batches, clock).await?)
    } else {
        None
    };
    Ok(BenchReport {
        record_bytes,
        batch_size: spec.batch_size,
        ingest_kafka,
        raw_kafka,
        bus_kafka,
        ingest_embedded,
        round_ratios,
    })
}

/// The middle rate of `rates` (the upper middle of an even count).
fn median(mut rates: Vec<Rate>) -> Rate {
    rates.sort_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
    rates[rates.len() / 2]
}

fn bench_solution(name: &str, spec: &BenchSpec) -> Result<Solution, BenchError> {
    let yaml = format!(
        "apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {{name: {name}, namespace: sinter-bench}}
spec:
  devices:
    - type: bench-device
      match: [\"dev-*\"]
      metrics: [{{name: vibration_rms, min: 0, max: 1000}}]
  ingest: {{maxBatchReadings: {batch}, maxReadingBytes: {bytes}}}
",
        batch = spec.batch_size.max(1),
        bytes = spec.record_bytes * 4 + 1024,
    );
    Solution::from_yaml(&yaml).map_err(|errors| BenchError::Solution(errors.to_string()))
}

/// One generated reading; `padding` lengthens its message id to reach the record size.
fn reading(sequence: usize, padding: usize, epoch_ms: i64) -> ReadingInput {
    ReadingInput {
        device_id: format!("dev-{:04}", sequence % DEVICES),
        metric: "vibration_rms".to_owned(),
        value: Some(Value::Number((sequence % 977) as f64 / 10.0)),
        time: Some(Time::Epoch(epoch_ms)),
        message_id: format!("bench-{sequence:010}-{}", "x".repeat(padding)),
    }
}

/// How long the message id must be for a `Reading` record of about `target` bytes; the
/// record size reached.
fn padding_for(solution: &Solution, target: usize, clock: &dyn Clock) -> (usize, usize) {
    let now = clock.now();
    let size = |padding: usize| {
        let input = reading(0, padding, now.as_millis());
        validate::check(&input, &solution.spec, now)
            .map(|valid| {
                let id = valid.id();
                let source = "grpc:127.0.0.1:65535";
                valid
                    .into_reading(id, now, Transport::Grpc, source)
                    .encoded_len()
            })
            .unwrap_or(0)
    };
    let mut padding = 0;
    while size(padding) < target && padding < target {
        padding += 1;
    }
    (padding, size(padding))
}

fn reading_record_bytes(solution: &Solution, target: usize, clock: &dyn Clock) -> usize {
    padding_for(solution, target, clock).1
}

async fn measure_ingest(
    bus: Arc<dyn Bus>,
    solution: &Solution,
    spec: &BenchSpec,
    batches: usize,
    clock: SharedClock,
) -> Result<Rate, BenchError> {
    for stream in [Stream::Telemetry, Stream::Deadletter] {
        let name = topic::name(solution.namespace(), solution.name(), stream);
        bus.ensure_topic(&TopicSpec::new(name, spec.partitions))
            .await?;
    }
    let shutdown = Shutdown::new();
    let context = ServiceContext {
        solutions: Arc::new(vec![solution.clone()]),
        bus: bus.clone(),
        clock: clock.clone(),
        shutdown: shutdown.clone(),
    };
    let mut config = IngestConfig {
        http_addr: None,
        mqtt_enabled: false,
        ..IngestConfig::default()
    };
    // Room for every batch the client keeps in flight.
    let in_flight = spec.concurrent_batches.max(1) * spec.batch_size.max(1);
    config.pipeline.max_in_flight = config.pipeline.max_in_flight.max(in_flight);
    let service = IngestService::build(context, config)
        .await
        .map_err(|error| BenchError::Service(error.to_string()))?;
    let server = service.register(GrpcServer::new(Auth::disabled()));
    let (addr, serving) = server
        .bind(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown.clone().wait(),
        )
        .await
        .map_err(|error| BenchError::Service(error.to_string()))?;
    let serving = tokio::spawn(serving);
    let running = tokio::spawn(Box::new(service).run(shutdown.clone()));

    let endpoint = format!("http://{addr}");
    let channel = sinter_grpc::connect(&endpoint, BearerToken::default())
        .await
        .map_err(BenchError::Connect)?;
    let client = IngestServiceClient::new(channel);
    let (padding, _) = padding_for(solution, spec.record_bytes, clock.as_ref());
    let qualified = solution.qualified_name();
    let epoch_ms = clock.now().as_millis();
    let request = |batch: usize| PublishRequest {
        solution: qualified.clone(),
        batch_id: batch.to_string(),
        readings: (0..spec.batch_size)
            .map(|i| reading(batch * spec.batch_size + i, padding, epoch_ms))
            .collect(),
    };
    // Warm up: connections, metadata, the first producer batch. Not measured.
    let warm_up = PublishRequest {
        batch_id: "warm-up".into(),
        readings: vec![reading(usize::MAX / 2, padding, epoch_ms)],
        ..request(0)
    };
    check(
        client
            .clone()
            .publish(warm_up)
            .await
            .map_err(publish_failed)?
            .into_inner(),
    )?;

    let requests: Vec<PublishRequest> = (0..batches).map(request).collect();
    let started = Instant::now();
    let accepted = stream::iter(requests)
        .map(|request| {
            let mut client = client.clone();
            async move {
                let response = client.publish(request).await.map_err(publish_failed)?;
                check(response.into_inner())
            }
        })
        .buffer_unordered(spec.concurrent_batches.max(1))
        .try_fold(
            0usize,
            |total, accepted| async move { Ok(total + accepted) },
        )
        .await?;
    let rate = Rate::new(accepted, started.elapsed());
    shutdown.trigger();
    let _ = serving.await;
    let _ = running.await;
    Ok(rate)
}

fn check(response: sinter_proto::ingest::v1::PublishResponse) -> Result<usize, BenchError> {
    if response.refused > 0 || response.duplicates > 0 {
        let first = response
            .results
            .iter()
            .find(|r| !r.accepted || r.duplicate)
            .map(|r| r.message.clone())
            .unwrap_or_default();
        return Err(BenchError::Refused {
            refused: (response.refused + response.duplicates) as usize,
            first,
        });
    }
    Ok(response.accepted as usize)
}

async fn measure_raw(
    spec: &BenchSpec,
    topic: &str,
    records: usize,
    record_bytes: usize,
) -> Result<Rate, BenchError> {
    // The same producer settings as sinter-bus's Kafka producer.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", spec.linger.as_millis().to_string())
        .set("message.timeout.ms", "60000")
        .create()
        .map_err(BenchError::Raw)?;
    let payload: Vec<u8> = (0..record_bytes).map(|i| (i % 251) as u8).collect();
    let keys: Vec<String> = (0..DEVICES).map(|d| format!("dev-{d:04}")).collect();
    let send = |sequence: usize| {
        let producer = &producer;
        let key = &keys[sequence % DEVICES];
        let payload = &payload;
        async move {
            producer
                .send(
                    FutureRecord::to(topic).key(key).payload(payload),
                    Duration::from_secs(30),
                )
                .await
                .map(|_| ())
                .map_err(|(error, _)| BenchError::Raw(error))
        }
    };
    send(0).await?;
    let started = Instant::now();
    stream::iter(0..records)
        .map(send)
        .buffer_unordered(spec.raw_in_flight.max(1))
        .try_for_each(|()| async { Ok(()) })
        .await?;
    Ok(Rate::new(records, started.elapsed()))
}

async fn measure_bus(
    bus: &dyn Bus,
    spec: &BenchSpec,
    topic: &str,
    records: usize,
    record_bytes: usize,
) -> Result<Rate, BenchError> {
    let producer = bus.producer();
    let payload = bytes::Bytes::from(
        (0..record_bytes)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let started = Instant::now();
    stream::iter(0..records)
        .map(|sequence| {
            let producer = producer.clone();
            let record =
                sinter_bus::Record::new(format!("dev-{:04}", sequence % DEVICES), payload.clone());
            async move { producer.send(topic, record).await.map(|_| ()) }
        })
        .buffer_unordered(spec.raw_in_flight.max(1))
        .try_for_each(|()| async { Ok(()) })
        .await?;
    Ok(Rate::new(records, started.elapsed()))
}
