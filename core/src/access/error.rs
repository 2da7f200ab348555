//! What can go wrong when identifying or authorising someone.

/// An operator could not be created, found, authenticated or authorised.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A username that does not match `^[a-z0-9][a-z0-9._-]{0,62}$`.
    #[error(
        "username `{0}` is invalid: use 1 to 63 characters, a lowercase letter or digit, then \
         lowercase letters, digits, `.`, `_` or `-`"
    )]
    InvalidUsername(String),
    /// A role name that does not match `^[a-z][a-z0-9-]{0,62}$`.
    #[error(
        "role `{0}` is invalid: use 1 to 63 characters, a lowercase letter then lowercase letters, digits or `-`"
    )]
    InvalidRole(String),
    /// Printed name empty or over 200 characters.
    #[error("the printed name must be 1 to 200 characters (it is shown on every signature)")]
    InvalidPrintedName,
    /// Password shorter than 12 characters or longer than 1024 bytes.
    #[error("the password must be 12 to 1024 characters long")]
    WeakPassword,
    /// The username is taken.
    #[error("operator `{0}` already exists; pick another username")]
    UsernameTaken(String),
    /// No such operator.
    #[error("no operator `{0}`; `annex operators list` shows them")]
    UnknownOperator(String),
    /// A site named in an operator's scope does not exist.
    #[error("no site `{0}`; `annex sites list` shows them")]
    UnknownSite(String),
    /// The operator is disabled.
    #[error("operator `{0}` is disabled; an admin can enable them again")]
    Disabled(String),
    /// The password given does not match (the same message whatever was wrong, so it leaks nothing).
    #[error("the password is wrong for operator `{0}`")]
    WrongPassword(String),
    /// The caller lacks the role or site scope the action needs.
    #[error("{0}")]
    Forbidden(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Hashing failed (a bug or an exhausted machine).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}
