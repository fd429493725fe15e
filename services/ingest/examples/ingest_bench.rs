//! The ingest load generator, runnable on its own:
//! `cargo run --release -p sinter-ingest --example ingest_bench -- --brokers 127.0.0.1:9092`.

use clap::Parser;

/// Measure ingest over gRPC against the raw rdkafka producer and the embedded bus.
#[derive(Debug, Parser)]
struct Args {
    /// The Kafka-compatible broker.
    #[arg(long, env = "SINTER_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Readings per measurement.
    #[arg(long, default_value_t = 100_000)]
    readings: usize,
    /// Readings per batch.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Record size on the topic, bytes.
    #[arg(long, default_value_t = 200)]
    record_bytes: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrent_batches: usize,
    /// linger.ms of both Kafka producers.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Skip the embedded-bus measurement.
    #[arg(long)]
    no_embedded: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut spec = sinter_ingest::bench::BenchSpec::new(args.brokers);
    spec.readings = args.readings;
    spec.batch_size = args.batch_size;
    spec.record_bytes = args.record_bytes;
    spec.concurrent_batches = args.concurrent_batches;
    spec.embedded = !args.no_embedded;
    spec.linger = std::time::Duration::from_millis(args.linger_ms);
    let report = sinter_ingest::bench::run(&spec).await?;
    print!("{report}");
    Ok(())
}
