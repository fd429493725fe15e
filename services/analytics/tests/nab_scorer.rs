//! The NAB scorer reproduces NAB's published per-file scores from detectors' raw outputs.

use std::path::{Path, PathBuf};

use sinter_analytics::nab::{self, Table, parse_time, score_at, weigh_rows};

fn nab_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/nab"
    ))
}

/// Every raw output file of `detector`: (`group/name.csv`, path).
fn raw_outputs(dir: &Path, detector: &str) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let root = dir.join("results").join(detector);
    for group in std::fs::read_dir(&root)
        .expect("results directory")
        .flatten()
    {
        if !group.path().is_dir() {
            continue;
        }
        let group_name = group.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(group.path())
            .expect("group directory")
            .flatten()
        {
            let file_name = file.file_name().to_string_lossy().into_owned();
            let name = file_name
                .strip_prefix(&format!("{detector}_"))
                .expect("prefix")
                .to_owned();
            found.push((format!("{group_name}/{name}"), file.path()));
        }
    }
    found.sort();
    found
}

#[test]
fn scorer_reproduces_published_per_file_scores() {
    let dir = nab_dir();
    let profiles = nab::load_profiles(&dir).expect("profiles");
    let windows = nab::load_windows(&dir).expect("windows");
    let mut checked = 0;
    for detector in ["numenta", "windowedGaussian"] {
        let outputs = raw_outputs(&dir, detector);
        assert!(outputs.len() >= 3, "{detector}: raw outputs {outputs:?}");
        for (name, path) in outputs {
            let table = Table::read(&path).expect("raw output");
            let times = table.parsed("timestamp", parse_time).expect("timestamps");
            let scores = table
                .parsed("anomaly_score", |c| c.parse::<f64>().ok())
                .expect("scores");
            let file_windows = &windows[&name];
            for profile in &profiles {
                let published = nab::published_file_scores(&dir, detector, &profile.name)
                    .expect("published scores")
                    .expect("published file");
                let (expected, threshold) = published[&name];
                let rows = weigh_rows(&times, file_windows, profile);
                let got = score_at(&rows, &scores, file_windows.len(), threshold, profile);
                assert!(
                    (got.score - expected).abs() < 1e-6,
                    "{detector} {name} {}: scored {} but NAB published {expected}",
                    profile.name,
                    got.score
                );
                // NAB's own per-row scores: the sum of its S(t) column is the file's score.
                let column = format!("S(t)_{}", profile.name);
                let per_row = table
                    .parsed(&column, |c| c.parse::<f64>().ok())
                    .expect("S(t)");
                let sum: f64 = per_row.iter().sum();
                assert!((sum - expected).abs() < 1e-6, "{name}: S(t) sums to {sum}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 3 * 3);
}

#[test]
fn evaluation_normalises_against_null_and_perfect_over_the_same_files() {
    let dir = nab_dir();
    let report = nab::evaluate(&dir, &nab::NabDetector::default()).expect("evaluation");
    let standard = &report.profiles["standard"];
    assert_eq!(standard.files.len(), 6);
    // 15 labelled windows over the six files.
    assert_eq!((standard.null, standard.perfect), (-15.0, 15.0));
    assert_eq!(report.profiles["reward_low_FN_rate"].null, -30.0);
    let expected = 100.0 * (standard.raw - standard.null) / (standard.perfect - standard.null);
    assert!((standard.score - expected).abs() < 1e-9);
    // The published null detector scores 0 after normalisation.
    let null = nab::published_file_scores(&dir, "null", "standard")
        .unwrap()
        .unwrap();
    assert_eq!(null.values().map(|(score, _)| score).sum::<f64>(), -15.0);
    let artime = &report.published["ARTime"]["standard"];
    assert!(
        (artime.raw - 7.270_941_6).abs() < 1e-3,
        "ARTime raw {}",
        artime.raw
    );
}
