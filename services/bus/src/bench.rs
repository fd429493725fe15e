//! Throughput benchmark of a bus: records per second produced, and produced and consumed.
//!
//! Reused by `sinter bench bus` and the `throughput` example.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use tracing::info;

use crate::{Bus, BusError, Record, TopicSpec};

/// How many distinct keys the benchmark's records use, like a fleet of devices.
const DEVICES: usize = 1_000;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThroughputSpec {
    /// Prefix of the two topics the benchmark creates (`<prefix>.produce`, `<prefix>.e2e`).
    pub topic_prefix: String,
    /// Records sent in each phase.
    pub records: usize,
    /// Payload bytes per record (keys and headers come on top).
    pub record_size: usize,
    /// Partitions of each topic; 4 by default.
    pub partitions: i32,
    /// Sends awaited at once; 10 000 by default. One at a time would measure latency.
    pub in_flight: usize,
    /// Longest a phase may take before the benchmark fails; 5 min by default.
    pub timeout: Duration,
}

impl ThroughputSpec {
    /// `records` records of `record_size` bytes on topics named after `topic_prefix`.
    pub fn new(topic_prefix: impl Into<String>, records: usize, record_size: usize) -> Self {
        Self {
            topic_prefix: topic_prefix.into(),
            records,
            record_size,
            partitions: 4,
            in_flight: 10_000,
            timeout: Duration::from_secs(300),
        }
    }
}

/// A measured rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Records counted.
    pub records: usize,
    /// Time they took.
    pub elapsed: Duration,
    /// Records per second.
    pub records_per_sec: f64,
    /// Payload bytes per second.
    pub bytes_per_sec: f64,
}

impl Rate {
    fn new(records: usize, record_size: usize, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
        let records_per_sec = records as f64 / seconds;
        Self {
            records,
            elapsed,
            records_per_sec,
            bytes_per_sec: records_per_sec * record_size as f64,
        }
    }
}

/// What [`throughput`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputReport {
    /// Which bus: `"embedded"` or `"kafka"`.
    pub bus: &'static str,
    /// Payload bytes per record.
    pub record_size: usize,
    /// Sending alone, each send awaited until durably accepted.
    pub produce: Rate,
    /// Sending while a fresh consumer group reads, until the last record is received and
    /// acknowledged (group join included).
    pub produce_and_consume: Rate,
}

impl fmt::Display for ThroughputReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (phase, rate) in [
            ("produce", &self.produce),
            ("produce+consume", &self.produce_and_consume),
        ] {
            writeln!(
                f,
                "{bus:<8} {phase:<16} {records:>9} records of {size} B in {elapsed:>8.3} s: \
                 {rps:>11.0} records/s, {mbps:>7.1} MB/s",
                bus = self.bus,
                records = rate.records,
                size = self.record_size,
                elapsed = rate.elapsed.as_secs_f64(),
                rps = rate.records_per_sec,
                mbps = rate.bytes_per_sec / 1e6,
            )?;
        }
        Ok(())
    }
}

/// Measures `bus` with `records` records of `record_size` bytes on topics prefixed `topic`,
/// with the other settings of [`ThroughputSpec::new`].
pub async fn throughput(
    bus: &dyn Bus,
    topic: &str,
    records: usize,
    record_size: usize,
) -> Result<ThroughputReport, BusError> {
    throughput_with(bus, &ThroughputSpec::new(topic, records, record_size)).await
}

/// Measures `bus` as `spec` says: first sending alone, then sending while a fresh group
/// consumes.
///
/// On the embedded bus, give it a retention that holds a whole phase
/// ([`embedded_retention_for`]): records dropped before the consumer reads them would never
/// arrive and the phase would fail on its timeout.
pub async fn throughput_with(
    bus: &dyn Bus,
    spec: &ThroughputSpec,
) -> Result<ThroughputReport, BusError> {
    let produce_topic = format!("{}.produce", spec.topic_prefix);
    let e2e_topic = format!("{}.e2e", spec.topic_prefix);
    for topic in [&produce_topic, &e2e_topic] {
        bus.ensure_topic(&TopicSpec::new(topic.clone(), spec.partitions))
            .await?;
    }
    let payload = Bytes::from(
        (0..spec.record_size)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );

    let started = Instant::now();
    within(
        spec.timeout,
        "produce phase",
        produce(bus, &produce_topic, spec, &payload),
    )
    .await?;
    let produce_rate = Rate::new(spec.records, spec.record_size, started.elapsed());
    info!(
        bus = bus.implementation(),
        records_per_sec = produce_rate.records_per_sec,
        "Produce phase done."
    );

    let group = format!(
        "{}.bench-{}",
        spec.topic_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let mut consumer = bus.subscribe(&group, &[e2e_topic.as_str()]).await?;
    let expected = spec.records;
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        for _ in 0..expected {
            let delivered = consumer.recv().await?;
            consumer.ack(&delivered)?;
        }
        consumer.commit().await
    });
    let producing = produce(bus, &e2e_topic, spec, &payload);
    within(spec.timeout, "produce+consume phase", async {
        producing.await?;
        consuming.await.map_err(|_| BusError::Timeout {
            operation: "benchmark consumer task (it panicked or was cancelled)",
            after: started.elapsed(),
        })?
    })
    .await?;
    let e2e_rate = Rate::new(spec.records, spec.record_size, started.elapsed());
    info!(
        bus = bus.implementation(),
        records_per_sec = e2e_rate.records_per_sec,
        "Produce+consume phase done."
    );

    Ok(ThroughputReport {
        bus: bus.implementation(),
        record_size: spec.record_size,
        produce: produce_rate,
        produce_and_consume: e2e_rate,
    })
}

/// Retention per partition with which an embedded bus keeps every record of one phase of
/// `spec`, with room to spare.
pub fn embedded_retention_for(spec: &ThroughputSpec) -> usize {
    let per_record = spec.record_size + "device-000".len() + 128;
    let partitions = usize::try_from(spec.partitions.max(1)).unwrap_or(1);
    (spec.records / partitions + 1) * per_record * 2
}

/// Sends `spec.records` records to `topic`, `spec.in_flight` at a time.
async fn produce(
    bus: &dyn Bus,
    topic: &str,
    spec: &ThroughputSpec,
    payload: &Bytes,
) -> Result<(), BusError> {
    let producer = bus.producer();
    stream::iter(0..spec.records)
        .map(|sequence| {
            let producer = producer.clone();
            let record = Record::new(format!("device-{}", sequence % DEVICES), payload.clone());
            async move { producer.send(topic, record).await }
        })
        .buffer_unordered(spec.in_flight.max(1))
        .try_for_each(|_| async { Ok(()) })
        .await
}

async fn within<T>(
    limit: Duration,
    operation: &'static str,
    work: impl Future<Output = Result<T, BusError>>,
) -> Result<T, BusError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(BusError::Timeout {
            operation,
            after: limit,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedBus;

    #[tokio::test]
    async fn measures_the_embedded_bus() -> Result<(), BusError> {
        let bus = EmbeddedBus::new();
        let report = throughput(&bus, "bench.test", 2_000, 200).await?;
        assert_eq!(report.bus, "embedded");
        assert_eq!(report.produce.records, 2_000);
        assert!(report.produce_and_consume.records_per_sec > 0.0);
        assert!(report.to_string().contains("records/s"));
        Ok(())
    }
}
