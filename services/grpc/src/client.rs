//! The client side: connecting to a Sinter service with a bearer token.

use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Adds `authorization: Bearer <token>` to every request, when a token is set.
#[derive(Clone, Debug, Default)]
pub struct BearerToken(Option<AsciiMetadataValue>);

impl BearerToken {
    /// From a token string; `None` or an empty string sends no header.
    pub fn new(token: Option<&str>) -> Result<Self, Status> {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(BearerToken(None)),
            Some(token) => format!("Bearer {token}")
                .parse()
                .map(|value| BearerToken(Some(value)))
                .map_err(|_| Status::invalid_argument("token has characters a header cannot hold")),
        }
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Connect to `endpoint` (e.g. `http://127.0.0.1:50051`), adding `token` to every call.
pub async fn connect(
    endpoint: &str,
    token: BearerToken,
) -> Result<InterceptedService<Channel, BearerToken>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(endpoint.to_owned())?
        .connect()
        .await?;
    Ok(InterceptedService::new(channel, token))
}

/// The services a server lists through gRPC reflection, as `grpcurl list` shows them.
pub async fn list_services(endpoint: &str, token: BearerToken) -> Result<Vec<String>, Status> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let channel = connect(endpoint, token)
        .await
        .map_err(|err| Status::unavailable(format!("cannot connect to {endpoint}: {err}")))?;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await?
        .into_inner();
    let mut names = Vec::new();
    while let Some(response) = responses.message().await? {
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                names.extend(list.service.into_iter().map(|s| s.name));
            }
            Some(MessageResponse::ErrorResponse(err)) => {
                return Err(Status::new(
                    tonic::Code::from(err.error_code),
                    err.error_message,
                ));
            }
            _ => {}
        }
    }
    names.sort();
    Ok(names)
}
