//! Native users: records, validation rules and password hashing.
//!
//! Hashing is CPU-heavy by design; callers on an async runtime must run
//! [`hash_password`] and [`verify_password`] on a blocking thread.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const MIN_PASSWORD_LEN: usize = 6;

/// A native-realm user as stored. `password_hash` is a PHC string (argon2id,
/// or bcrypt when imported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    #[serde(skip_serializing)]
    pub password_hash: String,
    pub roles: Vec<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub metadata: Map<String, Value>,
    pub enabled: bool,
}

impl UserRecord {
    /// The user as `GET /_security/user` shows it (never its password hash).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "username": self.username,
            "roles": self.roles,
            "full_name": self.full_name,
            "email": self.email,
            "metadata": self.metadata,
            "enabled": self.enabled,
        })
    }
}

/// Elasticsearch's rule for user and role names: 1 to `max_len` printable
/// Basic-Latin characters with no leading or trailing whitespace.
pub(crate) fn is_printable_basic_latin(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name.bytes().all(|b| (0x20..0x7f).contains(&b))
        && name.trim() == name
}

/// Elasticsearch's username rule: 1–1024 printable Basic-Latin characters
/// with no leading or trailing whitespace.
/// Names starting with `_` are reserved (internal names, and API paths
/// such as `/_security/user/_has_privileges` are never user names).
pub fn validate_username(name: &str) -> Result<(), String> {
    if name.starts_with('_') {
        Err(format!(
            "Username [{name}] is reserved and may not be used."
        ))
    } else if is_printable_basic_latin(name, 1024) {
        Ok(())
    } else {
        Err(format!(
            "Invalid username [{name}]... Usernames must be at least 1 and no more than 1024 characters. They can contain alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin (ASCII) block. Leading or trailing whitespace is not allowed."
        ))
    }
}

pub fn validate_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        Err(format!(
            "passwords must be at least [{MIN_PASSWORD_LEN}] characters long"
        ))
    } else {
        Ok(())
    }
}

/// Hashes with argon2id (the crate's defaults: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail on a generated salt")
        .to_string()
}

/// An argon2id hash of a random password, with the same parameters as
/// [`hash_password`]'s, computed once on first use. Unknown and disabled
/// users are verified against it, so that they cost what a wrong password
/// costs and their answers cannot be told apart by timing.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = crate::crypto::random_bytes::<16>();
        hash_password(&String::from_utf8_lossy(&password))
    })
}

/// Verifies `password` against [`dummy_hash`]: always false, at the cost
/// of a real verification.
pub fn verify_dummy(password: &str) -> bool {
    std::hint::black_box(verify_password(password, dummy_hash()));
    false
}

/// Whether `hash` is a password hash Tessera can verify.
pub fn is_supported_hash(hash: &str) -> bool {
    if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        return bcrypt::HashParts::from_str_checked(hash);
    }
    PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    if hash.starts_with("$2") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The message Elasticsearch gives for a `password_hash` it cannot use.
pub const UNSUPPORTED_HASH_MESSAGE: &str = "The provided password hash is not a hash or it could not be resolved to a supported hash algorithm. The supported password hash algorithms are [argon2id, bcrypt]";

mod bcrypt {
    pub use ::bcrypt::verify;

    pub struct HashParts;
    impl HashParts {
        pub fn from_str_checked(hash: &str) -> bool {
            hash.parse::<::bcrypt::HashParts>().is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify() {
        let h = hash_password("s3cret-pw");
        assert!(h.starts_with("$argon2id$"));
        assert!(is_supported_hash(&h));
        assert!(verify_password("s3cret-pw", &h));
        assert!(!verify_password("s3cret-px", &h));
    }

    #[test]
    fn the_dummy_hash_has_the_real_parameters_and_never_verifies() {
        let real = PasswordHash::new(&hash_password("x"))
            .unwrap()
            .params
            .to_string();
        let dummy = PasswordHash::new(dummy_hash()).unwrap();
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        assert_eq!(dummy.params.to_string(), real);
        assert_eq!(dummy_hash(), dummy_hash(), "computed once");
        assert!(!verify_dummy(""));
    }

    #[test]
    fn bcrypt_hashes_are_accepted() {
        let h = ::bcrypt::hash("hunter22", 4).unwrap();
        assert!(is_supported_hash(&h));
        assert!(verify_password("hunter22", &h));
        assert!(!verify_password("hunter23", &h));
    }

    #[test]
    fn rejects_plaintext_as_hash() {
        assert!(!is_supported_hash("x-pack-test-password"));
        assert!(!is_supported_hash("$2a$garbage"));
    }

    #[test]
    fn username_and_password_rules() {
        assert!(validate_username("joe").is_ok());
        assert!(validate_username(" joe").is_err());
        assert!(validate_username("").is_err());
        assert!(validate_username("jö").is_err());
        assert!(validate_username(&"a".repeat(1025)).is_err());
        assert!(validate_username("_has_privileges").is_err());
        assert!(validate_username("a_b").is_ok());
        assert!(validate_password("12345").is_err());
        assert!(validate_password("123456").is_ok());
    }
}
