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

/// One line for a list: id, state, severity, rule, asset, title.
pub fn summary_line(recommendation: &Recommendation) -> String {
    let severity = sinter_proto::events::v1::Severity::try_from(recommendation.severity)
        .map(crate::variables::severity_word)
        .unwrap_or_default();
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
    }
}
