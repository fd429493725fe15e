//! Detectors: the state each keeps per series, and the transitions (raise, clear) it makes.

pub mod anomaly;
pub mod rate;
pub mod silence;
pub mod threshold;

use serde::{Deserialize, Serialize};
use sinter_core::Timestamp;
use sinter_core::solution::Aggregate;

use crate::stats::Summary;

/// An incident open on one detector of one series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    /// Links the raise to its clear.
    pub id: String,
    #[serde(with = "crate::stats::micros")]
    pub raised_at: Timestamp,
    pub value: f64,
}

/// What a detector decided about its series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// The condition began: a new incident.
    Raise { value: f64, score: f64 },
    /// The condition ended: the open incident closes.
    Clear { value: f64, score: f64 },
}

/// The value of `aggregate` in `summary`.
pub fn aggregate_of(aggregate: Aggregate, summary: &Summary) -> f64 {
    match aggregate {
        Aggregate::Mean => summary.mean,
        Aggregate::Min => summary.min,
        Aggregate::Max => summary.max,
        Aggregate::Last => summary.last,
    }
}
