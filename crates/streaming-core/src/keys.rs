//! Stream keys: generation, hashing and constant-time verification.
//!
//! A key looks like `sk_<prefix><secret>`: 40 random base62 characters after
//! `sk_`, of which the first 8 form the public prefix stored in clear to find
//! the row. Only the SHA-256 of the whole key is stored; the presented key's
//! hash is compared with `subtle`'s constant-time equality.

use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX_TAG: &str = "sk_";
const RANDOM_LEN: usize = 40;
pub const PREFIX_LEN: usize = 8;

/// A freshly generated key: shown to the user once, then dropped.
pub struct NewKey {
    pub plaintext: String,
    pub prefix: String,
    pub hash: [u8; 32],
}

pub fn generate() -> NewKey {
    let mut rng = rand::rng();
    let random: String = (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let plaintext = format!("{PREFIX_TAG}{random}");
    let prefix = random[..PREFIX_LEN].to_string();
    let hash = hash(&plaintext);
    NewKey {
        plaintext,
        prefix,
        hash,
    }
}

pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The lookup prefix of a presented key, or `None` if it cannot be one of ours.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX_TAG)?;
    if rest.len() != RANDOM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(&rest[..PREFIX_LEN])
}

/// Constant-time comparison of a presented key against a stored hash.
pub fn verify(presented: &str, stored_hash: &[u8; 32]) -> bool {
    hash(presented).ct_eq(stored_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(prefix_of(&a.plaintext), Some(a.prefix.as_str()));
        assert!(verify(&a.plaintext, &a.hash));
        assert!(!verify(&b.plaintext, &a.hash));
        assert_eq!(a.plaintext.len(), 3 + RANDOM_LEN);
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        assert_eq!(prefix_of(""), None);
        assert_eq!(prefix_of("sk_short"), None);
        assert_eq!(prefix_of(&format!("sk_{}", "é".repeat(20))), None);
        assert_eq!(prefix_of(&format!("xx_{}", "a".repeat(40))), None);
    }
}
