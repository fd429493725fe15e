//! What every command that talks to a running Sinter takes: where it is, the token, the
//! Solution, and how to print.

use clap::{Args, ValueEnum};
use sinter_grpc::BearerToken;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Lines that fit a terminal.
    #[default]
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// Connection settings shared by the client commands.
#[derive(Clone, Debug, Args)]
pub(crate) struct ClientArgs {
    /// The gRPC endpoint of Sinter (`sinter dev` serves every API on one port). Without
    /// it, `SINTER_<SERVICE>_ENDPOINT` (INGEST, CONTEXT, ORCHESTRATOR) names the service's
    /// own endpoint, as in cluster mode, and `http://127.0.0.1:50051` is the last resort.
    #[arg(long, global = true, env = "SINTER_ENDPOINT")]
    pub(crate) endpoint: Option<String>,
    /// Bearer token; from the environment by default.
    #[arg(long, global = true, env = "SINTER_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// The Solution, `<namespace>/<name>`.
    #[arg(
        long,
        global = true,
        env = "SINTER_SOLUTION_NAME",
        default_value = "demo/pump-health"
    )]
    pub(crate) solution: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// Which API a command calls, for [`ClientArgs::endpoint_for`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Api {
    Ingest,
    Context,
    Orchestrator,
}

/// Where `sinter dev` serves every API.
pub(crate) const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";

impl ClientArgs {
    /// The endpoint to call `api` at: `--endpoint` (or `SINTER_ENDPOINT`), else the
    /// service's own variable, else [`DEFAULT_ENDPOINT`].
    pub(crate) fn endpoint_for(&self, api: Api) -> String {
        let variable = match api {
            Api::Ingest => "SINTER_INGEST_ENDPOINT",
            Api::Context => "SINTER_CONTEXT_ENDPOINT",
            Api::Orchestrator => "SINTER_ORCHESTRATOR_ENDPOINT",
        };
        self.endpoint
            .clone()
            .filter(|endpoint| !endpoint.trim().is_empty())
            .or_else(|| {
                std::env::var(variable)
                    .ok()
                    .filter(|e| !e.trim().is_empty())
            })
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
    }

    pub(crate) fn bearer(&self) -> anyhow::Result<BearerToken> {
        Ok(BearerToken::new(self.token.as_deref())?)
    }
}

/// A Tokio runtime for one command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")
}

/// A timestamp as RFC 3339 text, empty when absent.
pub(crate) fn time_text(time: Option<&prost_types::Timestamp>) -> String {
    time.and_then(sinter_proto::time::from_proto)
        .map(|time| time.to_string())
        .unwrap_or_default()
}
