//! Checks of registry fields, each error naming the field and the reason.

use crate::error::RegistryError;

/// Criticalities an asset may have, lowest first.
pub const CRITICALITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// Longest id accepted.
const MAX_ID_LEN: usize = 200;

/// An id: not empty, at most 200 characters, no whitespace or control characters.
pub fn id(field: &str, value: &str) -> Result<(), RegistryError> {
    if value.is_empty() {
        return Err(RegistryError::invalid(field, "is required"));
    }
    if value.chars().count() > MAX_ID_LEN {
        return Err(RegistryError::invalid(
            field,
            format!("is longer than {MAX_ID_LEN} characters"),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RegistryError::invalid(
            field,
            format!("{value:?} has whitespace or control characters"),
        ));
    }
    Ok(())
}

/// A required text: not empty after trimming.
pub fn required(field: &str, value: &str) -> Result<(), RegistryError> {
    if value.trim().is_empty() {
        return Err(RegistryError::invalid(field, "is required"));
    }
    Ok(())
}

/// A criticality from [`CRITICALITIES`], in its stored (lowercase) form.
///
/// Enum text is matched ignoring ASCII case everywhere (API, list filters, imports) and
/// stored in lowercase, so `HIGH`, `High` and `high` are one criticality.
pub fn criticality(field: &str, value: &str) -> Result<&'static str, RegistryError> {
    if let Some(known) = CRITICALITIES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(value))
    {
        return Ok(known);
    }
    Err(RegistryError::invalid(
        field,
        format!("{value:?} is not one of {}", CRITICALITIES.join(", ")),
    ))
}

/// A site's timezone: empty (not given) or an IANA time zone name such as
/// `Europe/Berlin` or `UTC`, spelled as the tz database spells it.
pub fn timezone(field: &str, value: &str) -> Result<(), RegistryError> {
    if value.is_empty() {
        return Ok(());
    }
    sinter_core::zone::parse(value)
        .map(drop)
        .map_err(|reason| RegistryError::invalid(field, reason))
}

/// Attributes: a JSON object (empty text means `{}`), returned in compact form.
pub fn attributes(field: &str, value: &str) -> Result<String, RegistryError> {
    if value.trim().is_empty() {
        return Ok("{}".to_owned());
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(parsed @ serde_json::Value::Object(_)) => Ok(parsed.to_string()),
        Ok(other) => Err(RegistryError::invalid(
            field,
            format!("must be a JSON object, not {}", json_kind(&other)),
        )),
        Err(error) => Err(RegistryError::invalid(
            field,
            format!("is not valid JSON: {error}"),
        )),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_the_reason() {
        let error = id("asset.id", "a b").unwrap_err().to_string();
        assert_eq!(
            error,
            "asset.id: \"a b\" has whitespace or control characters"
        );
        assert_eq!(
            criticality("asset.criticality", "urgent")
                .unwrap_err()
                .to_string(),
            "asset.criticality: \"urgent\" is not one of low, medium, high, critical"
        );
        assert_eq!(
            attributes("asset.attributes_json", "[1]")
                .unwrap_err()
                .to_string(),
            "asset.attributes_json: must be a JSON object, not an array"
        );
        assert!(
            attributes("x", "{")
                .unwrap_err()
                .to_string()
                .starts_with("x: is not valid JSON")
        );
        assert_eq!(attributes("x", " {\"kw\": 75} ").unwrap(), "{\"kw\":75}");
        assert_eq!(attributes("x", "").unwrap(), "{}");
    }

    #[test]
    fn enum_text_ignores_case_and_comes_back_lowercase() {
        assert_eq!(criticality("c", "HIGH").unwrap(), "high");
        assert_eq!(criticality("c", "Critical").unwrap(), "critical");
        assert!(criticality("c", "hi").is_err());
        assert!(criticality("c", "").is_err());
    }

    #[test]
    fn timezones_are_iana_names_or_empty() {
        for good in ["", "UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"] {
            assert!(timezone("t", good).is_ok(), "{good}");
        }
        for bad in [
            "Berlin",
            "europe/berlin",
            "+02:00",
            "Mars/Olympus_Mons",
            " UTC",
        ] {
            assert!(timezone("t", bad).is_err(), "{bad}");
        }
    }
}
