//! PKCE (RFC 7636) as the authorization and token endpoints check it, with RFC 9700 section
//! 4.8.2's downgrade rule that WSO2 lacks: a `code_verifier` for a code issued without a
//! challenge is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::client::ClientOAuth;

/// A code challenge method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PkceMethod {
    S256,
    #[serde(rename = "plain")]
    Plain,
}

impl PkceMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
            Self::Plain => "plain",
        }
    }
}

/// A challenge the authorization request carried; the code is bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub challenge: String,
    pub method: PkceMethod,
}

/// Why an authorization request's PKCE parameters are refused (`invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("code_challenge is required for this client (PKCE)")]
    Missing,
    #[error("code_challenge_method must be S256 or plain")]
    UnknownMethod,
    #[error("the plain code_challenge_method is not allowed for this client; use S256")]
    PlainNotAllowed,
    #[error("code_challenge is malformed (RFC 7636 section 4.2)")]
    Malformed,
    #[error("code_challenge_method without a code_challenge")]
    MethodWithoutChallenge,
}

/// Why a `code_verifier` is refused (`invalid_grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    #[error("code_verifier is required: the code was issued with a code_challenge")]
    Missing,
    #[error("code_verifier was sent for a code issued without a code_challenge")]
    Unexpected,
    #[error("code_verifier is malformed (RFC 7636 section 4.1)")]
    Malformed,
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn unreserved_43_to_128(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks an authorization request's `code_challenge` and `code_challenge_method` against the
/// client's rules. An absent method means `plain` (RFC 7636 section 4.3).
pub fn check_challenge(
    client: &ClientOAuth,
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<Option<Challenge>, ChallengeError> {
    let Some(challenge) = challenge else {
        if method.is_some() {
            return Err(ChallengeError::MethodWithoutChallenge);
        }
        return if client.pkce_mandatory { Err(ChallengeError::Missing) } else { Ok(None) };
    };
    let method = match method {
        Some("S256") => PkceMethod::S256,
        Some("plain") | None => PkceMethod::Plain,
        Some(_) => return Err(ChallengeError::UnknownMethod),
    };
    if method == PkceMethod::Plain && !client.pkce_support_plain {
        return Err(ChallengeError::PlainNotAllowed);
    }
    // An S256 challenge is a base64url SHA-256: exactly 43 characters.
    let well_formed = match method {
        PkceMethod::S256 => challenge.len() == 43 && unreserved_43_to_128(challenge),
        PkceMethod::Plain => unreserved_43_to_128(challenge),
    };
    if !well_formed {
        return Err(ChallengeError::Malformed);
    }
    Ok(Some(Challenge { challenge: challenge.to_owned(), method }))
}

/// Checks a token request's `code_verifier` against the code's challenge.
pub fn check_verifier(bound: Option<&Challenge>, verifier: Option<&str>) -> Result<(), VerifierError> {
    let (bound, verifier) = match (bound, verifier) {
        (None, None) => return Ok(()),
        (None, Some(_)) => return Err(VerifierError::Unexpected),
        (Some(_), None) => return Err(VerifierError::Missing),
        (Some(b), Some(v)) => (b, v),
    };
    if !unreserved_43_to_128(verifier) {
        return Err(VerifierError::Malformed);
    }
    let computed = match bound.method {
        PkceMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        PkceMethod::Plain => verifier.to_owned(),
    };
    let same: bool = computed.as_bytes().ct_eq(bound.challenge.as_bytes()).into();
    if same {
        Ok(())
    } else {
        Err(VerifierError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client(mandatory: bool, plain: bool) -> ClientOAuth {
        ClientOAuth { pkce_mandatory: mandatory, pkce_support_plain: plain, ..ClientOAuth::default() }
    }

    #[test]
    fn the_rfc_7636_example_verifier_matches_its_s256_challenge() {
        let bound = check_challenge(&client(true, false), Some(CHALLENGE), Some("S256")).unwrap();
        assert_eq!(check_verifier(bound.as_ref(), Some(VERIFIER)), Ok(()));
        let other = format!("{}x", &VERIFIER[..VERIFIER.len() - 1]);
        assert_eq!(check_verifier(bound.as_ref(), Some(&other)), Err(VerifierError::Mismatch));
    }

    #[test]
    fn a_mandatory_client_without_a_challenge_is_refused() {
        assert_eq!(check_challenge(&client(true, false), None, None), Err(ChallengeError::Missing));
        assert_eq!(check_challenge(&client(false, false), None, None), Ok(None));
    }

    #[test]
    fn plain_is_accepted_only_where_the_client_allows_it() {
        let plain = "a".repeat(43);
        assert_eq!(
            check_challenge(&client(false, false), Some(&plain), None),
            Err(ChallengeError::PlainNotAllowed)
        );
        let bound = check_challenge(&client(false, true), Some(&plain), Some("plain")).unwrap();
        assert_eq!(bound.as_ref().unwrap().method, PkceMethod::Plain);
        assert_eq!(check_verifier(bound.as_ref(), Some(&plain)), Ok(()));
    }

    #[test]
    fn unknown_methods_and_malformed_challenges_are_refused() {
        let c = client(false, true);
        assert_eq!(check_challenge(&c, Some(CHALLENGE), Some("S512")), Err(ChallengeError::UnknownMethod));
        assert_eq!(check_challenge(&c, Some("short"), Some("S256")), Err(ChallengeError::Malformed));
        assert_eq!(check_challenge(&c, Some(&"a".repeat(129)), None), Err(ChallengeError::Malformed));
        assert_eq!(check_challenge(&c, None, Some("S256")), Err(ChallengeError::MethodWithoutChallenge));
    }

    #[test]
    fn a_verifier_for_a_code_without_a_challenge_is_a_downgrade_and_refused() {
        assert_eq!(check_verifier(None, Some(VERIFIER)), Err(VerifierError::Unexpected));
        assert_eq!(check_verifier(None, None), Ok(()));
        let bound = Challenge { challenge: CHALLENGE.into(), method: PkceMethod::S256 };
        assert_eq!(check_verifier(Some(&bound), None), Err(VerifierError::Missing));
        assert_eq!(check_verifier(Some(&bound), Some("bad verifier")), Err(VerifierError::Malformed));
    }
}
