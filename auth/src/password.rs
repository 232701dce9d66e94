//! Stored credentials: argon2id PHC strings (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`).
//!
//! Only credentials corral keeps (super users) use this. Digest ACL ids stay SHA-1
//! because clients compute them; see [`crate::digest`].

use argon2::{Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _};

use crate::AuthError;

/// Largest argon2 memory cost (KiB) we agree to verify against: a configured hash
/// asking for more would make every super-user `addauth` a memory spike.
pub const ARGON2_M_COST_KIB_MAX: u32 = 256 * 1024;
/// Largest argon2 time cost (passes) we agree to verify against.
pub const ARGON2_T_COST_MAX: u32 = 16;
/// Largest argon2 parallelism we agree to verify against.
pub const ARGON2_P_COST_MAX: u32 = 16;

/// Hashes `password` with argon2id and default parameters under a fresh random salt,
/// giving a PHC string fit for the super-user configuration.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    hash_with(Argon2::default(), password)
}

/// Whether `password` is the one `phc` was made from. Any malformed or non-argon2
/// PHC string, or one with costs above the `ARGON2_*_MAX` bounds, verifies nothing.
pub fn verify_password(phc: &str, password: &str) -> bool {
    match parse_phc(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// Parses and bounds-checks an argon2 PHC string, returning why it is unusable.
pub(crate) fn parse_phc(phc: &str) -> Result<PasswordHash, String> {
    let hash = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    let alg = hash.algorithm.as_str();
    if !matches!(alg, "argon2id" | "argon2i" | "argon2d") {
        return Err(format!("algorithm {alg:?} is not argon2"));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("PHC string lacks a salt or a hash".into());
    }
    let params = Params::try_from(&hash).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if params.m_cost() > ARGON2_M_COST_KIB_MAX
        || params.t_cost() > ARGON2_T_COST_MAX
        || params.p_cost() > ARGON2_P_COST_MAX
    {
        return Err("argon2 cost parameters exceed corral's bounds".into());
    }
    Ok(hash)
}

fn hash_with(argon2: Argon2<'_>, password: &str) -> Result<String, AuthError> {
    argon2
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::PasswordHash(e.to_string()))
}

/// A cheap argon2id hash, so tests that need several hashes stay fast.
#[cfg(test)]
pub(crate) fn hash_password_cheap(password: &str) -> String {
    let params = Params::new(Params::MIN_M_COST, 1, 1, None).expect("valid test params");
    let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    hash_with(argon2, password).expect("test hash")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_round_trips() {
        // Goal: a default-parameter argon2id hash verifies its own password and no other.
        let phc = hash_password("s3cret").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify_password(&phc, "s3cret"));
        assert!(!verify_password(&phc, "s3cret "));
        assert!(!verify_password(&phc, ""));
    }

    #[test]
    fn salts_differ_between_hashes() {
        // Goal: hashing the same password twice gives different PHC strings (random salt).
        let a = hash_password_cheap("pw");
        let b = hash_password_cheap("pw");
        assert_ne!(a, b);
        assert!(verify_password(&a, "pw") && verify_password(&b, "pw"));
    }

    #[test]
    fn malformed_phc_verifies_nothing() {
        // Goal: garbage, plaintext and non-argon2 PHC strings never verify, and never panic.
        for phc in [
            "",
            "secret",
            "$argon2id$",
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
        ] {
            assert!(!verify_password(phc, "secret"), "{phc:?}");
            assert!(parse_phc(phc).is_err(), "{phc:?}");
        }
    }

    #[test]
    fn excessive_costs_are_refused() {
        // Goal: a hash demanding more memory than the bound is rejected before any hashing.
        let phc = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let err = parse_phc(phc).expect_err("too costly");
        assert!(err.contains("bounds"), "{err}");
        assert!(!verify_password(phc, "x"));
    }
}
