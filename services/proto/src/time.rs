//! Conversions between protobuf's `Timestamp` and Sinter's [`Timestamp`].

use sinter_core::Timestamp;

/// A core timestamp as protobuf's.
pub fn to_proto(ts: Timestamp) -> prost_types::Timestamp {
    let (seconds, nanos) = ts.as_secs_nanos();
    prost_types::Timestamp { seconds, nanos }
}

/// A protobuf timestamp as a core one; `None` when its nanoseconds are out of range.
pub fn from_proto(ts: &prost_types::Timestamp) -> Option<Timestamp> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    Some(Timestamp::from_secs_nanos(ts.seconds, ts.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_protobuf() {
        let ts = Timestamp::from_micros(1_764_756_000_123_456);
        assert_eq!(from_proto(&to_proto(ts)), Some(ts));
    }

    #[test]
    fn refuses_out_of_range_nanos() {
        let bad = prost_types::Timestamp {
            seconds: 1,
            nanos: 1_000_000_000,
        };
        assert_eq!(from_proto(&bad), None);
    }
}
