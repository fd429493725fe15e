//! The device id character set: what an id may contain so that it round-trips unchanged
//! through gRPC, MQTT topic levels, HTTP and Kafka keys.
//!
//! A device id is 1 to 128 characters, each an ASCII letter, digit, `-`, `_`, `.` or `:`.
//! Ids are case-sensitive and never rewritten: `P-17` and `p-17` are two devices. The set
//! excludes what MQTT gives meaning to (`/`, `+`, `#`), what URLs and shells escape, and
//! whitespace, so the id a device sends is the id on the Kafka key, byte for byte.

use sinter_proto::events::v1::ReasonCode;

use crate::refusal::Refusal;

/// The longest device id accepted, in characters (all are ASCII, so also in bytes).
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Whether `c` may appear in a device id.
pub fn is_device_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// Check `id` against the device id rules.
pub fn check(id: &str) -> Result<(), Refusal> {
    if id.is_empty() {
        return Err(Refusal::new(
            ReasonCode::MissingField,
            "device: a device id is required",
        ));
    }
    if let Some(bad) = id.chars().find(|c| !is_device_id_char(*c)) {
        return Err(Refusal::new(
            ReasonCode::BadDeviceId,
            format!(
                "device: {id:?} contains {bad:?}; a device id may contain ASCII letters, \
                 digits, '-', '_', '.' and ':' only"
            ),
        ));
    }
    if id.len() > MAX_DEVICE_ID_LEN {
        return Err(Refusal::new(
            ReasonCode::BadDeviceId,
            format!(
                "device: the id is {} characters long; at most {MAX_DEVICE_ID_LEN} are allowed",
                id.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in ["p-17", "gw4-000123", "241408E4", "site.a:pump_3"] {
            assert_eq!(check(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn refuses_what_does_not_round_trip() {
        for (id, code) in [
            ("", ReasonCode::MissingField),
            ("p/17", ReasonCode::BadDeviceId),
            ("p+", ReasonCode::BadDeviceId),
            ("p 17", ReasonCode::BadDeviceId),
            ("p-é", ReasonCode::BadDeviceId),
            ("p%2F", ReasonCode::BadDeviceId),
        ] {
            assert_eq!(check(id).map_err(|r| r.code), Err(code), "{id:?}");
        }
        let long = "x".repeat(MAX_DEVICE_ID_LEN + 1);
        let refusal = check(&long).unwrap_err();
        assert!(refusal.message.contains("129 characters"), "{refusal}");
        assert!(check(&long[1..]).is_ok());
    }
}
