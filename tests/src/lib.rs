//! Shared helpers for Sinter's end-to-end tests: the real services they need, and the
//! workspace's binaries run as separate processes.
#![forbid(unsafe_code)]

pub mod process;
pub mod services;

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example Solution that `sinter solution validate` and the services load.
pub fn example_solution() -> PathBuf {
    repo_root().join("examples/pump-health.yaml")
}
