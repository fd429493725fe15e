//! Topic specifications and the checks every bus applies to topic and group names.

use crate::BusError;

/// Longest topic name Kafka accepts.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// What a topic should look like when [`crate::Bus::ensure_topic`] creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The name, `sinter.<namespace>.<solution>.<stream>` in Sinter.
    pub name: String,
    /// How many partitions; at least 1.
    pub partitions: i32,
    /// Copies of each partition on Kafka; `None` takes the broker's default. The embedded
    /// bus has one copy.
    pub replication_factor: Option<i32>,
    /// Kafka topic settings such as `retention.ms`; the embedded bus ignores them.
    pub config: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic of `partitions` partitions with the broker's defaults.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor: None,
            config: Vec::new(),
        }
    }

    /// Sets the replication factor.
    pub fn with_replication_factor(mut self, replication_factor: i32) -> Self {
        self.replication_factor = Some(replication_factor);
        self
    }

    /// Adds a Kafka topic setting.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Refuses a name Kafka would refuse or a partition count below 1.
    pub(crate) fn validate(&self) -> Result<(), BusError> {
        validate_topic_name(&self.name)?;
        if self.partitions < 1 {
            return Err(BusError::InvalidTopic {
                topic: self.name.clone(),
                reason: format!("needs at least one partition, not {}", self.partitions),
            });
        }
        if let Some(replication_factor) = self.replication_factor
            && replication_factor < 1
        {
            return Err(BusError::InvalidTopic {
                topic: self.name.clone(),
                reason: format!("replication factor must be at least 1, not {replication_factor}"),
            });
        }
        Ok(())
    }
}

/// Where a consumer group starts reading a partition for which it has committed no offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// From the oldest retained record: nothing already on the topic is missed.
    #[default]
    Earliest,
    /// From the next record produced.
    Latest,
}

impl OffsetReset {
    /// The value of Kafka's `auto.offset.reset`.
    pub(crate) fn as_kafka(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// Checks a topic name against Kafka's rules: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), BusError> {
    let refuse = |reason: String| {
        Err(BusError::InvalidTopic {
            topic: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("is empty".to_owned());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return refuse(format!("is longer than {MAX_TOPIC_NAME_LEN} characters"));
    }
    if name == "." || name == ".." {
        return refuse("may not be '.' or '..'".to_owned());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return refuse(format!(
            "has {bad:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// Checks the arguments of [`crate::Bus::subscribe`].
pub(crate) fn validate_subscription(group: &str, topics: &[&str]) -> Result<(), BusError> {
    if group.trim().is_empty() {
        return Err(BusError::Config(
            "a consumer group name may not be empty".to_owned(),
        ));
    }
    if topics.is_empty() {
        return Err(BusError::Config(format!(
            "group {group:?} subscribes to no topic"
        )));
    }
    topics
        .iter()
        .try_for_each(|topic| validate_topic_name(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_kafka_refuses() {
        assert!(validate_topic_name("sinter.plant-north.pump_health.telemetry").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("has space").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(TopicSpec::new("t", 0).validate().is_err());
        assert!(
            TopicSpec::new("t", 1)
                .with_replication_factor(0)
                .validate()
                .is_err()
        );
    }
}
