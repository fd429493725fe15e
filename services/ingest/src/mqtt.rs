//! MQTT sources: the subscriptions a Solution declares in `spec.sources[].mqtt`, read with
//! rumqttc.
//!
//! Each message's payload is one JSON reading (see [`crate::json`]), an array of them, or
//! `{"readings": [...]}`. The topic template's `{device}` level names the device; a payload
//! may leave `device` out, and one that names another device is refused as BAD_DEVICE_ID.
//!
//! Delivery: the session is persistent (clean session off, a stable client id) and acks are
//! manual, so a QoS 1 message is acknowledged to the broker only after every reading in it
//! was published or dead-lettered; when the bus fails the message is retried with backoff
//! and never acknowledged before. A lost connection is retried with backoff, and the broker
//! redelivers what was not acknowledged. At most `in_flight` messages per source are being
//! handled; beyond that the client stops reading, and the broker's own in-flight window
//! holds the rest.
//!
//! Limitation: messages of one source are handled concurrently (up to `in_flight`), so two
//! messages of one device that arrive close together may reach the telemetry partition in
//! either order; each reading keeps its event time, which is what the windows go by.
//!
//! Limitation: only plain TCP (`mqtt://`, `tcp://`); a source with `mqtts://` or `ssl://` is
//! logged as not started, and the service goes on without it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode};
use sinter_core::solution::{MqttSource, Qos};
use sinter_proto::events::v1::{ReasonCode, Transport};
use sinter_runtime::Shutdown;
use tokio::sync::Semaphore;

use crate::json;
use crate::pipeline::{Admission, Batch, BatchError, Candidate, Ingestor};
use crate::refusal::Refusal;

/// How MQTT sources behave, beyond what the Solution says.
#[derive(Clone, Debug)]
pub struct MqttSettings {
    /// Messages of one source handled at once; 64 unless told.
    pub in_flight: usize,
    /// The largest MQTT packet accepted, in bytes; 1 MiB unless told. Larger readings than
    /// `spec.ingest.maxReadingBytes` are refused one by one; a packet over this limit is
    /// refused by the client library, which drops the connection.
    pub max_packet_bytes: usize,
    /// MQTT keep-alive; 30 s unless told.
    pub keep_alive: Duration,
    /// The longest pause between reconnection attempts; 30 s unless told.
    pub max_backoff: Duration,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            in_flight: 64,
            max_packet_bytes: 1024 * 1024,
            keep_alive: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Why a source could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("MQTT source {url:?}: {reason}")]
    Url { url: String, reason: String },
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The broker's host and port from `mqtt://host[:port]` or `tcp://host[:port]`.
pub fn broker_address(url: &str) -> Result<(String, u16), MqttError> {
    let fail = |reason: &str| MqttError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| {
            if url.starts_with("mqtts://") || url.starts_with("ssl://") {
                fail("TLS MQTT sources are not supported yet; use mqtt:// or tcp://")
            } else {
                fail("expected mqtt://host:port")
            }
        })?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| fail("the port is not a number"))?;
            (host, port)
        }
        _ => (authority, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(fail("no host"));
    }
    Ok((host.to_owned(), port))
}

/// The client id a source uses when the Solution names none: stable across restarts, so the
/// broker keeps the session (and the unacknowledged messages) for it.
pub fn default_client_id(qualified_solution: &str, index: usize) -> String {
    format!(
        "sinter-ingest-{}-{index}",
        qualified_solution.replace('/', "-")
    )
}

/// Run one MQTT source of `solution` until `shutdown`.
pub async fn run_source(
    ingestor: Arc<Ingestor>,
    solution: String,
    index: usize,
    source: MqttSource,
    settings: MqttSettings,
    shutdown: Shutdown,
) -> Result<(), MqttError> {
    let (host, port) = broker_address(&source.url)?;
    let client_id = source
        .client_id
        .clone()
        .unwrap_or_else(|| default_client_id(&solution, index));
    let mut options = MqttOptions::new(client_id.clone(), host, port);
    options
        .set_keep_alive(settings.keep_alive)
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(settings.max_packet_bytes, settings.max_packet_bytes);
    let in_flight = settings.in_flight.max(1);
    let (client, mut events) = AsyncClient::new(options, in_flight * 2 + 16);
    let filter = source.topic.subscription();
    let qos = match source.qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
    };
    let permits = Arc::new(Semaphore::new(in_flight));
    let source = Arc::new(source);
    let mut backoff = FIRST_BACKOFF;
    tracing::info!(url = %source.url, topic = %filter, client_id = %client_id,
        "Starting MQTT source.");
    loop {
        let event = tokio::select! {
            () = shutdown.clone().wait() => break,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = FIRST_BACKOFF;
                tracing::info!(url = %source.url, topic = %filter, "Connected to the MQTT broker.");
                if let Err(error) = client.try_subscribe(filter.clone(), qos) {
                    tracing::error!(error = %error, topic = %filter, "Cannot subscribe.");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    tracing::error!(url = %source.url, topic = %filter,
                        "The MQTT broker refused the subscription.");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let handler = Handler {
                    ingestor: ingestor.clone(),
                    solution: solution.clone(),
                    source: source.clone(),
                    client: client.clone(),
                    shutdown: shutdown.clone(),
                    max_backoff: settings.max_backoff,
                };
                tokio::spawn(async move { handler.handle(publish, permit).await });
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(url = %source.url, error = %error, retry_in_ms = backoff.as_millis(),
                    "MQTT connection failed; reconnecting.");
                tokio::select! {
                    () = shutdown.clone().wait() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(settings.max_backoff);
            }
        }
    }
    // Messages still being handled are not acknowledged; the broker redelivers them.
    let _ = client.try_disconnect();
    tracing::info!(url = %source.url, topic = %filter, "MQTT source stopped.");
    Ok(())
}

/// Handles one message: its readings through the pipeline, then the acknowledgement.
struct Handler {
    ingestor: Arc<Ingestor>,
    solution: String,
    source: Arc<MqttSource>,
    client: AsyncClient,
    shutdown: Shutdown,
    max_backoff: Duration,
}

impl Handler {
    async fn handle(self, publish: Publish, permit: tokio::sync::OwnedSemaphorePermit) {
        let batch = batch(
            &self.solution,
            &self.source,
            &publish.topic,
            &publish.payload,
        );
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.ingestor.ingest(batch.clone(), Admission::Wait).await {
                Ok(_) => break,
                Err(error @ BatchError::UnknownSolution(_)) => {
                    // Cannot happen: the source belongs to a Solution the ingestor serves.
                    tracing::error!(error = %error, topic = %publish.topic,
                        "MQTT message for an unknown Solution; acknowledged and dropped.");
                    break;
                }
                Err(error) => {
                    tracing::warn!(error = %error, topic = %publish.topic,
                        retry_in_ms = backoff.as_millis(), "MQTT message not delivered; retrying.");
                    tokio::select! {
                        () = self.shutdown.clone().wait() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
        drop(permit);
        if let Err(error) = self.client.ack(&publish).await {
            tracing::warn!(error = %error, topic = %publish.topic,
                "Cannot acknowledge an MQTT message; the broker will redeliver it.");
        }
    }
}

/// The batch of readings in one MQTT message.
pub fn batch(solution: &str, source: &MqttSource, topic: &str, payload: &Bytes) -> Batch {
    let device = source.topic.device_in(topic);
    let candidates = match json::split_readings(payload) {
        Ok(split) => split
            .readings
            .into_iter()
            .map(|bytes| with_topic_device(Candidate::from_json(bytes), device, topic))
            .collect(),
        Err(refusal) => vec![Candidate::refused(refusal, payload.clone())],
    };
    Batch {
        solution: solution.to_owned(),
        transport: Transport::Mqtt,
        source: format!("mqtt:{topic}"),
        candidates,
        // MQTT 3.1.1 has no headers to carry a trace context.
        trace_headers: Vec::new(),
    }
}

fn with_topic_device(mut candidate: Candidate, device: Option<&str>, topic: &str) -> Candidate {
    let Ok(input) = &mut candidate.input else {
        return candidate;
    };
    let refusal = match device {
        None => Some(Refusal::new(
            ReasonCode::BadDeviceId,
            format!("topic {topic:?} names no device where the template's {{device}} is"),
        )),
        Some(device) if input.device_id.is_empty() => {
            input.device_id = device.to_owned();
            None
        }
        Some(device) if input.device_id != device => Some(Refusal::new(
            ReasonCode::BadDeviceId,
            format!(
                "device: the payload names {:?} but the topic names {device:?}",
                input.device_id
            ),
        )),
        Some(_) => None,
    };
    if let Some(refusal) = refusal {
        candidate.input = Err(refusal);
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        assert_eq!(
            broker_address("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(
            broker_address("tcp://broker").unwrap(),
            ("broker".into(), 1883)
        );
        assert_eq!(
            broker_address("mqtt://[::1]:1884").unwrap(),
            ("::1".into(), 1884)
        );
        let tls = broker_address("mqtts://broker:8883")
            .unwrap_err()
            .to_string();
        assert!(tls.contains("not supported"), "{tls}");
        assert!(broker_address("http://x").is_err());
    }

    #[test]
    fn the_topic_names_the_device() {
        let source = MqttSource {
            url: "mqtt://127.0.0.1:1883".into(),
            topic: sinter_core::solution::TopicTemplate::parse("plant/+/pumps/{device}/telemetry")
                .unwrap(),
            qos: Qos::AtLeastOnce,
            client_id: None,
        };
        let payload = Bytes::from_static(
            br#"[{"metric":"t","value":1},{"device":"p-2","metric":"t","value":1},
                {"device":"p-1","metric":"t","value":1}]"#,
        );
        let batch = batch(
            "default/x",
            &source,
            "plant/n/pumps/p-1/telemetry",
            &payload,
        );
        assert_eq!(batch.source, "mqtt:plant/n/pumps/p-1/telemetry");
        let inputs: Vec<_> = batch.candidates.iter().map(|c| c.input.clone()).collect();
        assert_eq!(inputs[0].as_ref().unwrap().device_id, "p-1");
        assert_eq!(
            inputs[1].as_ref().unwrap_err().code,
            ReasonCode::BadDeviceId
        );
        assert_eq!(inputs[2].as_ref().unwrap().device_id, "p-1");
    }
}
