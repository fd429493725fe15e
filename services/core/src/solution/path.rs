//! Where in a Solution document a value sits, written as `spec.analytics[0].window.size`.

use std::fmt;

/// One step from a node to one of its children.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// A key of a mapping.
    Field(String),
    /// A position in a list.
    Index(usize),
}

/// The location of a value in a Solution document, from the document's root.
///
/// The root itself displays as the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path {
    segments: Vec<Segment>,
}

impl Path {
    /// The document's root.
    pub(crate) fn root() -> Self {
        Path::default()
    }

    /// The child of this node under mapping key `name`.
    pub(crate) fn field(&self, name: &str) -> Path {
        self.child(Segment::Field(name.to_owned()))
    }

    /// The child of this node at list position `index`.
    pub(crate) fn index(&self, index: usize) -> Path {
        self.child(Segment::Index(index))
    }

    /// This path followed by `relative`, a path measured from this node.
    pub(crate) fn join(&self, relative: &Path) -> Path {
        let mut joined = self.clone();
        joined.segments.extend(relative.segments.iter().cloned());
        joined
    }

    fn child(&self, segment: Segment) -> Path {
        let mut child = self.clone();
        child.segments.push(segment);
        child
    }

    /// The path that `serde_ignored` reports for a field it skipped.
    pub(crate) fn from_ignored(ignored: &serde_ignored::Path<'_>) -> Path {
        match ignored {
            serde_ignored::Path::Root => Path::root(),
            serde_ignored::Path::Seq { parent, index } => Path::from_ignored(parent).index(*index),
            serde_ignored::Path::Map { parent, key } => Path::from_ignored(parent).field(key),
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => Path::from_ignored(parent),
        }
    }

    /// The path that `serde_path_to_error` reports for a value it could not decode.
    pub(crate) fn from_tracked(tracked: &serde_path_to_error::Path) -> Path {
        let mut path = Path::root();
        for segment in tracked {
            path = match segment {
                serde_path_to_error::Segment::Seq { index } => path.index(*index),
                serde_path_to_error::Segment::Map { key } => path.field(key),
                serde_path_to_error::Segment::Enum { variant } => path.field(variant),
                serde_path_to_error::Segment::Unknown => path,
            };
        }
        path
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Field(name) if is_plain_key(name) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Segment::Field(name) => write!(f, "[{name:?}]")?,
            }
        }
        Ok(())
    }
}

/// Whether a key reads unambiguously after a dot (`labels.tier`, not `labels.app.kubernetes.io/x`).
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_fields_with_dots_and_positions_in_brackets() {
        let path = Path::root()
            .field("spec")
            .field("analytics")
            .index(0)
            .field("window");
        assert_eq!(
            path.field("size").to_string(),
            "spec.analytics[0].window.size"
        );
        assert_eq!(Path::root().to_string(), "");
    }

    #[test]
    fn quotes_keys_that_contain_dots_or_slashes() {
        let path = Path::root()
            .field("metadata")
            .field("labels")
            .field("app.kubernetes.io/name");
        assert_eq!(
            path.to_string(),
            r#"metadata.labels["app.kubernetes.io/name"]"#
        );
    }

    #[test]
    fn joins_relative_paths() {
        let base = Path::root().field("spec").field("devices").index(1);
        let relative = Path::root().field("metrics").index(0).field("unitt");
        assert_eq!(
            base.join(&relative).to_string(),
            "spec.devices[1].metrics[0].unitt"
        );
    }
}
