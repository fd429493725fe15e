//! The gRPC API `sinter.context.v1.ContextService`: registry CRUD, bulk import and the
//! asset context of a device.

use std::time::Duration;

use sinter_proto::context::v1 as pb;
use sinter_proto::context::v1::context_service_server::ContextService;
use sinter_proto::events::v1::AssetContext;
use sinter_runtime::Shutdown;
use tonic::{Request, Response, Status, Streaming};

use crate::enrich::Enricher;
use crate::import::{ImportFormat, ImportStop, import_stoppable};
use crate::mask::UpdateMask;
use crate::registry::{
    ASSET_FIELDS, AssetFilter, DEVICE_FIELDS, DeviceLookup, PageRequest, Registry, SITE_FIELDS,
    WORK_ORDER_FIELDS, validate,
};

/// Largest file an import takes.
// Limitation: an import is gathered in memory before it runs; files above this size are
// refused rather than streamed row by row.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

/// How long an import upload may go without a chunk before it is given up.
pub const IMPORT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The API over one registry.
#[derive(Clone)]
pub struct ContextApi {
    registry: Registry,
    enricher: Enricher,
    shutdown: Shutdown,
}

impl ContextApi {
    /// The API; `shutdown` stops uploads and running imports (they roll back).
    pub fn new(registry: Registry, enricher: Enricher, shutdown: Shutdown) -> Self {
        ContextApi {
            registry,
            enricher,
            shutdown,
        }
    }
}

/// Stops the import when dropped: tonic drops a call's future when its client cancels
/// it (or the connection goes), and the import task must not outlive the call.
struct StopOnDrop(ImportStop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop("the client went away");
    }
}

/// The upload of an import: the file, its format, and whether it is a dry run.
async fn receive_upload(
    stream: &mut Streaming<pb::ImportRegistryRequest>,
) -> Result<(ImportFormat, Vec<u8>, bool), Status> {
    let mut data = Vec::new();
    let mut format = None;
    let mut dry_run = false;
    loop {
        let chunk = tokio::time::timeout(IMPORT_IDLE_TIMEOUT, stream.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "chunk: none arrived for {} s; the import was not started",
                    IMPORT_IDLE_TIMEOUT.as_secs()
                ))
            })??;
        let Some(chunk) = chunk else {
            break;
        };
        if format.is_none() {
            format = Some(chunk.format());
            dry_run = chunk.dry_run;
        }
        if data.len() + chunk.chunk.len() > MAX_IMPORT_BYTES {
            return Err(Status::invalid_argument(format!(
                "chunk: the file is larger than {MAX_IMPORT_BYTES} bytes"
            )));
        }
        data.extend_from_slice(&chunk.chunk);
    }
    let format = match format {
        Some(pb::import_registry_request::Format::Csv) => ImportFormat::Csv,
        Some(pb::import_registry_request::Format::JsonLines) => ImportFormat::JsonLines,
        Some(pb::import_registry_request::Format::Unspecified) => {
            return Err(Status::invalid_argument(
                "format: is required (FORMAT_CSV or FORMAT_JSON_LINES)",
            ));
        }
        None => {
            return Err(Status::invalid_argument(
                "chunk: the stream sent no message",
            ));
        }
    };
    Ok((format, data, dry_run))
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("{field}: is required")))
}

fn mask(
    entity: &str,
    mask: Option<prost_types::FieldMask>,
    fields: &[&str],
) -> Result<UpdateMask, Status> {
    let paths = mask.map(|mask| mask.paths).unwrap_or_default();
    Ok(UpdateMask::new(entity, &paths, fields)?)
}

fn get_id(id: &str) -> Result<(), Status> {
    Ok(validate::id("id", id)?)
}

#[tonic::async_trait]
impl ContextService for ContextApi {
    async fn create_site(
        &self,
        request: Request<pb::CreateSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        let site = required(request.into_inner().site, "site")?;
        Ok(Response::new(self.registry.create_site(site).await?))
    }

    async fn get_site(
        &self,
        request: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        let id = request.into_inner().id;
        get_id(&id)?;
        Ok(Response::new(self.registry.get_site(&id).await?))
    }

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let page = self
            .registry
            .list_sites(&page, &request.name_contains)
            .await?;
        Ok(Response::new(pb::ListSitesResponse {
            sites: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_site(
        &self,
        request: Request<pb::UpdateSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        let request = request.into_inner();
        let mask = mask("site", request.update_mask, &SITE_FIELDS)?;
        let site = required(request.site, "site")?;
        Ok(Response::new(self.registry.update_site(site, &mask).await?))
    }

    async fn delete_site(
        &self,
        request: Request<pb::DeleteSiteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let id = request.into_inner().id;
        get_id(&id)?;
        self.registry.delete_site(&id).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_asset(
        &self,
        request: Request<pb::CreateAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let asset = required(request.into_inner().asset, "asset")?;
        Ok(Response::new(self.registry.create_asset(asset).await?))
    }

    async fn get_asset(
        &self,
        request: Request<pb::GetAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let id = request.into_inner().id;
        get_id(&id)?;
        Ok(Response::new(self.registry.get_asset(&id).await?))
    }

    async fn list_assets(
        &self,
        request: Request<pb::ListAssetsRequest>,
    ) -> Result<Response<pb::ListAssetsResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let filter = AssetFilter {
            site_id: request.site_id,
            parent_id: request.parent_id,
            criticality: request.criticality,
            owner_team: request.owner_team,
            name_contains: request.name_contains,
        };
        let page = self.registry.list_assets(&page, &filter).await?;
        Ok(Response::new(pb::ListAssetsResponse {
            assets: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_asset(
        &self,
        request: Request<pb::UpdateAssetRequest>,
    ) -> Result<Response<pb::Asset>, Status> {
        let request = request.into_inner();
        let mask = mask("asset", request.update_mask, &ASSET_FIELDS)?;
        let asset = required(request.asset, "asset")?;
        Ok(Response::new(
            self.registry.update_asset(asset, &mask).await?,
        ))
    }

    async fn delete_asset(
        &self,
        request: Request<pb::DeleteAssetRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let id = request.into_inner().id;
        get_id(&id)?;
        self.registry.delete_asset(&id).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_device(
        &self,
        request: Request<pb::CreateDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let device = required(request.into_inner().device, "device")?;
        Ok(Response::new(self.registry.create_device(device).await?))
    }

    async fn get_device(
        &self,
        request: Request<pb::GetDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let id = request.into_inner().id;
        get_id(&id)?;
        Ok(Response::new(self.registry.get_device(&id).await?))
    }

    async fn list_devices(
        &self,
        request: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let page = self
            .registry
            .list_devices(&page, &request.asset_id, &request.device_type)
            .await?;
        Ok(Response::new(pb::ListDevicesResponse {
            devices: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_device(
        &self,
        request: Request<pb::UpdateDeviceRequest>,
    ) -> Result<Response<pb::Device>, Status> {
        let request = request.into_inner();
        let mask = mask("device", request.update_mask, &DEVICE_FIELDS)?;
        let device = required(request.device, "device")?;
        Ok(Response::new(
            self.registry.update_device(device, &mask).await?,
        ))
    }

    async fn delete_device(
        &self,
        request: Request<pb::DeleteDeviceRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let id = request.into_inner().id;
        get_id(&id)?;
        self.registry.delete_device(&id).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_work_order(
        &self,
        request: Request<pb::CreateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let order = required(request.into_inner().work_order, "work_order")?;
        Ok(Response::new(self.registry.create_work_order(order).await?))
    }

    async fn get_work_order(
        &self,
        request: Request<pb::GetWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let id = request.into_inner().id;
        get_id(&id)?;
        Ok(Response::new(self.registry.get_work_order(&id).await?))
    }

    async fn list_work_orders(
        &self,
        request: Request<pb::ListWorkOrdersRequest>,
    ) -> Result<Response<pb::ListWorkOrdersResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::parse(request.page_size, &request.page_token)?;
        let status = pb::work_order::Status::try_from(request.status).map_err(|_| {
            Status::invalid_argument(format!(
                "status: {} is not a work order status",
                request.status
            ))
        })?;
        let page = self
            .registry
            .list_work_orders(&page, &request.asset_id, status)
            .await?;
        Ok(Response::new(pb::ListWorkOrdersResponse {
            work_orders: page.items,
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_work_order(
        &self,
        request: Request<pb::UpdateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let request = request.into_inner();
        let mask = mask("work_order", request.update_mask, &WORK_ORDER_FIELDS)?;
        let order = required(request.work_order, "work_order")?;
        Ok(Response::new(
            self.registry.update_work_order(order, &mask).await?,
        ))
    }

    async fn delete_work_order(
        &self,
        request: Request<pb::DeleteWorkOrderRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let id = request.into_inner().id;
        get_id(&id)?;
        self.registry.delete_work_order(&id).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn import_registry(
        &self,
        request: Request<Streaming<pb::ImportRegistryRequest>>,
    ) -> Result<Response<pb::ImportRegistryResponse>, Status> {
        let mut stream = request.into_inner();
        let (format, data, dry_run) = tokio::select! {
            biased;
            () = self.shutdown.clone().wait() => {
                return Err(Status::unavailable(
                    "the service is stopping; the import was not started",
                ));
            }
            upload = receive_upload(&mut stream) => upload?,
        };
        // The import runs in a task of its own, so that it rolls back by itself however it
        // ends: the guard stops it when this call is dropped, the watcher on shutdown.
        let stop = ImportStop::new();
        let _guard = StopOnDrop(stop.clone());
        let watcher = {
            let stop = stop.clone();
            let shutdown = self.shutdown.clone();
            async move {
                tokio::select! {
                    () = shutdown.wait() => stop.stop("the service is stopping"),
                    _ = stop.stopped() => {}
                }
            }
        };
        tokio::spawn(watcher);
        let registry = self.registry.clone();
        let task =
            tokio::spawn(
                async move { import_stoppable(&registry, format, data, dry_run, &stop).await },
            );
        let report = match task.await {
            Ok(report) => report?,
            Err(join) => {
                tracing::error!(error = %join, "Import task failed.");
                return Err(Status::internal("the import failed; nothing was written"));
            }
        };
        tracing::info!(
            imported = report.imported,
            refused = report.refused,
            dry_run,
            "Registry imported."
        );
        Ok(Response::new(pb::ImportRegistryResponse {
            imported: report.imported,
            refused: report.refused,
            rows: report.rows,
        }))
    }

    async fn get_asset_context(
        &self,
        request: Request<pb::GetAssetContextRequest>,
    ) -> Result<Response<AssetContext>, Status> {
        let device_id = request.into_inner().device_id;
        validate::id("device_id", &device_id)?;
        match self.enricher.lookup(&device_id).await?.as_ref() {
            DeviceLookup::Bound(context) => Ok(Response::new((**context).clone())),
            DeviceLookup::Unbound => Err(Status::failed_precondition(format!(
                "device {device_id:?} is bound to no asset"
            ))),
            DeviceLookup::Unknown => Err(Status::not_found(format!("no device {device_id:?}"))),
        }
    }
}
