//! The HTTP JSON API, for devices and scripts that cannot speak gRPC:
//!
//! `POST /v1/solutions/{solution}/readings`, where `{solution}` is `<namespace>%2F<name>`
//! (the slash percent-encoded) or `<name>` in the `default` namespace; also
//! `POST /v1/solutions/{namespace}/{name}/readings`. Path segments are percent-decoded
//! exactly once: `%252F` stays `%2F` and names no Solution.
//!
//! The body is a JSON array of readings (see [`crate::json`]), an object
//! `{"readings": [...], "batchId": "..."}`, or a single reading object. The answer:
//!
//! - 200 with `{"batchId", "accepted", "refused", "duplicates", "results": [{"index",
//!   "accepted", "duplicate", "readingId", "reasonCode", "message"}]}`, one result per reading
//!   in order; `reasonCode` is the `ReasonCode` name, as on the dead-letter stream;
//! - 400 when the body is not JSON at all (it is dead-lettered as MALFORMED);
//! - 404 for an unknown Solution;
//! - 413 when the body is over the configured size;
//! - 503 with `Retry-After` when too many readings are in flight or the bus failed; resend.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use sinter_proto::events::v1::{ReasonCode, Transport};
use sinter_proto::ingest::v1::PublishResponse;

use crate::json;
use crate::pipeline::{self, Admission, Batch, BatchError, Candidate, Ingestor};

/// How long a request waits for room before it is answered 503; and what `Retry-After` says.
pub const DEFAULT_BUSY_WAIT: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct HttpState {
    ingestor: Arc<Ingestor>,
    busy_wait: Duration,
}

/// The router of the HTTP API; bodies over `max_body_bytes` are answered 413.
pub fn router(ingestor: Arc<Ingestor>, busy_wait: Duration, max_body_bytes: usize) -> Router {
    let state = HttpState {
        ingestor,
        busy_wait,
    };
    Router::new()
        .route(
            "/v1/solutions/{solution}/readings",
            post(publish_one_segment),
        )
        .route(
            "/v1/solutions/{namespace}/{name}/readings",
            post(publish_two_segments),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn publish_one_segment(
    State(state): State<HttpState>,
    Path(solution): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    publish(state, solution, uri.path().to_owned(), &headers, body).await
}

async fn publish_two_segments(
    State(state): State<HttpState>,
    Path((namespace, name)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let solution = format!("{namespace}/{name}");
    publish(state, solution, uri.path().to_owned(), &headers, body).await
}

async fn publish(
    state: HttpState,
    solution: String,
    path: String,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let (batch_id, candidates, not_json) = match json::split_readings(&body) {
        Ok(split) => (
            split.batch_id,
            split
                .readings
                .into_iter()
                .map(Candidate::from_json)
                .collect(),
            None,
        ),
        Err(refusal) => {
            let candidate = Candidate::refused(refusal.clone(), body.clone());
            (String::new(), vec![candidate], Some(refusal))
        }
    };
    let batch = Batch {
        solution,
        transport: Transport::Http,
        source: format!("http:{path}"),
        candidates,
        trace_headers: pipeline::trace_headers(|name| {
            let value = headers.get(name)?;
            value.to_str().ok().map(str::to_owned)
        }),
    };
    match state
        .ingestor
        .ingest(batch, Admission::WaitAtMost(state.busy_wait))
        .await
    {
        Ok(_) if not_json.is_some() => {
            let message = not_json.map(|r| r.message).unwrap_or_default();
            error(
                StatusCode::BAD_REQUEST,
                ReasonCode::Malformed,
                message,
                None,
            )
        }
        Ok(mut response) => {
            response.batch_id = batch_id;
            (StatusCode::OK, axum::Json(HttpResponse::from(response))).into_response()
        }
        Err(failure @ BatchError::UnknownSolution(_)) => error(
            StatusCode::NOT_FOUND,
            ReasonCode::UnknownSolution,
            failure.to_string(),
            None,
        ),
        Err(failure) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ReasonCode::Unspecified,
            failure.to_string(),
            Some(state.busy_wait),
        ),
    }
}

fn error(
    status: StatusCode,
    code: ReasonCode,
    message: String,
    retry: Option<Duration>,
) -> Response {
    let body = ErrorBody {
        error: message,
        reason_code: (code != ReasonCode::Unspecified).then(|| code.as_str_name()),
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(retry) = retry {
        let seconds = retry.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<&'static str>,
}

/// The JSON answer to a batch.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpResponse {
    pub batch_id: String,
    pub accepted: u32,
    pub refused: u32,
    pub duplicates: u32,
    pub results: Vec<HttpResult>,
}

/// One reading's outcome in [`HttpResponse`].
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpResult {
    pub index: u32,
    pub accepted: bool,
    pub duplicate: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reading_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl From<PublishResponse> for HttpResponse {
    fn from(response: PublishResponse) -> Self {
        HttpResponse {
            batch_id: response.batch_id,
            accepted: response.accepted,
            refused: response.refused,
            duplicates: response.duplicates,
            results: response
                .results
                .into_iter()
                .map(|result| HttpResult {
                    index: result.index,
                    accepted: result.accepted,
                    duplicate: result.duplicate,
                    reading_id: result.reading_id,
                    reason_code: (!result.accepted).then(|| {
                        ReasonCode::try_from(result.reason_code)
                            .unwrap_or(ReasonCode::Unspecified)
                            .as_str_name()
                            .to_owned()
                    }),
                    message: result.message,
                })
                .collect(),
        }
    }
}
