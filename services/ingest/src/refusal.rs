//! Why a reading was refused: a reason code shared with the dead-letter stream, and a message.

use sinter_proto::events::v1::ReasonCode;

/// A refused reading's reason: the code machines act on, the sentence a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The reason code, the same in the API's result and on the dead-letter stream.
    pub code: ReasonCode,
    /// Names the field and what was wrong with it.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The reason code as a short, bounded label for metrics: `out_of_range`.
    pub fn label(&self) -> &'static str {
        reason_label(self.code)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str_name(), self.message)
    }
}

/// A reason code as a metric label: the enum name without its prefix, in lower case.
pub fn reason_label(code: ReasonCode) -> &'static str {
    match code {
        ReasonCode::Unspecified => "unspecified",
        ReasonCode::Malformed => "malformed",
        ReasonCode::UnknownDeviceType => "unknown_device_type",
        ReasonCode::UnknownMetric => "unknown_metric",
        ReasonCode::WrongType => "wrong_type",
        ReasonCode::NotFinite => "not_finite",
        ReasonCode::OutOfRange => "out_of_range",
        ReasonCode::BadTimestamp => "bad_timestamp",
        ReasonCode::TooFarInFuture => "too_far_in_future",
        ReasonCode::TooOld => "too_old",
        ReasonCode::BadDeviceId => "bad_device_id",
        ReasonCode::TooLarge => "too_large",
        ReasonCode::BatchTooLarge => "batch_too_large",
        ReasonCode::Late => "late",
        ReasonCode::Undecodable => "undecodable",
        ReasonCode::UnknownSolution => "unknown_solution",
        ReasonCode::MissingField => "missing_field",
    }
}
