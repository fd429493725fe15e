//! `sinter recs ...`: the recommendations of a running Sinter, and what people do with them.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sinter_orchestrator::client::{
    outcome_text, parse_outcome, parse_state, severity_text, state_word, summary_line,
};
use sinter_proto::orchestrator::v1 as pb;
use tokio_stream::StreamExt;

use crate::commands::client::{Api, ClientArgs, Output, runtime, time_text};
use crate::exit;

/// Recommendations: list, watch, show, acknowledge, assign, comment on, resolve, reopen.
#[derive(Debug, Args)]
pub(crate) struct RecsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: RecsCommand,
}

#[derive(Debug, Subcommand)]
enum RecsCommand {
    /// List recommendations, newest first; every state unless --state is given.
    List {
        /// Only these states (open, acknowledged, in_progress, resolved, false_alarm,
        /// closed); repeat or separate with commas.
        #[arg(long, value_delimiter = ',', value_parser = parse_state)]
        state: Vec<pb::RecommendationState>,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only this asset.
        #[arg(long)]
        asset: Option<String>,
    },
    /// Print each change as it happens (the open ones first) until Ctrl-C.
    Watch,
    /// One recommendation with its context and history.
    Show {
        /// The recommendation's whole id, as `recs list` prints it.
        id: String,
    },
    /// Acknowledge: someone is on it.
    Ack {
        /// The recommendation's whole id, as `recs list` prints it.
        id: String,
        /// A comment written into the history with the change.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Give it to someone (acknowledges it too).
    Assign {
        /// The recommendation's whole id, as `recs list` prints it.
        id: String,
        /// Who works on it.
        assignee: String,
        /// A comment written into the history with the change.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Add a comment to its history.
    Comment {
        /// The recommendation's whole id, as `recs list` prints it.
        id: String,
        /// The comment, written into the history.
        text: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// End it: fixed, or a false alarm.
    Resolve {
        /// The recommendation's whole id, as `recs list` prints it.
        id: String,
        /// fixed or false_alarm.
        #[arg(long, default_value = "fixed", value_parser = parse_outcome)]
        outcome: pb::Outcome,
        /// A comment written into the history with the change.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Make an ended one open again, when the problem came back (refused while another is
    /// active for the same rule and asset).
    Reopen {
        /// The recommendation's whole id, as `recs list` prints it.
        id: String,
        /// A comment written into the history with the change.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        actor: Actor,
    },
}

/// Who is acting, for the history.
#[derive(Debug, Args)]
struct Actor {
    /// Your name in the recommendation's history; $USER by default.
    #[arg(long = "as", env = "USER", default_value = "someone")]
    name: String,
}

impl RecsArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        runtime()?.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        let client_args = &self.client;
        let endpoint = client_args.endpoint_for(Api::Orchestrator);
        let mut client = sinter_orchestrator::client::connect(&endpoint, client_args.bearer()?)
            .await
            .with_context(|| format!("cannot connect to {endpoint}"))?;
        let output = client_args.output;
        let changed = match self.command {
            RecsCommand::List { state, rule, asset } => {
                let request = pb::ListRecommendationsRequest {
                    solution: client_args.solution.clone(),
                    states: state.into_iter().map(|s| s as i32).collect(),
                    asset_id: asset.unwrap_or_default(),
                    rule: rule.unwrap_or_default(),
                    page_size: 500,
                    ..Default::default()
                };
                let all = list_all(&mut client, request).await?;
                match output {
                    Output::Json => print_json(&Value::Array(all.iter().map(to_json).collect())),
                    Output::Text if all.is_empty() => outln!("No recommendations."),
                    Output::Text => all.iter().for_each(|r| outln!("{}", summary_line(r))),
                }
                return Ok(exit::OK);
            }
            RecsCommand::Watch => {
                let request = pb::WatchRecommendationsRequest {
                    solution: client_args.solution.clone(),
                    include_open: true,
                };
                let mut stream = client.watch_recommendations(request).await?.into_inner();
                while let Some(change) = stream.next().await {
                    let change = change?;
                    match output {
                        Output::Json => outln!("{}", change_json(&change)),
                        Output::Text => {
                            if let Some(text) = crate::dev::summary::describe(&change) {
                                outln!("{}  {text}", crate::dev::simulator::clock_time());
                            }
                        }
                    }
                }
                return Ok(exit::OK);
            }
            RecsCommand::Show { id } => {
                let recommendation = client
                    .get_recommendation(pb::GetRecommendationRequest { id })
                    .await?
                    .into_inner();
                match output {
                    Output::Json => print_json(&to_json(&recommendation)),
                    Output::Text => out!("{}", details(&recommendation)),
                }
                return Ok(exit::OK);
            }
            RecsCommand::Ack { id, comment, actor } => client
                .acknowledge_recommendation(pb::AcknowledgeRecommendationRequest {
                    id,
                    actor: actor.name,
                    comment: comment.unwrap_or_default(),
                })
                .await?
                .into_inner(),
            RecsCommand::Assign {
                id,
                assignee,
                comment,
                actor,
            } => client
                .assign_recommendation(pb::AssignRecommendationRequest {
                    id,
                    actor: actor.name,
                    assignee,
                    comment: comment.unwrap_or_default(),
                })
                .await?
                .into_inner(),
            RecsCommand::Comment { id, text, actor } => client
                .comment_recommendation(pb::CommentRecommendationRequest {
                    id,
                    actor: actor.name,
                    comment: text,
                })
                .await?
                .into_inner(),
            RecsCommand::Resolve {
                id,
                outcome,
                comment,
                actor,
            } => client
                .resolve_recommendation(pb::ResolveRecommendationRequest {
                    id,
                    actor: actor.name,
                    outcome: outcome as i32,
                    comment: comment.unwrap_or_default(),
                })
                .await?
                .into_inner(),
            RecsCommand::Reopen { id, comment, actor } => client
                .reopen_recommendation(pb::ReopenRecommendationRequest {
                    id,
                    actor: actor.name,
                    comment: comment.unwrap_or_default(),
                })
                .await?
                .into_inner(),
        };
        match output {
            Output::Json => print_json(&to_json(&changed)),
            Output::Text => outln!("{}", summary_line(&changed)),
        }
        Ok(exit::OK)
    }
}

async fn list_all(
    client: &mut sinter_orchestrator::client::Client,
    request: pb::ListRecommendationsRequest,
) -> anyhow::Result<Vec<pb::Recommendation>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_recommendations(pb::ListRecommendationsRequest {
                page_token: page_token.clone(),
                ..request.clone()
            })
            .await?
            .into_inner();
        all.extend(page.recommendations);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

fn print_json(value: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A recommendation as JSON: what `--output json` prints.
pub(crate) fn to_json(recommendation: &pb::Recommendation) -> Value {
    let situation = recommendation.situation.as_ref();
    let detection = situation.and_then(|s| s.detection.as_ref());
    let asset = situation.and_then(|s| s.asset.as_ref());
    let mut value = json!({
        "id": recommendation.id,
        "solution": recommendation.solution,
        "rule": recommendation.rule,
        "state": state_word(recommendation.state()),
        "title": recommendation.title,
        "description": recommendation.description,
        "severity": severity_text(recommendation.severity),
        "assetId": recommendation.asset_id,
        "deviceId": recommendation.device_id,
        "occurrences": recommendation.occurrences,
        "assignee": recommendation.assignee,
        "escalationLevel": recommendation.escalation_level,
        "escalatedTo": recommendation.escalated_to,
        "outcome": outcome_text(recommendation.outcome),
        "openedAt": time_text(recommendation.opened_at.as_ref()),
        "acknowledgedAt": time_text(recommendation.acknowledged_at.as_ref()),
        "resolvedAt": time_text(recommendation.resolved_at.as_ref()),
        "traceId": situation.map(|s| s.trace_id.clone()).unwrap_or_default(),
        "detection": detection.map(|d| json!({
            "detector": d.detector_name,
            "metric": d.metric,
            "value": d.value,
            "eventTime": time_text(d.event_time.as_ref()),
        })),
        "asset": asset.map(|a| json!({
            "id": a.asset_id,
            "name": a.asset_name,
            "externalId": a.external_id,
            "criticality": a.criticality,
            "ownerTeam": a.owner_team,
            "site": a.site_name,
            "path": a.path.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        })),
    });
    // Lists and watches carry no history; only `show` has it.
    if !recommendation.history.is_empty() {
        value["history"] = recommendation
            .history
            .iter()
            .map(|h| {
                json!({
                    "at": time_text(h.at.as_ref()),
                    "actor": h.actor,
                    "event": h.event,
                    "comment": h.comment,
                })
            })
            .collect();
    }
    value
}

fn change_json(change: &pb::RecommendationChange) -> Value {
    json!({
        "event": change.change.as_ref().map(|c| c.event.clone()).unwrap_or_default(),
        "recommendation": change.recommendation.as_ref().map(to_json),
    })
}

/// What `sinter recs show` prints.
fn details(recommendation: &pb::Recommendation) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let _ = writeln!(text, "{}  {}", recommendation.id, recommendation.title);
    let _ = writeln!(
        text,
        "  state {}, severity {}, rule {}, {} occurrence(s)",
        state_word(recommendation.state()),
        severity_text(recommendation.severity),
        recommendation.rule,
        recommendation.occurrences
    );
    if !recommendation.description.is_empty() {
        let _ = writeln!(
            text,
            "  {}",
            recommendation.description.replace('\n', "\n  ")
        );
    }
    let situation = recommendation.situation.as_ref();
    if let Some(asset) = situation.and_then(|s| s.asset.as_ref()) {
        let _ = writeln!(
            text,
            "  asset {} ({}), {}, criticality {}, owner {}",
            asset.asset_name,
            asset.asset_id,
            asset
                .path
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(" > "),
            asset.criticality,
            asset.owner_team
        );
    } else {
        let _ = writeln!(
            text,
            "  device {} (no asset in the registry)",
            recommendation.device_id
        );
    }
    if let Some(detection) = situation.and_then(|s| s.detection.as_ref()) {
        let _ = writeln!(
            text,
            "  detection {} on {} = {} at {}",
            detection.detector_name,
            detection.metric,
            detection.value,
            time_text(detection.event_time.as_ref())
        );
    }
    let outcome = outcome_text(recommendation.outcome);
    if !outcome.is_empty() {
        let _ = writeln!(text, "  outcome {outcome}");
    }
    if !recommendation.assignee.is_empty() {
        let _ = writeln!(text, "  assigned to {}", recommendation.assignee);
    }
    if recommendation.escalation_level > 0 {
        let _ = writeln!(
            text,
            "  escalated {} time(s), now to {}",
            recommendation.escalation_level, recommendation.escalated_to
        );
    }
    let _ = writeln!(text, "  history:");
    for entry in &recommendation.history {
        let comment = if entry.comment.is_empty() {
            String::new()
        } else {
            format!(": {}", entry.comment)
        };
        let _ = writeln!(
            text,
            "    {}  {} {}{comment}",
            time_text(entry.at.as_ref()),
            entry.actor,
            entry.event
        );
    }
    text
}
