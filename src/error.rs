//! One error type for every use case. Client errors carry a stable code and a
//! message; server errors keep their details for the log. How each is answered over
//! HTTP (status, JSON or a page) is decided in one place, `http/error.rs`.

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in first")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Gone(&'static str),
    /// The request does not fit the resource's current state (a resumable upload
    /// at another offset than the client thinks).
    #[error("{0}")]
    Conflict(String),
    /// Another request is working on the resource right now; try again shortly.
    #[error("{0}")]
    Locked(&'static str),
    #[error("the checksum of the data does not match; the data was discarded")]
    ChecksumMismatch,
    #[error("the upload is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { len: u64 },
    #[error("too many attempts; try again in {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    #[error("not enough free disk space on the server")]
    InsufficientStorage,
    #[error("the service is shutting down or not ready")]
    Unavailable,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// Stable machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound | Self::Database(sqlx::Error::RowNotFound) => "not_found",
            Self::Gone(_) => "gone",
            Self::Conflict(_) => "conflict",
            Self::Locked(_) => "locked",
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::InsufficientStorage => "insufficient_storage",
            Self::Unavailable => "unavailable",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }

    /// What the client may read. Internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Self::Database(sqlx::Error::RowNotFound) => "not found".into(),
            Self::Database(_) | Self::Internal(_) => "internal server error".into(),
            other => other.to_string(),
        }
    }
}

/// An upload that failed while streaming, as the client is told.
impl From<crate::blobs::UploadError> for AppError {
    fn from(e: crate::blobs::UploadError) -> Self {
        use crate::blobs::UploadError;
        match e {
            UploadError::TooLarge { limit } => Self::PayloadTooLarge { limit },
            UploadError::NoSpace => Self::InsufficientStorage,
            UploadError::Body(msg) => {
                Self::BadRequest(format!("the upload was interrupted or malformed: {msg}"))
            }
            UploadError::Unavailable(_) => Self::Unavailable,
            UploadError::Io(e) => Self::Internal(e.into()),
        }
    }
}
