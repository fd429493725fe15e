//! The gRPC API end to end: codes and messages naming the field, partial updates,
//! paging, a streamed import, and the asset context of a device.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestDatabase, service_context, solution};
use sinter_context::client;
use sinter_context::{ContextConfig, ContextService};
use sinter_grpc::{Auth, BearerToken, GrpcServer, Tokens};
use sinter_proto::context::v1 as pb;
use sinter_proto::context::v1::import_registry_request::Format;
use sinter_runtime::Service;
use tonic::Code;

async fn serve(database: &TestDatabase) -> (client::Client, sinter_runtime::Shutdown) {
    let clock = common::clock();
    let context = service_context(solution("grpc", ""), &clock).await;
    let shutdown = context.shutdown.clone();
    let service = ContextService::build(context, &ContextConfig::new(&database.url))
        .await
        .expect("service");
    let server = service.register(GrpcServer::new(Auth::new(Tokens::default())));
    let (addr, serving) = server
        .bind("127.0.0.1:0".parse().unwrap(), shutdown.clone().wait())
        .await
        .expect("bind");
    tokio::spawn(serving);
    let client = client::connect(&format!("http://{addr}"), BearerToken::default())
        .await
        .expect("connect");
    (client, shutdown)
}

const REGISTRY: &str = "\
kind,id,name,site_id,parent_id,level,criticality,owner_team,asset_id,title
site,north,North plant,,,,,,,
asset,line-1,Line 1,north,,line,,,,
asset,pump-17,Pump P-17,north,line-1,asset,high,reliability,,
asset,pump-18,Pump P-18,north,line-9,asset,,,,
device,p-17,,,,,,,pump-17,
work_order,wo-1,,,,,,,pump-17,Replace bearing
";

async fn the_api_names_fields_in_its_errors(database: TestDatabase) {
    let (mut api, shutdown) = serve(&database).await;

    // A streamed import, in chunks that split lines.
    let chunks: Vec<pb::ImportRegistryRequest> = REGISTRY
        .as_bytes()
        .chunks(7)
        .map(|chunk| pb::ImportRegistryRequest {
            format: Format::Csv as i32,
            chunk: chunk.to_vec(),
            dry_run: false,
        })
        .collect();
    let response = api
        .import_registry(tokio_stream::iter(chunks))
        .await
        .expect("import")
        .into_inner();
    assert_eq!((response.imported, response.refused), (5, 1));
    let refused = response
        .rows
        .iter()
        .find(|row| !row.imported)
        .expect("a refused row");
    assert_eq!(
        (refused.line, refused.error.as_str()),
        (5, "parent_id: no asset \"line-9\"")
    );
    let empty = pb::ImportRegistryRequest {
        format: 0,
        chunk: b"x".to_vec(),
        dry_run: false,
    };
    let error = api
        .import_registry(tokio_stream::iter([empty]))
        .await
        .unwrap_err();
    let dry = client::import_bytes(
        &mut api,
        Format::Csv,
        b"kind,id,name\nsite,west,W\n".to_vec(),
        true,
    )
    .await
    .expect("dry run");
    assert_eq!(dry.imported, 1);
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("format: is required"),
        "{}",
        error.message()
    );

    // Errors name the field or the record.
    let error = api
        .create_asset(pb::CreateAssetRequest {
            asset: Some(pb::Asset {
                id: "a".into(),
                site_id: "north".into(),
                name: "A".into(),
                criticality: "urgent".into(),
                ..pb::Asset::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        error.message(),
        "asset.criticality: \"urgent\" is not one of low, medium, high, critical"
    );
    let error = api
        .create_asset(pb::CreateAssetRequest { asset: None })
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "asset: is required")
    );
    let error = api
        .create_site(pb::CreateSiteRequest {
            site: Some(pb::Site {
                id: "north".into(),
                name: "N".into(),
                ..pb::Site::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::AlreadyExists, "site \"north\" already exists")
    );
    let error = api
        .get_device(pb::GetDeviceRequest { id: "p-404".into() })
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "no device \"p-404\"")
    );
    let error = api
        .delete_site(pb::DeleteSiteRequest { id: "north".into() })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);

    // A partial update through a FieldMask, and a refused path.
    let updated = api
        .update_asset(pb::UpdateAssetRequest {
            asset: Some(pb::Asset {
                id: "pump-17".into(),
                owner_team: "mechanics".into(),
                name: "ignored".into(),
                ..pb::Asset::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["owner_team".into()],
            }),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(
        (updated.name.as_str(), updated.owner_team.as_str()),
        ("Pump P-17", "mechanics")
    );
    let error = api
        .update_asset(pb::UpdateAssetRequest {
            asset: Some(pb::Asset {
                id: "pump-17".into(),
                ..pb::Asset::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["colour".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .starts_with("update_mask.paths: \"colour\" is not a field"),
        "{}",
        error.message()
    );

    // Paging and the context.
    let page = api
        .list_assets(pb::ListAssetsRequest {
            page_size: 1,
            ..pb::ListAssetsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.assets.len(), 1);
    assert!(!page.next_page_token.is_empty());
    let west = api
        .get_site(pb::GetSiteRequest { id: "west".into() })
        .await
        .unwrap_err();
    assert_eq!(west.code(), Code::NotFound, "a dry run writes nothing");
    let all = client::list_all_assets(&mut api, pb::ListAssetsRequest::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let error = api
        .list_assets(pb::ListAssetsRequest {
            page_token: "bogus".into(),
            ..pb::ListAssetsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "page_token: is not a token of this API"
        )
    );
    // A token is bound to the list and filters it came from.
    let error = api
        .list_assets(pb::ListAssetsRequest {
            page_size: 1,
            page_token: page.next_page_token.clone(),
            criticality: "high".into(),
            ..pb::ListAssetsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .starts_with("page_token: was issued for another list"),
        "{}",
        error.message()
    );
    let error = api
        .list_devices(pb::ListDevicesRequest {
            page_token: page.next_page_token.clone(),
            ..pb::ListDevicesRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("page_token: "),
        "{}",
        error.message()
    );
    // Enum text ignores case here as in imports.
    let high = api
        .list_assets(pb::ListAssetsRequest {
            criticality: "HIGH".into(),
            ..pb::ListAssetsRequest::default()
        })
        .await
        .expect("a filter in capitals")
        .into_inner();
    let ids: Vec<&str> = high.assets.iter().map(|asset| asset.id.as_str()).collect();
    assert_eq!(ids, ["pump-17"]);
    let context = api
        .get_asset_context(pb::GetAssetContextRequest {
            device_id: "p-17".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(context.owner_team, "mechanics");
    assert_eq!(context.open_work_orders.len(), 1);
    let error = api
        .get_asset_context(pb::GetAssetContextRequest {
            device_id: "p-404".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    shutdown.trigger();
}

#[tokio::test]
async fn postgres_the_api_names_fields_in_its_errors() {
    the_api_names_fields_in_its_errors(TestDatabase::postgres().await).await;
}

#[tokio::test]
async fn sqlite_the_api_names_fields_in_its_errors() {
    the_api_names_fields_in_its_errors(TestDatabase::sqlite()).await;
}
