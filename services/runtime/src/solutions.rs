//! Loading the Solutions a service runs: a bad one is refused with all its errors and
//! never stops the others.

use std::path::{Path, PathBuf};

use sinter_core::{Solution, ValidationError, ValidationErrors};

/// The Solutions that loaded, and the files that did not with their errors.
#[derive(Debug, Default)]
pub struct LoadedSolutions {
    pub solutions: Vec<Solution>,
    pub refused: Vec<(PathBuf, ValidationErrors)>,
}

/// The default consumer group of `service` (e.g. `sinter-analytics`) when one consumer
/// reads the streams of all its `solutions`: `<service>.<namespace>.<name>`, or for
/// several Solutions their sorted `<namespace>.<name>` joined by `+`.
///
/// Instances that run the same Solutions share a group and split its partitions;
/// deployments of other Solutions on the same brokers never meet in one group.
pub fn consumer_group(service: &str, solutions: &[Solution]) -> String {
    let mut names: Vec<String> = solutions
        .iter()
        .map(|solution| format!("{}.{}", solution.namespace(), solution.name()))
        .collect();
    names.sort_unstable();
    names.dedup();
    format!("{service}.{}", names.join("+"))
}

/// Load every file; log each refused one with every error it has.
pub fn load_solutions(paths: &[PathBuf]) -> LoadedSolutions {
    let mut loaded = LoadedSolutions::default();
    for given in paths {
        // `--solution a.yaml, b.yaml` splits into "a.yaml" and " b.yaml".
        let path = PathBuf::from(given.to_string_lossy().trim());
        let path = &path;
        match load_one(path) {
            Ok(solution)
                if loaded
                    .solutions
                    .iter()
                    .any(|s| s.qualified_name() == solution.qualified_name()) =>
            {
                let error = ValidationError::new(
                    "metadata.name",
                    format!(
                        "Solution {} is already loaded from another file; each Solution runs once",
                        solution.qualified_name()
                    ),
                );
                tracing::error!(file = %path.display(), path = %error.path,
                    reason = %error.message, "Solution refused.");
                loaded
                    .refused
                    .push((path.clone(), ValidationErrors::single(error)));
            }
            Ok(solution) => {
                tracing::info!(file = %path.display(),
                    solution = %format!("{}/{}", solution.namespace(), solution.name()),
                    "Solution loaded.");
                loaded.solutions.push(solution);
            }
            Err(errors) => {
                for error in errors.errors() {
                    tracing::error!(file = %path.display(), path = %error.path,
                        reason = %error.message, "Solution refused.");
                }
                loaded.refused.push((path.clone(), errors));
            }
        }
    }
    loaded
}

fn load_one(path: &Path) -> Result<Solution, ValidationErrors> {
    Solution::from_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/pump-health.yaml"
        ))
    }

    #[test]
    fn groups_are_named_after_the_solutions_in_any_order() {
        let plant = Solution::from_path(example()).expect("example");
        let demo = Solution::from_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/demo/solution.yaml"
        ))
        .expect("demo");
        assert_eq!(
            consumer_group("sinter-analytics", std::slice::from_ref(&plant)),
            "sinter-analytics.plant-north.pump-health"
        );
        let both = consumer_group("sinter-analytics", &[plant.clone(), demo.clone()]);
        assert_eq!(
            both,
            "sinter-analytics.demo.pump-health+plant-north.pump-health"
        );
        assert_eq!(consumer_group("sinter-analytics", &[demo, plant]), both);
    }

    #[test]
    fn the_same_solution_twice_is_refused_the_second_time() {
        let loaded = load_solutions(&[example(), example()]);
        assert_eq!(loaded.solutions.len(), 1);
        assert_eq!(loaded.refused.len(), 1);
        assert!(loaded.refused[0].1.to_string().contains("already loaded"));
    }

    #[test]
    fn spaces_around_listed_paths_are_ignored() {
        let spaced = PathBuf::from(format!(" {}", example().display()));
        let loaded = load_solutions(&[spaced]);
        assert_eq!(loaded.solutions.len(), 1, "{:?}", loaded.refused);
    }
}
