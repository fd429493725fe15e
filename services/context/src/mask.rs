//! Partial updates: which fields of a record a `FieldMask` lets an update change.

use crate::error::RegistryError;

/// The fields an update changes.
///
/// With paths, exactly the named fields change (to an empty value when the patch has
/// one). Without paths, every field the patch gives (non-empty) changes.
#[derive(Clone, Debug)]
pub struct UpdateMask {
    paths: Option<Vec<String>>,
}

impl UpdateMask {
    /// Check `paths` against the fields of `entity` that may change; `id`, `created_at`
    /// and `updated_at` never may.
    pub fn new(entity: &str, paths: &[String], mutable: &[&str]) -> Result<Self, RegistryError> {
        for path in paths {
            let bare = path.strip_prefix(&format!("{entity}.")).unwrap_or(path);
            if mutable.contains(&bare) {
                continue;
            }
            let reason = if matches!(bare, "id" | "created_at" | "updated_at") {
                format!("{bare:?} cannot be changed")
            } else {
                format!(
                    "{bare:?} is not a field of {entity} that an update can change ({})",
                    mutable.join(", ")
                )
            };
            return Err(RegistryError::invalid("update_mask.paths", reason));
        }
        let paths = (!paths.is_empty()).then(|| {
            paths
                .iter()
                .map(|path| {
                    path.strip_prefix(&format!("{entity}."))
                        .unwrap_or(path)
                        .to_owned()
                })
                .collect()
        });
        Ok(UpdateMask { paths })
    }

    /// A mask that changes every field given.
    pub fn given() -> Self {
        UpdateMask { paths: None }
    }

    /// A mask that changes exactly `fields` (even to empty), and no other: an import row
    /// with these columns.
    pub(crate) fn exactly<'a>(fields: impl IntoIterator<Item = &'a str>) -> Self {
        UpdateMask {
            paths: Some(fields.into_iter().map(str::to_owned).collect()),
        }
    }

    /// Whether `field` changes, when the patch's value for it is `given` (non-empty).
    pub fn touches(&self, field: &str, given: bool) -> bool {
        match &self.paths {
            Some(paths) => paths.iter().any(|path| path == field),
            None => given,
        }
    }

    /// Set `current` to `patch` when the mask touches `field`.
    pub fn apply(&self, field: &str, current: &mut String, patch: &str) {
        if self.touches(field, !patch.is_empty()) {
            patch.clone_into(current);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_paths_change_even_to_empty_and_others_stay() {
        let mask =
            UpdateMask::new("asset", &["owner_team".into()], &["name", "owner_team"]).unwrap();
        let mut owner = "reliability".to_owned();
        let mut name = "P-17".to_owned();
        mask.apply("owner_team", &mut owner, "");
        mask.apply("name", &mut name, "P-18");
        assert_eq!((owner.as_str(), name.as_str()), ("", "P-17"));
    }

    #[test]
    fn without_paths_the_given_fields_change() {
        let mask = UpdateMask::given();
        let mut name = "P-17".to_owned();
        mask.apply("name", &mut name, "");
        assert_eq!(name, "P-17");
        mask.apply("name", &mut name, "P-18");
        assert_eq!(name, "P-18");
    }

    #[test]
    fn unknown_and_immutable_paths_are_refused_by_name() {
        let error = UpdateMask::new("site", &["colour".into()], &["name"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "update_mask.paths: \"colour\" is not a field of site that an update can change (name)"
        );
        let error = UpdateMask::new("site", &["site.id".into()], &["name"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "update_mask.paths: \"id\" cannot be changed"
        );
    }
}
