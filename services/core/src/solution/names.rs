//! Rules for the names a Solution gives things: resource names, metric names, variables.

use super::error::Problems;
use super::path::Path;

/// Check a DNS-1123 label: at most 63 lowercase letters, digits and `-`, starting and ending
/// with a letter or digit. Kubernetes names and Sinter topic segments follow it.
pub(crate) fn dns_label(name: &str) -> Result<(), String> {
    let well_formed = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a DNS-1123 label (at most 63 characters: lowercase letters, \
             digits and '-', starting and ending with a letter or digit)"
        ))
    }
}

/// Whether `name` is a DNS-1123 subdomain, as Secret and ConfigMap names are: dot-separated
/// labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|part| dns_label(part).is_ok())
}

/// Check an identifier: a letter or `_`, then letters, digits or `_`; at most 128 characters.
/// Metric names and context provider names (which become CEL variables) follow it.
pub(crate) fn identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name (a letter or '_', then letters, digits or '_')"
        ))
    }
}

/// Words CEL keeps for itself; none may name a variable.
const CEL_RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Check a name that becomes a CEL variable: an [`identifier`] that is not a reserved word.
pub(crate) fn cel_variable(name: &str) -> Result<(), String> {
    identifier(name)?;
    if CEL_RESERVED.contains(&name) {
        return Err(format!("{name:?} is a reserved word in CEL"));
    }
    Ok(())
}

/// Check an environment variable name: letters, digits and `_`, not starting with a digit.
pub(crate) fn env_var(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if well_formed {
        Ok(())
    } else {
        Err(format!("{name:?} is not an environment variable name"))
    }
}

/// Check a Kubernetes label key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
pub(crate) fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let subdomain = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| dns_label(part).is_ok());
        if !subdomain {
            return Err(format!(
                "the prefix of label key {key:?} is not a DNS subdomain"
            ));
        }
    }
    if name.is_empty() || !label_text(name) {
        return Err(format!(
            "label key {key:?} must end in a name of at most 63 letters, digits, '-', '_' \
             and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Check a Kubernetes label value: empty, or like the name part of a label key.
pub(crate) fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || label_text(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} must be at most 63 letters, digits, '-', '_' and '.', \
             starting and ending with a letter or digit"
        ))
    }
}

fn label_text(text: &str) -> bool {
    text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && text
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Names already given within one scope, to report the second use of a name.
#[derive(Debug)]
pub(crate) struct Unique {
    what: &'static str,
    first: std::collections::HashMap<String, Path>,
}

impl Unique {
    /// A fresh scope for names of `what` kind, e.g. `device type`.
    pub(crate) fn new(what: &'static str) -> Self {
        Unique {
            what,
            first: std::collections::HashMap::new(),
        }
    }

    /// Record `name`, given at `path`; report it when the scope already has it.
    pub(crate) fn claim(&mut self, name: &str, path: &Path, problems: &mut Problems) {
        match self.first.get(name) {
            Some(first) => problems.report(
                path,
                format!("duplicate {} {name:?} (first at {first})", self.what),
            ),
            None => {
                self.first.insert(name.to_owned(), path.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["pump-health", "a", "p1", &"x".repeat(63)] {
            assert!(dns_label(good).is_ok(), "{good}");
        }
        for bad in ["", "Pump", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_and_cel_variables() {
        assert!(identifier("bearing_temperature").is_ok());
        assert!(identifier("_x1").is_ok());
        assert!(identifier("1x").is_err());
        assert!(identifier("vibration-rms").is_err());
        assert!(cel_variable("asset").is_ok());
        assert_eq!(
            cel_variable("in"),
            Err(r#""in" is a reserved word in CEL"#.to_owned())
        );
    }

    #[test]
    fn environment_variables() {
        assert!(env_var("CMMS_TOKEN").is_ok());
        assert!(env_var("9LIVES").is_err());
        assert!(env_var("A-B").is_err());
    }

    #[test]
    fn kubernetes_labels() {
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("tier").is_ok());
        assert!(label_key("Bad Key").is_err());
        assert!(label_key("/x").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("-x").is_err());
    }
}
