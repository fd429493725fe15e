//! The ingest load generator runs end to end on the real broker: every reading of every
//! round is accepted, and the report holds a rate for each measurement and each round.

use sinter_ingest::bench::{BenchSpec, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_reports_every_measurement() -> anyhow::Result<()> {
    let mut spec = BenchSpec::new(sinter_tests::services::require_kafka());
    spec.readings = 1_200;
    spec.batch_size = 100;
    spec.concurrent_batches = 4;
    spec.rounds = 2;
    let report = run(&spec).await?;

    assert_eq!(report.round_ratios.len(), 2);
    for rate in [&report.ingest_kafka, &report.raw_kafka, &report.bus_kafka] {
        assert_eq!(rate.records, 1_200);
        assert!(rate.per_sec > 0.0, "{rate:?}");
    }
    let embedded = report
        .ingest_embedded
        .expect("the embedded bus is measured by default");
    assert_eq!(embedded.records, 1_200);
    assert!(
        (190..=210).contains(&report.record_bytes),
        "{} B",
        report.record_bytes
    );
    let printed = report.to_string();
    assert!(printed.contains("ratio ingest / raw"), "{printed}");
    assert!(printed.contains("median of 2 rounds' ratios"), "{printed}");
    let middle = (report.round_ratios[0] + report.round_ratios[1]) / 2.0;
    assert!(
        (report.ratio() - middle).abs() < 1e-9,
        "{} vs {middle}",
        report.ratio()
    );
    Ok(())
}
