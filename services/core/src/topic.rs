//! Topic names: `sinter.<namespace>.<solution>.<stream>`, one family per Solution.

use std::fmt;

/// The streams every Solution has, in the order data flows through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Telemetry,
    Insights,
    Detections,
    Situations,
    Actions,
    Deadletter,
}

impl Stream {
    pub const ALL: [Stream; 6] = [
        Stream::Telemetry,
        Stream::Insights,
        Stream::Detections,
        Stream::Situations,
        Stream::Actions,
        Stream::Deadletter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Telemetry => "telemetry",
            Stream::Insights => "insights",
            Stream::Detections => "detections",
            Stream::Situations => "situations",
            Stream::Actions => "actions",
            Stream::Deadletter => "deadletter",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The topic of one stream of one Solution.
pub fn name(namespace: &str, solution: &str, stream: Stream) -> String {
    format!("sinter.{namespace}.{solution}.{stream}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        assert_eq!(
            name("plant-north", "pump-health", Stream::Telemetry),
            "sinter.plant-north.pump-health.telemetry"
        );
        assert_eq!(
            name("default", "x", Stream::Deadletter),
            "sinter.default.x.deadletter"
        );
    }
}
