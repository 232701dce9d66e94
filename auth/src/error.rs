//! The crate's error type, one variant per way an identity or ACL can be refused.

use corral_proto::ErrorCode;
use thiserror::Error;

/// Why an authentication, ACL or super-user operation was refused.
///
/// Messages never carry secrets (passwords, hashes) nor znode paths: the server
/// decides what, if anything, reaches the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// `addauth` with an unknown scheme or credentials the scheme refuses.
    #[error("authentication failed for scheme {scheme:?}")]
    AuthFailed { scheme: String },
    /// An ACL list from create/setACL that ZooKeeper's fixupACL would refuse.
    #[error("invalid ACL: {reason}")]
    InvalidAcl { reason: String },
    /// The session's identities lack the permission asked for.
    #[error("not authorized")]
    NoAuth,
    /// A configured super-user entry is not `name:<argon2 PHC string>` (or
    /// `name:base64sha1` for the ZooKeeper-style digest).
    #[error("invalid super user entry for {name:?}: {reason}")]
    InvalidSuperUser { name: String, reason: String },
    /// The password hasher failed (it should not, with default parameters).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    /// A client certificate corral cannot read an identity from.
    #[error("bad certificate: {reason}")]
    BadCertificate { reason: String },
    /// An x509 mapping rule that is not `dn:`, `cn:`, `uri:`, `dns:` or `email:` + pattern.
    #[error("invalid x509 rule {rule:?}: {reason}")]
    InvalidX509Rule { rule: String, reason: String },
}

impl AuthError {
    /// The ZooKeeper error code a client sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::AuthFailed { .. } => ErrorCode::AuthFailed,
            AuthError::InvalidAcl { .. } => ErrorCode::InvalidAcl,
            AuthError::NoAuth => ErrorCode::NoAuth,
            AuthError::InvalidSuperUser { .. } => ErrorCode::BadArguments,
            AuthError::PasswordHash(_) => ErrorCode::SystemError,
            AuthError::BadCertificate { .. } => ErrorCode::AuthFailed,
            AuthError::InvalidX509Rule { .. } => ErrorCode::BadArguments,
        }
    }

    pub(crate) fn invalid_acl(reason: impl Into<String>) -> Self {
        AuthError::InvalidAcl {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_zookeeper_code() {
        // Goal: code() gives the wire error code the server replies with.
        let failed = AuthError::AuthFailed {
            scheme: "digest".into(),
        };
        assert_eq!(failed.code(), ErrorCode::AuthFailed);
        assert_eq!(AuthError::invalid_acl("x").code(), ErrorCode::InvalidAcl);
        assert_eq!(AuthError::NoAuth.code(), ErrorCode::NoAuth);
        let bad_super = AuthError::InvalidSuperUser {
            name: "a".into(),
            reason: "r".into(),
        };
        assert_eq!(bad_super.code(), ErrorCode::BadArguments);
        assert_eq!(
            AuthError::PasswordHash("x".into()).code(),
            ErrorCode::SystemError
        );
        let cert = AuthError::BadCertificate { reason: "r".into() };
        assert_eq!(cert.code(), ErrorCode::AuthFailed);
        let rule = AuthError::InvalidX509Rule {
            rule: "x".into(),
            reason: "r".into(),
        };
        assert_eq!(rule.code(), ErrorCode::BadArguments);
    }
}
