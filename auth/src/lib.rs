//! `corral-auth`: identities and ACL schemes, and the one question "may these
//! identities do permission P on a znode with this ACL".
//!
//! A session holds a list of [`Principal`]s (scheme + id). An ACL is a list of
//! `(perms, scheme:id)` entries. The schemes, as in Apache ZooKeeper:
//!
//! - **`world`**: `world:anyone` grants to every session. It is the only `world` id.
//! - **`auth`**: only in a create/setACL request. [`fixup_acl`] replaces it with one
//!   entry per identity that the session *authenticated* (digest, x509); it is never
//!   stored, and a stored one would match nobody.
//! - **`digest`**: `user:base64(sha1("user:password"))`, ZooKeeper's wire form, which
//!   clients compute themselves ([`digest_id`]). A session gets one by
//!   `addauth digest user:password` ([`add_auth`]).
//! - **`ip`**: `addr` or `addr/prefix_len`, IPv4 or IPv6 ([`ip`]). Every session has
//!   its peer address as an `ip` principal from connect ([`connect_principals`]).
//!   An address says where a client is, not who, so `auth` does not expand to it.
//! - **`super`**: the principal `("super", "")` passes every ACL. It is granted by
//!   `addauth digest` with the credentials of a configured super user
//!   ([`SuperUsers`]): argon2 hashes ([`password`]), or one ZooKeeper-style digest
//!   for drop-in compatibility. It never appears in an ACL.
//! - **`x509`**: the subject DN of the verified TLS client certificate, added by the
//!   server at the handshake, written as Java's `X500Principal.getName()` writes it
//!   (RFC 2253) so ACLs made for ZooKeeper's x509 provider carry over ([`x509`]).
//!   Matching is exact comparison of the id string. [`X509Rule`]s (DN, CN, SAN
//!   URI/DNS/email globs) map certificates to tenants.
//!
//! Nothing here does I/O or reads the clock. Argon2 salts come from the OS RNG, used
//! only when hashing a new password (an operator action), never on a replicated path.

pub mod acl;
pub mod digest;
pub mod error;
pub mod identity;
pub mod ip;
pub mod password;
pub mod scheme;
pub mod superuser;
pub mod x509;

pub use acl::{check, fixup_acl, require};
pub use digest::digest_id;
pub use error::AuthError;
pub use identity::{add_auth, client_info, connect_principals, super_principal, AuthOutcome};
pub use ip::IpRange;
pub use password::{hash_password, verify_password};
pub use scheme::Scheme;
pub use superuser::SuperUsers;
pub use x509::{CertIdentity, X509Rule};

/// An authenticated identity of a session (scheme + id), e.g. `("ip", "127.0.0.1")`,
/// `("digest", "bob:base64sha1")`, `("super", "")`, `("x509", "CN=..")`.
pub type Principal = corral_proto::Id;
