//! Device id patterns such as `p-*`: how a device id is bound to its device type.

use std::fmt;

/// A pattern of device ids: `*` stands for any run of characters (also none), `?` for exactly
/// one, anything else for itself. `p-*` matches `p-17`; `gw?-*` matches `gw4-000123`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DevicePattern {
    text: String,
}

impl DevicePattern {
    /// Check and keep a pattern. Device ids travel as one MQTT topic level, so a pattern may
    /// not contain whitespace, `/`, `+`, `#`, `{` or `}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a device id pattern must not be empty".to_owned());
        }
        if let Some(bad) = text
            .chars()
            .find(|c| c.is_whitespace() || "/+#{}".contains(*c))
        {
            return Err(format!(
                "device id pattern {text:?} contains {bad:?}; device ids cannot contain \
                 whitespace, '/', '+', '#', '{{' or '}}'"
            ));
        }
        Ok(DevicePattern {
            text: text.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `device` (a device id) matches the whole pattern.
    pub fn matches(&self, device: &str) -> bool {
        let pattern: Vec<char> = self.text.chars().collect();
        let device: Vec<char> = device.chars().collect();
        let (mut p, mut d) = (0, 0);
        // Where the last `*` was, and how much of the device id it has swallowed so far.
        let mut backtrack: Option<(usize, usize)> = None;
        while d < device.len() {
            match pattern.get(p) {
                Some('*') => {
                    backtrack = Some((p, d));
                    p += 1;
                }
                Some(&c) if c == '?' || c == device[d] => {
                    p += 1;
                    d += 1;
                }
                _ => match backtrack {
                    Some((star, swallowed)) => {
                        p = star + 1;
                        d = swallowed + 1;
                        backtrack = Some((star, swallowed + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|c| *c == '*')
    }
}

impl fmt::Display for DevicePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for DevicePattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, device: &str) -> bool {
        DevicePattern::parse(pattern).unwrap().matches(device)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("p-*", "p-17"));
        assert!(matches("p-*", "p-"));
        assert!(!matches("p-*", "q-17"));
        assert!(matches("gw?-*", "gw4-000123"));
        assert!(!matches("gw?-*", "gw-000123"));
        assert!(matches("*-pump-*", "north-pump-3"));
        assert!(matches("*a*b", "xaxxab"));
        assert!(!matches("*a*b", "xaxxa"));
        assert!(matches("p-17", "p-17"));
        assert!(!matches("p-17", "p-170"));
        assert!(matches("*", ""));
    }

    #[test]
    fn refuses_characters_a_device_id_cannot_have() {
        assert!(DevicePattern::parse("").is_err());
        assert!(DevicePattern::parse("p/*").is_err());
        assert!(DevicePattern::parse("p-+").is_err());
        assert!(DevicePattern::parse("p *").is_err());
    }
}
