//! `sinter sample ...`: write the generated data sets the project carries.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::demo::sample;
use crate::exit;

/// Which data set to write.
#[derive(Debug, Subcommand)]
pub(crate) enum SampleCommand {
    /// Three weeks of a machine's temperature with two failures, in NAB's format:
    /// `machine_temperature_sample.csv` and its `.windows.json`.
    MachineTemperature {
        /// Directory to write into.
        #[arg(long, default_value = "examples/data")]
        out: PathBuf,
    },
}

impl SampleCommand {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            SampleCommand::MachineTemperature { out } => {
                let data = sample::machine_temperature();
                std::fs::create_dir_all(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                let csv = out.join("machine_temperature_sample.csv");
                let windows = out.join("machine_temperature_sample.windows.json");
                std::fs::write(&csv, data.to_csv())
                    .with_context(|| format!("cannot write {}", csv.display()))?;
                std::fs::write(&windows, data.windows_json(sample::NAB_KEY))
                    .with_context(|| format!("cannot write {}", windows.display()))?;
                outln!(
                    "wrote {} ({} points) and {} ({} windows)",
                    csv.display(),
                    data.points.len(),
                    windows.display(),
                    data.windows.len()
                );
                Ok(exit::OK)
            }
        }
    }
}
