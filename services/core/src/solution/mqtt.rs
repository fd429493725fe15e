//! MQTT topic templates (`plant/+/pumps/{device}/telemetry`) and the device id in a topic.

use std::fmt;

/// One level of a topic template, between slashes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Level {
    /// Matches exactly this text.
    Literal(String),
    /// `+`: matches any one level.
    AnyOne,
    /// `#`: matches all remaining levels (also none); only last.
    AnyRest,
    /// `{device}`: matches one level, which is the device id.
    Device,
}

/// A topic filter with one level marked as the device id.
///
/// Rules: levels are separated by `/` and none is empty; `{device}` appears exactly once, as a
/// whole level; `+` and `#` stand alone in their level and `#` only last; other levels are
/// plain text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicTemplate {
    text: String,
    levels: Vec<Level>,
}

/// How the device level is written in a template.
const DEVICE: &str = "{device}";

impl TopicTemplate {
    /// Check and keep a template.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut levels = Vec::new();
        let parts: Vec<&str> = text.split('/').collect();
        for (position, part) in parts.iter().enumerate() {
            let level = match *part {
                "" => return Err(format!("topic {text:?} has an empty level")),
                DEVICE => Level::Device,
                "+" => Level::AnyOne,
                "#" if position + 1 == parts.len() => Level::AnyRest,
                "#" => return Err(format!("in topic {text:?}, '#' may only be the last level")),
                part if part.contains(DEVICE) => {
                    return Err(format!(
                        "in topic {text:?}, {{device}} must be a whole level, not part of {part:?}"
                    ));
                }
                part if part.contains(['+', '#', '{', '}', '\0']) => {
                    return Err(format!(
                        "in topic {text:?}, level {part:?} mixes text with '+', '#', '{{' or \
                         '}}'; a wildcard must be a whole level and the only placeholder is \
                         {{device}}"
                    ));
                }
                part => Level::Literal(part.to_owned()),
            };
            levels.push(level);
        }
        match levels
            .iter()
            .filter(|level| **level == Level::Device)
            .count()
        {
            1 => Ok(TopicTemplate {
                text: text.to_owned(),
                levels,
            }),
            0 => Err(format!(
                "topic {text:?} does not say where the device id is; put {{device}} in place of \
                 that level, e.g. \"plant/+/pumps/{{device}}/telemetry\""
            )),
            _ => Err(format!("topic {text:?} has {{device}} more than once")),
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The MQTT topic filter to subscribe to: `{device}` becomes `+`.
    pub fn subscription(&self) -> String {
        let levels: Vec<&str> = self
            .levels
            .iter()
            .map(|level| match level {
                Level::Literal(text) => text.as_str(),
                Level::AnyOne | Level::Device => "+",
                Level::AnyRest => "#",
            })
            .collect();
        levels.join("/")
    }

    /// The device id in `topic`, when `topic` matches the template; `None` otherwise or when
    /// the device level is empty.
    pub fn device_in<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let parts: Vec<&str> = topic.split('/').collect();
        let mut device = None;
        for (position, level) in self.levels.iter().enumerate() {
            match level {
                Level::AnyRest => return device,
                Level::Literal(text) => {
                    if parts.get(position) != Some(&text.as_str()) {
                        return None;
                    }
                }
                Level::AnyOne => {
                    parts.get(position)?;
                }
                Level::Device => {
                    device = Some(*parts.get(position)?).filter(|id| !id.is_empty());
                    device?;
                }
            }
        }
        if parts.len() == self.levels.len() {
            device
        } else {
            None
        }
    }
}

impl fmt::Display for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for TopicTemplate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> TopicTemplate {
        TopicTemplate::parse(text).unwrap()
    }

    #[test]
    fn subscribes_with_the_device_level_as_a_wildcard() {
        let telemetry = template("plant/+/pumps/{device}/telemetry");
        assert_eq!(telemetry.subscription(), "plant/+/pumps/+/telemetry");
        assert_eq!(template("{device}/#").subscription(), "+/#");
    }

    #[test]
    fn finds_the_device_id_in_a_topic() {
        let telemetry = template("plant/+/pumps/{device}/telemetry");
        assert_eq!(
            telemetry.device_in("plant/north/pumps/p-17/telemetry"),
            Some("p-17")
        );
        assert_eq!(telemetry.device_in("plant/north/pumps/p-17/status"), None);
        assert_eq!(telemetry.device_in("plant/north/pumps/p-17"), None);
        assert_eq!(
            telemetry.device_in("plant/north/pumps/p-17/telemetry/x"),
            None
        );
        assert_eq!(telemetry.device_in("plant/north/pumps//telemetry"), None);
        let rest = template("site/{device}/#");
        assert_eq!(rest.device_in("site/gw4/a/b"), Some("gw4"));
        assert_eq!(rest.device_in("site/gw4"), Some("gw4"));
    }

    #[test]
    fn refuses_malformed_templates() {
        for (text, expected) in [
            (
                "plant/+/pumps/+/telemetry",
                "does not say where the device id is",
            ),
            ("plant/{device}/{device}", "more than once"),
            ("plant/p-{device}/telemetry", "must be a whole level"),
            ("plant/#/{device}", "may only be the last level"),
            ("plant//{device}", "empty level"),
            ("plant/a+/{device}", "mixes text"),
            ("plant/{site}/{device}", "mixes text"),
        ] {
            let message = TopicTemplate::parse(text).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }
}
