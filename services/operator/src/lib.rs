//! Sinter's operator: what a Solution needs in the cluster, and the means to make it so.
//!
//! Today it provisions a Solution's topics (`sinter-operator topics`), which cluster mode
//! and the services' start-up checks rely on.
#![forbid(unsafe_code)]

pub mod topics;
