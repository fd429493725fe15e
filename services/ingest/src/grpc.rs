//! The gRPC API, `sinter.ingest.v1.IngestService`: unary `Publish` and the bidirectional
//! `Stream`, whose batches are acknowledged in order as each becomes durable.
//!
//! Errors: an unknown Solution is NOT_FOUND on `Publish`; on `Stream` that batch is
//! answered with every reading refused as UNKNOWN_SOLUTION and the stream goes on. A bus
//! failure is UNAVAILABLE (the batch should be resent; what did arrive is deduplicated); on
//! `Stream` it ends the stream after the batches before it were acknowledged.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use sinter_proto::events::v1::{ReasonCode, Transport};
use sinter_proto::ingest::v1::ingest_service_server::{self, IngestServiceServer};
use sinter_proto::ingest::v1::{PublishRequest, PublishResponse, ReadingResult};
use tonic::{Request, Response, Status, Streaming};

use crate::pipeline::{self, Admission, Batch, BatchError, Candidate, Ingestor};

/// Batches of one stream being published at once; the next is not read until the oldest is
/// acknowledged, so HTTP/2 flow control slows a client that outruns the bus.
pub const DEFAULT_STREAM_PIPELINE: usize = 4;

/// The gRPC handler over the pipeline.
#[derive(Clone)]
pub struct GrpcApi {
    ingestor: Arc<Ingestor>,
    stream_pipeline: usize,
}

impl GrpcApi {
    /// The handler; `stream_pipeline` batches of a stream are published concurrently.
    pub fn new(ingestor: Arc<Ingestor>, stream_pipeline: usize) -> Self {
        GrpcApi {
            ingestor,
            stream_pipeline: stream_pipeline.max(1),
        }
    }

    /// The tonic service, accepting messages up to `max_message_bytes`.
    pub fn into_server(self, max_message_bytes: usize) -> IngestServiceServer<GrpcApi> {
        IngestServiceServer::new(self).max_decoding_message_size(max_message_bytes)
    }
}

fn peer_source<T>(request: &Request<T>) -> String {
    match request.remote_addr() {
        Some(addr) => format!("grpc:{addr}"),
        None => "grpc".to_owned(),
    }
}

fn trace_of<T>(request: &Request<T>) -> Vec<(String, String)> {
    pipeline::trace_headers(|name| {
        let value = request.metadata().get(name)?;
        value.to_str().ok().map(str::to_owned)
    })
}

fn batch(
    request: PublishRequest,
    source: String,
    trace_headers: Vec<(String, String)>,
) -> (String, Batch) {
    let PublishRequest {
        solution,
        batch_id,
        readings,
    } = request;
    let batch = Batch {
        solution,
        transport: Transport::Grpc,
        source,
        candidates: readings.into_iter().map(Candidate::from_proto).collect(),
        trace_headers,
    };
    (batch_id, batch)
}

fn status(error: BatchError) -> Status {
    match error {
        BatchError::UnknownSolution(_) => Status::not_found(error.to_string()),
        BatchError::Busy | BatchError::Bus(_) | BatchError::CopyFailed | BatchError::Unreported => {
            Status::unavailable(error.to_string())
        }
    }
}

/// Every reading of a batch refused as UNKNOWN_SOLUTION, for a stream that goes on.
fn unknown_solution(batch_id: String, readings: usize, error: &BatchError) -> PublishResponse {
    let results: Vec<ReadingResult> = (0..readings)
        .map(|index| ReadingResult {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            reason_code: ReasonCode::UnknownSolution as i32,
            message: format!("solution: {error}"),
            ..Default::default()
        })
        .collect();
    PublishResponse {
        batch_id,
        refused: u32::try_from(readings).unwrap_or(u32::MAX),
        results,
        ..Default::default()
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<PublishResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ingest_service_server::IngestService for GrpcApi {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let source = peer_source(&request);
        let trace = trace_of(&request);
        let (batch_id, batch) = batch(request.into_inner(), source, trace);
        let mut response = self
            .ingestor
            .ingest(batch, Admission::Wait)
            .await
            .map_err(status)?;
        response.batch_id = batch_id;
        Ok(Response::new(response))
    }

    type StreamStream = ResponseStream;

    async fn stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let source = peer_source(&request);
        let trace = trace_of(&request);
        let ingestor = self.ingestor.clone();
        let responses = request
            .into_inner()
            .map(move |message| {
                let ingestor = ingestor.clone();
                let source = source.clone();
                let trace = trace.clone();
                async move {
                    let (batch_id, batch) = batch(message?, source, trace);
                    let readings = batch.candidates.len();
                    match ingestor.ingest(batch, Admission::Wait).await {
                        Ok(mut response) => {
                            response.batch_id = batch_id;
                            Ok(response)
                        }
                        Err(error @ BatchError::UnknownSolution(_)) => {
                            Ok(unknown_solution(batch_id, readings, &error))
                        }
                        Err(error) => Err(status(error)),
                    }
                }
            })
            .buffered(self.stream_pipeline);
        Ok(Response::new(Box::pin(responses) as ResponseStream))
    }
}
