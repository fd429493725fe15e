//! `sinter.orchestrator.v1.OrchestratorService`: recommendations as human tasks over gRPC.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use sinter_proto::orchestrator::v1::orchestrator_service_server::{
    OrchestratorService, OrchestratorServiceServer,
};
use sinter_proto::orchestrator::v1::{
    AcknowledgeRecommendationRequest, AssignRecommendationRequest, CommentRecommendationRequest,
    GetRecommendationRequest, ListParkedActionsRequest, ListParkedActionsResponse,
    ListRecommendationsRequest, ListRecommendationsResponse, Outcome, ParkedAction, Recommendation,
    RecommendationChange, ReopenRecommendationRequest, ResolveRecommendationRequest,
    RetryActionRequest, WatchRecommendationsRequest,
};
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::dispatch::RetryError;
use crate::error::OrchestratorError;
use crate::listing::{ListQuery, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, decode_offset_token};
use crate::orchestrator::Orchestrator;
use crate::state::State;
use crate::tasks::{TaskError, TaskRequest};

/// The gRPC face of an [`Orchestrator`].
#[derive(Clone, Debug)]
pub struct OrchestratorApi {
    orchestrator: Orchestrator,
}

impl OrchestratorApi {
    pub fn new(orchestrator: Orchestrator) -> Self {
        OrchestratorApi { orchestrator }
    }

    /// NOT_FOUND for a Solution this orchestrator does not run; empty means every one.
    fn known_solution(&self, solution: &str) -> Result<(), Status> {
        if solution.is_empty() || self.orchestrator.solution(solution).is_some() {
            return Ok(());
        }
        let mut running: Vec<&str> = self.orchestrator.solution_names().collect();
        running.sort_unstable();
        Err(Status::not_found(format!(
            "solution: {solution:?} is not run here (running: {})",
            running.join(", ")
        )))
    }

    /// Refuse a `rule` filter that found nothing and names no recommendation rule of
    /// `solution`, so that a typo is not answered with an empty list. A rule since renamed
    /// or removed still lists the recommendations stored under it.
    fn known_rule(&self, solution: &str, rule: &str) -> Result<(), Status> {
        let Some(runtime) = self.orchestrator.solution(solution) else {
            return Ok(());
        };
        let rules = &runtime.solution.spec.recommendations;
        if rule.is_empty() || rules.iter().any(|r| r.name == rule) {
            return Ok(());
        }
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        Err(Status::invalid_argument(format!(
            "rule: {rule:?} is not a recommendation rule of {solution} (rules: {})",
            names.join(", ")
        )))
    }

    /// The tonic service, ready for a [`sinter_grpc::GrpcServer`].
    pub fn into_server(self) -> OrchestratorServiceServer<OrchestratorApi> {
        OrchestratorServiceServer::new(self)
    }
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<RecommendationChange, Status>> + Send>>;

#[tonic::async_trait]
impl OrchestratorService for OrchestratorApi {
    async fn list_recommendations(
        &self,
        request: Request<ListRecommendationsRequest>,
    ) -> Result<Response<ListRecommendationsResponse>, Status> {
        let request = request.into_inner();
        self.known_solution(&request.solution)?;
        let mut states = Vec::new();
        for (index, raw) in request.states.iter().enumerate() {
            let state = sinter_proto::orchestrator::v1::RecommendationState::try_from(*raw)
                .ok()
                .and_then(State::from_proto)
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "states[{index}]: {raw} is not a recommendation state"
                    ))
                })?;
            states.push(state);
        }
        let page_size = page_size(request.page_size)?;
        let query = ListQuery {
            solution: request.solution,
            states,
            asset_id: request.asset_id,
            severity: request.severity,
            rule: request.rule,
            page_size,
            page_token: request.page_token,
        };
        let (recommendations, next_page_token) = self
            .orchestrator
            .list_recommendations(&query)
            .await
            .map_err(list_status)?;
        if recommendations.is_empty() && query.page_token.is_empty() {
            self.known_rule(&query.solution, &query.rule)?;
        }
        Ok(Response::new(ListRecommendationsResponse {
            recommendations,
            next_page_token,
        }))
    }

    async fn get_recommendation(
        &self,
        request: Request<GetRecommendationRequest>,
    ) -> Result<Response<Recommendation>, Status> {
        let id = required("id", &request.get_ref().id)?;
        let recommendation = self
            .orchestrator
            .recommendation(id)
            .await
            .map_err(task_status)?;
        Ok(Response::new(recommendation))
    }

    type WatchRecommendationsStream = ChangeStream;

    async fn watch_recommendations(
        &self,
        request: Request<WatchRecommendationsRequest>,
    ) -> Result<Response<Self::WatchRecommendationsStream>, Status> {
        let request = request.into_inner();
        self.known_solution(&request.solution)?;
        // Subscribe before reading the open ones, so no change falls in between.
        // Limitation: only changes made by this process reach the stream; with several
        // replicas a client has to watch each one.
        let changes = self.orchestrator.subscribe_changes();
        let mut initial = Vec::new();
        if request.include_open {
            let mut token = String::new();
            loop {
                let query = ListQuery {
                    solution: request.solution.clone(),
                    states: vec![State::Open, State::Acknowledged, State::InProgress],
                    page_size: PAGE_SIZE_MAX,
                    page_token: token,
                    ..ListQuery::default()
                };
                let (page, next) = self
                    .orchestrator
                    .list_recommendations(&query)
                    .await
                    .map_err(list_status)?;
                initial.extend(page.into_iter().map(|recommendation| RecommendationChange {
                    recommendation: Some(recommendation),
                    change: None,
                }));
                if next.is_empty() {
                    break;
                }
                token = next;
            }
        }
        let solution = request.solution;
        let tail =
            futures::stream::unfold((changes, solution), |(mut changes, solution)| async move {
                loop {
                    match changes.recv().await {
                        Ok(change) => {
                            let wanted = solution.is_empty()
                                || change
                                    .recommendation
                                    .as_ref()
                                    .is_some_and(|r| r.solution == solution);
                            if wanted {
                                return Some((Ok(change), (changes, solution)));
                            }
                        }
                        Err(RecvError::Lagged(missed)) => {
                            let status = Status::resource_exhausted(format!(
                                "the watch fell {missed} changes behind; watch again"
                            ));
                            return Some((Err(status), (changes, solution)));
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            });
        let stream = futures::stream::iter(initial.into_iter().map(Ok)).chain(tail);
        let stream: ChangeStream = Box::pin(stream);
        Ok(Response::new(stream))
    }

    async fn acknowledge_recommendation(
        &self,
        request: Request<AcknowledgeRecommendationRequest>,
    ) -> Result<Response<Recommendation>, Status> {
        let request = request.into_inner();
        let task = task_request(&request.id, &request.actor, &request.comment)?;
        let recommendation = self
            .orchestrator
            .acknowledge(task)
            .await
            .map_err(task_status)?;
        Ok(Response::new(recommendation))
    }

    async fn assign_recommendation(
        &self,
        request: Request<AssignRecommendationRequest>,
    ) -> Result<Response<Recommendation>, Status> {
        let request = request.into_inner();
        let task = task_request(&request.id, &request.actor, &request.comment)?;
        let recommendation = self
            .orchestrator
            .assign(task, &request.assignee)
            .await
            .map_err(task_status)?;
        Ok(Response::new(recommendation))
    }

    async fn comment_recommendation(
        &self,
        request: Request<CommentRecommendationRequest>,
    ) -> Result<Response<Recommendation>, Status> {
        let request = request.into_inner();
        let task = task_request(&request.id, &request.actor, &request.comment)?;
        let recommendation = self.orchestrator.comment(task).await.map_err(task_status)?;
        Ok(Response::new(recommendation))
    }

    async fn resolve_recommendation(
        &self,
        request: Request<ResolveRecommendationRequest>,
    ) -> Result<Response<Recommendation>, Status> {
        let request = request.into_inner();
        let outcome = Outcome::try_from(request.outcome).map_err(|_| {
            Status::invalid_argument(format!("outcome: {} is not an outcome", request.outcome))
        })?;
        let task = task_request(&request.id, &request.actor, &request.comment)?;
        let recommendation = self
            .orchestrator
            .resolve(task, outcome)
            .await
            .map_err(task_status)?;
        Ok(Response::new(recommendation))
    }

    async fn reopen_recommendation(
        &self,
        request: Request<ReopenRecommendationRequest>,
    ) -> Result<Response<Recommendation>, Status> {
        let request = request.into_inner();
        let task = task_request(&request.id, &request.actor, &request.comment)?;
        let recommendation = self.orchestrator.reopen(task).await.map_err(task_status)?;
        Ok(Response::new(recommendation))
    }

    async fn list_parked_actions(
        &self,
        request: Request<ListParkedActionsRequest>,
    ) -> Result<Response<ListParkedActionsResponse>, Status> {
        let request = request.into_inner();
        let limit = page_size(request.page_size)?;
        let offset = decode_offset_token(&request.page_token)
            .ok_or_else(|| Status::invalid_argument("page_token: not a token this API gave"))?;
        let entries = self
            .orchestrator
            .parked_actions(&request.solution, limit + 1, offset)
            .await
            .map_err(internal)?;
        let more = entries.len() > limit;
        let actions: Vec<ParkedAction> = entries
            .iter()
            .take(limit)
            .map(|entry| entry.to_parked())
            .collect();
        let next_page_token = if more {
            (offset + limit).to_string()
        } else {
            String::new()
        };
        Ok(Response::new(ListParkedActionsResponse {
            actions,
            next_page_token,
        }))
    }

    async fn retry_action(
        &self,
        request: Request<RetryActionRequest>,
    ) -> Result<Response<ParkedAction>, Status> {
        let request = request.into_inner();
        let id = required("id", &request.id)?;
        let entry = self
            .orchestrator
            .retry_action(id, &request.actor)
            .await
            .map_err(|error| match error {
                RetryError::NotFound(_) => Status::not_found(error.to_string()),
                RetryError::NotParked { .. } => Status::failed_precondition(error.to_string()),
                RetryError::Orchestrator(error) => internal(error),
            })?;
        Ok(Response::new(entry.to_parked()))
    }
}

/// The common part of every human-task request: which recommendation, who, and why.
fn task_request<'a>(
    id: &'a str,
    actor: &'a str,
    comment: &'a str,
) -> Result<TaskRequest<'a>, Status> {
    Ok(TaskRequest {
        id: required("id", id)?,
        actor,
        comment,
    })
}

fn page_size(raw: i32) -> Result<usize, Status> {
    match raw {
        0 => Ok(PAGE_SIZE_DEFAULT),
        size if size < 0 => Err(Status::invalid_argument(format!(
            "page_size: {size} is negative"
        ))),
        size => Ok(usize::try_from(size)
            .unwrap_or(PAGE_SIZE_MAX)
            .min(PAGE_SIZE_MAX)),
    }
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{field}: is required")))
    } else {
        Ok(value)
    }
}

fn task_status(error: TaskError) -> Status {
    match error {
        TaskError::NotFound(_) => Status::not_found(error.to_string()),
        TaskError::WrongState { .. } | TaskError::AlreadyActive { .. } => {
            Status::failed_precondition(error.to_string())
        }
        TaskError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
        TaskError::Orchestrator(error) => internal(*error),
    }
}

fn list_status(error: crate::listing::ListError) -> Status {
    match error {
        crate::listing::ListError::BadToken => {
            Status::invalid_argument("page_token: not a token this API gave")
        }
        crate::listing::ListError::Orchestrator(error) => internal(error),
    }
}

fn internal(error: OrchestratorError) -> Status {
    tracing::error!(error = %error, "Orchestrator request failed.");
    Status::internal(format!("the orchestrator failed: {error}"))
}
