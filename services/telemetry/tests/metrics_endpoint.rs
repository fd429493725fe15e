//! The scrape endpoint serves what OpenTelemetry instruments record.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test]
async fn counters_reach_the_prometheus_endpoint() {
    let args = sinter_telemetry::TelemetryArgs::default();
    let telemetry = sinter_telemetry::init("sinter-test", &args).expect("init");
    let counter = telemetry
        .meter()
        .u64_counter("sinter_test_readings")
        .build();
    counter.add(3, &[opentelemetry::KeyValue::new("transport", "grpc")]);
    counter.add(2, &[opentelemetry::KeyValue::new("transport", "mqtt")]);

    let ready = sinter_telemetry::Readiness::default();
    let (addr, _task) = sinter_telemetry::serve_metrics(
        "127.0.0.1:0".parse().expect("addr"),
        telemetry.registry().clone(),
        ready.clone(),
        std::future::pending(),
    )
    .await
    .expect("serve");

    let body = http_get(addr, "/metrics").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let line = body
        .lines()
        .find(|l| l.starts_with("sinter_test_readings_total{") && l.contains("transport=\"grpc\""))
        .unwrap_or_else(|| panic!("no grpc series in:\n{body}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(body.contains("transport=\"mqtt\""), "{body}");

    let health = http_get(addr, "/health").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let not_ready = http_get(addr, "/ready").await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    ready.set(true);
    let ready_now = http_get(addr, "/ready").await;
    assert!(ready_now.starts_with("HTTP/1.1 200"), "{ready_now}");
    telemetry.shutdown();
}
