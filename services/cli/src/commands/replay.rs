//! `sinter replay`: stream a `timestamp,value` CSV (the Numenta Anomaly Benchmark's
//! format) to a running Sinter as one device's readings of one metric.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sinter_core::Timestamp;
use sinter_ingest::client::{PublishSummary, send_batch};
use sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use sinter_proto::ingest::v1::{ReadingInput, reading_input};

use crate::commands::client::{Api, ClientArgs, Output, runtime};
use crate::exit;

/// Replay a CSV log as readings of `--device`'s `--metric`.
///
/// The log is moved in time by whole weeks so that its last row is stamped within the
/// week before the replay starts (every reading is then in the past, within a Solution's
/// `maxAge` if the log is short enough, and keeps its hour and day of the week);
/// `--keep-time` sends the original times instead. `--speed` sets how fast
/// rows are sent, as a multiple of the log's own pace; `max` sends as fast as the
/// service acknowledges. The move is computed from the whole file, also when `--skip` or
/// `--take` send only part of it, and printed with `--output json` (`shiftMicros`).
/// Exits 0 when every row was accepted, 1 otherwise.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The CSV file: a header line, then `timestamp,value` rows
    /// (`2013-12-02 21:15:00,73.96`, UTC).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The device the readings come from.
    #[arg(long)]
    device: String,
    /// The metric they are of.
    #[arg(long)]
    metric: String,
    /// `max`, or how many times faster than the log's own pace (`3600`: an hour a second).
    #[arg(long, default_value = "max", value_parser = parse_speed)]
    speed: Speed,
    /// Send the log's own timestamps instead of moving the log by whole weeks.
    #[arg(long)]
    keep_time: bool,
    /// Skip this many rows after the header (to replay a log in parts).
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Send at most this many rows.
    #[arg(long)]
    take: Option<usize>,
    /// Readings per Publish call.
    #[arg(long, default_value_t = 500,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    batch_size: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// How fast rows are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Speed {
    Max,
    Times(f64),
}

fn parse_speed(text: &str) -> Result<Speed, String> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    match text.parse::<f64>() {
        Ok(times) if times.is_finite() && times > 0.0 => Ok(Speed::Times(times)),
        _ => Err(format!("{text:?} is neither `max` nor a number above 0")),
    }
}

/// One row of the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Row {
    /// 1-based line in the file.
    pub(crate) line: usize,
    /// Seconds since the epoch, as the file says.
    pub(crate) seconds: i64,
    pub(crate) value: f64,
}

/// Read the rows of a `timestamp,value` CSV; a row that does not parse is an error naming
/// its line, and the replay does not start.
pub(crate) fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate().skip(1) {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let Some((time, value)) = line.split_once(',') else {
            problems.push(format!("line {line_number}: expected `timestamp,value`"));
            continue;
        };
        let Some(seconds) = sinter_analytics::nab::corpus::parse_time(time) else {
            problems.push(format!(
                "line {line_number}: timestamp {time:?} is not `YYYY-MM-DD HH:MM:SS`"
            ));
            continue;
        };
        match value.trim().parse::<f64>() {
            Ok(value) => rows.push(Row {
                line: line_number,
                seconds,
                value,
            }),
            Err(_) => problems.push(format!(
                "line {line_number}: value {value:?} is not a number"
            )),
        }
    }
    if !problems.is_empty() {
        let shown: Vec<&str> = problems.iter().take(20).map(String::as_str).collect();
        bail!(
            "{}: {} bad row(s):\n{}",
            path.display(),
            problems.len(),
            shown.join("\n")
        );
    }
    if rows.is_empty() {
        bail!("{}: no rows after the header", path.display());
    }
    Ok(rows)
}

/// The readings for `rows`, moved by `shift_micros`. Message ids name the device, the
/// metric, the time sent and the line, so a retried batch is recognised as a duplicate
/// and two rows with one timestamp are both kept.
pub(crate) fn readings(
    rows: &[Row],
    device: &str,
    metric: &str,
    shift_micros: i64,
) -> Vec<(usize, ReadingInput)> {
    rows.iter()
        .map(|row| {
            let micros = row
                .seconds
                .saturating_mul(1_000_000)
                .saturating_add(shift_micros);
            let time = Timestamp::from_micros(micros);
            (
                row.line,
                ReadingInput {
                    device_id: device.to_owned(),
                    metric: metric.to_owned(),
                    value: Some(reading_input::Value::Number(row.value)),
                    time: Some(reading_input::Time::EventTime(
                        sinter_proto::time::to_proto(time),
                    )),
                    message_id: format!("replay:{device}:{metric}:{micros}:{}", row.line),
                },
            )
        })
        .collect()
}

impl ReplayArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        runtime()?.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        let rows = read_rows(&self.file)?;
        let shift_micros = if self.keep_time {
            0
        } else {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the clock is before 1970")?;
            let last = rows.iter().map(|row| row.seconds).max().unwrap_or(0);
            // Whole weeks, so each reading keeps its hour of the day and day of the week
            // (which the `seasonal` anomaly method judges by).
            const WEEK_MICROS: i64 = 7 * 86_400 * 1_000_000;
            let gap = i64::try_from(now.as_micros()).unwrap_or(i64::MAX) - last * 1_000_000;
            gap.div_euclid(WEEK_MICROS) * WEEK_MICROS
        };
        let end = self.take.map_or(rows.len(), |take| {
            self.skip.saturating_add(take).min(rows.len())
        });
        let rows = rows.get(self.skip.min(end)..end).unwrap_or_default();
        if rows.is_empty() {
            bail!(
                "{}: no rows left after --skip {}",
                self.file.display(),
                self.skip
            );
        }
        let readings = readings(rows, &self.device, &self.metric, shift_micros);
        let endpoint = self.client.endpoint_for(Api::Ingest);
        let channel = sinter_grpc::connect(&endpoint, self.client.bearer()?)
            .await
            .with_context(|| format!("cannot connect to {endpoint}"))?;
        let mut client = IngestServiceClient::new(channel).max_decoding_message_size(64 << 20);
        let progress = if self.quiet || self.client.output == Output::Json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(readings.len() as u64)
        };
        progress.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} readings  {per_sec}  eta {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut summary = PublishSummary::default();
        let started = std::time::Instant::now();
        let first = rows.first().map_or(0, |row| row.seconds);
        for (batch, chunk) in readings.chunks(self.batch_size).enumerate() {
            if let Speed::Times(times) = self.speed {
                // Send each batch when its first row is due at this pace.
                let offset = rows[batch * self.batch_size].seconds - first;
                let due = Duration::from_secs_f64(offset.max(0) as f64 / times);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            send_batch(
                &mut client,
                &self.client.solution,
                batch + 1,
                chunk.to_vec(),
                &mut summary,
            )
            .await?;
            progress.inc(chunk.len() as u64);
            progress.set_message(format!("{} refused", summary.refused.len()));
        }
        progress.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        match self.client.output {
            Output::Json => {
                let mut value = crate::commands::publish::summary_json(&summary);
                value["seconds"] = json!(seconds);
                value["shiftMicros"] = json!(shift_micros);
                outln!("{value}");
            }
            Output::Text => {
                out!("{summary}");
                outln!(
                    "{} readings in {seconds:.1} s ({:.0}/s)",
                    summary.sent,
                    summary.sent as f64 / seconds.max(1e-6)
                );
            }
        }
        Ok(if summary.refused.is_empty() {
            exit::OK
        } else {
            exit::problems_found()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_max_or_a_positive_factor() {
        assert_eq!(parse_speed("MAX"), Ok(Speed::Max));
        assert_eq!(parse_speed("60"), Ok(Speed::Times(60.0)));
        assert!(parse_speed("0").unwrap_err().contains("\"0\""));
        assert!(parse_speed("fast").is_err());
    }

    #[test]
    fn rows_are_read_and_bad_ones_named_by_line() {
        let dir = std::env::temp_dir().join(format!("sinter-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.csv");
        std::fs::write(
            &good,
            "timestamp,value\n2013-12-02 21:15:00,73.9\n\n2013-12-02 21:20:00,74\n",
        )
        .unwrap();
        let rows = read_rows(&good).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].seconds - rows[0].seconds, 300);

        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "timestamp,value\n2013-12-02 21:15:00,hot\nnoon,1\n").unwrap();
        let err = format!("{:#}", read_rows(&bad).unwrap_err());
        assert!(err.contains("2 bad row(s)"), "{err}");
        assert!(err.contains("line 2: value \"hot\""), "{err}");
        assert!(
            err.contains("line 3: expected") || err.contains("line 3: timestamp"),
            "{err}"
        );
    }

    #[test]
    fn readings_are_moved_and_named_by_their_time() {
        let rows = [Row {
            line: 2,
            seconds: 100,
            value: 1.5,
        }];
        let out = readings(&rows, "m-01", "temperature", 1_000_000);
        let (line, reading) = &out[0];
        assert_eq!(*line, 2);
        assert_eq!(reading.message_id, "replay:m-01:temperature:101000000:2");
        let Some(reading_input::Time::EventTime(time)) = &reading.time else {
            panic!("event time expected");
        };
        assert_eq!(time.seconds, 101);
    }
}
