//! Client helpers for `sinter recs ...`: connecting, and the words people type for states
//! and outcomes.

use sinter_grpc::BearerToken;
use sinter_proto::orchestrator::v1::orchestrator_service_client::OrchestratorServiceClient;
use sinter_proto::orchestrator::v1::{Outcome, Recommendation, RecommendationState};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::state::State;

/// A connected client.
pub type Client = OrchestratorServiceClient<InterceptedService<Channel, BearerToken>>;

/// Connect to the orchestrator at `endpoint` (`http://127.0.0.1:50051`).
pub async fn connect(
    endpoint: &str,
    token: BearerToken,
) -> Result<Client, tonic::transport::Error> {
    Ok(OrchestratorServiceClient::new(
        sinter_grpc::connect(endpoint, token).await?,
    ))
}

/// The state a person types: `open`, `acknowledged`, `in_progress` (or `in-progress`),
/// `resolved`, `false_alarm`, `closed`.
pub fn parse_state(word: &str) -> Result<RecommendationState, String> {
    let normalised = word.trim().to_ascii_lowercase().replace('-', "_");
    State::from_word(&normalised)
        .map(State::to_proto)
        .ok_or_else(|| {
            format!(
                "{word:?} is not a state (open, acknowledged, in_progress, resolved, \
                 false_alarm, closed)"
            )
        })
}

/// The outcome a person types: `fixed` or `false_alarm` (or `false-alarm`).
pub fn parse_outcome(word: &str) -> Result<Outcome, String> {
    match word.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "fixed" => Ok(Outcome::Fixed),
        "false_alarm" => Ok(Outcome::FalseAlarm),
        _ => Err(format!("{word:?} is not an outcome (fixed, false_alarm)")),
    }
}

/// The word for a state, as `parse_state` reads it.
pub fn state_word(state: RecommendationState) -> &'static str {
    State::from_proto(state).map_or("unspecified", State::as_str)
}

/// The word for a state given as its number (as in a `Recommendation`).
pub fn state_text(state: i32) -> &'static str {
    state_word(RecommendationState::try_from(state).unwrap_or_default())
}

/// The word for a severity given as its number, as the Solution format spells it; empty
/// when unspecified.
pub fn severity_text(severity: i32) -> &'static str {
    sinter_proto::events::v1::Severity::try_from(severity)
        .map(crate::variables::severity_word)
        .unwrap_or_default()
}

/// The word for an outcome given as its number: `fixed`, `false_alarm`, `cleared`, or
/// empty while there is none.
pub fn outcome_text(outcome: i32) -> &'static str {
    match Outcome::try_from(outcome).unwrap_or_default() {
        Outcome::Unspecified => "",
        Outcome::Fixed => "fixed",
        Outcome::FalseAlarm => "false_alarm",
        Outcome::Cleared => "cleared",
    }
}

/// One line for a list: id, state, severity, rule, asset, title.
pub fn summary_line(recommendation: &Recommendation) -> String {
    let severity = severity_text(recommendation.severity);
    let asset = if recommendation.asset_id.is_empty() {
        &recommendation.device_id
    } else {
        &recommendation.asset_id
    };
    format!(
        "{}  {:<12}  {:<8}  {}  {}  {}",
        recommendation.id,
        state_word(recommendation.state()),
        severity,
        recommendation.rule,
        asset,
        recommendation.title
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_people_type() {
        assert_eq!(
            parse_state("in-progress"),
            Ok(RecommendationState::InProgress)
        );
        assert_eq!(parse_outcome("False-Alarm"), Ok(Outcome::FalseAlarm));
        assert!(parse_state("done").unwrap_err().contains("\"done\""));
        assert_eq!(state_word(RecommendationState::Closed), "closed");
        assert_eq!(
            state_text(RecommendationState::InProgress as i32),
            "in_progress"
        );
        assert_eq!(
            severity_text(sinter_proto::events::v1::Severity::Major as i32),
            "major"
        );
        assert_eq!(outcome_text(Outcome::FalseAlarm as i32), "false_alarm");
        assert_eq!(outcome_text(Outcome::Unspecified as i32), "");
    }
}
