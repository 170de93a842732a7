//! Join tokens: `SWMTKN-1-<digest>-<secret>`, like Swarm's.
//!
//! The digest is the SHA-256 of the root CA certificate (DER) in base 36, so a joining node
//! can verify the CA it is shown on first contact. The secret says which role the bearer
//! joins as; rotating it invalidates old tokens.

use rand::Rng;
use sha2::{Digest, Sha256};

const PREFIX: &str = "SWMTKN";
const VERSION: &str = "1";
const SECRET_LEN: usize = 25;
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_digest: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid join token: {0}")]
pub struct TokenError(pub String);

impl JoinToken {
    pub fn parse(text: &str) -> Result<JoinToken, TokenError> {
        let parts: Vec<&str> = text.trim().split('-').collect();
        match parts.as_slice() {
            [PREFIX, VERSION, digest, secret] => {
                let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| ALPHABET.contains(&b));
                if !ok(digest) || !ok(secret) {
                    return Err(TokenError(
                        "digest and secret must be lowercase base 36".into(),
                    ));
                }
                Ok(JoinToken {
                    ca_digest: digest.to_string(),
                    secret: secret.to_string(),
                })
            }
            _ => Err(TokenError(format!(
                "expected {PREFIX}-{VERSION}-<digest>-<secret>"
            ))),
        }
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}-{VERSION}-{}-{}", self.ca_digest, self.secret)
    }
}

/// A fresh token secret.
pub fn new_secret() -> String {
    let mut rng = rand::rng();
    (0..SECRET_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// SHA-256 of `der` in base 36 (lowercase).
pub fn digest(der: &[u8]) -> String {
    let hash = Sha256::digest(der);
    base36(&hash)
}

fn base36(bytes: &[u8]) -> String {
    // Repeated division of a big-endian number by 36.
    let mut num: Vec<u8> = bytes.to_vec();
    let mut out = Vec::new();
    while num.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 36) as u8;
            rem = cur % 36;
        }
        out.push(ALPHABET[rem as usize]);
    }
    if out.is_empty() {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// Compare secrets without an early exit on the first differing byte.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = JoinToken {
            ca_digest: digest(b"ca"),
            secret: new_secret(),
        };
        let text = t.to_string();
        assert!(text.starts_with("SWMTKN-1-"));
        assert_eq!(JoinToken::parse(&text), Ok(t));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "SWMTKN-1-abc",
            "SWMTKN-2-abc-def",
            "XYZ-1-abc-def",
            "SWMTKN-1-ABC-def",
            "SWMTKN-1--def",
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base36_matches_known_values() {
        assert_eq!(base36(&[0]), "0");
        assert_eq!(base36(&[35]), "z");
        assert_eq!(base36(&[36]), "10");
        assert_eq!(base36(&[1, 0]), "74");
        assert!(
            secrets_equal("abc", "abc")
                && !secrets_equal("abc", "abd")
                && !secrets_equal("a", "ab")
        );
    }
}
