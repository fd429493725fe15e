//! SQL queries with `:named` parameters, and their translation to numbered placeholders.

use std::fmt;

/// A SQL query whose only placeholders are `:name` parameters.
///
/// Colons inside string literals, quoted identifiers, comments, dollar-quoted bodies and
/// `::` casts are not parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedQuery {
    sql: String,
    /// Distinct parameter names, in order of first appearance.
    params: Vec<String>,
    /// Every occurrence: where `:name` is in `sql`, and which entry of `params` it names.
    occurrences: Vec<(std::ops::Range<usize>, usize)>,
}

impl NamedQuery {
    /// Read a query; refuses positional placeholders (`?`, `$1`), naming the named ones found.
    pub fn parse(sql: &str) -> Result<Self, String> {
        // Context providers read; the database account should be read-only too, but a
        // query that plainly writes is refused here already.
        let first_word: String = sql
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_ascii_uppercase();
        if first_word != "SELECT" && first_word != "WITH" {
            return Err(format!(
                "a provider query reads: it must start with SELECT or WITH, not {:?}",
                if first_word.is_empty() {
                    sql.trim()
                } else {
                    first_word.as_str()
                }
            ));
        }
        let scan = scan(sql);
        if !scan.positional.is_empty() {
            let found = if scan.params.is_empty() {
                "none".to_owned()
            } else {
                scan.params
                    .iter()
                    .map(|name| format!(":{name}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "query uses positional placeholders ({}); write :named parameters instead \
                 (named parameters found: {found})",
                scan.positional.join(", ")
            ));
        }
        Ok(NamedQuery {
            sql: sql.to_owned(),
            params: scan.params,
            occurrences: scan.occurrences,
        })
    }

    /// The query as written.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The distinct parameter names (without the colon), in order of first appearance.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// The query with each `:name` replaced by `placeholder(n)`, where `n` (from 1) is the
    /// position of `name` in [`params`](Self::params): bind the values in that order.
    /// `|n| format!("${n}")` suits PostgreSQL, `|n| format!("?{n}")` SQLite.
    pub fn to_positional(&self, placeholder: impl Fn(usize) -> String) -> String {
        let mut rewritten = String::with_capacity(self.sql.len());
        let mut copied = 0;
        for (range, param) in &self.occurrences {
            rewritten.push_str(&self.sql[copied..range.start]);
            rewritten.push_str(&placeholder(param + 1));
            copied = range.end;
        }
        rewritten.push_str(&self.sql[copied..]);
        rewritten
    }
}

impl fmt::Display for NamedQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql)
    }
}

impl serde::Serialize for NamedQuery {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.sql)
    }
}

#[derive(Default)]
struct Scan {
    params: Vec<String>,
    occurrences: Vec<(std::ops::Range<usize>, usize)>,
    positional: Vec<String>,
}

fn scan(sql: &str) -> Scan {
    let bytes = sql.as_bytes();
    let mut scan = Scan::default();
    let mut at = 0;
    while at < bytes.len() {
        at = match bytes[at] {
            b'\'' | b'"' | b'`' => skip_quoted(bytes, at),
            b'-' if bytes.get(at + 1) == Some(&b'-') => skip_until(bytes, at + 2, b"\n"),
            b'/' if bytes.get(at + 1) == Some(&b'*') => skip_until(bytes, at + 2, b"*/"),
            b':' if bytes.get(at + 1) == Some(&b':') => at + 2,
            b':' if bytes
                .get(at + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') =>
            {
                let end = word_end(bytes, at + 1);
                let name = &sql[at + 1..end];
                let param = match scan.params.iter().position(|known| known == name) {
                    Some(param) => param,
                    None => {
                        scan.params.push(name.to_owned());
                        scan.params.len() - 1
                    }
                };
                scan.occurrences.push((at..end, param));
                end
            }
            b'?' => {
                let end = digits_end(bytes, at + 1);
                scan.positional.push(sql[at..end].to_owned());
                end
            }
            b'$' if bytes.get(at + 1).is_some_and(u8::is_ascii_digit) => {
                let end = digits_end(bytes, at + 1);
                scan.positional.push(sql[at..end].to_owned());
                end
            }
            b'$' => skip_dollar_quoted(sql, at),
            _ if bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_' => word_end(bytes, at),
            _ => at + 1,
        };
    }
    scan
}

/// Past a `'...'`, `"..."` or `` `...` `` run whose quote doubles as its own escape.
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut at = start + 1;
    while at < bytes.len() {
        if bytes[at] == quote {
            if bytes.get(at + 1) == Some(&quote) {
                at += 2;
                continue;
            }
            return at + 1;
        }
        at += 1;
    }
    bytes.len()
}

fn skip_until(bytes: &[u8], from: usize, end: &[u8]) -> usize {
    bytes[from.min(bytes.len())..]
        .windows(end.len())
        .position(|window| window == end)
        .map_or(bytes.len(), |offset| from + offset + end.len())
}

/// Past a PostgreSQL `$tag$ ... $tag$` body; a lone `$` is skipped by itself.
fn skip_dollar_quoted(sql: &str, start: usize) -> usize {
    let bytes = sql.as_bytes();
    let tag_end = word_end(bytes, start + 1);
    if bytes.get(tag_end) != Some(&b'$') {
        return start + 1;
    }
    let tag = &sql[start..=tag_end];
    match sql[tag_end + 1..].find(tag) {
        Some(offset) => tag_end + 1 + offset + tag.len(),
        None => bytes.len(),
    }
}

fn word_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
        at += 1;
    }
    at
}

fn digits_end(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < bytes.len() && bytes[at].is_ascii_digit() {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reading_queries_are_accepted() {
        for writes in [
            "DROP TABLE assets",
            "delete from x where id = :device",
            "",
            "  ;",
        ] {
            let err = NamedQuery::parse(writes).expect_err(writes);
            assert!(err.contains("must start with SELECT or WITH"), "{err}");
        }
        assert!(NamedQuery::parse("with x as (select 1) select * from x").is_ok());
    }

    #[test]
    fn finds_named_parameters_in_order() {
        let query = NamedQuery::parse(
            "SELECT a.name, a.criticality FROM assets a \
             WHERE a.device_id = :device AND a.kind = :deviceType OR a.device_id = :device",
        )
        .unwrap();
        assert_eq!(query.params(), ["device", "deviceType"]);
        assert_eq!(
            query.to_positional(|n| format!("${n}")),
            "SELECT a.name, a.criticality FROM assets a \
             WHERE a.device_id = $1 AND a.kind = $2 OR a.device_id = $1"
        );
    }

    #[test]
    fn colons_in_literals_comments_and_casts_are_not_parameters() {
        let query = NamedQuery::parse(
            "SELECT ':nope', \"a:b\", x::text, $$ :body $$ -- :comment\n\
             FROM t /* :block */ WHERE id = :device",
        )
        .unwrap();
        assert_eq!(query.params(), ["device"]);
    }

    #[test]
    fn refuses_positional_placeholders_and_lists_the_named_ones() {
        let message =
            NamedQuery::parse("SELECT * FROM t WHERE a = $1 AND b = ? AND c = :site").unwrap_err();
        assert_eq!(
            message,
            "query uses positional placeholders ($1, ?); write :named parameters instead \
             (named parameters found: :site)"
        );
    }
}
