//! Where readings come from besides the always-on gRPC and HTTP APIs: MQTT subscriptions.

use serde::Serialize;

use super::error::Problems;
use super::mqtt::TopicTemplate;
use super::node::take_list;
use super::path::Path;
use super::raw::{List, RawMqtt, RawSource};
use super::url;

/// One place ingest subscribes to for readings.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// Readings published to an MQTT broker, one JSON reading per message.
    Mqtt(MqttSource),
}

/// An MQTT subscription.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MqttSource {
    /// The broker: `mqtt://host:1883` or `mqtts://host:8883`; no credentials in it.
    pub url: String,
    /// The topic template; its `{device}` level is the device id, as in
    /// `plant/+/pumps/{device}/telemetry`.
    pub topic: TopicTemplate,
    /// The quality of service to subscribe with; 1 (at least once) unless told.
    pub qos: Qos,
    /// The MQTT client id; when absent the ingest service derives one from the Solution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// MQTT quality of service, written as its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qos {
    /// 0: a message may be lost. For readings that are resent anyway.
    AtMostOnce,
    /// 1: a message may come twice, never not at all; dedup takes care of the twice.
    AtLeastOnce,
}

impl Qos {
    /// The number MQTT uses for this level.
    pub fn level(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
        }
    }
}

impl Serialize for Qos {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.level())
    }
}

/// Read and check `spec.sources`.
pub(crate) fn build(raw: List<RawSource>, path: &Path, problems: &mut Problems) -> Vec<Source> {
    let mut sources = Vec::new();
    for (item_path, raw_source) in take_list(raw, path, problems) {
        let mqtt_path = item_path.field("mqtt");
        match raw_source.mqtt.take(&mqtt_path, problems) {
            Some(raw_mqtt) => {
                if let Some(mqtt) = build_mqtt(raw_mqtt, &mqtt_path, problems) {
                    sources.push(Source::Mqtt(mqtt));
                }
            }
            None if problems.any_at_or_below(&item_path) => {}
            None => problems.report(&item_path, "a source needs one of: mqtt"),
        }
    }
    sources
}

fn build_mqtt(raw: RawMqtt, path: &Path, problems: &mut Problems) -> Option<MqttSource> {
    let url_path = path.field("url");
    let url = raw
        .url
        .required(&url_path, problems)
        .text(&url_path, problems);
    if let Some(url) = &url
        && let Err(message) = url::check(url, &["mqtt", "mqtts", "tcp", "ssl"])
    {
        problems.report(&url_path, message);
    }
    let topic_path = path.field("topic");
    let topic = raw
        .topic
        .required(&topic_path, problems)
        .text(&topic_path, problems)
        .and_then(|text| {
            TopicTemplate::parse(&text)
                .map_err(|m| problems.report(&topic_path, m))
                .ok()
        });
    let qos_path = path.field("qos");
    let qos = match raw.qos.count(0, &qos_path, problems) {
        None | Some(1) => Qos::AtLeastOnce,
        Some(0) => Qos::AtMostOnce,
        Some(other) => {
            problems.report(&qos_path, format!("qos must be 0 or 1, not {other}"));
            Qos::AtLeastOnce
        }
    };
    let client_id = raw
        .client_id
        .non_empty_text(&path.field("clientId"), problems);
    Some(MqttSource {
        url: url?,
        topic: topic?,
        qos,
        client_id,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::spec_errors;
    use super::*;

    #[test]
    fn an_mqtt_source_reads_with_defaults() {
        let yaml = super::super::tests::document(&format!(
            "{}    sources:\n      - mqtt: {{url: \"mqtt://broker:1883\", topic: \"a/{{device}}/t\"}}\n",
            super::super::tests::DEVICES
        ));
        let solution = super::super::Solution::from_yaml(&yaml).unwrap();
        let Source::Mqtt(mqtt) = &solution.spec.sources[0];
        assert_eq!(mqtt.qos, Qos::AtLeastOnce);
        assert_eq!(mqtt.topic.subscription(), "a/+/t");
        assert_eq!(mqtt.client_id, None);
    }

    #[test]
    fn mqtt_settings_are_checked() {
        let found = spec_errors(
            "    sources:
      - mqtt: {url: \"http://broker\", topic: \"plant/+/pumps/+/telemetry\", qos: 2}
      - mqtt: {url: \"mqtt://user:pw@broker\", topic: \"p-{device}/t\", clientId: \"\"}
      - {}
",
        );
        assert_eq!(found.len(), 7, "{found:#?}");
        assert!(
            found[0]
                .starts_with("spec.sources[0].mqtt.url: \"http://broker\" must start with mqtt://")
        );
        assert!(found[1].starts_with("spec.sources[0].mqtt.topic: topic \"plant/+/pumps/+/telemetry\" does not say where the device id is"));
        assert_eq!(
            found[2],
            "spec.sources[0].mqtt.qos: qos must be 0 or 1, not 2"
        );
        assert!(found[3].contains("contains credentials"), "{}", found[3]);
        assert!(
            found[4].contains("{device} must be a whole level"),
            "{}",
            found[4]
        );
        assert_eq!(found[5], "spec.sources[1].mqtt.clientId: must not be empty");
        assert_eq!(found[6], "spec.sources[2]: a source needs one of: mqtt");
    }

    #[test]
    fn a_misspelt_source_kind_is_one_mistake() {
        let found = spec_errors("    sources: [{mqt: {url: \"mqtt://b\", topic: \"{device}\"}}]\n");
        assert_eq!(found, ["spec.sources[0].mqt: unknown field"]);
    }
}
