//! `sinter solution validate`, run as a user would: the built binary on the shipped examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The workspace root, where `examples/` is.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sinter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sinter"))
        .args(args)
        .current_dir(workspace())
        .stdin(Stdio::null())
        .output()
        .expect("the sinter binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

#[test]
fn a_valid_solution_gets_a_one_line_summary() {
    let output = sinter(&["solution", "validate", "examples/pump-health.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "examples/pump-health.yaml: Solution plant-north/pump-health is valid: \
         2 device types, 5 metrics, 4 analytics rules, 2 recommendations\n"
    );
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn an_invalid_solution_gets_every_mistake_on_its_own_line() {
    let file = "examples/invalid/three-mistakes.yaml";
    let output = sinter(&["solution", "validate", file]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "");
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert_eq!(
        lines[0],
        format!("{file}: spec.devices[0].metrics[1].unitt: unknown field")
    );
    assert_eq!(
        lines[1],
        format!(
            "{file}: spec.analytics[0].window.every: \"1x\" is not a duration \
             (expected e.g. 30s, 5m, 1h30m)"
        )
    );
    assert_eq!(
        lines[2],
        format!(
            "{file}: spec.recommendations[0].when: CEL syntax error at 1:45: \
             unexpected end of expression"
        )
    );
}

#[test]
fn several_files_are_checked_and_one_invalid_fails_the_run() {
    let output = sinter(&[
        "solution",
        "validate",
        "examples/pump-health.yaml",
        "examples/invalid/three-mistakes.yaml",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).contains("pump-health.yaml: Solution plant-north/pump-health"));
    assert_eq!(text(&output.stderr).lines().count(), 3);
}

#[test]
fn a_missing_file_is_a_clear_usage_error() {
    let output = sinter(&["solution", "validate", "examples/no-such-file.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("sinter: cannot read examples/no-such-file.yaml: "),
        "{stderr}"
    );
}

#[test]
fn a_missing_argument_is_a_usage_error() {
    let output = sinter(&["solution", "validate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("Usage"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn standard_input_is_read_for_a_dash() {
    let example = std::fs::read(workspace().join("examples/pump-health.yaml")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinter"))
        .args(["solution", "validate", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &example).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with("-: Solution plant-north/pump-health is valid"));
}

#[test]
fn nab_scores_the_shared_files_as_json() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/nab");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sinter"))
        .args(["nab", "--data", data, "--output", "json"])
        .output()
        .expect("run sinter nab");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    for profile in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        let score = &report["profiles"][profile]["score"];
        assert!(
            score.as_f64().is_some_and(|s| s.is_finite()),
            "{profile}: {report}"
        );
        let files = report["profiles"][profile]["files"]
            .as_object()
            .expect("files");
        assert!(
            files.contains_key("realKnownCause/machine_temperature_system_failure.csv"),
            "{profile}: {files:?}"
        );
    }
}

#[test]
fn a_closed_standard_output_ends_the_command_quietly() {
    // Standard output is a pipe nobody reads (`sinter ... | head` once head has exited).
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_sinter"))
        .args(["solution", "validate", "examples/pump-health.yaml"])
        .current_dir(workspace())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("the sinter binary runs");
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
}
