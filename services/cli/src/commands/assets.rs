//! `sinter assets import|list`: the asset registry of a running Sinter.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use sinter_proto::context::v1 as pb;

use crate::commands::client::{Api, ClientArgs, Output, runtime};
use crate::exit;

/// The asset registry: import a file, list assets.
#[derive(Debug, Args)]
pub(crate) struct AssetsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: AssetsCommand,
}

#[derive(Debug, Subcommand)]
enum AssetsCommand {
    /// Import sites, assets, devices and work orders from a .csv or .jsonl file; each bad
    /// row is reported with its line and the rest are imported. Exits 1 when any row was
    /// refused.
    Import {
        file: PathBuf,
        /// Check every row, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List assets.
    List {
        #[arg(long)]
        site: Option<String>,
        /// Only the children of this asset.
        #[arg(long)]
        parent: Option<String>,
        #[arg(long)]
        criticality: Option<String>,
        #[arg(long)]
        owner_team: Option<String>,
        /// Only assets whose name contains this.
        #[arg(long)]
        name: Option<String>,
    },
}

impl AssetsArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        runtime()?.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        let endpoint = self.client.endpoint_for(Api::Context);
        let mut client = sinter_context::client::connect(&endpoint, self.client.bearer()?)
            .await
            .with_context(|| format!("cannot connect to {endpoint}"))?;
        match self.command {
            AssetsCommand::Import { file, dry_run } => {
                let report = sinter_context::client::import_file(&mut client, &file, dry_run)
                    .await
                    .with_context(|| format!("cannot import {}", file.display()))?;
                match self.client.output {
                    Output::Json => outln!(
                        "{}",
                        json!({
                            "imported": report.imported,
                            "refused": report.refused,
                            "dryRun": dry_run,
                            "rows": report.rows.iter().filter(|r| !r.imported).map(|r| json!({
                                "line": r.line, "kind": r.kind, "id": r.id, "error": r.error,
                            })).collect::<Vec<_>>(),
                        })
                    ),
                    Output::Text => {
                        let verb = if dry_run {
                            "would be imported"
                        } else {
                            "imported"
                        };
                        outln!(
                            "{} rows {verb}, {} refused",
                            report.imported,
                            report.refused
                        );
                        for row in report.rows.iter().filter(|r| !r.imported) {
                            outln!("line {}: {}", row.line, row.error);
                        }
                    }
                }
                Ok(if report.refused == 0 {
                    exit::OK
                } else {
                    exit::problems_found()
                })
            }
            AssetsCommand::List {
                site,
                parent,
                criticality,
                owner_team,
                name,
            } => {
                let filter = pb::ListAssetsRequest {
                    site_id: site.unwrap_or_default(),
                    parent_id: parent.unwrap_or_default(),
                    criticality: criticality.unwrap_or_default(),
                    owner_team: owner_team.unwrap_or_default(),
                    name_contains: name.unwrap_or_default(),
                    ..Default::default()
                };
                let assets = sinter_context::client::list_all_assets(&mut client, filter).await?;
                match self.client.output {
                    Output::Json => {
                        let list: Vec<_> = assets
                            .iter()
                            .map(|a| {
                                json!({
                                    "id": a.id, "siteId": a.site_id, "parentId": a.parent_id,
                                    "name": a.name, "level": a.level,
                                    "externalId": a.external_id,
                                    "criticality": a.criticality, "ownerTeam": a.owner_team,
                                    "attributes": serde_json::from_str::<serde_json::Value>(
                                        &a.attributes_json).unwrap_or(serde_json::Value::Null),
                                })
                            })
                            .collect();
                        outln!("{}", serde_json::Value::Array(list));
                    }
                    Output::Text if assets.is_empty() => outln!("No assets."),
                    Output::Text => {
                        for a in &assets {
                            outln!(
                                "{:<12}  {:<8}  {:<9}  {:<12}  {}",
                                a.id,
                                a.site_id,
                                a.criticality,
                                a.owner_team,
                                a.name
                            );
                        }
                    }
                }
                Ok(exit::OK)
            }
        }
    }
}
