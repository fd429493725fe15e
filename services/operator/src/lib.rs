//! Sinter's operator: turns `Solution` resources into topics, configuration and workloads,
//! and reports in each Solution's status and events whether that worked.
#![forbid(unsafe_code)]

pub mod crd;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod status;
pub mod topics;
