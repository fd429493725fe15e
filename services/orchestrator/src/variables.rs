//! A situation as the variables its rules and templates see: `detection`, `asset`,
//! `site`, and one variable per context provider.

use serde_json::{Map, Value, json};
use sinter_proto::events::v1::{DetectorKind, Severity, Situation, detection::Transition};

/// The variables of `situation`, as one JSON object keyed by variable name.
///
/// `providers` are the Solution's context providers: each becomes a variable holding its
/// rows (a list of objects), or `null` when the lookup failed or the situation lacks it,
/// so a rule that reads it fails visibly for that situation instead of matching on
/// nothing.
pub fn situation_variables(situation: &Situation, providers: &[String]) -> Map<String, Value> {
    let mut variables = Map::new();
    variables.insert("detection".into(), detection(situation));
    let (asset, site) = asset_and_site(situation);
    variables.insert("asset".into(), asset);
    variables.insert("site".into(), site);
    for name in providers {
        let rows = situation
            .providers
            .iter()
            .find(|result| &result.provider == name)
            .filter(|result| result.error.is_empty())
            .and_then(|result| serde_json::from_str::<Value>(&result.rows_json).ok())
            .unwrap_or(Value::Null);
        variables.insert(name.clone(), rows);
    }
    variables
}

/// The word for a severity, as the Solution format spells it; empty when unspecified.
pub fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Unspecified => "",
        Severity::Info => "info",
        Severity::Minor => "minor",
        Severity::Major => "major",
        Severity::Critical => "critical",
    }
}

/// The severity the Solution format spells `word`.
pub fn severity_from_word(word: &str) -> Severity {
    match word {
        "info" => Severity::Info,
        "minor" => Severity::Minor,
        "major" => Severity::Major,
        "critical" => Severity::Critical,
        _ => Severity::Unspecified,
    }
}

fn detection(situation: &Situation) -> Value {
    let Some(detection) = &situation.detection else {
        return Value::Object(Map::new());
    };
    let kind = match detection.detector() {
        DetectorKind::Unspecified => "",
        DetectorKind::Threshold => "threshold",
        DetectorKind::RateOfChange => "rate-of-change",
        DetectorKind::Silence => "silence",
        DetectorKind::Anomaly => "anomaly",
    };
    let state = match detection.transition() {
        Transition::Unspecified => "",
        Transition::Raised => "raised",
        Transition::Cleared => "cleared",
    };
    let ts = detection
        .event_time
        .as_ref()
        .and_then(sinter_proto::time::from_proto)
        .map(|ts| ts.to_string())
        .unwrap_or_default();
    json!({
        "id": detection.id,
        "incidentId": detection.incident_id,
        "device": detection.device_id,
        "deviceType": detection.device_type,
        "metric": detection.metric,
        "detector": detection.detector_name,
        "kind": kind,
        "severity": severity_word(detection.severity()),
        "value": detection.value,
        "score": detection.score,
        "state": state,
        "ts": ts,
        "message": detection.message,
    })
}

fn asset_and_site(situation: &Situation) -> (Value, Value) {
    let Some(asset) = &situation.asset else {
        return (Value::Object(Map::new()), Value::Object(Map::new()));
    };
    let attributes = serde_json::from_str::<Value>(&asset.attributes_json)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let path: Vec<Value> = asset
        .path
        .iter()
        .map(|node| json!({"id": node.id, "name": node.name, "level": node.level}))
        .collect();
    let work_orders: Vec<Value> = asset
        .open_work_orders
        .iter()
        .map(|order| {
            json!({"id": order.id, "externalId": order.external_id, "title": order.title,
                "status": order.status})
        })
        .collect();
    let asset_value = json!({
        "id": asset.asset_id,
        "name": asset.asset_name,
        "externalId": asset.external_id,
        "criticality": asset.criticality,
        "owner": asset.owner_team,
        "attributes": attributes,
        "path": path,
        "openWorkOrders": work_orders,
    });
    let site = json!({"id": asset.site_id, "name": asset.site_name});
    (asset_value, site)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sinter_proto::events::v1::{AssetContext, Detection, ProviderResult};

    #[test]
    fn a_situation_becomes_its_variables() {
        let situation = Situation {
            id: "st-1".into(),
            detection: Some(Detection {
                device_id: "p-17".into(),
                metric: "bearing_temperature".into(),
                detector: DetectorKind::Threshold as i32,
                detector_name: "bearing-hot".into(),
                severity: Severity::Major as i32,
                transition: Transition::Raised as i32,
                value: 91.5,
                ..Detection::default()
            }),
            asset: Some(AssetContext {
                asset_name: "P-17".into(),
                criticality: "high".into(),
                site_name: "North".into(),
                attributes_json: r#"{"ratedKw": 75}"#.into(),
                ..AssetContext::default()
            }),
            providers: vec![ProviderResult {
                provider: "spares".into(),
                rows_json: r#"[{"part": "6205"}]"#.into(),
                error: String::new(),
            }],
            ..Situation::default()
        };
        let providers = vec!["spares".to_owned(), "orders".to_owned()];
        let variables = situation_variables(&situation, &providers);
        assert_eq!(variables["detection"]["state"], "raised");
        assert_eq!(variables["detection"]["kind"], "threshold");
        assert_eq!(variables["detection"]["severity"], "major");
        assert_eq!(variables["asset"]["attributes"]["ratedKw"], 75);
        assert_eq!(variables["site"]["name"], "North");
        assert_eq!(variables["spares"][0]["part"], "6205");
        assert_eq!(variables["orders"], Value::Null);
    }
}
