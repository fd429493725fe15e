//! Client-side helpers for the CLI: connect, import a file, list assets.

use std::path::Path;

use sinter_grpc::BearerToken;
use sinter_proto::context::v1 as pb;
use sinter_proto::context::v1::context_service_client::ContextServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::service::MAX_MESSAGE_BYTES;

/// A connected client of the context API.
pub type Client = ContextServiceClient<InterceptedService<Channel, BearerToken>>;

/// Bytes per import chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot tell the format from the extension; use .csv, .jsonl or .ndjson")]
    UnknownFormat { path: String },
    #[error(transparent)]
    Status(#[from] tonic::Status),
}

/// Connect to the context service at `endpoint` (e.g. `http://127.0.0.1:50053`).
pub async fn connect(endpoint: &str, token: BearerToken) -> Result<Client, ClientError> {
    let channel = sinter_grpc::connect(endpoint, token)
        .await
        .map_err(|source| ClientError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    Ok(ContextServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// The import format a file's extension names.
pub fn format_of(path: &Path) -> Option<pb::import_registry_request::Format> {
    match path.extension()?.to_str()? {
        "csv" => Some(pb::import_registry_request::Format::Csv),
        "jsonl" | "ndjson" => Some(pb::import_registry_request::Format::JsonLines),
        _ => None,
    }
}

/// Stream `data` to ImportRegistry in chunks.
pub async fn import_bytes(
    client: &mut Client,
    format: pb::import_registry_request::Format,
    data: Vec<u8>,
    dry_run: bool,
) -> Result<pb::ImportRegistryResponse, ClientError> {
    let mut requests: Vec<pb::ImportRegistryRequest> = data
        .chunks(CHUNK_BYTES)
        .map(|chunk| pb::ImportRegistryRequest {
            format: format as i32,
            chunk: chunk.to_vec(),
            dry_run,
        })
        .collect();
    if requests.is_empty() {
        requests.push(pb::ImportRegistryRequest {
            format: format as i32,
            chunk: Vec::new(),
            dry_run,
        });
    }
    let response = client
        .import_registry(tokio_stream::iter(requests))
        .await?
        .into_inner();
    Ok(response)
}

/// Import a `.csv` or `.jsonl` file (what `sinter assets import FILE` does).
pub async fn import_file(
    client: &mut Client,
    path: &Path,
    dry_run: bool,
) -> Result<pb::ImportRegistryResponse, ClientError> {
    let format = format_of(path).ok_or_else(|| ClientError::UnknownFormat {
        path: path.display().to_string(),
    })?;
    let data = std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.display().to_string(),
        source,
    })?;
    import_bytes(client, format, data, dry_run).await
}

/// Every asset matching `filter` (its page fields are ignored), following the pages
/// (what `sinter assets list` does).
pub async fn list_all_assets(
    client: &mut Client,
    filter: pb::ListAssetsRequest,
) -> Result<Vec<pb::Asset>, ClientError> {
    let mut assets = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListAssetsRequest {
            page_size: 1000,
            page_token: page_token.clone(),
            ..filter.clone()
        };
        let page = client.list_assets(request).await?.into_inner();
        assets.extend(page.assets);
        if page.next_page_token.is_empty() {
            return Ok(assets);
        }
        page_token = page.next_page_token;
    }
}
