//! Score Sinter's anomaly detector on a NAB directory: `cargo run --example nab -- DIR [json]`.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "../shared/data/nab".into());
    let json = args.next().is_some_and(|a| a == "json");
    let report = sinter_analytics::nab::evaluate(std::path::Path::new(&dir), &Default::default())?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
