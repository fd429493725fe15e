//! Leaf values of a document (strings, numbers, durations, words), checked one by one.
//!
//! They are read leniently, so a wrong value is reported with its path and hides nothing
//! else.

use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::duration;
use super::error::Problems;
use super::keyword::Keyword;
use super::path::Path;

/// A leaf as written in the document, not yet checked; absent when missing or `null`.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub(crate) struct Scalar(Option<Value>);

impl Scalar {
    /// Whether the key was present with a non-null value.
    pub(crate) fn is_present(&self) -> bool {
        self.0.is_some()
    }

    /// Report a missing required field; returns `self` for chaining a conversion.
    pub(crate) fn required(&self, path: &Path, problems: &mut Problems) -> &Scalar {
        if self.0.is_none() {
            problems.report(path, "is required");
        }
        self
    }

    /// The raw YAML value, for values kept opaque.
    pub(crate) fn value(&self) -> Option<&Value> {
        self.0.as_ref()
    }

    /// A string; numbers and booleans are refused (quote them to mean text).
    pub(crate) fn text(&self, path: &Path, problems: &mut Problems) -> Option<String> {
        let value = self.0.as_ref()?;
        match value {
            Value::String(text) => Some(text.clone()),
            other => wrong(path, problems, "a string", other),
        }
    }

    /// A non-empty string.
    pub(crate) fn non_empty_text(&self, path: &Path, problems: &mut Problems) -> Option<String> {
        let text = self.text(path, problems)?;
        if text.trim().is_empty() {
            problems.report(path, "must not be empty");
            return None;
        }
        Some(text)
    }

    /// A finite number.
    pub(crate) fn number(&self, path: &Path, problems: &mut Problems) -> Option<f64> {
        let value = self.0.as_ref()?;
        match value.as_f64() {
            Some(number) if number.is_finite() => Some(number),
            _ => wrong(path, problems, "a number", value),
        }
    }

    /// A whole number, positive or negative.
    pub(crate) fn integer(&self, path: &Path, problems: &mut Problems) -> Option<i64> {
        let value = self.0.as_ref()?;
        match value.as_i64() {
            Some(number) => Some(number),
            None => wrong(path, problems, "a whole number", value),
        }
    }

    /// A whole number of at least `min`.
    pub(crate) fn count(&self, min: u64, path: &Path, problems: &mut Problems) -> Option<u64> {
        let value = self.0.as_ref()?;
        match value.as_u64() {
            Some(number) if number >= min => Some(number),
            Some(number) => {
                problems.report(path, format!("must be at least {min}, not {number}"));
                None
            }
            None if min == 0 => wrong(path, problems, "a whole number, not negative", value),
            None => wrong(
                path,
                problems,
                &format!("a whole number of at least {min}"),
                value,
            ),
        }
    }

    /// A duration written as a string: `30s`, `5m`, `1h30m`.
    pub(crate) fn duration(&self, path: &Path, problems: &mut Problems) -> Option<Duration> {
        let value = self.0.as_ref()?;
        let Value::String(text) = value else {
            let message = format!(
                "{} is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h30m)",
                describe(value)
            );
            problems.report(path, message);
            return None;
        };
        match duration::parse(text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                problems.report(path, message);
                None
            }
        }
    }

    /// A duration longer than zero.
    pub(crate) fn positive_duration(
        &self,
        path: &Path,
        problems: &mut Problems,
    ) -> Option<Duration> {
        let duration = self.duration(path, problems)?;
        if duration.is_zero() {
            problems.report(path, "must be longer than 0s");
            return None;
        }
        Some(duration)
    }

    /// A duration within `min..=max`, both inclusive.
    pub(crate) fn bounded_duration(
        &self,
        path: &Path,
        problems: &mut Problems,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let duration = self.positive_duration(path, problems)?;
        if duration < min || duration > max {
            problems.report(
                path,
                format!(
                    "{} is outside {}..{}",
                    super::duration::format(duration),
                    super::duration::format(min),
                    super::duration::format(max)
                ),
            );
            return None;
        }
        Some(duration)
    }

    /// One of the words of `K`.
    pub(crate) fn keyword<K: Keyword>(&self, path: &Path, problems: &mut Problems) -> Option<K> {
        let value = self.0.as_ref()?;
        if let Value::String(word) = value
            && let Some(keyword) = K::from_word(word)
        {
            return Some(keyword);
        }
        let message = format!(
            "{} is not a valid {} (expected one of {})",
            describe(value),
            K::WHAT,
            K::words()
        );
        problems.report(path, message);
        None
    }
}

fn wrong<T>(path: &Path, problems: &mut Problems, expected: &str, found: &Value) -> Option<T> {
    problems.report(
        path,
        format!("expected {expected}, found {}", describe(found)),
    );
    None
}

/// A short description of a value for messages: `"5x"`, `300`, `true`, `a list`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("{text:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::super::keyword::Severity;
    use super::*;

    fn scalar(yaml: &str) -> Scalar {
        Scalar(Some(serde_yaml::from_str(yaml).unwrap()))
    }

    fn first_message(check: impl FnOnce(&Path, &mut Problems)) -> String {
        let mut problems = Problems::default();
        check(&Path::root().field("x"), &mut problems);
        problems.into_result(()).unwrap_err().errors()[0].to_string()
    }

    #[test]
    fn reads_good_values() {
        let mut problems = Problems::default();
        let path = Path::root();
        assert_eq!(
            scalar("abc").text(&path, &mut problems),
            Some("abc".to_owned())
        );
        assert_eq!(scalar("-40").number(&path, &mut problems), Some(-40.0));
        assert_eq!(scalar("2.5").number(&path, &mut problems), Some(2.5));
        assert_eq!(scalar("6").count(1, &path, &mut problems), Some(6));
        assert_eq!(
            scalar("90s").duration(&path, &mut problems),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            scalar("major").keyword(&path, &mut problems),
            Some(Severity::Major)
        );
        assert!(problems.into_result(()).is_ok());
    }

    #[test]
    fn absent_is_not_a_mistake_unless_required() {
        let mut problems = Problems::default();
        let path = Path::root().field("name");
        assert_eq!(Scalar::default().text(&path, &mut problems), None);
        assert!(problems.into_result(()).is_ok());
        let message = first_message(|path, problems| {
            Scalar::default()
                .required(path, problems)
                .text(path, problems);
        });
        assert_eq!(message, "x: is required");
    }

    #[test]
    fn explains_wrong_values() {
        let message = first_message(|path, problems| {
            scalar("5x").duration(path, problems);
        });
        assert_eq!(
            message,
            r#"x: "5x" is not a duration (expected e.g. 30s, 5m, 1h30m)"#
        );
        let message = first_message(|path, problems| {
            scalar("300").duration(path, problems);
        });
        assert!(message.contains("300 is not a duration"), "{message}");
        let message = first_message(|path, problems| {
            scalar("critcal").keyword::<Severity>(path, problems);
        });
        assert_eq!(
            message,
            r#"x: "critcal" is not a valid severity (expected one of info, minor, major, critical)"#
        );
        let message = first_message(|path, problems| {
            scalar("'85'").number(path, problems);
        });
        assert_eq!(message, r#"x: expected a number, found "85""#);
        let message = first_message(|path, problems| {
            scalar("0").count(1, path, problems);
        });
        assert_eq!(message, "x: must be at least 1, not 0");
        let message = first_message(|path, problems| {
            scalar("[a]").text(path, problems);
        });
        assert_eq!(message, "x: expected a string, found a list");
        let message = first_message(|path, problems| {
            scalar("0s").positive_duration(path, problems);
        });
        assert_eq!(message, "x: must be longer than 0s");
    }
}
