//! Sinter's shared domain: the Solution model, clocks, record ids and topic names.
#![forbid(unsafe_code)]

pub mod clock;
pub mod id;
pub mod solution;
pub mod topic;
pub mod zone;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
pub use solution::{Solution, ValidationError, ValidationErrors};
