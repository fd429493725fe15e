//! Consumer lag: how many records lie between a group's position and each partition's log end.
//!
//! Every consumer reports the lag of the partitions assigned to it, the embedded bus from its
//! logs and group offsets, the Kafka bus from librdkafka's statistics. The readings go out as
//! the OpenTelemetry gauge [`METRIC_NAME`] with the attributes `group`, `topic` and
//! `partition` (Prometheus: `sinter_bus_consumer_lag{group,topic,partition}`), and
//! [`snapshot`] or [`group_lag`] read them in the process without a scrape.
//!
//! The group's position on a partition is the offset after its last acknowledged record: the
//! offset stored by [`crate::Consumer::ack`] or, when nothing was acknowledged since the
//! partition was assigned, the committed one. With neither, the lag counts from where the
//! group starts reading: the oldest retained record with [`crate::OffsetReset::Earliest`];
//! with [`crate::OffsetReset::Latest`] where the member began (the embedded bus) or what it
//! has received (Kafka). So a received record counts as lag until it is acknowledged, which is
//! what a redelivery after a crash would have to read again.
//!
//! A partition is reported only while it is assigned: a revocation or a closed consumer removes
//! its reading at once, so a dashboard never shows the lag of a partition nobody owns. A Kafka
//! member's readings also lapse when librdkafka has not refreshed them for longer than the
//! member may go without polling before it is deemed gone (`max.poll.interval.ms`): a member
//! stuck outside `recv` stops reporting rather than showing a frozen lag.
//!
//! The gauge is registered on the global meter provider (meter `sinter-bus`) when the first
//! consumer of the process is made, so telemetry must be installed before that, as every
//! service binary and `sinter dev` do (`sinter_telemetry::init`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, ObservableGauge};

use crate::TopicPartition;

/// The gauge's instrument name.
pub const METRIC_NAME: &str = "sinter_bus_consumer_lag";

/// The meter the gauge belongs to.
const METER_NAME: &str = "sinter-bus";

/// One reading's identity: the gauge's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LagKey {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// The current lag of every partition assigned to a consumer of this process, in records.
///
/// Should two members of one group in this process both report a partition (for the moment a
/// rebalance hands it over), the larger reading counts.
pub fn snapshot() -> BTreeMap<LagKey, u64> {
    registry().readings()
}

/// The current lag of `group`'s partitions assigned in this process, in records.
pub fn group_lag(group: &str) -> BTreeMap<TopicPartition, u64> {
    snapshot()
        .into_iter()
        .filter(|(key, _)| key.group == group)
        .map(|(key, lag)| (TopicPartition::new(key.topic, key.partition), lag))
        .collect()
}

/// Computes a member's readings when they are asked for (the embedded bus, whose offsets and
/// log ends are in memory).
pub(crate) trait LagSource: Send + Sync {
    /// The lag of each partition assigned to the member now.
    fn current(&self) -> Vec<(TopicPartition, u64)>;
}

/// A consumer's place in the lag registry; dropping it removes the consumer's readings.
pub(crate) struct LagReporter {
    id: u64,
}

impl LagReporter {
    /// A reporter for a member of `group` whose readings are set with [`Self::update`] and
    /// lapse when no update came for `max_age`.
    pub(crate) fn recorded(group: &str, max_age: Duration) -> Self {
        let recorded = Recorded {
            values: BTreeMap::new(),
            refreshed: Instant::now(),
            max_age,
        };
        Self::register(group, Readings::Recorded(recorded))
    }

    /// A reporter for a member of `group` whose readings `source` computes on demand.
    pub(crate) fn computed(group: &str, source: Arc<dyn LagSource>) -> Self {
        Self::register(group, Readings::Computed(source))
    }

    fn register(group: &str, readings: Readings) -> Self {
        install_global_gauge();
        let registry = registry();
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let member = Member {
            group: Arc::from(group),
            readings,
        };
        lock(&registry.members).insert(id, member);
        Self { id }
    }

    /// Changes the readings with fresh values (lag by partition) and marks them current.
    pub(crate) fn update(&self, change: impl FnOnce(&mut BTreeMap<TopicPartition, u64>)) {
        self.with_recorded(|recorded| {
            change(&mut recorded.values);
            recorded.refreshed = Instant::now();
        });
    }

    /// Keeps only the readings of partitions for which `keep` holds.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&TopicPartition) -> bool) {
        self.with_recorded(|recorded| recorded.values.retain(|partition, _| keep(partition)));
    }

    fn with_recorded(&self, change: impl FnOnce(&mut Recorded)) {
        let mut members = lock(&registry().members);
        if let Some(Member {
            readings: Readings::Recorded(recorded),
            ..
        }) = members.get_mut(&self.id)
        {
            change(recorded);
        }
    }
}

impl Drop for LagReporter {
    fn drop(&mut self) {
        // The removed member is dropped after the lock is released: a computed source may hold
        // a group whose drop should not run under the registry's lock.
        let removed = lock(&registry().members).remove(&self.id);
        drop(removed);
    }
}

/// Every live consumer's readings.
struct Registry {
    next_id: AtomicU64,
    members: Mutex<HashMap<u64, Member>>,
}

struct Member {
    group: Arc<str>,
    readings: Readings,
}

enum Readings {
    Recorded(Recorded),
    Computed(Arc<dyn LagSource>),
}

struct Recorded {
    values: BTreeMap<TopicPartition, u64>,
    /// When the values were last updated.
    refreshed: Instant,
    /// How long they stand without an update.
    max_age: Duration,
}

impl Registry {
    fn readings(&self) -> BTreeMap<LagKey, u64> {
        let mut readings = BTreeMap::new();
        let mut computed = Vec::new();
        {
            let members = lock(&self.members);
            for member in members.values() {
                match &member.readings {
                    Readings::Recorded(recorded) => {
                        if recorded.refreshed.elapsed() > recorded.max_age {
                            continue;
                        }
                        for (partition, lag) in &recorded.values {
                            merge(&mut readings, &member.group, partition.clone(), *lag);
                        }
                    }
                    Readings::Computed(source) => {
                        computed.push((member.group.clone(), source.clone()));
                    }
                }
            }
        }
        // Sources lock their own state; never while holding the registry's lock.
        for (group, source) in computed {
            for (partition, lag) in source.current() {
                merge(&mut readings, &group, partition, lag);
            }
        }
        readings
    }
}

fn merge(readings: &mut BTreeMap<LagKey, u64>, group: &str, partition: TopicPartition, lag: u64) {
    let key = LagKey {
        group: group.to_owned(),
        topic: partition.topic,
        partition: partition.partition,
    };
    let reading = readings.entry(key).or_insert(lag);
    *reading = (*reading).max(lag);
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        next_id: AtomicU64::new(1),
        members: Mutex::new(HashMap::new()),
    })
}

/// Registers the gauge on the global meter provider, once per process.
fn install_global_gauge() {
    static GAUGE: OnceLock<ObservableGauge<u64>> = OnceLock::new();
    GAUGE.get_or_init(|| register_gauge(&opentelemetry::global::meter(METER_NAME)));
}

/// Registers the gauge on `meter`; it reads [`snapshot`] at every collection.
pub(crate) fn register_gauge(meter: &Meter) -> ObservableGauge<u64> {
    meter
        .u64_observable_gauge(METRIC_NAME)
        .with_description(
            "Records between the consumer group's acknowledged position and the log end of \
             each partition assigned to a consumer in this process.",
        )
        .with_callback(|observer| {
            for (key, lag) in snapshot() {
                observer.observe(
                    lag,
                    &[
                        KeyValue::new("group", key.group),
                        KeyValue::new("topic", key.topic),
                        KeyValue::new("partition", i64::from(key.partition)),
                    ],
                );
            }
        })
        .build()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;

    fn unique_group(what: &str) -> String {
        format!("lag-test.{what}.{}", uuid::Uuid::new_v4().simple())
    }

    /// Longer than any test runs.
    const LONG: Duration = Duration::from_secs(3600);

    fn set(reporter: &LagReporter, partition: i32, lag: u64) {
        reporter.update(|values| {
            values.insert(TopicPartition::new("t", partition), lag);
        });
    }

    #[test]
    fn recorded_readings_lapse_without_updates() {
        let group = unique_group("lapse");
        let reporter = LagReporter::recorded(&group, Duration::from_millis(50));
        set(&reporter, 0, 7);
        assert_eq!(group_lag(&group).len(), 1);
        std::thread::sleep(Duration::from_millis(120));
        assert!(
            group_lag(&group).is_empty(),
            "a stale reading is still reported"
        );
        set(&reporter, 0, 8);
        assert_eq!(
            group_lag(&group),
            BTreeMap::from([(TopicPartition::new("t", 0), 8)])
        );
    }

    struct Fixed(Vec<(TopicPartition, u64)>);

    impl LagSource for Fixed {
        fn current(&self) -> Vec<(TopicPartition, u64)> {
            self.0.clone()
        }
    }

    #[test]
    fn recorded_readings_come_and_go() {
        let group = unique_group("recorded");
        let reporter = LagReporter::recorded(&group, LONG);
        set(&reporter, 0, 7);
        set(&reporter, 1, 2);
        set(&reporter, 0, 5);
        assert_eq!(
            group_lag(&group),
            BTreeMap::from([
                (TopicPartition::new("t", 0), 5),
                (TopicPartition::new("t", 1), 2)
            ])
        );
        reporter.retain(|partition| partition.partition == 1);
        assert_eq!(
            group_lag(&group),
            BTreeMap::from([(TopicPartition::new("t", 1), 2)])
        );
        drop(reporter);
        assert!(group_lag(&group).is_empty());
    }

    #[test]
    fn two_members_reporting_one_partition_count_the_larger() {
        let group = unique_group("overlap");
        let first = LagReporter::recorded(&group, LONG);
        set(&first, 0, 3);
        let source = Arc::new(Fixed(vec![(TopicPartition::new("t", 0), 9)]));
        let second = LagReporter::computed(&group, source);
        assert_eq!(
            group_lag(&group),
            BTreeMap::from([(TopicPartition::new("t", 0), 9)])
        );
        drop(second);
        assert_eq!(
            group_lag(&group),
            BTreeMap::from([(TopicPartition::new("t", 0), 3)])
        );
        drop(first);
    }

    /// The gauge's data points for `group` at the last collection of `exporter`.
    fn exported(exporter: &InMemoryMetricExporter, group: &str) -> BTreeMap<i64, u64> {
        let mut points = BTreeMap::new();
        let metrics = exporter
            .get_finished_metrics()
            .expect("metrics are readable");
        let Some(last) = metrics.last() else {
            return points;
        };
        for scope in last.scope_metrics() {
            for metric in scope
                .metrics()
                .filter(|metric| metric.name() == METRIC_NAME)
            {
                let AggregatedMetrics::U64(MetricData::Gauge(gauge)) = metric.data() else {
                    panic!("{METRIC_NAME} is not a u64 gauge");
                };
                for point in gauge.data_points() {
                    let attributes: HashMap<String, String> = point
                        .attributes()
                        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                        .collect();
                    if attributes.get("group").map(String::as_str) != Some(group) {
                        continue;
                    }
                    assert_eq!(attributes.get("topic").map(String::as_str), Some("t"));
                    let partition = attributes["partition"].parse().expect("a number");
                    points.insert(partition, point.value());
                }
            }
        }
        points
    }

    #[test]
    fn the_gauge_exports_readings_and_forgets_removed_ones() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let _gauge = register_gauge(&provider.meter("lag-test"));

        let group = unique_group("gauge");
        let reporter = LagReporter::recorded(&group, LONG);
        set(&reporter, 0, 4);
        set(&reporter, 1, 0);
        provider.force_flush().expect("flush");
        assert_eq!(
            exported(&exporter, &group),
            BTreeMap::from([(0, 4), (1, 0)])
        );

        reporter.retain(|partition| partition.partition == 0);
        exporter.reset();
        provider.force_flush().expect("flush");
        assert_eq!(exported(&exporter, &group), BTreeMap::from([(0, 4)]));

        drop(reporter);
        exporter.reset();
        provider.force_flush().expect("flush");
        assert!(exported(&exporter, &group).is_empty());
        provider.shutdown().expect("shutdown");
    }

    #[test]
    fn prometheus_shows_the_gauge_under_its_name_with_its_labels() {
        let registry = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .expect("exporter");
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let _gauge = register_gauge(&provider.meter(METER_NAME));

        let group = unique_group("prometheus");
        let reporter = LagReporter::recorded(&group, LONG);
        set(&reporter, 3, 12);
        let families = registry.gather();
        let family = families
            .iter()
            .find(|family| family.name() == METRIC_NAME)
            .expect("the gauge is exported under its name");
        let metric = family
            .get_metric()
            .iter()
            .find(|metric| {
                metric
                    .get_label()
                    .iter()
                    .any(|label| label.name() == "group" && label.value() == group)
            })
            .expect("the group's reading is exported");
        let labels: HashMap<&str, &str> = metric
            .get_label()
            .iter()
            .map(|label| (label.name(), label.value()))
            .collect();
        assert_eq!(labels.get("topic"), Some(&"t"));
        assert_eq!(labels.get("partition"), Some(&"3"));
        assert!((metric.get_gauge().get_value() - 12.0).abs() < f64::EPSILON);
        drop(reporter);
        provider.shutdown().expect("shutdown");
    }
}
