//! The mixed batch over gRPC, HTTP and MQTT, against the real broker and the real Mosquitto:
//! every reading gets the same outcome on every transport, accepted readings are on
//! telemetry keyed by device id, refused ones on the dead-letter stream with their bytes.

mod common;

use std::time::Duration;

use common::{MIXED_OUTCOMES, TestSolution};
use prost::Message;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use sinter_core::topic::Stream;
use sinter_ingest::IngestConfig;
use sinter_ingest::http::HttpResponse;
use sinter_proto::events::v1::{ReasonCode, Stage, TimestampUnit, Transport, reading};
use sinter_proto::ingest::v1::PublishRequest;

fn reason(code: &Option<String>) -> Option<ReasonCode> {
    code.as_deref()
        .map(|name| ReasonCode::from_str_name(name).expect("a reason code name"))
}

fn grpc_outcomes(results: &[sinter_proto::ingest::v1::ReadingResult]) -> Vec<Option<ReasonCode>> {
    results
        .iter()
        .map(|r| (!r.accepted).then(|| ReasonCode::try_from(r.reason_code).expect("code")))
        .collect()
}

/// Publish `lines` to the MQTT broker, each on its device's topic, QoS 1.
async fn mqtt_publish(prefix: &str, lines: &[String]) {
    let mut options = MqttOptions::new(
        format!("sinter-test-pub-{}", uuid::Uuid::new_v4().simple()),
        "127.0.0.1",
        1883,
    );
    options.set_keep_alive(Duration::from_secs(10));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 64);
    let driver = tokio::spawn(async move {
        let mut acked = 0;
        while acked < usize::MAX {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Disconnect)) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).expect("json line");
        let device = value["device"].as_str().expect("device");
        client
            .publish(
                format!("{prefix}/{device}/telemetry"),
                QoS::AtLeastOnce,
                false,
                line.clone(),
            )
            .await
            .expect("publish");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.disconnect().await.ok();
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
}

/// Wait until the MQTT source has subscribed: publish probes until one is on telemetry.
async fn wait_for_subscription(solution: &TestSolution, bus: &dyn sinter_bus::Bus) {
    for attempt in 0..60 {
        let probe = format!(
            r#"{{"device":"p-9","metric":"vibration_rms","value":1,"id":"probe-{attempt}"}}"#
        );
        mqtt_publish(&solution.mqtt_prefix, &[probe]).await;
        let found = common::read_topic(
            bus,
            &solution.topic(Stream::Telemetry),
            Duration::from_secs(2),
            |r| !r.is_empty(),
        )
        .await;
        if !found.is_empty() {
            return;
        }
    }
    panic!("the MQTT source never subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mixed_batch_has_the_same_outcomes_on_every_transport() {
    common::require_mosquitto();
    let bus = common::kafka_bus().await;
    let over_grpc = TestSolution::new("grpc");
    let over_http = TestSolution::new("http");
    let over_mqtt = TestSolution::new("mqtt");
    for solution in [&over_grpc, &over_http, &over_mqtt] {
        solution.create_topics(bus.as_ref()).await;
    }
    let (_clock, clock) = common::manual_clock();
    let solutions = vec![
        over_grpc.solution.clone(),
        over_http.solution.clone(),
        over_mqtt.solution.clone(),
    ];
    let running = common::start(solutions, bus.clone(), clock, IngestConfig::loopback()).await;

    // gRPC.
    let lines = common::mixed_batch("g");
    let inputs: Vec<_> = sinter_ingest::client::parse_json_lines(lines.join("\n").as_bytes())
        .into_iter()
        .map(|line| line.reading.expect("every line is a reading"))
        .collect();
    let mut client = running.grpc_client().await;
    let response = client
        .publish(PublishRequest {
            solution: over_grpc.qualified(),
            batch_id: "b-1".into(),
            readings: inputs.clone(),
        })
        .await
        .expect("publish")
        .into_inner();
    assert_eq!(response.batch_id, "b-1");
    assert_eq!(
        grpc_outcomes(&response.results),
        MIXED_OUTCOMES,
        "{response:#?}"
    );
    assert_eq!(
        (response.accepted, response.refused, response.duplicates),
        (4, 5, 0)
    );
    let refusal = &response.results[5];
    assert!(refusal.message.starts_with("ts: "), "{}", refusal.message);

    // HTTP, the Solution's slash percent-encoded in the path.
    let http_lines = common::mixed_batch("h");
    let body = format!("[{}]", http_lines.join(","));
    let url = format!(
        "{}/v1/solutions/{}/readings",
        running.http,
        over_http.qualified().replace('/', "%2F")
    );
    let answer = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status(), 200);
    let http: HttpResponse = answer.json().await.expect("JSON answer");
    let http_outcomes: Vec<_> = http
        .results
        .iter()
        .map(|r| reason(&r.reason_code))
        .collect();
    assert_eq!(http_outcomes, MIXED_OUTCOMES, "{http:#?}");

    // MQTT.
    wait_for_subscription(&over_mqtt, bus.as_ref()).await;
    let mqtt_lines = common::mixed_batch("m");
    common_mqtt_publish(&over_mqtt, &mqtt_lines).await;

    for (solution, tag, transport) in [
        (&over_grpc, "g", Transport::Grpc),
        (&over_http, "h", Transport::Http),
        (&over_mqtt, "m", Transport::Mqtt),
    ] {
        let expected_accepted = MIXED_OUTCOMES.iter().filter(|o| o.is_none()).count();
        let telemetry_records = common::read_topic(
            bus.as_ref(),
            &solution.topic(Stream::Telemetry),
            Duration::from_secs(30),
            |records| {
                common::readings(records)
                    .iter()
                    .filter(|r| r.message_id.starts_with(&format!("{tag}-")))
                    .count()
                    >= expected_accepted
            },
        )
        .await;
        let letter_records = common::read_topic(
            bus.as_ref(),
            &solution.topic(Stream::Deadletter),
            Duration::from_secs(30),
            |records| records.len() >= MIXED_OUTCOMES.len() - expected_accepted,
        )
        .await;
        let telemetry = common::readings(&telemetry_records);
        let letters = common::dead_letters(&letter_records);
        assert_eq!(
            common::outcomes_on_topics(tag, &telemetry, &letters),
            MIXED_OUTCOMES,
            "{transport:?}"
        );
        // Keyed by device id, byte for byte; stamped with the transport and the unit.
        for (record, reading) in telemetry_records.iter().zip(&telemetry) {
            assert_eq!(&record.key[..], reading.device_id.as_bytes());
            assert_eq!(reading.transport, transport as i32);
        }
        let seconds = telemetry
            .iter()
            .find(|r| r.message_id == format!("{tag}-4"))
            .expect("seconds");
        assert_eq!(seconds.timestamp_unit, TimestampUnit::Seconds as i32);
        assert_eq!(
            seconds.event_time.expect("time").seconds,
            common::NOW_SECS - 30
        );
        let numeric_string = telemetry
            .iter()
            .find(|r| r.message_id == format!("{tag}-3"))
            .expect("20.5");
        assert_eq!(numeric_string.value, Some(reading::Value::Number(20.5)));
        let serial = telemetry
            .iter()
            .find(|r| r.message_id == format!("{tag}-7"))
            .expect("serial");
        assert_eq!(serial.value, Some(reading::Value::Text("241408E4".into())));
        assert_eq!(serial.device_type, "centrifugal-pump");
        for letter in &letters {
            assert_eq!(letter.stage, Stage::Ingest as i32);
            assert!(!letter.reason.is_empty());
            assert!(letter.refused_at.is_some());
        }
        // The dead letter keeps the original bytes: the JSON line, or the protobuf input.
        let nan = letters
            .iter()
            .find(|l| l.reason_code == ReasonCode::NotFinite as i32)
            .expect("NaN dead letter");
        match transport {
            Transport::Grpc => assert_eq!(nan.original, inputs[1].encode_to_vec()),
            Transport::Http => assert_eq!(nan.original, http_lines[1].as_bytes()),
            _ => assert_eq!(nan.original, mqtt_lines[1].as_bytes()),
        }
        assert_eq!(nan.device_id, "p-1");
    }
    running.stop().await;
}

async fn common_mqtt_publish(solution: &TestSolution, lines: &[String]) {
    mqtt_publish(&solution.mqtt_prefix, lines).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_published_twice_is_stored_once() {
    let bus = common::kafka_bus().await;
    let solution = TestSolution::new("twice");
    solution.create_topics(bus.as_ref()).await;
    let (_clock, clock) = common::manual_clock();
    let config = IngestConfig {
        http_addr: None,
        mqtt_enabled: false,
        ..IngestConfig::default()
    };
    let running = common::start(vec![solution.solution.clone()], bus.clone(), clock, config).await;
    let lines = [
        // With a message id, and without one (deduplicated by device, metric, time, value).
        concat!(
            r#"{"device":"p-1","metric":"vibration_rms","value":2.5,"#,
            r#""ts":"2026-12-03T09:59:00Z","id":"twice-1"}"#
        ),
        r#"{"device":"p-1","metric":"vibration_rms","value":2.6,"ts":"2026-12-03T09:59:01Z"}"#,
    ];
    let inputs: Vec<_> = sinter_ingest::client::parse_json_lines(lines.join("\n").as_bytes())
        .into_iter()
        .map(|line| line.reading.expect("reading"))
        .collect();
    let mut client = running.grpc_client().await;
    let request = PublishRequest {
        solution: solution.qualified(),
        batch_id: String::new(),
        readings: inputs.clone(),
    };
    let first = client
        .publish(request.clone())
        .await
        .expect("first")
        .into_inner();
    assert_eq!((first.accepted, first.duplicates), (2, 0));
    let second = client.publish(request).await.expect("second").into_inner();
    assert_eq!((second.accepted, second.duplicates), (2, 2), "{second:#?}");
    assert!(second.results.iter().all(|r| r.accepted && r.duplicate));
    assert_eq!(first.results[0].reading_id, second.results[0].reading_id);
    // Over HTTP too, the same readings are recognised.
    running.stop().await;

    let records = common::read_topic(
        bus.as_ref(),
        &solution.topic(Stream::Telemetry),
        Duration::from_secs(8),
        |_| false,
    )
    .await;
    let ids: Vec<String> = common::readings(&records)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&first.results[0].reading_id));
    assert!(ids.contains(&first.results[1].reading_id));
}
