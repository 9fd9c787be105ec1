//! A client's authorization-code settings: registered redirect URIs, public or confidential,
//! and its PKCE rules (WSO2's per-application `ext_pkce_mandatory`, `ext_pkce_support_plain`).
//! Redirect URIs are compared by exact string (RFC 9700 section 2.1); only a loopback URI of a
//! native app may change its port (RFC 8252 section 7.3).

use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// How a client takes part in the code flow. Every field defaults, so `ClientRegistered`
/// events written before the code flow existed still replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientOAuth {
    /// Where codes may be sent, exactly as registered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// A public client (`token_endpoint_auth_method: "none"`): no secret, PKCE required.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// Every authorization request must carry a PKCE challenge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pkce_mandatory: bool,
    /// The `plain` PKCE method is accepted (S256 always is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pkce_support_plain: bool,
}

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URI {0:?} is not an absolute URI")]
    NotAbsolute(String),
    #[error("redirect URI {0:?} has a fragment (RFC 6749 section 3.1.2)")]
    Fragment(String),
    #[error("redirect URI {0:?} uses http on a host that is not a loopback address (RFC 9700 section 2.6)")]
    PlainHttp(String),
}

impl ClientOAuth {
    /// The settings of a new client. Public clients must use PKCE unless told otherwise.
    pub fn new(redirect_uris: Vec<String>, public: bool, pkce_mandatory: Option<bool>, plain: bool) -> Self {
        Self {
            redirect_uris,
            public,
            pkce_mandatory: pkce_mandatory.unwrap_or(public) || public,
            pkce_support_plain: plain,
        }
    }

    /// Checks every URI for registration.
    pub fn check(&self) -> Result<(), RedirectUriError> {
        self.redirect_uris.iter().try_for_each(|uri| check_redirect_uri(uri))
    }

    /// The registered URI that `presented` stands for, if any. `None` presented means the one
    /// registered URI, when there is exactly one (RFC 6749 section 3.1.2.3).
    pub fn redirect_for(&self, presented: Option<&str>) -> Option<String> {
        match presented {
            None if self.redirect_uris.len() == 1 => Some(self.redirect_uris[0].clone()),
            None => None,
            Some(p) => self.redirect_uris.iter().any(|r| redirect_matches(r, p)).then(|| p.to_owned()),
        }
    }
}

/// A redirect URI may be registered: absolute, no fragment, and `http` only on loopback.
pub fn check_redirect_uri(uri: &str) -> Result<(), RedirectUriError> {
    let parsed = Url::parse(uri).map_err(|_| RedirectUriError::NotAbsolute(uri.to_owned()))?;
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(RedirectUriError::Fragment(uri.to_owned()));
    }
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        return Err(RedirectUriError::PlainHttp(uri.to_owned()));
    }
    Ok(())
}

/// Exact string match, or the same loopback URI with another port (RFC 8252 section 7.3).
pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(mut r), Ok(mut p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    if r.scheme() != "http" || !is_loopback(&r) || !is_loopback(&p) {
        return false;
    }
    // Only the port may differ; everything else must be the same text.
    if r.set_port(None).is_err() || p.set_port(None).is_err() {
        return false;
    }
    r.as_str() == p.as_str() && !presented.contains('#')
}

/// An IP loopback literal; `localhost` is not one (RFC 8252 section 8.3).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_by_exact_string() {
        assert!(redirect_matches("https://app.example/cb", "https://app.example/cb"));
        assert!(!redirect_matches("https://app.example/cb", "https://app.example/cb/"));
        assert!(!redirect_matches("https://app.example/cb", "https://app.example/cb?x=1"));
        assert!(!redirect_matches("https://app.example/cb", "https://APP.example/cb"));
        assert!(!redirect_matches("https://app.example/cb", "https://app.example:8443/cb"));
        assert!(!redirect_matches("https://app.example/cb", "https://evil.example/cb"));
    }

    #[test]
    fn only_loopback_redirect_uris_may_change_their_port() {
        assert!(redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1:51000/cb"));
        assert!(redirect_matches("http://127.0.0.1:8000/cb", "http://127.0.0.1:9000/cb"));
        assert!(redirect_matches("http://[::1]/cb", "http://[::1]:4000/cb"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1:51000/other"));
        assert!(!redirect_matches("http://localhost/cb", "http://localhost:51000/cb"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://127.0.0.2.evil.example:80/cb"));
    }

    #[test]
    fn plain_http_fragments_and_relative_uris_cannot_be_registered() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth2redirect").is_ok());
        assert!(matches!(check_redirect_uri("http://app.example/cb"), Err(RedirectUriError::PlainHttp(_))));
        assert!(matches!(check_redirect_uri("https://a.example/cb#x"), Err(RedirectUriError::Fragment(_))));
        assert!(matches!(check_redirect_uri("/cb"), Err(RedirectUriError::NotAbsolute(_))));
    }

    #[test]
    fn a_missing_redirect_uri_stands_for_the_only_registered_one() {
        let one = ClientOAuth::new(vec!["https://a.example/cb".into()], false, None, false);
        assert_eq!(one.redirect_for(None).as_deref(), Some("https://a.example/cb"));
        let two = ClientOAuth::new(
            vec!["https://a.example/1".into(), "https://a.example/2".into()],
            false,
            None,
            false,
        );
        assert_eq!(two.redirect_for(None), None);
        assert_eq!(two.redirect_for(Some("https://a.example/2")).as_deref(), Some("https://a.example/2"));
        assert_eq!(two.redirect_for(Some("https://a.example/3")), None);
    }

    #[test]
    fn public_clients_always_require_pkce() {
        assert!(ClientOAuth::new(vec![], true, Some(false), false).pkce_mandatory);
        assert!(!ClientOAuth::new(vec![], false, None, false).pkce_mandatory);
        assert!(ClientOAuth::new(vec![], false, Some(true), false).pkce_mandatory);
    }
}
