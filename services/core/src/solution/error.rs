//! What is wrong with a Solution: every mistake found, each with the path of the value at fault.

use std::fmt;

use super::path::Path;

/// One mistake in a Solution document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.display())]
pub struct ValidationError {
    /// Where the mistake is, e.g. `spec.analytics[0].window.size`; empty for the whole document.
    pub path: String,
    /// What is wrong, e.g. `"5x" is not a duration (expected e.g. 30s, 5m, 1h30m)`.
    pub message: String,
}

impl ValidationError {
    /// A mistake at `path` (as written in a document, `spec.devices[0].type`).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            path: path.into(),
            message: message.into(),
        }
    }

    fn display(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }
}

/// Every mistake found in a Solution document, in document order; never empty.
///
/// Displays one mistake per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    errors: Vec<ValidationError>,
}

impl ValidationErrors {
    /// The mistakes, in the order they were found.
    pub fn errors(&self) -> &[ValidationError] {
        &self.errors
    }

    /// How many mistakes there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: there is at least one mistake. Present for the `len`/`is_empty` pair.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// A single mistake that concerns the whole document, such as a file that cannot be read.
    pub fn single(error: ValidationError) -> Self {
        ValidationErrors {
            errors: vec![error],
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, error) in self.errors.iter().enumerate() {
            if position > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl IntoIterator for ValidationErrors {
    type Item = ValidationError;
    type IntoIter = std::vec::IntoIter<ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a ValidationError;
    type IntoIter = std::slice::Iter<'a, ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// The mistakes gathered while one document is checked.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    errors: Vec<ValidationError>,
}

impl Problems {
    /// Record that the value at `path` is wrong because of `message`.
    pub(crate) fn report(&mut self, path: &Path, message: impl Into<String>) {
        self.errors
            .push(ValidationError::new(path.to_string(), message));
    }

    /// Whether a mistake was recorded at `path` or anywhere below it.
    pub(crate) fn any_at_or_below(&self, path: &Path) -> bool {
        let prefix = path.to_string();
        self.errors.iter().any(|error| {
            error.path == prefix
                || error
                    .path
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// `Ok(value)` when nothing was recorded, else every mistake.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ValidationErrors {
                errors: self.errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_error_per_line() {
        let mut problems = Problems::default();
        problems.report(&Path::root().field("kind"), "must be Solution");
        problems.report(&Path::root(), "the document is empty");
        let errors = problems.into_result(()).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "kind: must be Solution\nthe document is empty"
        );
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn finds_mistakes_below_a_path_but_not_beside_it() {
        let mut problems = Problems::default();
        let rules = Path::root().field("spec").field("analytics");
        problems.report(&rules.index(1).field("metric"), "unknown");
        assert!(problems.any_at_or_below(&rules.index(1)));
        assert!(!problems.any_at_or_below(&rules.index(0)));
        assert!(!problems.any_at_or_below(&Path::root().field("spec").field("analytic")));
    }
}
