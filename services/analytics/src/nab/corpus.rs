//! Reading NAB's files: data, labelled windows, cost profiles, published results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::NabError;
use super::scorer::{Profile, RawProfile};

/// One data file of the corpus, with its labelled windows.
#[derive(Clone, Debug)]
pub struct DataFile {
    /// `<group>/<name>.csv`, as `labels/windows.json` names it.
    pub name: String,
    /// Row times in seconds since the epoch (the files' naive local times read as UTC).
    pub times: Vec<i64>,
    pub values: Vec<f64>,
    /// `(start, end)` times of each anomaly window.
    pub windows: Vec<(i64, i64)>,
}

/// Seconds since the epoch of a naive `YYYY-MM-DD HH:MM:SS[.ffffff]`, read as UTC.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

fn read(path: &Path) -> Result<String, NabError> {
    std::fs::read_to_string(path).map_err(|source| NabError::Read {
        path: path.to_owned(),
        source,
    })
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, NabError> {
    serde_json::from_str(&read(path)?).map_err(|source| NabError::Json {
        path: path.to_owned(),
        source,
    })
}

/// NAB's cost profiles from `DIR/config/profiles.json`, in a fixed order.
pub fn load_profiles(dir: &Path) -> Result<Vec<Profile>, NabError> {
    let path = dir.join("config/profiles.json");
    let raw: BTreeMap<String, RawProfile> = json(&path)?;
    let order = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];
    let mut profiles: Vec<Profile> = raw
        .into_iter()
        .map(|(name, raw)| Profile {
            name,
            tp_weight: raw.cost_matrix.tp,
            fp_weight: raw.cost_matrix.fp,
            fn_weight: raw.cost_matrix.fn_,
            tn_weight: raw.cost_matrix.tn,
        })
        .collect();
    profiles.sort_by_key(|p| {
        order
            .iter()
            .position(|o| *o == p.name)
            .unwrap_or(order.len())
    });
    Ok(profiles)
}

/// The labelled windows from `DIR/labels/windows.json`.
pub fn load_windows(dir: &Path) -> Result<BTreeMap<String, Vec<(i64, i64)>>, NabError> {
    let path = dir.join("labels/windows.json");
    let raw: BTreeMap<String, Vec<(String, String)>> = json(&path)?;
    let mut windows = BTreeMap::new();
    for (file, list) in raw {
        let mut parsed = Vec::with_capacity(list.len());
        for (start, end) in list {
            let time = |text: &str| {
                parse_time(text).ok_or_else(|| NabError::Format {
                    path: path.clone(),
                    reason: format!("{file}: window time {text:?} is not YYYY-MM-DD HH:MM:SS"),
                })
            };
            parsed.push((time(&start)?, time(&end)?));
        }
        windows.insert(file, parsed);
    }
    Ok(windows)
}

/// The columns of a CSV file with a header, by name.
pub struct Table {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table, NabError> {
        let text = read(path)?;
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let header = lines
            .next()
            .ok_or_else(|| NabError::Format {
                path: path.to_owned(),
                reason: "empty file".into(),
            })?
            .split(',')
            .map(|h| h.trim().to_owned())
            .collect();
        let rows = lines
            .map(|line| line.split(',').map(|c| c.trim().to_owned()).collect())
            .collect();
        Ok(Table {
            path: path.to_owned(),
            header,
            rows,
        })
    }

    pub fn column(&self, name: &str) -> Result<usize, NabError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| NabError::Format {
                path: self.path.clone(),
                reason: format!("no column {name:?} (columns: {})", self.header.join(", ")),
            })
    }

    /// The column `name` of every row, parsed by `parse`.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, NabError> {
        let column = self.column(name)?;
        self.rows
            .iter()
            .enumerate()
            .map(|(line, row)| {
                row.get(column)
                    .and_then(|cell| parse(cell))
                    .ok_or_else(|| NabError::Format {
                        path: self.path.clone(),
                        reason: format!(
                            "row {}: column {name:?} is missing or malformed",
                            line + 2
                        ),
                    })
            })
            .collect()
    }
}

/// Every data file that `DIR/labels/windows.json` lists and `DIR/data` holds.
pub fn load_corpus(dir: &Path) -> Result<Vec<DataFile>, NabError> {
    let windows = load_windows(dir)?;
    let mut files = Vec::new();
    for (name, windows) in windows {
        let path = dir.join("data").join(&name);
        if !path.exists() {
            continue;
        }
        let table = Table::read(&path)?;
        files.push(DataFile {
            times: table.parsed("timestamp", parse_time)?,
            values: table.parsed("value", |cell| cell.parse::<f64>().ok())?,
            name,
            windows,
        });
    }
    if files.is_empty() {
        return Err(NabError::NoFiles {
            dir: dir.to_owned(),
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_times_parse() {
        assert_eq!(parse_time("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_time("2014-07-01 00:30:00"), Some(1_404_174_600));
        assert_eq!(
            parse_time("2014-10-30 15:30:00.000000"),
            Some(1_414_683_000)
        );
        assert_eq!(parse_time("2014-13-01 00:00:00"), None);
    }
}
