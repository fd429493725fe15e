//! `sinter bench ...`: load generators that print figures, for the benchmarks.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use sinter_bus::bench::{ThroughputSpec, embedded_retention_for, throughput_with};
use sinter_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use sinter_bus::kafka::{KafkaBus, KafkaConfig};

use crate::exit;

/// Which benchmark to run.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Records per second through the embedded bus and, with `--kafka`, a Kafka bus:
    /// sending alone, then sending while a consumer group reads.
    Bus {
        /// Kafka bootstrap servers (`host:port[,host:port]`, or a `kafka://` bus URL);
        /// without it only the embedded bus is measured.
        #[arg(long, value_name = "BROKERS")]
        kafka: Option<String>,
        /// Records sent in each phase.
        #[arg(long, default_value_t = 200_000)]
        records: usize,
        /// Payload bytes per record.
        #[arg(long, default_value_t = 200)]
        record_size: usize,
        /// Partitions of each benchmark topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Sends awaited at once.
        #[arg(long, default_value_t = 10_000,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        in_flight: usize,
    },
    /// Readings per second through ingest's gRPC API into Kafka, beside the raw rdkafka
    /// producer with records of the same size on the same broker, and the embedded bus.
    Ingest {
        /// Kafka bootstrap servers (`host:port`, or a `kafka://` bus URL).
        #[arg(long, value_name = "BROKERS", default_value = "127.0.0.1:9092")]
        kafka: String,
        /// Readings sent in each measurement.
        #[arg(long, default_value_t = 100_000)]
        readings: usize,
        /// Readings per Publish call.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Rounds of the Kafka measurements, taken in turn; the medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Readings/s through all four services, and the latency from a reading to the
    /// recommendation it opens: in-process (embedded) or against a running cluster.
    E2e(crate::commands::bench_e2e::E2eArgs),
}

impl BenchCommand {
    /// Run the benchmark on a fresh Tokio runtime.
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        // Warnings (an unreachable broker, retries) go to standard error, in colour only
        // when that is a terminal.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the Tokio runtime")?;
        runtime.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        match self {
            BenchCommand::E2e(args) => {
                args.run().await?;
                Ok(exit::OK)
            }
            BenchCommand::Ingest {
                kafka,
                readings,
                batch_size,
                rounds,
            } => {
                let mut spec =
                    sinter_ingest::bench::BenchSpec::new(kafka.trim_start_matches("kafka://"));
                spec.readings = readings;
                spec.batch_size = batch_size.max(1);
                spec.rounds = rounds.max(1);
                let report = sinter_ingest::bench::run(&spec).await?;
                out!("{report}");
                Ok(exit::OK)
            }
            BenchCommand::Bus {
                kafka,
                records,
                record_size,
                partitions,
                in_flight,
            } => {
                let prefix = format!("sinter.bench.{}", std::process::id());
                let mut spec = ThroughputSpec::new(prefix, records, record_size);
                spec.partitions = partitions;
                spec.in_flight = in_flight;
                let embedded = EmbeddedBus::with_config(EmbeddedConfig {
                    retention_bytes_per_partition: embedded_retention_for(&spec),
                    ..EmbeddedConfig::default()
                });
                let embedded_report = throughput_with(&embedded, &spec).await?;
                out!("{embedded_report}");
                drop(embedded);
                if let Some(brokers) = kafka {
                    let brokers = brokers.trim_start_matches("kafka://").to_owned();
                    eprintln!("connecting to Kafka at {brokers} ...");
                    let bus = KafkaBus::connect(KafkaConfig::new(brokers))
                        .await
                        .context("cannot reach the Kafka brokers")?;
                    let kafka_report = throughput_with(&bus, &spec).await?;
                    out!("{kafka_report}");
                    outln!(
                        "kafka/embedded produce ratio: {:.3}",
                        kafka_report.produce.records_per_sec
                            / embedded_report.produce.records_per_sec
                    );
                }
                Ok(exit::OK)
            }
        }
    }
}
