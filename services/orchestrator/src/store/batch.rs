//! Multi-row statements: the placeholders of many rows in one portable statement, so a
//! batch costs one round trip per table instead of one per row.

/// At most this many parameters in one statement: below PostgreSQL's limit (65,535) and
/// SQLite's (32,766 since 3.32), with room to spare.
pub const MAX_PARAMETERS: usize = 16_000;

/// How many rows of `columns` parameters each fit in one statement.
pub fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMETERS / columns.max(1)).max(1)
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` parameters each, numbered from
/// `first` on.
pub fn values(rows: usize, columns: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + row * columns + column).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `$1, $2, $3` for `count` parameters numbered from `first` on, for `IN (...)`.
pub fn list(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_count_on_across_rows() {
        assert_eq!(values(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values(1, 2, 4), "($4, $5)");
        assert_eq!(list(3, 2), "$2, $3, $4");
        assert_eq!(rows_per_statement(12), 1_333);
    }
}
