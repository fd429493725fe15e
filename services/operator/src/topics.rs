//! A Solution's topics: planned from its spec, created through the bus's admin API.

use sinter_bus::{Bus, BusError, TopicSpec};
use sinter_core::Solution;
use sinter_core::topic::Stream;

/// The topic specs a Solution needs: one per stream, with the spec's partitions,
/// replication factor and retention.
pub fn plan(solution: &Solution) -> Vec<TopicSpec> {
    let settings = &solution.spec.topics;
    let partitions = i32::try_from(settings.partitions).unwrap_or(i32::MAX);
    let retention_ms = settings.retention.as_millis().to_string();
    Stream::ALL
        .iter()
        .map(|stream| {
            TopicSpec::new(solution.topic_name(*stream), partitions)
                .with_replication_factor(i32::from(settings.replication_factor))
                .with_config("retention.ms", retention_ms.clone())
        })
        .collect()
}

/// Create every topic `solution` needs; topics that exist already count as done.
pub async fn provision(bus: &dyn Bus, solution: &Solution) -> Result<Vec<TopicSpec>, BusError> {
    let planned = plan(solution);
    for spec in &planned {
        bus.ensure_topic(spec).await?;
        tracing::info!(solution = %solution.qualified_name(), topic = %spec.name, "Topic ready.");
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLUTION: &str = include_str!("../../../examples/pump-health.yaml");

    #[test]
    fn plans_one_topic_per_stream_with_the_spec_settings() {
        let solution = Solution::from_yaml(SOLUTION).expect("example validates");
        let planned = plan(&solution);
        assert_eq!(planned.len(), Stream::ALL.len());
        let telemetry = planned
            .iter()
            .find(|t| t.name.ends_with(".telemetry"))
            .expect("a telemetry topic");
        assert_eq!(telemetry.name, solution.topic_name(Stream::Telemetry));
        assert_eq!(
            i64::from(telemetry.partitions),
            i64::from(solution.spec.topics.partitions)
        );
    }
}
