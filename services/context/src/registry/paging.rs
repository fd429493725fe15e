//! Paging of lists: keyset paging by id, with an opaque token.

use crate::error::RegistryError;

/// Page size when the request gives 0.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// Largest page served.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// The list and filters a page token was issued for: a token only continues the listing
/// it came from, anything else is refused naming `page_token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListScope(u64);

impl ListScope {
    /// The scope of `list` (`"assets"`, ...) with these filter values, in a fixed order.
    ///
    /// FNV-1a over the length-prefixed parts: stable across builds and Rust versions, so a
    /// token survives a restart or another replica; it guards against mistakes, not forgery
    /// (a forged token can only list what the caller could list anyway).
    pub(crate) fn new(list: &str, filters: &[&str]) -> ListScope {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        for part in std::iter::once(list).chain(filters.iter().copied()) {
            let length = u64::try_from(part.len()).unwrap_or(u64::MAX);
            for byte in length.to_be_bytes().iter().chain(part.as_bytes()) {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(PRIME);
            }
        }
        ListScope(hash)
    }
}

/// Where a page starts and how long it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows with ids after this one; empty for the first page.
    pub after: String,
    pub size: i64,
    /// The scope the token was issued for; `None` for the first page.
    scope: Option<ListScope>,
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
        let (scope, after) = decode_token(page_token)
            .ok_or_else(|| RegistryError::invalid("page_token", "is not a token of this API"))?;
        Ok(PageRequest { after, size, scope })
    }

    /// The first page of `size` rows.
    pub fn first(size: i64) -> PageRequest {
        PageRequest {
            after: String::new(),
            size,
            scope: None,
        }
    }

    /// Where the page starts, once the token is known to belong to `scope`.
    pub(crate) fn after_in(&self, scope: ListScope) -> Result<&str, RegistryError> {
        match self.scope {
            Some(issued) if issued != scope => Err(RegistryError::invalid(
                "page_token",
                "was issued for another list or other filters; repeat the request that \
                 returned it, or start again without a token",
            )),
            _ => Ok(&self.after),
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
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        size: i64,
        scope: ListScope,
        id: impl Fn(&T) -> &str,
    ) -> Page<T> {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let next_page_token = if rows.len() > size {
            rows.truncate(size);
            rows.last()
                .map(|last| encode_token(scope, id(last)))
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

/// `k2`, the scope as 16 hex digits, then the last id in hex.
fn encode_token(scope: ListScope, after: &str) -> String {
    use std::fmt::Write;
    let mut token = String::with_capacity(18 + after.len() * 2);
    token.push_str("k2");
    let _ = write!(token, "{:016x}", scope.0);
    for byte in after.bytes() {
        let _ = write!(token, "{byte:02x}");
    }
    token
}

fn decode_token(token: &str) -> Option<(Option<ListScope>, String)> {
    if token.is_empty() {
        return Some((None, String::new()));
    }
    let rest = token.strip_prefix("k2")?;
    let scope = u64::from_str_radix(rest.get(..16)?, 16).ok()?;
    let hex = rest.get(16..)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok())
        .collect();
    Some((Some(ListScope(scope)), String::from_utf8(bytes?).ok()?))
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
        let scope = ListScope::new("assets", &["north", ""]);
        let page = Page::from_rows(vec!["a", "b", "c"], 2, scope, |s| s);
        assert_eq!(page.items, ["a", "b"]);
        let next = PageRequest::parse(2, &page.next_page_token).unwrap();
        assert_eq!(next.after_in(scope).unwrap(), "b");
        assert_eq!(
            Page::from_rows(vec!["a"], 2, scope, |s| s).next_page_token,
            ""
        );
        assert!(PageRequest::parse(0, "k1").is_err());
        assert!(PageRequest::parse(0, &page.next_page_token[..17]).is_err());
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

    #[test]
    fn a_token_continues_only_its_own_list_and_filters() {
        let north = ListScope::new("assets", &["north", ""]);
        let page = Page::from_rows(vec!["a", "b"], 1, north, |s| s);
        let next = PageRequest::parse(1, &page.next_page_token).unwrap();
        assert!(next.after_in(north).is_ok());
        // Moving a value from one filter to the next is another scope too.
        for other in [
            ListScope::new("assets", &["south", ""]),
            ListScope::new("assets", &["", "north"]),
            ListScope::new("devices", &["north", ""]),
        ] {
            let error = next.after_in(other).unwrap_err().to_string();
            assert!(
                error.starts_with("page_token: was issued for another list"),
                "{error}"
            );
        }
        assert!(PageRequest::first(5).after_in(north).is_ok());
    }
}
