//! Closed sets of words (`severity: major`, `resolveWhen: cleared`) as Rust enums.

/// A closed set of words the Solution format accepts for one field.
pub trait Keyword: Sized + Copy + 'static {
    /// What the word names, for messages: `severity`.
    const WHAT: &'static str;
    /// Every value, in the order the format lists them.
    const ALL: &'static [Self];

    /// The word the Solution format uses for this value.
    fn as_str(self) -> &'static str;

    /// The value that `word` spells, if any (exact, case-sensitive).
    fn from_word(word: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|value| value.as_str() == word)
    }

    /// The accepted words, for messages: `info, minor, major, critical`.
    fn words() -> String {
        Self::ALL
            .iter()
            .map(|value| value.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Declare an enum whose values are spelled by fixed words in the Solution format.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $crate::solution::keyword::Keyword for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = &[$($name::$variant,)+];

            fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str($crate::solution::keyword::Keyword::as_str(*self))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($crate::solution::keyword::Keyword::as_str(*self))
            }
        }
    };
}

pub(crate) use keyword_enum;

keyword_enum! {
    /// How urgent a detection or a recommendation is, from least to most.
    pub enum Severity ("severity") {
        /// Worth knowing; nobody needs to act.
        Info = "info",
        /// Needs attention in the normal course of work.
        Minor = "minor",
        /// Needs attention soon: a failure is likely.
        Major = "major",
        /// Needs attention now: a failure is happening or imminent.
        Critical = "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_order_by_urgency() {
        for severity in Severity::ALL {
            assert_eq!(Severity::from_word(severity.as_str()), Some(*severity));
        }
        assert_eq!(Severity::from_word("Major"), None);
        assert_eq!(Severity::words(), "info, minor, major, critical");
        assert!(Severity::Info < Severity::Critical);
        assert_eq!(Severity::Major.to_string(), "major");
    }
}
