//! Object identifiers: 25 lowercase alphanumeric characters, like Swarm's.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A fresh random identifier.
pub fn new_id() -> String {
    let mut rng = rand::rng();
    (0..25)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The short form shown in tables (12 characters, like Docker's `ID` column).
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 25);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_eq!(short(&a).len(), 12);
        assert_eq!(short("abc"), "abc");
    }
}
