//! Sweep the anomaly detector's settings on a NAB directory and print each one's scores:
//! `cargo run --release --example nab_tune -- DIR`. The chosen settings become the defaults.

use sinter_analytics::detect::anomaly::AnomalyTuning;
use sinter_analytics::nab::{NabDetector, evaluate};
use sinter_core::solution::AnomalyMethod;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/nab".into());
    let dir = std::path::Path::new(&dir);
    let base = NabDetector::default();
    for method in [AnomalyMethod::Ewma] {
        for forecast_alpha in [0.1, 0.3, 0.6] {
            for baseline_alpha in [0.005, 0.01] {
                for recent_alpha in [0.6, 0.8, 1.0] {
                    for history_alpha in [0.01, 0.03] {
                        for quiet_readings in [20, 50, 100] {
                            for sensitivity in [0.95, 0.98, 0.99] {
                                let mut detector = base.clone();
                                detector.rule.method = method;
                                detector.rule.sensitivity = sensitivity;
                                detector.tuning = AnomalyTuning {
                                    baseline_alpha,
                                    recent_alpha,
                                    history_alpha,
                                    quiet_readings,
                                    forecast_alpha,
                                    ..AnomalyTuning::default()
                                };
                                let report = evaluate(dir, &detector)?;
                                let score = |p: &str| report.profiles[p].score;
                                println!(
                                    "{:.1} {:.1} {:.1} {method:?} b{baseline_alpha} \
                                     r{recent_alpha} h{history_alpha} q{quiet_readings} \
                                     s{sensitivity} f{forecast_alpha}",
                                    score("standard"),
                                    score("reward_low_FP_rate"),
                                    score("reward_low_FN_rate"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
