//! `sinter publish`: send readings from JSON lines to a running Sinter over gRPC.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::commands::client::{Api, ClientArgs, Output};
use crate::exit;

/// Publish readings, one JSON object per line (`{"device", "metric", "value", "ts",
/// "id"}`), from a file or standard input, and print what was accepted and refused.
///
/// Exits 0 when every reading was accepted, 1 when any was refused.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The file of JSON lines; `-` or nothing reads standard input.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
    /// Readings per Publish call.
    #[arg(long, default_value_t = 500,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch_size: usize,
}

impl PublishArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        // Bytes, not text: a line that is not UTF-8 is refused on its own.
        let input = match &self.file {
            Some(path) if path.as_os_str() != "-" => {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
            }
            _ => {
                let mut input = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut input)
                    .context("cannot read standard input")?;
                input
            }
        };
        let lines = sinter_ingest::client::parse_json_lines(&input);
        let runtime = tokio::runtime::Runtime::new().context("cannot start the Tokio runtime")?;
        let summary = runtime.block_on(sinter_ingest::client::publish_lines(
            &self.client.endpoint_for(Api::Ingest),
            self.client.token.as_deref(),
            &self.client.solution,
            lines,
            self.batch_size,
        ))?;
        match self.client.output {
            Output::Json => outln!("{}", summary_json(&summary)),
            Output::Text => out!("{summary}"),
        }
        Ok(if summary.refused.is_empty() {
            exit::OK
        } else {
            exit::problems_found()
        })
    }
}

/// What `--output json` prints for a publish or a replay: counts, and every refusal with
/// its line, reason code and message.
pub(crate) fn summary_json(summary: &sinter_ingest::client::PublishSummary) -> serde_json::Value {
    serde_json::json!({
        "sent": summary.sent,
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "refused": summary.refused.iter().map(|(line, code, message)| serde_json::json!({
            "line": line, "reason": code.as_str_name(), "message": message,
        })).collect::<Vec<_>>(),
    })
}
