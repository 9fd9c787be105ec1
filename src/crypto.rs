//! Token values, digests, sealing and password hashing, all from RustCrypto crates.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::domain::types::Digest;

/// Failures of the sealing key or of a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot read or create the sealing key {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("the sealing key {0} is not 32 bytes")]
    KeyLength(String),
    #[error("a sealed token value does not open with this key (wrong key or damaged data)")]
    Open,
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
}

/// A new bearer value: 256 bits from the OS generator (RFC 6749 section 10.10 asks for at least
/// 128; the issue for at least 160), base64url without padding.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares a presented secret with a stored digest in constant time.
pub fn secret_matches(presented: &str, stored: &Digest) -> bool {
    Digest::of(presented.as_bytes()).0.ct_eq(&stored.0).into()
}

/// Compares two strings in constant time for their common length (for the super admin's
/// credentials, which live in the config file).
pub fn same_text(a: &str, b: &str) -> bool {
    Digest::of(a.as_bytes()).0.ct_eq(&Digest::of(b.as_bytes()).0).into()
}

/// AES-256-GCM under the data folder's key, so a token can be handed back while renewal is off
/// without its value ever resting in plaintext.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key hidden>)")
    }
}

impl Sealer {
    /// Loads the key file, creating it with mode 0600 on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let shown = path.display().to_string();
        let io = |source| CryptoError::KeyFile { path: shown.clone(), source };
        let key = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                OsRng.fill_bytes(&mut key);
                if create_private_once(path, &key).map_err(&io)? {
                    key
                } else {
                    // Another node on the shared key folder created it first: use theirs.
                    std::fs::read(path).map_err(io)?
                }
            }
            Err(e) => return Err(io(e)),
        };
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| CryptoError::KeyLength(shown.clone()))?;
        Ok(Self { cipher })
    }

    /// Seals `value`, bound to `context` (the token id) so a sealed value cannot be moved to
    /// another token. Output: base64 of nonce || ciphertext.
    pub fn seal(&self, value: &str, context: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let payload = Payload { msg: value.as_bytes(), aad: context };
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<String, CryptoError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| CryptoError::Open)?;
        if bytes.len() < 12 {
            return Err(CryptoError::Open);
        }
        let (nonce, body) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: context })
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Open)
    }
}

/// Writes a new file readable by its owner only; refuses to overwrite.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates `path` with `bytes` (mode 0600) unless a file is already there; false when another
/// process got there first. Nodes that start together on a shared key folder race here, so the
/// name appears only with the whole content behind it: a private temporary file, synced, is
/// hard-linked to the name (atomic, and refused when the name exists), then unlinked.
pub fn create_private_once(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    write_private(&tmp, bytes)?;
    let linked = std::fs::hard_link(&tmp, path);
    let removed = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            removed?;
            // The new name is durable only once its directory entry is.
            std::fs::File::open(dir)?.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hashes a password with argon2id and its default (OWASP) parameters: 19 MiB, 2 passes.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash that no password matches, verified for unknown users so that a wrong username
/// costs as much time as a wrong password.
pub fn decoy_password_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&new_secret()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_creating_the_sealing_key_at_once_all_end_up_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let sealers: Vec<Sealer> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8).map(|_| s.spawn(|| Sealer::load_or_create(&path).unwrap())).collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for (i, sealer) in sealers.iter().enumerate() {
            let sealed = sealer.seal("a token", b"id");
            for other in &sealers {
                assert_eq!(
                    other.open(&sealed, b"id").unwrap(),
                    "a token",
                    "racer {i}'s seal opens everywhere"
                );
            }
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["token.key"], "no temporary file is left behind");
    }

    #[test]
    fn new_secrets_carry_256_bits_and_are_url_safe() {
        let s = new_secret();
        assert_eq!(URL_SAFE_NO_PAD.decode(&s).unwrap().len(), 32);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(new_secret(), s);
    }

    #[test]
    fn sealed_values_open_only_with_their_context_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::load_or_create(&dir.path().join("k")).unwrap();
        let sealed = sealer.seal("tok", b"id-1");
        assert!(!sealed.contains("tok"));
        assert_eq!(sealer.open(&sealed, b"id-1").unwrap(), "tok");
        assert!(sealer.open(&sealed, b"id-2").is_err());
        let other = Sealer::load_or_create(&dir.path().join("k2")).unwrap();
        assert!(other.open(&sealed, b"id-1").is_err());
        let again = Sealer::load_or_create(&dir.path().join("k")).unwrap();
        assert_eq!(again.open(&sealed, b"id-1").unwrap(), "tok");
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        Sealer::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn passwords_verify_against_their_argon2id_hash_only() {
        let h = hash_password("pw").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("pw", &h));
        assert!(!verify_password("PW", &h));
        assert!(!verify_password("pw", "not a hash"));
    }
}
