//! jsonwebtoken's signatures through `ring` (already in the tree through rustls) for ES256 and
//! EdDSA, the algorithms of this server's keys; every other algorithm stays with jsonwebtoken's
//! RustCrypto provider. RustCrypto's P-256 took ~250 µs per verification here (issue 11);
//! ring's assembly takes a fraction of that. Only the provider changes: jsonwebtoken still
//! parses the token and checks its header and claims.

use std::sync::OnceLock;

use jsonwebtoken::crypto::{rust_crypto, CryptoProvider, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, UnparsedPublicKey, VerificationAlgorithm};

/// ring for ES256 and EdDSA, RustCrypto for the rest (and for the JWK utilities).
static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();

/// Installs the provider for the process, before the first JWT is signed or verified. If
/// something used jsonwebtoken first, its default (RustCrypto) stays: slower, equally correct.
pub fn install() {
    if PROVIDER.get().is_some() {
        return;
    }
    let provider = PROVIDER.get_or_init(|| CryptoProvider {
        signer_factory: signer,
        verifier_factory: verifier,
        key_utils: rust_crypto::DEFAULT_PROVIDER.key_utils.clone(),
    });
    if provider.install_default().is_err() {
        tracing::debug!("jsonwebtoken's crypto provider was chosen before ring's could be installed");
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    let pkcs8 = key.as_bytes();
    match alg {
        Algorithm::ES256 => {
            let pair =
                EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
                    .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?;
            Ok(Box::new(Es256Signer(pair)))
        }
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?;
            Ok(Box::new(EdDsaSigner(pair)))
        }
        _ => (rust_crypto::DEFAULT_PROVIDER.signer_factory)(alg, key),
    }
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let algorithm: &'static dyn VerificationAlgorithm = match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(alg, key),
    };
    // An EC key is its uncompressed SEC1 point, an Ed25519 key its 32 bytes (from the JWK).
    let public = key.try_get_as_bytes()?.to_vec();
    Ok(Box::new(RingVerifier { alg: *alg, key: UnparsedPublicKey::new(algorithm, public) }))
}

struct RingVerifier {
    alg: Algorithm,
    key: UnparsedPublicKey<Vec<u8>>,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        self.key.verify(msg, signature).map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

struct Es256Signer(EcdsaKeyPair);

impl signature::Signer<Vec<u8>> for Es256Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let signed = self.0.sign(&SystemRandom::new(), msg).map_err(|_| signature::Error::new())?;
        Ok(signed.as_ref().to_vec())
    }
}

impl JwtSigner for Es256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

struct EdDsaSigner(Ed25519KeyPair);

impl signature::Signer<Vec<u8>> for EdDsaSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for EdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::keys::{KeyStore, SigningAlgorithm};

    /// What ring signs, RustCrypto verifies, and the other way round: the two providers agree
    /// on the wire format (JWS fixed-size r || s for ES256, RFC 8037 for EdDSA).
    #[test]
    fn ring_and_rust_crypto_verify_each_others_signatures() {
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let dir = tempfile::tempdir().unwrap();
            let store = KeyStore::open(dir.path(), alg, 0).unwrap();
            let signing = store.signing();
            let public = store.published(&signing.kid, 0, 1).unwrap();
            let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0";
            let ring_signed = signer(&signing.alg, &signing.key).unwrap().try_sign(message).unwrap();
            let rc_signed = (rust_crypto::DEFAULT_PROVIDER.signer_factory)(&signing.alg, &signing.key)
                .unwrap()
                .try_sign(message)
                .unwrap();
            let rc_verifier =
                (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&public.alg, &public.decoding).unwrap();
            let ring_verifier = verifier(&public.alg, &public.decoding).unwrap();
            assert!(rc_verifier.verify(message, &ring_signed).is_ok(), "{alg:?}: RustCrypto reads ring's");
            assert!(ring_verifier.verify(message, &rc_signed).is_ok(), "{alg:?}: ring reads RustCrypto's");
            assert!(ring_verifier.verify(message, &ring_signed).is_ok());
            let mut forged = ring_signed.clone();
            forged[5] ^= 1;
            assert!(ring_verifier.verify(message, &forged).is_err(), "{alg:?}: a changed signature fails");
            assert!(ring_verifier.verify(b"another message", &ring_signed).is_err());
        }
    }
}
