//! Time zones as Solutions and the asset registry name them: IANA names, one rule for both.

/// The zone named `name` (`Europe/Berlin`, `UTC`), or why the name is refused.
// Limitation: the names are chrono-tz's copy of the tz database; a zone newer than that
// copy is refused until the crate is updated.
pub fn parse(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone name (like Europe/Berlin or UTC)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_tz_database_s() {
        assert_eq!(parse("Asia/Tokyo"), Ok(chrono_tz::Asia::Tokyo));
        assert_eq!(parse("UTC"), Ok(chrono_tz::UTC));
        let refused = parse("Berlin").expect_err("not a zone name");
        assert!(
            refused.starts_with("\"Berlin\" is not an IANA"),
            "{refused}"
        );
    }
}
