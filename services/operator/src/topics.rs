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

/// What reconciling a Solution's topics found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicReport {
    /// Topics that exist as the spec asks, created now or before.
    pub ready: Vec<String>,
    /// Topics created by this reconcile.
    pub created: Vec<String>,
    /// Topics that exist with another partition count than the spec asks, each described
    /// for a person. They are left as they are.
    pub conflicts: Vec<String>,
}

/// Create the topics `solution` needs that do not exist and check the ones that do.
///
/// A topic with another partition count is a conflict, reported and left alone: fewer
/// partitions cannot be had without deleting data, and more would send a device's readings
/// to another partition, out of order with those before them. Changing partitions is an
/// administrator's deliberate step, not something to retry.
pub async fn reconcile(bus: &dyn Bus, solution: &Solution) -> Result<TopicReport, BusError> {
    // Limitation: retention and replication factor are applied when a topic is created and
    // not compared afterwards; a changed `spec.topics.retention` leaves existing topics at
    // their old retention, unreported, until an administrator alters them.
    let mut report = TopicReport::default();
    for spec in plan(solution) {
        match bus.topic_partitions(&spec.name).await? {
            None => {
                bus.ensure_topic(&spec).await?;
                tracing::info!(solution = %solution.qualified_name(), topic = %spec.name,
                    partitions = spec.partitions, "Topic created.");
                report.created.push(spec.name.clone());
                report.ready.push(spec.name);
            }
            Some(partitions) if partitions == spec.partitions => report.ready.push(spec.name),
            Some(partitions) => {
                report.conflicts.push(format!(
                    "{} has {partitions} partitions, the spec asks for {}",
                    spec.name, spec.partitions
                ));
            }
        }
    }
    Ok(report)
}

/// Delete every topic of the Solution `namespace/name`; returns their names.
pub async fn delete(bus: &dyn Bus, namespace: &str, name: &str) -> Result<Vec<String>, BusError> {
    let mut deleted = Vec::new();
    for stream in Stream::ALL {
        let topic = sinter_core::topic::name(namespace, name, stream);
        bus.delete_topic(&topic).await?;
        deleted.push(topic);
    }
    Ok(deleted)
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
