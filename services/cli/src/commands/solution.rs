//! `sinter solution ...`: work with Solution files without a running Sinter.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use sinter_core::Solution;

use crate::exit;

/// What to do with a Solution file.
#[derive(Debug, Subcommand)]
pub(crate) enum SolutionCommand {
    /// Check Solution files and report every mistake, each with its path in the document.
    ///
    /// Exits 0 when every file is valid, 1 when one is not, 2 when a file cannot be read.
    Validate {
        /// The Solution files (YAML or JSON); `-` reads standard input.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

impl SolutionCommand {
    /// Run the command.
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            SolutionCommand::Validate { files } => validate(&files),
        }
    }
}

fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    // Read every file first: one that cannot be read is a usage problem, reported alone.
    let mut documents = Vec::with_capacity(files.len());
    for file in files {
        documents.push((file, read(file)?));
    }
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut all_valid = true;
    for (file, text) in documents {
        let shown = file.display();
        match Solution::from_yaml(&text) {
            Ok(solution) => {
                writeln!(stdout.lock(), "{shown}: {}", summary(&solution))?;
            }
            Err(errors) => {
                all_valid = false;
                let mut out = stderr.lock();
                for error in &errors {
                    writeln!(out, "{shown}: {error}")?;
                }
            }
        }
    }
    Ok(if all_valid {
        exit::OK
    } else {
        exit::problems_found()
    })
}

fn read(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// `Solution plant-north/pump-health is valid: 2 device types, 5 metrics, ...`.
fn summary(solution: &Solution) -> String {
    let spec = &solution.spec;
    format!(
        "Solution {} is valid: {}, {}, {}, {}",
        solution.qualified_name(),
        count(spec.devices.len(), "device type", "device types"),
        count(spec.metric_count(), "metric", "metrics"),
        count(spec.analytics.len(), "analytics rule", "analytics rules"),
        count(
            spec.recommendations.len(),
            "recommendation",
            "recommendations"
        ),
    )
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_read_naturally() {
        assert_eq!(count(1, "metric", "metrics"), "1 metric");
        assert_eq!(count(0, "metric", "metrics"), "0 metrics");
        assert_eq!(
            count(5, "analytics rule", "analytics rules"),
            "5 analytics rules"
        );
    }
}
