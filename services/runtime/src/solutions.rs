//! Loading the Solutions a service runs: a bad one is refused with all its errors and
//! never stops the others.

use std::path::{Path, PathBuf};

use sinter_core::{Solution, ValidationErrors};

/// The Solutions that loaded, and the files that did not with their errors.
#[derive(Debug, Default)]
pub struct LoadedSolutions {
    pub solutions: Vec<Solution>,
    pub refused: Vec<(PathBuf, ValidationErrors)>,
}

/// Load every file; log each refused one with every error it has.
pub fn load_solutions(paths: &[PathBuf]) -> LoadedSolutions {
    let mut loaded = LoadedSolutions::default();
    for path in paths {
        match load_one(path) {
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
