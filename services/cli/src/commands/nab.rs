//! `sinter nab`: score Sinter's anomaly detector on Numenta Anomaly Benchmark files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::exit;

/// How results are printed.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Output {
    /// A table per profile, for a person.
    Text,
    /// One JSON object: `{"profiles": {"standard": {"score": .., "files": {..}}, ..}}`.
    Json,
}

/// Run the detector over every file that `DIR/labels/windows.json` lists and print
/// per-file and total normalised scores for NAB's three cost profiles.
#[derive(Debug, Args)]
pub(crate) struct NabArgs {
    /// A NAB directory: `data/`, `labels/windows.json`, `config/profiles.json`.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

impl NabArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let report = sinter_analytics::nab::evaluate(&self.data, &Default::default())
            .with_context(|| format!("cannot score the NAB files in {}", self.data.display()))?;
        match self.output {
            Output::Text => out!("{}", report.to_text()),
            Output::Json => outln!("{}", report.to_json()),
        }
        Ok(exit::OK)
    }
}
