//! The crate's error type and its mapping to ZooKeeper error codes.

use corral_proto::{DecodeError, ErrorCode};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes read back (log record, snapshot file, encoded txn) are not what we wrote.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("sled error: {0}")]
    Sled(#[from] sled::Error),
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// An append whose zxid does not follow the log's last zxid.
    #[error("log order violated: zxid {got:#x} after {last:#x}")]
    LogOrder { last: i64, got: i64 },
    /// A fault injected by [`crate::disk::MemTxnLog`].
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

impl StoreError {
    /// The ZooKeeper error code a client would see for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::InvalidPath { .. } => ErrorCode::BadArguments,
            _ => ErrorCode::SystemError,
        }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn decode(what: &'static str) -> impl Fn(DecodeError) -> StoreError {
        move |e| StoreError::corrupt(what, e)
    }
}
