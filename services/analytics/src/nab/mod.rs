//! The Numenta Anomaly Benchmark: score Sinter's anomaly detector, and published detectors,
//! by NAB's rules on the files of a NAB directory.
//!
//! ```no_run
//! let report = sinter_analytics::nab::evaluate(
//!     std::path::Path::new("../shared/data/nab"),
//!     &sinter_analytics::nab::NabDetector::default(),
//! )?;
//! println!("{}", report.to_json());
//! # Ok::<(), sinter_analytics::nab::NabError>(())
//! ```

pub mod corpus;
pub mod scorer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sinter_core::Timestamp;
use sinter_core::solution::{Aggregate, Anomaly, AnomalyMethod, Severity};

use crate::detect::Change;
use crate::detect::anomaly::{AnomalyState, AnomalyTuning};
pub use corpus::{DataFile, Table, load_corpus, load_profiles, load_windows, parse_time};
pub use scorer::{FileScore, Profile, RowWeight, null_and_perfect, score_at, weigh_rows};

/// Why a NAB directory could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON of the expected shape")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("no data file listed in {dir}/labels/windows.json exists under {dir}/data")]
    NoFiles { dir: PathBuf },
}

/// Sinter's anomaly detector with the settings used for every file alike.
#[derive(Clone, Debug)]
pub struct NabDetector {
    pub rule: Anomaly,
    pub tuning: AnomalyTuning,
}

impl Default for NabDetector {
    fn default() -> Self {
        NabDetector {
            rule: Anomaly {
                method: AnomalyMethod::Seasonal,
                sensitivity: 0.99,
                aggregate: Aggregate::Mean,
                severity: Severity::Minor,
            },
            tuning: AnomalyTuning::default(),
        }
    }
}

impl NabDetector {
    /// The detector's output per row, as NAB reads it: the score on each row where the
    /// detector raised an incident, 0 elsewhere (an open incident does not raise again).
    /// `times` are the rows' seconds since the epoch.
    pub fn detections(&self, times: &[i64], values: &[f64]) -> Vec<f64> {
        let mut state = AnomalyState::default();
        times
            .iter()
            .zip(values)
            .map(|(&time, &value)| {
                let at = Timestamp::from_secs(time);
                match state.on_reading(&self.rule, &self.tuning, value, at) {
                    Some(Change::Raise { score, .. }) => score,
                    _ => 0.0,
                }
            })
            .collect()
    }
}

/// One profile's result over the files.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileReport {
    /// Normalised: 0 for the null detector, 100 for the perfect one, over these files.
    pub score: f64,
    pub raw: f64,
    pub null: f64,
    pub perfect: f64,
    pub threshold: f64,
    /// Raw score per file.
    pub files: BTreeMap<String, f64>,
}

/// A published detector's per-file scores summed over the same files, normalised likewise.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedScore {
    pub score: f64,
    pub raw: f64,
    /// Files of this run that the published results lack.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub profiles: BTreeMap<String, ProfileReport>,
    /// The detector's threshold chosen to maximise each profile's total, as NAB chooses
    /// thresholds for its published detectors (over these files only).
    pub optimised: BTreeMap<String, ProfileReport>,
    /// Published detectors found under `DIR/results`, by detector then profile.
    pub published: BTreeMap<String, BTreeMap<String, PublishedScore>>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A table for people: per file and total, per profile.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, profile) in &self.profiles {
            out.push_str(&format!(
                "{name}: {:.1} (raw {:.3}, null {:.1}, perfect {:.1}, threshold {})\n",
                profile.score, profile.raw, profile.null, profile.perfect, profile.threshold
            ));
            for (file, score) in &profile.files {
                out.push_str(&format!("  {file:<60} {score:>8.3}\n"));
            }
            if let Some(optimised) = self.optimised.get(name) {
                out.push_str(&format!(
                    "  with the threshold NAB would choose ({:.4}): {:.1}\n",
                    optimised.threshold, optimised.score
                ));
            }
            for (detector, scores) in &self.published {
                if let Some(published) = scores.get(name) {
                    out.push_str(&format!(
                        "  published {detector:<20} {:.1}\n",
                        published.score
                    ));
                }
            }
        }
        out
    }
}

/// The published detectors [`evaluate`] compares with, when their results are present.
pub const PUBLISHED: [&str; 4] = ["ARTime", "numenta", "numentaTM", "windowedGaussian"];

struct Prepared {
    name: String,
    windows: usize,
    rows: Vec<RowWeight>,
    scores: Vec<f64>,
}

fn normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    if perfect == null {
        0.0
    } else {
        100.0 * (raw - null) / (perfect - null)
    }
}

fn profile_report(prepared: &[Prepared], profile: &Profile, threshold: f64) -> ProfileReport {
    let mut files = BTreeMap::new();
    let (mut raw, mut null, mut perfect) = (0.0, 0.0, 0.0);
    for file in prepared {
        let score = score_at(&file.rows, &file.scores, file.windows, threshold, profile);
        let (file_null, file_perfect) = null_and_perfect(&file.rows, file.windows, profile);
        raw += score.score;
        null += file_null;
        perfect += file_perfect;
        files.insert(file.name.clone(), score.score);
    }
    ProfileReport {
        score: normalise(raw, null, perfect),
        raw,
        null,
        perfect,
        threshold,
        files,
    }
}

/// Run `detector` over every file `DIR/labels/windows.json` lists and score it per profile.
pub fn evaluate(dir: &Path, detector: &NabDetector) -> Result<Report, NabError> {
    let files = load_corpus(dir)?;
    let profiles = load_profiles(dir)?;
    let outputs: Vec<Vec<f64>> = files
        .iter()
        .map(|file| detector.detections(&file.times, &file.values))
        .collect();
    let mut report = Report {
        profiles: BTreeMap::new(),
        optimised: BTreeMap::new(),
        published: BTreeMap::new(),
    };
    for profile in &profiles {
        let prepared: Vec<Prepared> = files
            .iter()
            .zip(&outputs)
            .map(|(file, scores)| Prepared {
                name: file.name.clone(),
                windows: file.windows.len(),
                rows: weigh_rows(&file.times, &file.windows, profile),
                scores: scores.clone(),
            })
            .collect();
        let fixed = profile_report(&prepared, profile, detector.rule.sensitivity);
        let mut candidates: Vec<f64> = outputs
            .iter()
            .flatten()
            .copied()
            .filter(|s| *s > 0.0)
            .collect();
        candidates.sort_by(f64::total_cmp);
        candidates.dedup();
        candidates.push(f64::INFINITY);
        let best = candidates
            .iter()
            .map(|&threshold| profile_report(&prepared, profile, threshold))
            .max_by(|a, b| a.raw.total_cmp(&b.raw))
            .unwrap_or_else(|| fixed.clone());
        report.optimised.insert(profile.name.clone(), best);
        let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        for published in PUBLISHED {
            if let Some(score) = published_score(dir, published, profile, &names, &fixed)? {
                report
                    .published
                    .entry(published.to_owned())
                    .or_default()
                    .insert(profile.name.clone(), score);
            }
        }
        report.profiles.insert(profile.name.clone(), fixed);
    }
    Ok(report)
}

/// Per file (`group/name.csv`): the published score and the threshold it was taken at.
pub type PublishedFiles = BTreeMap<String, (f64, f64)>;

/// The per-file scores NAB published for `detector` under `profile`, by file.
pub fn published_file_scores(
    dir: &Path,
    detector: &str,
    profile: &str,
) -> Result<Option<PublishedFiles>, NabError> {
    let path = dir
        .join("results")
        .join(detector)
        .join(format!("{detector}_{profile}_scores.csv"));
    if !path.exists() {
        return Ok(None);
    }
    let table = Table::read(&path)?;
    let file = table.column("File")?;
    let scores = table.parsed("Score", |cell| cell.parse::<f64>().ok())?;
    let thresholds = table.parsed("Threshold", |cell| cell.parse::<f64>().ok())?;
    let mut by_file = BTreeMap::new();
    for ((row, score), threshold) in table.rows.iter().zip(scores).zip(thresholds) {
        if let Some(name) = row.get(file).filter(|name| name.ends_with(".csv")) {
            by_file.insert(name.clone(), (score, threshold));
        }
    }
    Ok(Some(by_file))
}

fn published_score(
    dir: &Path,
    detector: &str,
    profile: &Profile,
    files: &[String],
    ours: &ProfileReport,
) -> Result<Option<PublishedScore>, NabError> {
    let Some(by_file) = published_file_scores(dir, detector, &profile.name)? else {
        return Ok(None);
    };
    let mut raw = 0.0;
    let mut missing = Vec::new();
    for file in files {
        match by_file.get(file) {
            Some((score, _)) => raw += score,
            None => missing.push(file.clone()),
        }
    }
    Ok(Some(PublishedScore {
        score: normalise(raw, ours.null, ours.perfect),
        raw,
        missing,
    }))
}
