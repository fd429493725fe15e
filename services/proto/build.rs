//! Compiles `proto/` into Rust with tonic and prost, and writes the descriptor set
//! that gRPC reflection serves. Needs `protoc` (Debian's protobuf-compiler) on PATH,
//! or `PROTOC` pointing at it.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "sinter/events/v1/events.proto",
    "sinter/ingest/v1/ingest.proto",
    "sinter/analytics/v1/analytics.proto",
    "sinter/context/v1/context.proto",
    "sinter/orchestrator/v1/orchestrator.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("sinter_descriptor.bin"))
        .compile_protos(&files, &[root])?;
    Ok(())
}
