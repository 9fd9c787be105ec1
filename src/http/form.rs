//! `application/x-www-form-urlencoded` request bodies, strictly: a size limit, UTF-8 only, and
//! every parameter at most once (RFC 6749 section 3.2).

use axum::extract::{FromRequest, Request};
use axum::http::header;
use percent_encoding::percent_decode;

use super::error::ApiError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Most parameters accepted in one body.
pub const MAX_PARAMS: usize = 64;

/// The parameters of a form body.
#[derive(Debug, Default)]
pub struct OAuthForm {
    pairs: Vec<(String, String)>,
}

impl OAuthForm {
    /// Parses a body; repeated parameters are refused as RFC 6749 section 3.2 requires.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PARAMS {
                return Err(ApiError::invalid_request("too many parameters"));
            }
            let (name, value) = match part.iter().position(|b| *b == b'=') {
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, &b""[..]),
            };
            let (name, value) = (decode(name)?, decode(value)?);
            // At most MAX_PARAMS names: a scan costs less than hashing each one.
            if pairs.iter().any(|(seen, _)| *seen == name) {
                return Err(ApiError::invalid_request("Invalid request with repeated parameters."));
            }
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// A parameter's value; an empty value counts as absent (RFC 6749 section 3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// Required parameters, or `invalid_request` naming every missing one.
    pub fn require<const N: usize>(&self, names: [&str; N]) -> Result<[&str; N], ApiError> {
        let missing: Vec<&str> = names.iter().copied().filter(|n| self.get(n).is_none()).collect();
        if !missing.is_empty() {
            return Err(ApiError::invalid_request(format!("Missing parameters: {}", missing.join(" "))));
        }
        Ok(names.map(|n| self.get(n).unwrap_or_default()))
    }
}

fn decode(raw: &[u8]) -> Result<String, ApiError> {
    let not_utf8 = || ApiError::invalid_request("the request body is not valid UTF-8");
    if !raw.iter().any(|b| *b == b'+' || *b == b'%') {
        // Nothing escaped (token values, grant types): one copy.
        return String::from_utf8(raw.to_vec()).map_err(|_| not_utf8());
    }
    let plus_as_space: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    let bytes: Vec<u8> = percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).map_err(|_| not_utf8())
}

/// Parameters that must never travel in a URL (WSO2: "Invalid request with sensitive data in
/// the URL"); URLs end up in proxy and access logs.
pub fn reject_sensitive_query(query: Option<&str>) -> Result<(), ApiError> {
    const SENSITIVE: [&str; 4] = ["username", "password", "client_secret", "refresh_token"];
    let Some(query) = query else { return Ok(()) };
    let leaks = query.split('&').any(|part| {
        let name = part.split('=').next().unwrap_or_default();
        let name: Vec<u8> = percent_decode(name.as_bytes()).collect();
        SENSITIVE.iter().any(|s| s.as_bytes() == name.as_slice())
    });
    if leaks {
        return Err(ApiError::invalid_request("Invalid request with sensitive data in the URL."));
    }
    Ok(())
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let form_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !form_type {
            return Err(ApiError::invalid_request("Content-Type must be application/x-www-form-urlencoded"));
        }
        let body = read_body(req).await?;
        Self::parse(&body)
    }
}

/// How long a client may take to send a body once its headers arrived.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a whole body up to `MAX_BODY`, within `BODY_TIMEOUT`.
pub async fn read_body(req: Request) -> Result<axum::body::Bytes, ApiError> {
    let read = axum::body::to_bytes(req.into_body(), MAX_BODY);
    let Ok(result) = tokio::time::timeout(BODY_TIMEOUT, read).await else {
        return Err(ApiError::RequestTimeout);
    };
    result.map_err(|e| {
        let too_large =
            std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge
        } else {
            ApiError::invalid_request("the request body could not be read")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_escapes() {
        let form = OAuthForm::parse(b"grant_type=password&scope=read+write%20x&username=a%40b").unwrap();
        assert_eq!(form.get("scope"), Some("read write x"));
        assert_eq!(form.get("username"), Some("a@b"));
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn repeated_parameters_and_bad_utf8_are_invalid_requests() {
        assert!(matches!(OAuthForm::parse(b"a=1&a=2"), Err(ApiError::InvalidRequest(_))));
        assert!(matches!(OAuthForm::parse(b"a=%ff%fe"), Err(ApiError::InvalidRequest(_))));
        assert!(matches!(OAuthForm::parse(b"a=\xff"), Err(ApiError::InvalidRequest(_))), "raw, unescaped");
        assert!(
            matches!(OAuthForm::parse(b"a=1&%61=2"), Err(ApiError::InvalidRequest(_))),
            "same name escaped"
        );
        let many: Vec<String> = (0..100).map(|i| format!("p{i}=1")).collect();
        assert!(matches!(OAuthForm::parse(many.join("&").as_bytes()), Err(ApiError::InvalidRequest(_))));
    }

    #[test]
    fn missing_parameters_are_named() {
        let form = OAuthForm::parse(b"username=a").unwrap();
        match form.require(["username", "password", "scope"]) {
            Err(ApiError::InvalidRequest(d)) => assert_eq!(d, "Missing parameters: password scope"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_in_the_query_string_are_refused() {
        assert!(reject_sensitive_query(Some("password=x")).is_err());
        assert!(reject_sensitive_query(Some("a=1&client%5Fsecret=x")).is_err());
        assert!(reject_sensitive_query(Some("a=1")).is_ok());
        assert!(reject_sensitive_query(None).is_ok());
    }
}
