//! A light check of the URLs a Solution names: scheme, host, port, and no credentials.

/// Check that `text` is `scheme://host[:port][/path...]` with one of `schemes`.
///
/// Credentials in the URL are refused: secrets come from the environment or a file.
pub(crate) fn check(text: &str, schemes: &[&str]) -> Result<(), String> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("{text:?} is not a URL (expected {expected}...)"));
    };
    if !schemes
        .iter()
        .any(|allowed| scheme.eq_ignore_ascii_case(allowed))
    {
        return Err(format!("{text:?} must start with {expected}"));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(format!("URL {text:?} contains whitespace"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "URL {text:?} contains credentials; keep secrets out of the Solution and take \
             them from the environment or a file"
        ));
    }
    let (host, port) = split_host_port(authority);
    if host.is_empty() || host == "[]" {
        return Err(format!("URL {text:?} has no host"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|number| number > 0)
    {
        return Err(format!("URL {text:?} has an invalid port {port:?}"));
    }
    Ok(())
}

/// Split `host:port`, keeping a bracketed IPv6 host (`[::1]:8080`) whole.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port)
            }
            None => ("", None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &[&str] = &["http", "https"];

    #[test]
    fn accepts_ordinary_urls() {
        assert!(check("https://cmms.example/api/work-orders", WEB).is_ok());
        assert!(check("http://localhost:8080", WEB).is_ok());
        assert!(check("http://[::1]:8080/x?y=1", WEB).is_ok());
        assert!(check("mqtt://broker:1883", &["mqtt", "mqtts"]).is_ok());
    }

    #[test]
    fn refuses_wrong_schemes_hosts_ports_and_credentials() {
        for (text, expected) in [
            ("ftp://files.example", "must start with http:// or https://"),
            ("cmms.example/api", "is not a URL"),
            ("https://", "has no host"),
            ("https://host:99999/", "invalid port"),
            ("https://host:/", "invalid port"),
            ("https://user:secret@host/", "contains credentials"),
            ("https://host/a b", "whitespace"),
        ] {
            let message = check(text, WEB).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }
}
