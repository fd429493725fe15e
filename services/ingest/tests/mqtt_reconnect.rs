//! The MQTT source comes back by itself when its broker goes away and returns: it
//! reconnects with backoff and subscribes again. Runs its own Mosquitto on a free port, so
//! the machine's broker is never stopped.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestSolution;
use sinter_bus::Bus;
use sinter_bus::embedded::EmbeddedBus;
use sinter_core::topic::Stream;
use sinter_ingest::IngestConfig;
use sinter_tests::services::{free_port, require_tcp};

/// A private Mosquitto, killed when dropped.
struct Mosquitto(Child);

impl Mosquitto {
    fn start(port: u16) -> Self {
        let child = Command::new("mosquitto")
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (Debian's mosquitto package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Mosquitto(child)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Publish probes until one is on telemetry; the probe's id when it is.
async fn probe_until_received(
    port: u16,
    solution: &TestSolution,
    bus: &dyn Bus,
    round: &str,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut attempt = 0;
    while Instant::now() < deadline {
        attempt += 1;
        let id = format!("{round}-{attempt}");
        let payload = format!(r#"{{"metric":"vibration_rms","value":1,"id":"{id}"}}"#);
        let topic = format!("{}/p-4/telemetry", solution.mqtt_prefix);
        common::mqtt_publish_one(port, &topic, &payload).await;
        let records = common::read_topic(
            bus,
            &solution.topic(Stream::Telemetry),
            Duration::from_millis(700),
            |r| {
                common::readings(r)
                    .iter()
                    .any(|r| r.message_id.starts_with(round))
            },
        )
        .await;
        let found = common::readings(&records)
            .into_iter()
            .find(|r| r.message_id.starts_with(round));
        if let Some(reading) = found {
            return Some(reading.message_id);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_reconnects_and_subscribes_again_after_the_broker_returns() {
    let port = free_port();
    let broker = Mosquitto::start(port);
    require_tcp(
        "the test's own Mosquitto",
        &format!("127.0.0.1:{port}"),
        "mosquitto -p",
    );
    let solution = TestSolution::with_mqtt_port("reconnect", port);
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new());
    solution.create_topics(bus.as_ref()).await;
    let mut config = IngestConfig {
        http_addr: None,
        ..IngestConfig::default()
    };
    config.mqtt.max_backoff = Duration::from_secs(1);
    let (_clock, clock) = common::manual_clock();
    let running = common::start(vec![solution.solution.clone()], bus.clone(), clock, config).await;

    let before = probe_until_received(port, &solution, bus.as_ref(), "before").await;
    assert!(before.is_some(), "the source never subscribed");

    // The broker dies and comes back empty: no session, no subscription.
    drop(broker);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _broker = Mosquitto::start(port);
    let after = probe_until_received(port, &solution, bus.as_ref(), "after").await;
    running.stop().await;
    assert!(
        after.is_some(),
        "the source did not come back after the broker restarted"
    );
}
