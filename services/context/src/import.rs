//! Bulk import of the registry from CSV or JSON lines, with one result per row.
//!
//! Transaction policy: the whole file is one transaction and every row runs in its own
//! savepoint. A refused row is rolled back to its savepoint and reported with its line
//! and reason; the other rows go on. At the end the transaction commits, so readers see
//! every accepted row at once or none of them; a dry run rolls it back instead. If the
//! database itself fails (the connection drops), or the import is stopped (the client
//! went away, the service is stopping), the import fails as a whole and nothing is
//! written. Rows are applied in file order, so a parent must come before its children.
//!
//! Columns: a row changes exactly the columns it has. An id that exists is updated in
//! the fields the file gives (a CSV column in the header, a key in the JSON line) and
//! keeps the others; a new id takes the defaults for the fields left out. An empty cell
//! (or a JSON `""` or `null`) in a given column sets the field to its empty value, which
//! is the default where the field has one: criticality `medium`, attributes `{}`,
//! status `open`; a required field (a name, a title) left empty is refused. This is the
//! rule of an update whose `FieldMask` names those columns.
//!
//! Enum text (criticality, status) is matched ignoring ASCII case and stored lowercase,
//! as in the API.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sinter_proto::context::v1::work_order::Status;
use sinter_proto::context::v1::{Asset, Device, ImportRowResult, Site, WorkOrder};
use sqlx::{AnyConnection, Connection};
use tokio::sync::watch;

use crate::error::RegistryError;
use crate::mask::UpdateMask;
use crate::registry::{
    ASSET_FIELDS, DEVICE_FIELDS, Registry, SITE_FIELDS, WORK_ORDER_FIELDS, assets, devices, sites,
    work_orders,
};

/// The columns of a CSV import (and the fields of a JSON line); `kind` picks which of
/// the others apply.
pub const COLUMNS: [&str; 15] = [
    "kind",
    "id",
    "name",
    "site_id",
    "parent_id",
    "level",
    "external_id",
    "criticality",
    "owner_team",
    "attributes_json",
    "timezone",
    "asset_id",
    "device_type",
    "title",
    "status",
];

/// How long a stopped import may take to roll back before its connection is dropped
/// (which rolls back too, on the database's side).
const ROLLBACK_WITHIN: Duration = Duration::from_secs(5);

/// Rows parsed between two looks at whether the import was stopped.
const PARSE_CHECK_EVERY: usize = 256;

/// The file formats an import reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    /// A header line naming columns from [`COLUMNS`], then one row per record.
    Csv,
    /// One JSON object per line; `attributes` may be given as an object.
    JsonLines,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportReport {
    pub imported: u32,
    pub refused: u32,
    pub rows: Vec<ImportRowResult>,
}

/// Stops a running import: it rolls back and fails with [`RegistryError::Stopped`].
/// Cheap to clone; every clone stops the same import.
#[derive(Clone, Debug)]
pub struct ImportStop(Arc<watch::Sender<Option<&'static str>>>);

impl Default for ImportStop {
    fn default() -> Self {
        ImportStop(Arc::new(watch::channel(None).0))
    }
}

impl ImportStop {
    pub fn new() -> Self {
        ImportStop::default()
    }

    /// Stop the import, saying why (`"the client went away"`); the first reason stays.
    pub fn stop(&self, why: &'static str) {
        self.0.send_if_modified(|reason| {
            if reason.is_some() {
                return false;
            }
            *reason = Some(why);
            true
        });
    }

    /// Why the import was stopped, if it was.
    pub fn reason(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    /// Completes once the import is stopped, with the reason.
    pub async fn stopped(&self) -> &'static str {
        let mut receiver = self.0.subscribe();
        let reason = receiver
            .wait_for(Option::is_some)
            .await
            .map(|reason| reason.unwrap_or("stopped"));
        // The sender lives in `self`, so it cannot be gone while this waits.
        reason.unwrap_or("stopped")
    }

    fn check(&self) -> Result<(), RegistryError> {
        match self.reason() {
            Some(why) => Err(RegistryError::Stopped { why }),
            None => Ok(()),
        }
    }
}

/// One row as read: its kind and id, and the other columns it gives, by name.
#[derive(Debug, Default)]
struct ImportRow {
    kind: String,
    id: String,
    given: Vec<(&'static str, String)>,
}

impl ImportRow {
    fn get(&self, column: &str) -> Option<&str> {
        self.given
            .iter()
            .find(|(name, _)| *name == column)
            .map(|(_, value)| value.as_str())
    }

    /// The column's value; empty when the row does not give it.
    fn text(&self, column: &str) -> String {
        self.get(column).unwrap_or_default().to_owned()
    }

    /// Exactly the given columns among `fields`, as an update mask.
    fn mask(&self, fields: &[&str]) -> UpdateMask {
        UpdateMask::exactly(
            self.given
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| fields.contains(name)),
        )
    }
}

/// One row read from the file: its line, and the row or why it could not be read.
struct ParsedRow {
    line: u32,
    row: Result<ImportRow, String>,
}

/// Import `data` into `registry` as one transaction (see the module docs). Fails as a
/// whole only when the file's header is wrong or the database fails.
pub async fn import(
    registry: &Registry,
    format: ImportFormat,
    data: &[u8],
    dry_run: bool,
) -> Result<ImportReport, RegistryError> {
    let stop = ImportStop::new();
    let rows = parse(format, data, &stop)?;
    apply_rows(registry, rows, dry_run, &stop).await
}

/// Import as [`import`] does, until `stop` is stopped: then the import rolls back and
/// fails with [`RegistryError::Stopped`]. The file is parsed off the async threads.
pub async fn import_stoppable(
    registry: &Registry,
    format: ImportFormat,
    data: Vec<u8>,
    dry_run: bool,
    stop: &ImportStop,
) -> Result<ImportReport, RegistryError> {
    let parser_stop = stop.clone();
    let rows = tokio::task::spawn_blocking(move || parse(format, &data, &parser_stop))
        .await
        .map_err(|_| RegistryError::Stopped {
            why: "the parser failed",
        })??;
    apply_rows(registry, rows, dry_run, stop).await
}

fn parse(
    format: ImportFormat,
    data: &[u8],
    stop: &ImportStop,
) -> Result<Vec<ParsedRow>, RegistryError> {
    match format {
        ImportFormat::Csv => parse_csv(data, stop),
        ImportFormat::JsonLines => parse_json_lines(data, stop),
    }
}

async fn apply_rows(
    registry: &Registry,
    rows: Vec<ParsedRow>,
    dry_run: bool,
    stop: &ImportStop,
) -> Result<ImportReport, RegistryError> {
    stop.check()?;
    let now = registry.now();
    let mut tx = registry.pool().begin().await?;
    let applied = tokio::select! {
        biased;
        why = stop.stopped() => Err(RegistryError::Stopped { why }),
        report = apply_all(&mut tx, rows, now) => report,
    };
    let report = match applied {
        Ok(report) => report,
        Err(error) => {
            roll_back(tx.rollback()).await;
            return Err(error);
        }
    };
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
        registry.changed(None);
    }
    Ok(report)
}

/// Roll a failed or stopped import back, bounded: past [`ROLLBACK_WITHIN`] the
/// connection is dropped, and the database rolls back on its own.
async fn roll_back(rollback: impl Future<Output = Result<(), sqlx::Error>>) {
    match tokio::time::timeout(ROLLBACK_WITHIN, rollback).await {
        Ok(Ok(())) => tracing::info!("Import rolled back."),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "Cannot roll the import back; dropping its connection.");
        }
        Err(_) => tracing::warn!(
            within_s = ROLLBACK_WITHIN.as_secs(),
            "Import rollback too slow; dropping its connection."
        ),
    }
}

async fn apply_all(
    tx: &mut AnyConnection,
    rows: Vec<ParsedRow>,
    now: i64,
) -> Result<ImportReport, RegistryError> {
    let mut report = ImportReport::default();
    for parsed in rows {
        let (kind, id) = parsed
            .row
            .as_ref()
            .map(|row| (row.kind.clone(), row.id.clone()))
            .unwrap_or_default();
        let outcome = match parsed.row {
            Err(reason) => Err(reason),
            Ok(row) => {
                let mut savepoint = tx.begin().await?;
                match apply(&mut savepoint, row, now).await {
                    Ok(()) => {
                        savepoint.commit().await?;
                        Ok(())
                    }
                    Err(error) => {
                        savepoint.rollback().await?;
                        Err(row_error(error)?)
                    }
                }
            }
        };
        match &outcome {
            Ok(()) => report.imported += 1,
            Err(_) => report.refused += 1,
        }
        report.rows.push(ImportRowResult {
            line: parsed.line,
            imported: outcome.is_ok(),
            error: outcome.err().unwrap_or_default(),
            kind,
            id,
        });
    }
    Ok(report)
}
/// Import a file in-process (seeding `sinter dev`, tests): `.csv` is CSV, `.jsonl` and
/// `.ndjson` JSON lines.
pub async fn import_path(
    registry: &Registry,
    path: &std::path::Path,
    dry_run: bool,
) -> Result<ImportReport, RegistryError> {
    let field = path.display().to_string();
    let format = match path.extension().and_then(|extension| extension.to_str()) {
        Some("csv") => ImportFormat::Csv,
        Some("jsonl" | "ndjson") => ImportFormat::JsonLines,
        _ => {
            return Err(RegistryError::invalid(
                field,
                "cannot tell the format: name it .csv, .jsonl or .ndjson",
            ));
        }
    };
    let data = std::fs::read(path)
        .map_err(|error| RegistryError::invalid(field, format!("cannot be read: {error}")))?;
    import(registry, format, &data, dry_run).await
}

/// A row's own failure as its reason; a failure of the database stops the import.
fn row_error(error: RegistryError) -> Result<String, RegistryError> {
    match error {
        RegistryError::Database(sqlx::Error::Database(database)) => {
            Ok(format!("refused by the database: {database}"))
        }
        RegistryError::Database(_) | RegistryError::Migrate(_) => Err(error),
        other => Ok(other.to_string()),
    }
}

async fn apply(conn: &mut AnyConnection, row: ImportRow, now: i64) -> Result<(), RegistryError> {
    match row.kind.as_str() {
        "site" => {
            unused_fields(&row, &SITE_FIELDS)?;
            let site = Site {
                name: row.text("name"),
                timezone: row.text("timezone"),
                attributes_json: row.text("attributes_json"),
                id: row.id.clone(),
                ..Site::default()
            };
            sites::put(conn, site, &row.mask(&SITE_FIELDS), now).await?;
        }
        "asset" => {
            unused_fields(&row, &ASSET_FIELDS)?;
            let asset = Asset {
                site_id: row.text("site_id"),
                parent_id: row.text("parent_id"),
                name: row.text("name"),
                level: row.text("level"),
                external_id: row.text("external_id"),
                criticality: row.text("criticality"),
                owner_team: row.text("owner_team"),
                attributes_json: row.text("attributes_json"),
                id: row.id.clone(),
                ..Asset::default()
            };
            assets::put(conn, asset, &row.mask(&ASSET_FIELDS), now).await?;
        }
        "device" => {
            unused_fields(&row, &DEVICE_FIELDS)?;
            let device = Device {
                asset_id: row.text("asset_id"),
                device_type: row.text("device_type"),
                attributes_json: row.text("attributes_json"),
                id: row.id.clone(),
                ..Device::default()
            };
            devices::put(conn, device, &row.mask(&DEVICE_FIELDS), now).await?;
        }
        "work_order" => {
            unused_fields(&row, &WORK_ORDER_FIELDS)?;
            let status = match row.get("status") {
                None => Status::Unspecified,
                Some("") => Status::Open,
                Some(text) => work_orders::parse_status(text).ok_or_else(|| {
                    RegistryError::invalid("status", format!("{text:?} is not open or closed"))
                })?,
            };
            let order = WorkOrder {
                asset_id: row.text("asset_id"),
                external_id: row.text("external_id"),
                title: row.text("title"),
                status: status as i32,
                id: row.id.clone(),
                ..WorkOrder::default()
            };
            work_orders::put(conn, order, &row.mask(&WORK_ORDER_FIELDS), now).await?;
        }
        "" => return Err(RegistryError::invalid("kind", "is required")),
        other => {
            return Err(RegistryError::invalid(
                "kind",
                format!("{other:?} is not site, asset, device or work_order"),
            ));
        }
    }
    Ok(())
}

/// Refuse a value in a column that means nothing for the row's kind, so a shifted
/// column is not silently lost.
fn unused_fields(row: &ImportRow, allowed: &[&str]) -> Result<(), RegistryError> {
    for (field, value) in &row.given {
        if !value.is_empty() && !allowed.contains(field) {
            return Err(RegistryError::invalid(
                *field,
                format!("does not apply to a {} row", row.kind),
            ));
        }
    }
    Ok(())
}

/// The column of [`COLUMNS`] named `name`.
fn column(name: &str) -> Option<&'static str> {
    COLUMNS.iter().copied().find(|column| *column == name)
}

fn parse_csv(data: &[u8], stop: &ImportStop) -> Result<Vec<ParsedRow>, RegistryError> {
    let mut reader = csv_reader(true, data);
    let headers = reader
        .byte_headers()
        .map_err(|error| RegistryError::invalid("header", format!("cannot be read: {error}")))?
        .clone();
    let mut columns = Vec::with_capacity(headers.len());
    for name in &headers {
        let name = String::from_utf8_lossy(name);
        match column(&name) {
            Some(known) if columns.contains(&known) => {
                return Err(RegistryError::invalid(
                    "header",
                    format!("{name:?} is named twice"),
                ));
            }
            Some(known) => columns.push(known),
            None => {
                return Err(RegistryError::invalid(
                    "header",
                    format!("{name:?} is not a column ({})", COLUMNS.join(", ")),
                ));
            }
        }
    }
    if !columns.contains(&"kind") {
        return Err(RegistryError::invalid("header", "needs a kind column"));
    }
    let lines = LineIndex::new(data);
    let mut rows = Vec::new();
    let mut start = usize::try_from(reader.position().byte()).unwrap_or(data.len());
    // A quote that is never closed would make the rest of the file one field. The record
    // it opens in is refused, and reading goes on from the line after the quote, so each
    // later line is still a row of its own (imported, or refused with its reason).
    while start < data.len() {
        let rest = &data[start..];
        let unclosed = unclosed_quote(rest);
        let complete = unclosed.map_or(rest, |open| &rest[..open.record]);
        read_records(complete, start, &columns, &lines, &mut rows, stop)?;
        let Some(open) = unclosed else {
            break;
        };
        let quote_at = start + open.quote;
        let quote_line = lines.line_at(quote_at as u64);
        rows.push(ParsedRow {
            line: lines.line_at((start + open.record) as u64),
            row: Err(format!(
                "a quoted field opened on line {quote_line} is never closed; the lines after \
                 it are read as rows of their own"
            )),
        });
        match data[quote_at..].iter().position(|byte| *byte == b'\n') {
            Some(offset) => start = quote_at + offset + 1,
            None => break,
        }
    }
    Ok(rows)
}

fn csv_reader(has_headers: bool, data: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data)
}

/// Read the records of `data`, which starts at byte `base` of the file and holds no
/// unclosed quote.
fn read_records(
    data: &[u8],
    base: usize,
    columns: &[&'static str],
    lines: &LineIndex<'_>,
    rows: &mut Vec<ParsedRow>,
    stop: &ImportStop,
) -> Result<(), RegistryError> {
    let mut reader = csv_reader(false, data);
    let mut record = csv::ByteRecord::new();
    let at = |position: Option<&csv::Position>, fallback: u64| {
        lines.line_at(base as u64 + position.map_or(fallback, csv::Position::byte))
    };
    for count in 0.. {
        if count % PARSE_CHECK_EVERY == 0 {
            stop.check()?;
        }
        let before = reader.position().byte();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                if record.iter().all(<[u8]>::is_empty) {
                    continue;
                }
                rows.push(ParsedRow {
                    line: at(record.position(), before),
                    row: csv_row(&record, columns),
                });
            }
            Err(error) => {
                rows.push(ParsedRow {
                    line: at(error.position(), before),
                    row: Err(error.to_string()),
                });
                if reader.position().byte() == before {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn csv_row(record: &csv::ByteRecord, columns: &[&'static str]) -> Result<ImportRow, String> {
    if record.len() != columns.len() {
        return Err(format!(
            "has {} fields where the header has {}",
            record.len(),
            columns.len()
        ));
    }
    let mut row = ImportRow::default();
    for (name, value) in columns.iter().zip(record) {
        let value = std::str::from_utf8(value)
            .map_err(|_| format!("{name}: is not valid UTF-8"))?
            .to_owned();
        match *name {
            "kind" => row.kind = value,
            "id" => row.id = value,
            other => row.given.push((other, value)),
        }
    }
    Ok(row)
}

/// Where a quote that is never closed is, found with the csv reader's own rules: a quote
/// opens a field only as its first character, `""` inside is an escaped quote, and a line
/// break inside a quoted field belongs to the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UnclosedQuote {
    /// Where the record holding it starts.
    record: usize,
    /// Where the opening quote is.
    quote: usize,
}

fn unclosed_quote(data: &[u8]) -> Option<UnclosedQuote> {
    #[derive(Clone, Copy)]
    enum State {
        FieldStart,
        Field,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::FieldStart;
    let mut record = 0;
    let mut quote = 0;
    let mut record_ended = false;
    for (at, byte) in data.iter().copied().enumerate() {
        let ends_record = matches!(byte, b'\n' | b'\r');
        if record_ended && !ends_record {
            record = at;
            record_ended = false;
        }
        state = match (state, byte) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::FieldStart, b'"') => {
                quote = at;
                State::Quoted
            }
            (_, b',') => State::FieldStart,
            (_, b'\n' | b'\r') => {
                record_ended = true;
                State::FieldStart
            }
            _ => State::Field,
        };
    }
    matches!(state, State::Quoted).then_some(UnclosedQuote { record, quote })
}

/// Where the line breaks of an imported file are, so that a row's line number is found
/// by a binary search instead of a count from the start (which made imports quadratic).
struct LineIndex<'a> {
    data: &'a [u8],
    breaks: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(data: &'a [u8]) -> Self {
        let breaks = data
            .iter()
            .enumerate()
            .filter_map(|(at, byte)| (*byte == b'\n').then_some(at))
            .collect();
        LineIndex { data, breaks }
    }

    /// The 1-based line of the first character at or after `offset` that is not a line
    /// break. (The csv crate's own line count leaves out blank lines.)
    fn line_at(&self, offset: u64) -> u32 {
        let data = self.data;
        let mut start = usize::try_from(offset)
            .unwrap_or(data.len())
            .min(data.len());
        while start < data.len() && matches!(data[start], b'\n' | b'\r') {
            start += 1;
        }
        let breaks = self.breaks.partition_point(|at| *at < start);
        u32::try_from(breaks + 1).unwrap_or(u32::MAX)
    }
}

fn parse_json_lines(data: &[u8], stop: &ImportStop) -> Result<Vec<ParsedRow>, RegistryError> {
    let mut rows = Vec::new();
    for (index, line) in data.split(|byte| *byte == b'\n').enumerate() {
        if index % PARSE_CHECK_EVERY == 0 {
            stop.check()?;
        }
        let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows.push(ParsedRow {
            line: line_number,
            row: json_row(line),
        });
    }
    Ok(rows)
}

/// A JSON line as a row: the keys are its columns; a string is the value, `null` is an
/// empty value, and `attributes` may be an object (it becomes `attributes_json`).
fn json_row(line: &[u8]) -> Result<ImportRow, String> {
    let value: Value =
        serde_json::from_slice(line).map_err(|error| format!("is not JSON: {error}"))?;
    let Value::Object(object) = value else {
        return Err("is not a JSON object".to_owned());
    };
    if object.contains_key("attributes") && object.contains_key("attributes_json") {
        return Err("give attributes or attributes_json, not both".to_owned());
    }
    let mut row = ImportRow::default();
    for (key, value) in object {
        let name = if key == "attributes" {
            "attributes_json"
        } else {
            column(&key)
                .ok_or_else(|| format!("{key:?} is not a field ({})", COLUMNS.join(", ")))?
        };
        let text = match value {
            Value::String(text) => text,
            Value::Null => String::new(),
            Value::Object(_) if name == "attributes_json" => value.to_string(),
            _ => return Err(format!("{name}: must be a string")),
        };
        match name {
            "kind" => row.kind = text,
            "id" => row.id = text,
            other => row.given.push((other, text)),
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(data: &[u8]) -> Result<Vec<ParsedRow>, RegistryError> {
        parse_csv(data, &ImportStop::new())
    }

    #[test]
    fn csv_rows_keep_their_line_numbers_and_bad_ones_their_reason() {
        let data = b"kind,id,name\nsite,s1,North\n\nsite,s2\n\nsite,\"s\n3\",Multi\nsite,s4,Four\n";
        let rows = csv(data).unwrap();
        let lines: Vec<u32> = rows.iter().map(|row| row.line).collect();
        assert_eq!(lines, [2, 4, 6, 8]);
        assert_eq!(
            rows[1].row.as_ref().err().map(String::as_str),
            Some("has 2 fields where the header has 3")
        );
        assert_eq!(rows[3].row.as_ref().map(|row| row.id.as_str()), Ok("s4"));
    }

    #[test]
    fn an_unknown_or_repeated_csv_column_is_refused_by_name() {
        let error = csv(b"kind,id,colour\n")
            .err()
            .map(|error| error.to_string());
        assert!(error.is_some_and(|error| error.starts_with("header: \"colour\" is not a column")));
        let error = csv(b"kind,id,name,name\n")
            .err()
            .map(|error| error.to_string());
        assert_eq!(error.as_deref(), Some("header: \"name\" is named twice"));
    }

    #[test]
    fn only_the_given_columns_are_in_a_row() {
        let rows = csv(b"kind,id,criticality\nasset,a1,high\n").unwrap();
        let row = rows[0].row.as_ref().unwrap();
        assert_eq!(row.get("criticality"), Some("high"));
        assert_eq!(row.get("name"), None);
        let rows = parse_json_lines(
            b"{\"kind\":\"asset\",\"id\":\"a1\",\"owner_team\":null}\n",
            &ImportStop::new(),
        )
        .unwrap();
        let row = rows[0].row.as_ref().unwrap();
        assert_eq!(row.get("owner_team"), Some(""));
        assert_eq!(row.get("criticality"), None);
    }

    #[test]
    fn an_unclosed_quote_is_found_where_it_opens() {
        assert_eq!(unclosed_quote(b"a,\"b\nc\",d\ne,f\n"), None);
        assert_eq!(
            unclosed_quote(b"a,b\"c\ne,f\n"),
            None,
            "a quote inside a field"
        );
        assert_eq!(unclosed_quote(b"a,\"b\"\"c\"\n"), None, "an escaped quote");
        assert_eq!(
            unclosed_quote(b"a,b\r\nc,\"d\ne,f\n"),
            Some(UnclosedQuote {
                record: 5,
                quote: 7
            })
        );
        assert_eq!(
            unclosed_quote(b"\"x\ny\",\"z\n"),
            Some(UnclosedQuote {
                record: 0,
                quote: 6
            })
        );
    }

    #[test]
    fn a_stopped_parse_fails_as_stopped() {
        let stop = ImportStop::new();
        stop.stop("the client went away");
        stop.stop("the service is stopping");
        let error = parse_csv(b"kind,id\nsite,s1\n", &stop).err();
        assert!(matches!(
            error,
            Some(RegistryError::Stopped {
                why: "the client went away"
            })
        ));
    }

    #[test]
    fn json_lines_take_attributes_as_an_object() {
        let rows = parse_json_lines(
            b"{\"kind\":\"site\",\"id\":\"s1\",\"name\":\"N\",\"attributes\":{\"a\":1}}\n\n\
              [1]\n{\"kind\":\"site\",\"colour\":\"red\"}\n{\"kind\":\"site\",\"level\":3}\n",
            &ImportStop::new(),
        )
        .unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[0].row.as_ref().map(|row| row.get("attributes_json")),
            Ok(Some("{\"a\":1}"))
        );
        assert_eq!(rows[1].line, 3);
        assert!(
            rows[2]
                .row
                .as_ref()
                .is_err_and(|error| error.contains("colour"))
        );
        assert_eq!(
            rows[3].row.as_ref().err().map(String::as_str),
            Some("level: must be a string")
        );
    }
}
