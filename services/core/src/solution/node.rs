//! Decoding one part of a document on its own, so a mistake in it hides no mistake elsewhere.
//!
//! Every mapping and list of the raw document shape is a [`Node`]: it is first read as a
//! plain YAML value and then decoded by itself, with `serde_ignored` collecting every unknown
//! field and `serde_path_to_error` locating a value of the wrong shape. The problems are kept
//! with paths relative to the node and are reported, under the node's own path, by whoever
//! converts it.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};

use super::error::Problems;
use super::path::Path;

/// A part of a document decoded on its own.
#[derive(Debug)]
pub(crate) struct Node<T> {
    state: State<T>,
}

#[derive(Debug)]
enum State<T> {
    /// The key was missing, or its value was `null`.
    Absent,
    /// The value was read; `unknown` lists the fields nobody asked for.
    Decoded { value: T, unknown: Vec<Path> },
    /// The value had the wrong shape at `at`; the unknown fields before that point are kept.
    Broken {
        unknown: Vec<Path>,
        at: Path,
        message: String,
    },
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            state: State::Absent,
        }
    }
}

impl<T: DeserializeOwned> Node<T> {
    /// Decode `value` as a `T`, collecting unknown fields instead of failing on them.
    pub(crate) fn decode(value: serde_yaml::Value) -> Self {
        if value.is_null() {
            return Node::default();
        }
        let mut unknown = Vec::new();
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(value, &mut track);
        let decoded = serde_ignored::deserialize(tracked, |ignored| {
            unknown.push(Path::from_ignored(&ignored));
        });
        let state = match decoded {
            Ok(value) => State::Decoded { value, unknown },
            Err(error) => State::Broken {
                unknown,
                at: Path::from_tracked(&track.path()),
                message: error.to_string(),
            },
        };
        Node { state }
    }
}

impl<T> Node<T> {
    /// Whether the key was present with a non-null value.
    pub(crate) fn is_present(&self) -> bool {
        !matches!(self.state, State::Absent)
    }

    /// The decoded value, after reporting under `path` the fields that are not part of the
    /// Solution format and the value of the wrong shape, if any. `None` when absent or broken.
    pub(crate) fn take(self, path: &Path, problems: &mut Problems) -> Option<T> {
        match self.state {
            State::Absent => None,
            State::Decoded { value, unknown } => {
                report_unknown(path, &unknown, problems);
                Some(value)
            }
            State::Broken {
                unknown,
                at,
                message,
            } => {
                report_unknown(path, &unknown, problems);
                problems.report(&path.join(&at), tidy(message));
                None
            }
        }
    }
}

/// The items of a list that decoded, each with its path, after reporting the problems of the
/// list and of every item under their paths.
pub(crate) fn take_list<T>(
    list: Node<Vec<Node<T>>>,
    path: &Path,
    problems: &mut Problems,
) -> Vec<(Path, T)> {
    let items = list.take(path, problems).unwrap_or_default();
    items
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let item_path = path.index(index);
            item.take(&item_path, problems)
                .map(|value| (item_path, value))
        })
        .collect()
}

/// Serde names the Rust type it expected (`expected struct RawWindow`); a reader of the
/// document wants the YAML shape.
fn tidy(mut message: String) -> String {
    if let Some(at) = message
        .find("expected struct ")
        .or_else(|| message.find("expected a map"))
    {
        message.truncate(at);
        message.push_str("expected a mapping");
    }
    message
        .replace("invalid type: sequence", "invalid type: a list")
        .replace("invalid type: map", "invalid type: a mapping")
        .replace("expected a sequence", "expected a list")
}

fn report_unknown(path: &Path, unknown: &[Path], problems: &mut Problems) {
    for field in unknown {
        problems.report(&path.join(field), "unknown field");
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Node<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        Ok(Node::decode(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Inner {
        size: Option<serde_yaml::Value>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Outer {
        window: Node<Inner>,
        rules: Node<Vec<Node<Inner>>>,
    }

    fn decode(text: &str) -> (Option<Outer>, Problems) {
        let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let mut problems = Problems::default();
        let outer = Node::<Outer>::decode(value).take(&Path::root().field("spec"), &mut problems);
        (outer, problems)
    }

    fn messages(problems: Problems) -> Vec<String> {
        match problems.into_result(()) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    #[test]
    fn reports_every_unknown_field_with_its_full_path() {
        let (outer, problems) = decode("{extra: 1, rules: [{size: 1, sise: 2}, {colour: red}]}");
        let outer = outer.unwrap();
        let mut problems = problems;
        let rules = outer
            .rules
            .take(&Path::root().field("spec").field("rules"), &mut problems);
        for (index, rule) in rules.unwrap().into_iter().enumerate() {
            rule.take(
                &Path::root().field("spec").field("rules").index(index),
                &mut problems,
            );
        }
        assert_eq!(
            messages(problems),
            [
                "spec.extra: unknown field",
                "spec.rules[0].sise: unknown field",
                "spec.rules[1].colour: unknown field",
            ]
        );
    }

    #[test]
    fn a_wrong_shape_breaks_only_its_own_node() {
        let (outer, mut problems) = decode("{window: [1, 2], rules: [{size: 1}]}");
        let outer = outer.unwrap();
        let window = outer
            .window
            .take(&Path::root().field("spec").field("window"), &mut problems);
        assert!(window.is_none());
        assert!(outer.rules.is_present());
        let text = messages(problems).join("\n");
        assert_eq!(
            text,
            "spec.window: invalid type: a list, expected a mapping"
        );
    }

    #[test]
    fn null_counts_as_absent() {
        let (outer, problems) = decode("{window: null}");
        assert!(!outer.unwrap().window.is_present());
        assert!(messages(problems).is_empty());
    }
}
