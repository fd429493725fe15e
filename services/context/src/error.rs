//! The registry's errors: each names the field or the record it is about.

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A field of the request is wrong; `field` is its path, like `asset.criticality`.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The record does not exist.
    #[error("no {kind} {id:?}")]
    NotFound { kind: &'static str, id: String },
    /// A record with this id (or unique field) exists already.
    #[error("{kind} {id:?} already exists{detail}")]
    AlreadyExists {
        kind: &'static str,
        id: String,
        /// Empty, or `: ` and which unique field clashed.
        detail: String,
    },
    /// The change is refused because of the registry's current state.
    #[error("{0}")]
    Conflict(String),
    /// The database URL is not one the registry can use.
    #[error("database URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// An import was stopped before it finished, and nothing of it was written.
    #[error("the import was stopped before it finished ({why}); every row was rolled back")]
    Stopped { why: &'static str },
    #[error("the database failed")]
    Database(#[source] sqlx::Error),
    #[error("the registry's migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl RegistryError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RegistryError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(kind: &'static str, id: &str) -> Self {
        RegistryError::NotFound {
            kind,
            id: id.to_owned(),
        }
    }

    /// A bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            RegistryError::Invalid { .. } => "invalid",
            RegistryError::NotFound { .. } => "not_found",
            RegistryError::AlreadyExists { .. } => "already_exists",
            RegistryError::Conflict(_) => "conflict",
            RegistryError::BadUrl { .. } => "bad_url",
            RegistryError::Stopped { .. } => "stopped",
            RegistryError::Database(_) => "database",
            RegistryError::Migrate(_) => "migrate",
        }
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(error: sqlx::Error) -> Self {
        RegistryError::Database(error)
    }
}

impl From<RegistryError> for tonic::Status {
    fn from(error: RegistryError) -> Self {
        match &error {
            RegistryError::Invalid { .. } => tonic::Status::invalid_argument(error.to_string()),
            RegistryError::NotFound { .. } => tonic::Status::not_found(error.to_string()),
            RegistryError::AlreadyExists { .. } => tonic::Status::already_exists(error.to_string()),
            RegistryError::Conflict(_) => tonic::Status::failed_precondition(error.to_string()),
            RegistryError::BadUrl { .. } => tonic::Status::invalid_argument(error.to_string()),
            RegistryError::Stopped { .. } => tonic::Status::unavailable(error.to_string()),
            RegistryError::Database(source) => {
                tracing::error!(error = %source, "Registry database failed.");
                tonic::Status::unavailable(format!("the registry database failed: {source}"))
            }
            RegistryError::Migrate(source) => {
                tonic::Status::internal(format!("the registry's migrations failed: {source}"))
            }
        }
    }
}

/// A database error that is a unique-key violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A database error that is a foreign-key violation. SQLite reports a refused
/// `ON DELETE RESTRICT` as a trigger constraint (extended code 1811), hence the message.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.is_foreign_key_violation() || db.message().contains("FOREIGN KEY constraint failed"))
}
