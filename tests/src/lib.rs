//! Shared helpers for Sinter's end-to-end tests: the real services they need, and the
//! workspace's binaries run as separate processes.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod database;
pub mod process;
pub mod replay;
pub mod services;

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo Solution that `sinter dev` and `make cluster-up` run.
pub fn demo_solution() -> PathBuf {
    repo_root().join("examples/demo/solution.yaml")
}

/// The example Solution that `sinter solution validate` and the services load.
pub fn example_solution() -> PathBuf {
    repo_root().join("examples/pump-health.yaml")
}
