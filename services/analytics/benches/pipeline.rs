//! Throughput of windows plus every detector in process, and memory per device+metric state.
//!
//! `cargo bench -p sinter-analytics --bench pipeline`: criterion reports readings/s
//! ("elements/s"); the memory per series is printed before the measurements.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinter_analytics::engine::{PartitionState, Rules, Sample, Value};
use sinter_core::{Solution, Timestamp};

const DEVICES: usize = 1000;

fn rules(window: &str, method: &str) -> Rules {
    let yaml = format!(
        r#"
apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {{name: bench, namespace: bench}}
spec:
  devices:
    - type: pump
      metrics:
        - {{name: temp, unit: degC, min: -40, max: 200}}
  analytics:
    - metric: temp
      window: {window}
      detect:
        - threshold: {{above: 85, clearBelow: 80, for: 2m}}
        - rateOfChange: {{maxIncrease: 5, per: 1m}}
        - anomaly: {{method: {method}, sensitivity: 0.99}}
        - silence: {{after: 10m}}
"#
    );
    let solution = Solution::from_yaml(&yaml).expect("valid Solution");
    Rules::new("bench/bench", &solution.spec.analytics)
}

struct Feed {
    rules: Rules,
    state: PartitionState,
    devices: Vec<String>,
    second: i64,
    values: Vec<Value>,
}

impl Feed {
    fn new(window: &str, method: &str) -> Self {
        Feed {
            rules: rules(window, method),
            state: PartitionState::default(),
            devices: (0..DEVICES).map(|i| format!("pump-{i:05}")).collect(),
            second: 1_800_000_000,
            values: (0..997)
                .map(|i| Value::Number(70.0 + ((i * 37) % 100) as f64 / 10.0))
                .collect(),
        }
    }

    /// One second of event time: a reading from every device, then the timers.
    fn second(&mut self) -> usize {
        let now = Timestamp::from_secs(self.second);
        let mut produced = 0;
        for (index, device) in self.devices.iter().enumerate() {
            let value = &self.values[(index + self.second as usize) % self.values.len()];
            let sample = Sample {
                device_id: device,
                device_type: "pump",
                metric: "temp",
                value,
                event_time: now,
            };
            produced += self.state.ingest(&self.rules, sample, now).len();
        }
        produced += self.state.tick(&self.rules, now).len();
        self.second += 1;
        produced
    }
}

fn pipeline(c: &mut Criterion) {
    let cases = [
        ("tumbling-1m", "{size: 1m}", "ewma"),
        (
            "hopping-5m-every-1m",
            "{size: 5m, every: 1m, allowedLateness: 2m}",
            "ewma",
        ),
        // The demo's anomaly method, with its hour profile.
        ("tumbling-1m-seasonal", "{size: 1m}", "seasonal"),
    ];
    for (label, window, method) in cases {
        let mut feed = Feed::new(window, method);
        for _ in 0..900 {
            std::hint::black_box(feed.second());
        }
        let bytes = feed.state.approximate_bytes() as f64 / feed.state.series_count() as f64;
        println!(
            "memory {label}: {bytes:.0} bytes per device+metric state ({} series)",
            feed.state.series_count()
        );
        let mut group = c.benchmark_group("pipeline");
        group.throughput(Throughput::Elements(DEVICES as u64));
        group.bench_function(label, |b| b.iter(|| std::hint::black_box(feed.second())));
        group.finish();
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
