//! The `sinter-context` binary end to end: Kafka, PostgreSQL, gRPC import, a detection
//! in, a situation out, the metrics endpoint, a clean stop.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestDatabase;
use prost::Message;
use sinter_bus::kafka::{KafkaBus, KafkaConfig};
use sinter_bus::{Bus, Record, TopicSpec};
use sinter_context::client;
use sinter_core::topic::Stream;
use sinter_grpc::BearerToken;
use sinter_proto::context::v1::import_registry_request::Format;
use sinter_proto::events::v1::situation::ContextStatus;
use sinter_proto::events::v1::{Detection, Situation};
use sinter_tests::process::ChildProcess;
use sinter_tests::services::{free_port, require_kafka};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REGISTRY: &str = "kind,id,name,site_id,parent_id,level,asset_id,criticality\n\
                        site,north,North plant,,,,,\n\
                        asset,pump-17,Pump P-17,north,,asset,,high\n\
                        device,p-17,,,,,pump-17,\n";

async fn metrics(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn the_binary_imports_enriches_and_reports() {
    let brokers = require_kafka();
    let database = TestDatabase::postgres().await;
    let name = format!("bin-{}", uuid::Uuid::new_v4().simple());
    let solution = common::solution(&name, "");
    let file = std::env::temp_dir().join(format!("{name}.yaml"));
    std::fs::write(&file, solution.to_yaml().unwrap()).unwrap();
    let bus: Arc<dyn Bus> = Arc::new(
        KafkaBus::connect(KafkaConfig::new(brokers.clone()))
            .await
            .unwrap(),
    );
    for stream in Stream::ALL {
        bus.ensure_topic(&TopicSpec::new(solution.topic_name(stream), 1))
            .await
            .unwrap();
    }
    let (grpc, metrics_port) = (free_port(), free_port());
    let process = ChildProcess::spawn(
        "sinter-context",
        &[
            format!("--solution={}", file.display()),
            format!("--bus=kafka://{brokers}"),
            format!("--grpc-addr=127.0.0.1:{grpc}"),
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--database-url={}", database.url),
        ],
        &[],
    );
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let mut api = None;
    for _ in 0..100 {
        if let Ok(client) = client::connect(&endpoint, BearerToken::default()).await {
            api = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut api = api.unwrap_or_else(|| panic!("no gRPC answer: {}", process.output()));
    let report = client::import_bytes(&mut api, Format::Csv, REGISTRY.as_bytes().to_vec(), false)
        .await
        .unwrap();
    assert_eq!((report.imported, report.refused), (3, 0), "{report:?}");

    let mut situations = bus
        .subscribe(
            &format!("test-{name}"),
            &[solution.topic_name(Stream::Situations).as_str()],
        )
        .await
        .unwrap();
    let detection = Detection {
        id: "dt-bin-1".into(),
        device_id: "p-17".into(),
        metric: "temp".into(),
        ..Detection::default()
    };
    bus.producer()
        .send(
            &solution.topic_name(Stream::Detections),
            Record::new("p-17", detection.encode_to_vec()),
        )
        .await
        .unwrap();
    let Ok(delivered) = tokio::time::timeout(Duration::from_secs(60), situations.recv()).await
    else {
        panic!("no situation within 60 s: {}", process.output());
    };
    let delivered = delivered.unwrap();
    let situation = Situation::decode(&delivered.payload[..]).unwrap();
    assert_eq!(situation.context_status(), ContextStatus::Complete);
    assert_eq!(
        situation.asset.map(|asset| asset.criticality),
        Some("high".to_owned())
    );

    let text = metrics(metrics_port).await;
    assert!(text.contains("sinter_context_situations_total"), "{text}");
    assert!(
        text.contains("sinter_context_cache_lookups_total"),
        "{text}"
    );
    assert_eq!(process.terminate(Duration::from_secs(15)), Some(0));
    let _ = std::fs::remove_file(file);
}
