//! Paging of lists: keyset paging by id, with an opaque token.

use crate::error::RegistryError;

/// Page size when the request gives 0.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// Largest page served.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// Where a page starts and how long it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows with ids after this one; empty for the first page.
    pub after: String,
    pub size: i64,
}

impl PageRequest {
    /// From the API's `page_size` and `page_token`.
    pub fn parse(page_size: i32, page_token: &str) -> Result<PageRequest, RegistryError> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                return Err(RegistryError::invalid("page_size", "must not be negative"));
            }
            n => i64::from(n).min(MAX_PAGE_SIZE),
        };
        let after = decode_token(page_token)
            .ok_or_else(|| RegistryError::invalid("page_token", "is not a token of this API"))?;
        Ok(PageRequest { after, size })
    }

    /// The first page of `size` rows.
    pub fn first(size: i64) -> PageRequest {
        PageRequest {
            after: String::new(),
            size,
        }
    }
}

/// One page of rows and the token of the next, empty on the last page.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

impl<T> Page<T> {
    /// From up to `size + 1` rows ordered by id: the extra row says another page exists.
    pub(crate) fn from_rows(mut rows: Vec<T>, size: i64, id: impl Fn(&T) -> &str) -> Page<T> {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let next_page_token = if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|last| encode_token(id(last)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Page {
            items: rows,
            next_page_token,
        }
    }
}

fn encode_token(after: &str) -> String {
    let mut token = String::with_capacity(2 + after.len() * 2);
    token.push_str("k1");
    for byte in after.bytes() {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

fn decode_token(token: &str) -> Option<String> {
    if token.is_empty() {
        return Some(String::new());
    }
    let hex = token.strip_prefix("k1")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// `%`, `_` and `\` escaped for a `LIKE ... ESCAPE '\'` pattern, lowercased.
pub(crate) fn like_pattern(contains: &str) -> String {
    if contains.is_empty() {
        return String::new();
    }
    let mut pattern = String::from("%");
    for c in contains.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let page = Page::from_rows(vec!["a", "b", "c"], 2, |s| s);
        assert_eq!(page.items, ["a", "b"]);
        let next = PageRequest::parse(2, &page.next_page_token).unwrap();
        assert_eq!(next.after, "b");
        assert_eq!(Page::from_rows(vec!["a"], 2, |s| s).next_page_token, "");
        assert_eq!(
            PageRequest::parse(0, "nope").unwrap_err().to_string(),
            "page_token: is not a token of this API"
        );
        assert_eq!(
            PageRequest::parse(-1, "").unwrap_err().to_string(),
            "page_size: must not be negative"
        );
        assert_eq!(PageRequest::parse(5000, "").unwrap().size, MAX_PAGE_SIZE);
        assert_eq!(like_pattern("50%_a"), "%50\\%\\_a%");
    }
}
