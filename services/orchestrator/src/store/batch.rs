//! Multi-row statements: the placeholders of many rows in one portable statement, so a
//! batch costs one round trip per table instead of one per row.

use std::fmt::Write;

/// At most this many parameters in one statement: below PostgreSQL's limit (65,535) and
/// SQLite's (32,766 since 3.32), with room to spare.
pub const MAX_PARAMETERS: usize = 16_000;

/// How many rows of `columns` parameters each fit in one statement.
pub fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMETERS / columns.max(1)).max(1)
}

/// `items` in pieces of a power of two rows each, largest first, none over what one
/// statement holds for `columns` parameters a row.
///
/// A statement's text depends on its row count, and PostgreSQL parses and plans each new
/// text (sqlx prepares it once per connection, then reuses it). Batches come in every
/// size, so a statement per batch would be new nearly every time; in pieces, each table
/// has a dozen texts that stay prepared, at the cost of a few more round trips.
pub fn pieces<T>(items: &[T], columns: usize) -> Pieces<'_, T> {
    let most = rows_per_statement(columns);
    Pieces {
        rest: items,
        largest: 1 << most.ilog2(),
    }
}

/// The pieces of a batch, from [`pieces`].
#[derive(Debug)]
pub struct Pieces<'a, T> {
    rest: &'a [T],
    largest: usize,
}

impl<'a, T> Iterator for Pieces<'a, T> {
    type Item = &'a [T];

    fn next(&mut self) -> Option<&'a [T]> {
        if self.rest.is_empty() {
            return None;
        }
        let size = self.largest.min(1 << self.rest.len().ilog2());
        let (piece, rest) = self.rest.split_at(size);
        self.rest = rest;
        Some(piece)
    }
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
            // Writing into a String cannot fail.
            let _ = write!(sql, "${}", first + row * columns + column);
        }
        sql.push(')');
    }
    sql
}

/// `$1, $2, $3` for `count` parameters numbered from `first` on, for `IN (...)`.
pub fn list(count: usize, first: usize) -> String {
    let mut sql = String::with_capacity(count * 6);
    for n in first..first + count {
        if n > first {
            sql.push_str(", ");
        }
        // Writing into a String cannot fail.
        let _ = write!(sql, "${n}");
    }
    sql
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

    #[test]
    fn pieces_are_powers_of_two_largest_first() {
        let items: Vec<usize> = (0..300).collect();
        let sizes: Vec<usize> = pieces(&items, 14).map(<[usize]>::len).collect();
        assert_eq!(sizes, [256, 32, 8, 4]);
        let rejoined: Vec<usize> = pieces(&items, 14).flatten().copied().collect();
        assert_eq!(rejoined, items);
        // At most 16,000 parameters: 8,000 rows of 2 come as pieces of 4,096.
        let many: Vec<usize> = (0..8_000).collect();
        let sizes: Vec<usize> = pieces(&many, 2).map(<[usize]>::len).collect();
        assert_eq!(sizes[..2], [4_096, 2_048]);
        assert_eq!(sizes.iter().sum::<usize>(), 8_000);
        assert_eq!(pieces(&[] as &[usize], 3).count(), 0);
    }
}
