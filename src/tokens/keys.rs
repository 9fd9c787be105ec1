//! JWT signing keys in the data folder: `jwt-keys/keys.json` lists them (public JWK, creation
//! and retirement times), each private key in its own PEM file (mode 0600). Rotation adds a new
//! signing key; retired keys stay published until every token they signed has expired. A running
//! server notices a rotation within a second.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::crypto::write_private;
use crate::domain::events::Millis;

/// The signing algorithm of new keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SigningAlgorithm {
    #[default]
    ES256,
    EdDSA,
    RS256,
}

impl SigningAlgorithm {
    fn jose(self) -> Algorithm {
        match self {
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
            Self::RS256 => Algorithm::RS256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the JWT keys in {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the JWT key list {0} is damaged: {1}")]
    List(String, String),
    #[error("cannot generate or load a JWT signing key: {0}")]
    Key(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyEntry {
    kid: String,
    alg: SigningAlgorithm,
    file: String,
    public_jwk: Value,
    created_at: Millis,
    retired_at: Option<Millis>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyList {
    keys: Vec<KeyEntry>,
}

/// The key new tokens are signed with.
pub struct Signing {
    pub kid: String,
    pub alg: Algorithm,
    pub key: EncodingKey,
}

/// A published public key.
pub struct Published {
    pub kid: String,
    pub alg: Algorithm,
    pub jwk: Value,
    pub decoding: DecodingKey,
    pub retired_at: Option<Millis>,
}

struct Loaded {
    modified: Option<SystemTime>,
    signing: std::sync::Arc<Signing>,
    published: Vec<std::sync::Arc<Published>>,
}

/// The key store of a data folder.
pub struct KeyStore {
    dir: PathBuf,
    loaded: RwLock<Loaded>,
    checked: Mutex<Instant>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.display().to_string(), source }
}

fn list_path(dir: &Path) -> PathBuf {
    dir.join("keys.json")
}

fn read_list(dir: &Path) -> Result<Option<KeyList>, KeyError> {
    let path = list_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KeyError::List(path.display().to_string(), e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Writes the list atomically: a new file renamed over the old one.
fn write_list(dir: &Path, list: &KeyList) -> Result<(), KeyError> {
    let path = list_path(dir);
    let tmp = dir.join(format!("keys.json.{}.tmp", uuid::Uuid::new_v4().simple()));
    let text = serde_json::to_vec_pretty(list).map_err(|e| KeyError::Key(e.to_string()))?;
    write_private(&tmp, &text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new private key (PKCS#8 PEM) and its public JWK.
fn generate(alg: SigningAlgorithm, kid: &str) -> Result<(String, Value), KeyError> {
    let key_err = |e: &dyn std::fmt::Display| KeyError::Key(e.to_string());
    let (pem, mut jwk) = match alg {
        SigningAlgorithm::ES256 | SigningAlgorithm::EdDSA => {
            let curve = if alg == SigningAlgorithm::ES256 {
                &rcgen::PKCS_ECDSA_P256_SHA256
            } else {
                &rcgen::PKCS_ED25519
            };
            let pair = rcgen::KeyPair::generate_for(curve).map_err(|e| key_err(&e))?;
            let raw = pair.public_key_raw();
            let jwk = if alg == SigningAlgorithm::ES256 {
                // Uncompressed SEC1 point: 0x04 || x || y.
                json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])})
            } else {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(raw)})
            };
            (pair.serialize_pem(), jwk)
        }
        SigningAlgorithm::RS256 => {
            use rsa::pkcs8::EncodePrivateKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| key_err(&e))?;
            let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| key_err(&e))?;
            let jwk =
                json!({"kty": "RSA", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())});
            (pem.to_string(), jwk)
        }
    };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(format!("{:?}", alg.jose()));
    jwk["use"] = json!("sig");
    Ok((pem, jwk))
}

/// Generates a key and writes its private half to its own file.
fn new_key(dir: &Path, alg: SigningAlgorithm, now: Millis) -> Result<KeyEntry, KeyError> {
    let kid = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let (pem, public_jwk) = generate(alg, &kid)?;
    let file = format!("{kid}.pem");
    let path = dir.join(&file);
    write_private(&path, pem.as_bytes()).map_err(io(&path))?;
    Ok(KeyEntry { kid, alg, file, public_jwk, created_at: now, retired_at: None })
}

fn add_key(dir: &Path, list: &mut KeyList, alg: SigningAlgorithm, now: Millis) -> Result<String, KeyError> {
    let entry = new_key(dir, alg, now)?;
    let kid = entry.kid.clone();
    for old in list.keys.iter_mut().filter(|k| k.retired_at.is_none()) {
        old.retired_at = Some(now);
    }
    list.keys.push(entry);
    write_list(dir, list)?;
    Ok(kid)
}

/// The first key of an empty folder. Nodes that start together on a shared folder race here:
/// the list appears whole or not at all, and a node that lost drops its key for the winner's.
fn first_key(dir: &Path, alg: SigningAlgorithm, now: Millis) -> Result<(), KeyError> {
    let entry = new_key(dir, alg, now)?;
    let key_path = dir.join(&entry.file);
    let text = serde_json::to_vec_pretty(&KeyList { keys: vec![entry] })
        .map_err(|e| KeyError::Key(e.to_string()))?;
    let path = list_path(dir);
    if !crate::crypto::create_private_once(&path, &text).map_err(io(&path))? {
        std::fs::remove_file(&key_path).map_err(io(&key_path))?;
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(io(dir))?;
    Ok(())
}

/// Adds a new signing key of `alg`; the previous one is retired but stays published.
pub fn rotate(dir: &Path, alg: SigningAlgorithm, now: Millis) -> Result<String, KeyError> {
    ensure_dir(dir)?;
    let mut list = read_list(dir)?.unwrap_or_default();
    add_key(dir, &mut list, alg, now)
}

fn load(dir: &Path) -> Result<Loaded, KeyError> {
    let list = read_list(dir)?.ok_or_else(|| KeyError::List(dir.display().to_string(), "no keys".into()))?;
    let modified = std::fs::metadata(list_path(dir)).and_then(|m| m.modified()).ok();
    let mut published = Vec::new();
    let mut signing = None;
    for entry in &list.keys {
        let alg = entry.alg.jose();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(entry.public_jwk.clone())
            .map_err(|e| KeyError::List(entry.kid.clone(), e.to_string()))?;
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| KeyError::Key(e.to_string()))?;
        published.push(std::sync::Arc::new(Published {
            kid: entry.kid.clone(),
            alg,
            jwk: entry.public_jwk.clone(),
            decoding,
            retired_at: entry.retired_at,
        }));
        if entry.retired_at.is_none() {
            let path = dir.join(&entry.file);
            let pem = std::fs::read(&path).map_err(io(&path))?;
            let key = match entry.alg {
                SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                SigningAlgorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            }
            .map_err(|e| KeyError::Key(format!("{}: {e}", path.display())))?;
            signing = Some(std::sync::Arc::new(Signing { kid: entry.kid.clone(), alg, key }));
        }
    }
    let signing = signing.ok_or_else(|| KeyError::List(dir.display().to_string(), "no active key".into()))?;
    Ok(Loaded { modified, signing, published })
}

impl KeyStore {
    /// Opens the key store, creating the first key of `alg` on first start.
    pub fn open(dir: &Path, alg: SigningAlgorithm, now: Millis) -> Result<Self, KeyError> {
        // Before any token is signed or verified with these keys.
        super::ring_jws::install();
        ensure_dir(dir)?;
        match read_list(dir)? {
            None => first_key(dir, alg, now)?,
            Some(list) if list.keys.iter().all(|k| k.retired_at.is_some()) => {
                rotate(dir, alg, now)?;
            }
            Some(_) => {}
        }
        let loaded = load(dir)?;
        Ok(Self { dir: dir.to_owned(), loaded: RwLock::new(loaded), checked: Mutex::new(Instant::now()) })
    }

    /// Reloads the list when another process rotated the keys; checks at most once a second.
    fn refresh(&self) {
        {
            let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            if checked.elapsed() < Duration::from_secs(1) {
                return;
            }
            *checked = Instant::now();
        }
        let modified = std::fs::metadata(list_path(&self.dir)).and_then(|m| m.modified()).ok();
        let current = self.loaded.read().unwrap_or_else(|p| p.into_inner()).modified;
        if modified == current {
            return;
        }
        match load(&self.dir) {
            Ok(loaded) => *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = loaded,
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the JWT keys; keeping the loaded ones")
            }
        }
    }

    /// The key to sign new tokens with.
    pub fn signing(&self) -> std::sync::Arc<Signing> {
        self.refresh();
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).signing.clone()
    }

    /// The public key `kid`, if it is still published at `now`.
    pub fn published(
        &self,
        kid: &str,
        now: Millis,
        max_lifetime: Millis,
    ) -> Option<std::sync::Arc<Published>> {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        loaded.published.iter().find(|k| k.kid == kid && still_published(k, now, max_lifetime)).cloned()
    }

    /// The JWK Set (RFC 7517) of the keys still published at `now`.
    pub fn jwks(&self, now: Millis, max_lifetime: Millis) -> Value {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<&Value> = loaded
            .published
            .iter()
            .filter(|k| still_published(k, now, max_lifetime))
            .map(|k| &k.jwk)
            .collect();
        json!({ "keys": keys })
    }
}

/// A retired key stays published until the last token it signed has expired.
fn still_published(key: &Published, now: Millis, max_lifetime: Millis) -> bool {
    key.retired_at.is_none_or(|retired| retired + max_lifetime > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_opening_an_empty_key_folder_at_once_all_sign_with_one_listed_key() {
        let dir = tempfile::tempdir().unwrap();
        let kids: Vec<String> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        KeyStore::open(dir.path(), SigningAlgorithm::ES256, 0).unwrap().signing().kid.clone()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert!(kids.iter().all(|k| *k == kids[0]), "every node signs with the winner's key: {kids:?}");
        let pems = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".pem"))
            .count();
        assert_eq!(pems, 1, "the losers removed their keys");
    }

    #[test]
    fn rotation_keeps_the_old_key_published_until_its_tokens_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path(), SigningAlgorithm::ES256, 0).unwrap();
        let first = store.signing().kid.clone();
        let second = rotate(dir.path(), SigningAlgorithm::EdDSA, 1_000).unwrap();
        let reopened = KeyStore::open(dir.path(), SigningAlgorithm::ES256, 1_000).unwrap();
        assert_eq!(reopened.signing().kid, second);
        let kids = |now| -> Vec<String> {
            reopened.jwks(now, 3_600_000)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(2_000), [first.clone(), second.clone()]);
        assert_eq!(kids(1_000 + 3_600_000), [second]);
        assert!(reopened.published(&first, 2_000, 3_600_000).is_some());
    }

    #[test]
    fn every_algorithm_makes_a_key_that_loads() {
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA, SigningAlgorithm::RS256] {
            let dir = tempfile::tempdir().unwrap();
            let store = KeyStore::open(dir.path(), alg, 0).unwrap();
            assert_eq!(store.signing().alg, alg.jose());
        }
    }
}
