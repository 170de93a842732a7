//! Encryption at rest: what the store writes to disk (state rows, Raft log entries,
//! snapshots) is sealed with this node's data key (AES-256-GCM, a random 96-bit nonce per
//! value). Values written before encryption was turned on (no [`MAGIC`]) are read as they are
//! and sealed when next written.

use crate::StoreError;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use std::borrow::Cow;
use std::sync::Arc;

/// Marks a sealed value.
const MAGIC: &[u8; 4] = b"shS1";

/// Length of a data key.
pub const KEY_LEN: usize = 32;

/// Seals and opens values with one data key.
#[derive(Clone)]
pub struct Sealer(Arc<LessSafeKey>);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches logs.
        f.write_str("Sealer")
    }
}

fn crypto(what: &str) -> StoreError {
    StoreError::Sealed(what.to_string())
}

impl Sealer {
    pub fn new(key: &[u8]) -> Result<Sealer, StoreError> {
        let k = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| crypto("the data key is not 32 bytes"))?;
        Ok(Sealer(Arc::new(LessSafeKey::new(k))))
    }

    /// A new random data key.
    pub fn new_key() -> Result<[u8; KEY_LEN], StoreError> {
        let mut k = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| crypto("no randomness for a data key"))?;
        Ok(k)
    }

    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| crypto("no randomness for a nonce"))?;
        let mut body = plain.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
            .map_err(|_| crypto("sealing failed"))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The plaintext of a sealed value (a wrong key or a changed byte is an error).
    pub fn open_sealed(&self, data: &[u8]) -> Result<Vec<u8>, StoreError> {
        let rest = data
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| crypto("not a sealed value"))?;
        if rest.len() < NONCE_LEN {
            return Err(crypto("sealed value too short"));
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| crypto("bad nonce"))?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| crypto("a sealed value does not open with this node's data key (wrong key or damaged data)"))?;
        let n = plain.len();
        body.truncate(n);
        Ok(body)
    }
}

/// Prefix of unlock keys (Swarm's habit).
pub const UNLOCK_KEY_PREFIX: &str = "SWMKEY-1-";

/// A new unlock key for autolock: 256 random bits, printable.
pub fn new_unlock_key() -> Result<String, StoreError> {
    let k = Sealer::new_key()?;
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{UNLOCK_KEY_PREFIX}{hex}"))
}

/// Seal `plain` when a sealer is given.
pub fn seal(sealer: Option<&Sealer>, plain: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    match sealer {
        Some(s) => s.seal(&plain),
        None => Ok(plain),
    }
}

/// Open `data`: sealed values need the sealer, plain ones are returned as they are.
pub fn open<'a>(sealer: Option<&Sealer>, data: &'a [u8]) -> Result<Cow<'a, [u8]>, StoreError> {
    if !data.starts_with(MAGIC) {
        return Ok(Cow::Borrowed(data));
    }
    match sealer {
        Some(s) => s.open_sealed(data).map(Cow::Owned),
        None => Err(StoreError::Locked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_unchanged() {
        let s = Sealer::new(&Sealer::new_key().expect("key")).expect("sealer");
        let secret = b"-----BEGIN PRIVATE KEY----- cluster CA";
        let sealed = seal(Some(&s), secret.to_vec()).expect("seal");
        assert!(!sealed.windows(11).any(|w| w == b"BEGIN PRIVA"));
        assert_eq!(open(Some(&s), &sealed).expect("open").as_ref(), secret);
        // Two seals of one value differ (fresh nonce).
        assert_ne!(sealed, s.seal(secret).expect("seal"));
        let other = Sealer::new(&Sealer::new_key().expect("key")).expect("sealer");
        assert!(open(Some(&other), &sealed).is_err());
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(open(Some(&s), &changed).is_err());
        assert!(matches!(open(None, &sealed), Err(StoreError::Locked)));
        // Values from before encryption read as they are.
        assert_eq!(
            open(Some(&s), b"{\"id\":1}").expect("plain").as_ref(),
            b"{\"id\":1}"
        );
    }
}
