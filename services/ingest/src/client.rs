//! The client side, for `sinter publish` and other tools: JSON lines into readings, sent
//! with `Publish` in batches, and a summary of what was accepted and refused.

use std::fmt;

use sinter_grpc::BearerToken;
use sinter_proto::events::v1::ReasonCode;
use sinter_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use sinter_proto::ingest::v1::{PublishRequest, ReadingInput};

use crate::json;
use crate::refusal::Refusal;

/// One input line that holds a reading, or why it does not.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// 1-based line number in the input.
    pub number: usize,
    pub reading: Result<ReadingInput, Refusal>,
}

/// Read JSON lines, one reading per line (the shape of [`crate::json`]); blank lines and
/// lines starting with `#` are skipped. A line that is not UTF-8 is refused on its own; the
/// lines after it are read all the same.
pub fn parse_json_lines(input: &[u8]) -> Vec<Line> {
    // A byte order mark some editors write at the start is not part of the first line.
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    input
        .split(|byte| *byte == b'\n')
        .enumerate()
        .filter_map(|(index, raw)| {
            let number = index + 1;
            let line = raw.trim_ascii();
            if line.is_empty() || line.starts_with(b"#") {
                return None;
            }
            let reading = match std::str::from_utf8(line) {
                Ok(_) => json::parse_reading(line),
                Err(error) => {
                    let at = error.valid_up_to();
                    let leading = raw.len() - raw.trim_ascii_start().len();
                    let column = leading + at + 1;
                    let reason = format!(
                        "not UTF-8 text: byte 0x{:02x} at column {column} is not valid UTF-8",
                        line[at]
                    );
                    Err(Refusal::new(ReasonCode::Malformed, reason))
                }
            };
            Some(Line { number, reading })
        })
        .collect()
}

/// Refusals a summary lists line by line; the rest are counted.
const SHOWN_REFUSALS: usize = 20;

/// What became of the readings sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublishSummary {
    /// Lines sent to the service.
    pub sent: usize,
    pub accepted: usize,
    /// Accepted readings that were already published before (counted in `accepted` too).
    pub duplicates: usize,
    /// Refused readings, by the service or before sending (a line that is not a reading):
    /// the line number, the reason code and the message.
    pub refused: Vec<(usize, ReasonCode, String)>,
}

impl fmt::Display for PublishSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lines that were not readings are refused without being sent.
        let not_sent = self
            .refused
            .len()
            .saturating_sub(self.sent.saturating_sub(self.accepted));
        let duplicates = match self.duplicates {
            1 => "1 duplicate".to_owned(),
            count => format!("{count} duplicates"),
        };
        // Every line is either accepted or refused, so the two counts add up to the lines.
        let lines = self.accepted + self.refused.len();
        write!(
            f,
            "{lines} {}: {} accepted ({duplicates}), {} refused",
            if lines == 1 { "line" } else { "lines" },
            self.accepted,
            self.refused.len()
        )?;
        if not_sent > 0 {
            write!(f, " ({not_sent} of them not readings, so not sent)")?;
        }
        writeln!(f)?;
        for (line, code, message) in self.refused.iter().take(SHOWN_REFUSALS) {
            // The code as the docs spell it: NOT_FINITE rather than REASON_CODE_NOT_FINITE.
            let name = code.as_str_name();
            let name = name.strip_prefix("REASON_CODE_").unwrap_or(name);
            writeln!(f, "line {line}: {name}: {message}")?;
        }
        if self.refused.len() > SHOWN_REFUSALS {
            writeln!(
                f,
                "... and {} more refused (--output json lists them all)",
                self.refused.len() - SHOWN_REFUSALS
            )?;
        }
        Ok(())
    }
}

/// Why publishing stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the token cannot be sent: {0}")]
    Token(tonic::Status),
    #[error(
        "the ingest service refused the batch starting at line {line}: {code:?}: {message}",
        code = .status.code(),
        message = .status.message()
    )]
    Publish { line: usize, status: tonic::Status },
}

/// Send `lines` to the ingest service at `endpoint` for `solution`, `batch_size` readings
/// per `Publish` call (at least 1). Lines that are not readings are not sent and counted as
/// refused. Stops at the first batch the service fails as a whole (unknown Solution, bus
/// unavailable): the batches before it were delivered.
pub async fn publish_lines(
    endpoint: &str,
    token: Option<&str>,
    solution: &str,
    lines: Vec<Line>,
    batch_size: usize,
) -> Result<PublishSummary, ClientError> {
    let token = BearerToken::new(token).map_err(ClientError::Token)?;
    let channel = sinter_grpc::connect(endpoint, token)
        .await
        .map_err(|source| ClientError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let mut client = IngestServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut summary = PublishSummary::default();
    let mut pending: Vec<(usize, ReadingInput)> = Vec::new();
    let batch_size = batch_size.max(1);
    let mut batches = 0usize;
    for line in lines {
        match line.reading {
            Ok(reading) => pending.push((line.number, reading)),
            Err(refusal) => summary
                .refused
                .push((line.number, refusal.code, refusal.message)),
        }
        if pending.len() == batch_size {
            batches += 1;
            send_batch(
                &mut client,
                solution,
                batches,
                std::mem::take(&mut pending),
                &mut summary,
            )
            .await?;
        }
    }
    if !pending.is_empty() {
        batches += 1;
        send_batch(&mut client, solution, batches, pending, &mut summary).await?;
    }
    summary.refused.sort_by_key(|(line, _, _)| *line);
    Ok(summary)
}

/// Send one batch with `Publish`; `readings` carry their input line numbers, and what
/// became of each is added to `summary`.
pub async fn send_batch<T>(
    client: &mut IngestServiceClient<T>,
    solution: &str,
    batch: usize,
    readings: Vec<(usize, ReadingInput)>,
    summary: &mut PublishSummary,
) -> Result<(), ClientError>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let first_line = readings.first().map(|(line, _)| *line).unwrap_or_default();
    let (numbers, inputs): (Vec<usize>, Vec<ReadingInput>) = readings.into_iter().unzip();
    let request = PublishRequest {
        solution: solution.to_owned(),
        batch_id: batch.to_string(),
        readings: inputs,
    };
    let response = client
        .publish(request)
        .await
        .map_err(|status| ClientError::Publish {
            line: first_line,
            status,
        })?
        .into_inner();
    summary.sent += numbers.len();
    summary.accepted += response.accepted as usize;
    summary.duplicates += response.duplicates as usize;
    for result in response.results.into_iter().filter(|r| !r.accepted) {
        let line = numbers
            .get(result.index as usize)
            .copied()
            .unwrap_or_default();
        let code = ReasonCode::try_from(result.reason_code).unwrap_or(ReasonCode::Unspecified);
        summary.refused.push((line, code, result.message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_readings_or_refusals() {
        let lines = parse_json_lines(
            b"# a comment\n{\"device\":\"p-1\",\"metric\":\"t\",\"value\":1}\r\n\n{\"device\":1}\n",
        );
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].number, 2);
        assert_eq!(lines[0].reading.as_ref().unwrap().device_id, "p-1");
        assert_eq!(lines[1].number, 4);
        assert_eq!(
            lines[1].reading.as_ref().unwrap_err().code,
            ReasonCode::Malformed
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_costs_only_itself() {
        let lines = parse_json_lines(b"{\"device\":\"p-\xff\"}\n{\"device\":\"p-2\"}\n");
        assert_eq!(lines.len(), 2);
        let refusal = lines[0].reading.as_ref().unwrap_err();
        assert_eq!(refusal.code, ReasonCode::Malformed);
        assert_eq!(
            refusal.message,
            "not UTF-8 text: byte 0xff at column 14 is not valid UTF-8"
        );
        assert_eq!(
            (
                lines[1].number,
                lines[1].reading.as_ref().unwrap().device_id.as_str()
            ),
            (2, "p-2")
        );
        // A comment may hold any bytes; a byte order mark at the start is no part of line 1.
        let commented = parse_json_lines(b"\xEF\xBB\xBF# caf\xe9\n  {\"device\":\"p-\xff\"}\n");
        assert_eq!(commented.len(), 1);
        assert_eq!(commented[0].number, 2);
        assert!(
            commented[0]
                .reading
                .as_ref()
                .unwrap_err()
                .message
                .contains("column 16"),
            "{:?}",
            commented[0].reading
        );
    }

    #[test]
    fn a_long_list_of_refusals_is_cut_short() {
        let summary = PublishSummary {
            sent: 25,
            accepted: 0,
            duplicates: 0,
            refused: (1..=25)
                .map(|line| {
                    (
                        line,
                        ReasonCode::UnknownDeviceType,
                        "device_id: no device type matches".into(),
                    )
                })
                .collect(),
        };
        let text = summary.to_string();
        assert_eq!(text.lines().count(), 1 + 20 + 1, "{text}");
        assert!(text.ends_with("... and 5 more refused (--output json lists them all)\n"));
    }

    #[test]
    fn summary_lists_refusals() {
        let summary = PublishSummary {
            sent: 3,
            accepted: 2,
            duplicates: 1,
            refused: vec![(3, ReasonCode::NotFinite, "value: NaN".into())],
        };
        assert_eq!(
            summary.to_string(),
            "3 lines: 2 accepted (1 duplicate), 1 refused\n\
             line 3: NOT_FINITE: value: NaN\n"
        );
    }
}
