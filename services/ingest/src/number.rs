//! Numbers written as text: the one rule every transport applies to `"20.5"`.
//!
//! A numeric string is read exactly as JSON reads a number: an optional `-`, digits without
//! a leading zero, an optional fraction and an optional exponent (`20.5`, `-3`, `1e-3`). No
//! surrounding spaces, no `+`, no hex, no thousands separators. The words `NaN`, `inf`,
//! `infinity` (any case, with a sign) are recognised so that they are refused as not finite
//! rather than as not a number.

/// What a piece of text says as a number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NumericText {
    /// A number in JSON's grammar; may still be infinite when it overflows (`1e400`).
    Number(f64),
    /// NaN or an infinity, spelt out.
    NotFinite,
    /// Not a number.
    NotANumber,
}

/// Read `text` by the numeric-string rule.
pub fn read(text: &str) -> NumericText {
    if is_json_number(text) {
        return match text.parse::<f64>() {
            Ok(value) => NumericText::Number(value),
            Err(_) => NumericText::NotANumber,
        };
    }
    let unsigned = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    if ["nan", "inf", "infinity"]
        .iter()
        .any(|word| unsigned.eq_ignore_ascii_case(word))
    {
        NumericText::NotFinite
    } else {
        NumericText::NotANumber
    }
}

/// Whether `text` is a number in JSON's grammar (RFC 8259, section 6).
pub fn is_json_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = 0;
    if bytes.first() == Some(&b'-') {
        at += 1;
    }
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at += digits(&bytes[at..]),
        _ => return false,
    }
    if bytes.get(at) == Some(&b'.') {
        let fraction = digits(&bytes[at + 1..]);
        if fraction == 0 {
            return false;
        }
        at += 1 + fraction;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let exponent = digits(&bytes[at..]);
        if exponent == 0 {
            return false;
        }
        at += exponent;
    }
    at == bytes.len()
}

fn digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_numbers_only() {
        assert_eq!(read("20.5"), NumericText::Number(20.5));
        assert_eq!(read("-3"), NumericText::Number(-3.0));
        assert_eq!(read("1e-3"), NumericText::Number(0.001));
        assert_eq!(read("0"), NumericText::Number(0.0));
        for bad in [
            "",
            " 20.5",
            "20.5 ",
            "+1",
            "0x10",
            "01",
            "1.",
            ".5",
            "1e",
            "1,5",
            "241408E4x",
            "241408E",
            "twenty",
        ] {
            assert_eq!(read(bad), NumericText::NotANumber, "{bad:?}");
        }
    }

    #[test]
    fn spelt_out_non_finite_values_are_recognised() {
        for word in ["NaN", "nan", "inf", "-Infinity", "+INF"] {
            assert_eq!(read(word), NumericText::NotFinite, "{word}");
        }
        assert!(matches!(read("1e400"), NumericText::Number(v) if v.is_infinite()));
    }
}
