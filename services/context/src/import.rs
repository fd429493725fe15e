//! Bulk import of the registry from CSV or JSON lines, with one result per row.
//!
//! Transaction policy: the whole file is one transaction and every row runs in its own
//! savepoint. A refused row is rolled back to its savepoint and reported with its line
//! and reason; the other rows go on. At the end the transaction commits, so readers see
//! every accepted row at once or none of them; a dry run rolls it back instead. If the
//! database itself fails (the connection drops), the import fails as a whole and nothing
//! is written. Rows are applied in file order, so a parent must come before its
//! children. A row whose id exists replaces that record (an import can be run again).

use serde::Deserialize;
use sinter_proto::context::v1::{Asset, Device, ImportRowResult, Site, WorkOrder};
use sqlx::{AnyConnection, Connection};

use crate::error::RegistryError;
use crate::registry::{Registry, assets, devices, sites, work_orders};

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

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ImportRow {
    kind: String,
    id: String,
    name: String,
    site_id: String,
    parent_id: String,
    level: String,
    external_id: String,
    criticality: String,
    owner_team: String,
    attributes_json: String,
    timezone: String,
    asset_id: String,
    device_type: String,
    title: String,
    status: String,
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
    let rows = match format {
        ImportFormat::Csv => parse_csv(data)?,
        ImportFormat::JsonLines => parse_json_lines(data),
    };
    let now = registry.now();
    let mut tx = registry.pool().begin().await?;
    let mut report = ImportReport::default();
    for parsed in rows {
        let kind = parsed
            .row
            .as_ref()
            .map(|row| row.kind.clone())
            .unwrap_or_default();
        let id = parsed
            .row
            .as_ref()
            .map(|row| row.id.clone())
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
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
        registry.changed(None);
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
    let check_unused = |allowed: &[&str]| unused_fields(&row, allowed);
    match row.kind.as_str() {
        "site" => {
            check_unused(&["name", "timezone", "attributes_json"])?;
            let site = Site {
                id: row.id,
                name: row.name,
                timezone: row.timezone,
                attributes_json: row.attributes_json,
                ..Site::default()
            };
            sites::upsert(conn, site, now).await?;
        }
        "asset" => {
            check_unused(&[
                "name",
                "site_id",
                "parent_id",
                "level",
                "external_id",
                "criticality",
                "owner_team",
                "attributes_json",
            ])?;
            let asset = Asset {
                id: row.id,
                site_id: row.site_id,
                parent_id: row.parent_id,
                name: row.name,
                level: row.level,
                external_id: row.external_id,
                criticality: row.criticality,
                owner_team: row.owner_team,
                attributes_json: row.attributes_json,
                ..Asset::default()
            };
            assets::upsert(conn, asset, now).await?;
        }
        "device" => {
            check_unused(&["asset_id", "device_type", "attributes_json"])?;
            let device = Device {
                id: row.id,
                asset_id: row.asset_id,
                device_type: row.device_type,
                attributes_json: row.attributes_json,
                ..Device::default()
            };
            devices::upsert(conn, device, now).await?;
        }
        "work_order" => {
            check_unused(&["asset_id", "external_id", "title", "status"])?;
            let status = if row.status.is_empty() {
                work_orders::parse_status("open")
            } else {
                work_orders::parse_status(&row.status)
            };
            let Some(status) = status else {
                return Err(RegistryError::invalid(
                    "status",
                    format!("{:?} is not open or closed", row.status),
                ));
            };
            let order = WorkOrder {
                id: row.id,
                asset_id: row.asset_id,
                external_id: row.external_id,
                title: row.title,
                status: status as i32,
                ..WorkOrder::default()
            };
            work_orders::upsert(conn, order, now).await?;
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
    let given = [
        ("name", &row.name),
        ("site_id", &row.site_id),
        ("parent_id", &row.parent_id),
        ("level", &row.level),
        ("external_id", &row.external_id),
        ("criticality", &row.criticality),
        ("owner_team", &row.owner_team),
        ("attributes_json", &row.attributes_json),
        ("timezone", &row.timezone),
        ("asset_id", &row.asset_id),
        ("device_type", &row.device_type),
        ("title", &row.title),
        ("status", &row.status),
    ];
    for (field, value) in given {
        if !value.is_empty() && !allowed.contains(&field) {
            return Err(RegistryError::invalid(
                field,
                format!("does not apply to a {} row", row.kind),
            ));
        }
    }
    Ok(())
}

fn parse_csv(data: &[u8]) -> Result<Vec<ParsedRow>, RegistryError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|error| RegistryError::invalid("header", format!("cannot be read: {error}")))?
        .clone();
    if !headers.iter().any(|name| name == "kind") {
        return Err(RegistryError::invalid("header", "needs a kind column"));
    }
    for name in &headers {
        if !COLUMNS.contains(&name) {
            return Err(RegistryError::invalid(
                "header",
                format!("{name:?} is not a column ({})", COLUMNS.join(", ")),
            ));
        }
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let lines = LineIndex::new(data);
    loop {
        let line = lines.line_at(reader.position().byte());
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record
                    .position()
                    .map_or(line, |position| lines.line_at(position.byte()));
                if record.iter().all(str::is_empty) {
                    continue;
                }
                let row = record
                    .deserialize::<ImportRow>(Some(&headers))
                    .map_err(|error| error.to_string());
                rows.push(ParsedRow { line, row });
            }
            Err(error) => {
                let line = error
                    .position()
                    .map_or(line, |position| lines.line_at(position.byte()));
                let reason = match error.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("has {len} fields where the header has {expected_len}")
                    }
                    _ => error.to_string(),
                };
                rows.push(ParsedRow {
                    line,
                    row: Err(reason),
                });
                if !matches!(error.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    break;
                }
            }
        }
    }
    Ok(rows)
}

/// The 1-based line of the first character at or after byte `offset` that is not a line
/// break. (The csv crate's own line count leaves out blank lines.)
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
    /// break.
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

fn parse_json_lines(data: &[u8]) -> Vec<ParsedRow> {
    let mut rows = Vec::new();
    for (index, line) in data.split(|byte| *byte == b'\n').enumerate() {
        let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows.push(ParsedRow {
            line: line_number,
            row: json_row(line),
        });
    }
    rows
}

fn json_row(line: &[u8]) -> Result<ImportRow, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(line).map_err(|error| format!("is not JSON: {error}"))?;
    let Some(object) = value.as_object_mut() else {
        return Err("is not a JSON object".to_owned());
    };
    if let Some(attributes) = object.remove("attributes") {
        if object.contains_key("attributes_json") {
            return Err("give attributes or attributes_json, not both".to_owned());
        }
        object.insert(
            "attributes_json".to_owned(),
            serde_json::Value::String(attributes.to_string()),
        );
    }
    serde_json::from_value(value).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_keep_their_line_numbers_and_bad_ones_their_reason() {
        let data = b"kind,id,name\nsite,s1,North\n\nsite,s2\n\nsite,\"s\n3\",Multi\nsite,s4,Four\n";
        let rows = parse_csv(data).unwrap();
        let lines: Vec<u32> = rows.iter().map(|row| row.line).collect();
        assert_eq!(lines, [2, 4, 6, 8]);
        assert_eq!(
            rows[1].row.as_ref().err().map(String::as_str),
            Some("has 2 fields where the header has 3")
        );
        assert_eq!(rows[3].row.as_ref().map(|row| row.id.as_str()), Ok("s4"));
    }

    #[test]
    fn an_unknown_csv_column_is_refused_by_name() {
        let error = parse_csv(b"kind,id,colour\n")
            .err()
            .map(|error| error.to_string());
        assert!(error.is_some_and(|error| error.starts_with("header: \"colour\" is not a column")));
    }

    #[test]
    fn json_lines_take_attributes_as_an_object() {
        let rows = parse_json_lines(
            b"{\"kind\":\"site\",\"id\":\"s1\",\"name\":\"N\",\"attributes\":{\"a\":1}}\n\n\
              [1]\n{\"kind\":\"site\",\"colour\":\"red\"}\n",
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0].row.as_ref().map(|row| row.attributes_json.as_str()),
            Ok("{\"a\":1}")
        );
        assert_eq!(rows[1].line, 3);
        assert!(
            rows[2]
                .row
                .as_ref()
                .is_err_and(|error| error.contains("colour"))
        );
    }
}
