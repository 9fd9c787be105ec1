//! The pages a person sees (login, consent, error, sign-out): compiled askama templates with
//! HTML auto-escaping, the security headers every page carries (set once, by `page_headers`),
//! the login-session and CSRF cookies, and the CSRF token of every form.

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto;

/// The login-session cookie; the server keeps only the digest of its value.
pub const SESSION_COOKIE: &str = "tl_session";
/// The CSRF cookie; every form carries an HMAC of its value.
pub const CSRF_COOKIE: &str = "tl_csrf";

/// Sets the headers of every page once: no framing (RFC 9700 section 4.16), no caching, no
/// referrer leaking the code or state to other sites, no content sniffing.
pub async fn page_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::PRAGMA, "no-cache");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    response
}

/// The stylesheet of the pages (served by the service itself: CSP `style-src 'self'`).
pub async fn stylesheet() -> Response {
    let css = include_str!("../../assets/style.css");
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response()
}

/// Renders a template with a status; a template that fails to render is a 500 page.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page template failed to render");
            let fallback = ErrorPage { message: "Internal error.".into(), code: None };
            let html = fallback.render().unwrap_or_default();
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html)
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub client_name: String,
    pub error: Option<String>,
    pub csrf: String,
    pub params: Vec<(String, String)>,
    pub username: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub client_name: String,
    pub username: String,
    /// Each scope with its plain-words description.
    pub scopes: Vec<(String, String)>,
    pub csrf: String,
    pub params: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub message: String,
    pub code: Option<String>,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    pub username: Option<String>,
    pub csrf: String,
}

/// An error shown to the person with a 4xx status; never a redirect.
pub fn error_page(status: StatusCode, message: impl Into<String>, code: Option<&str>) -> Response {
    render(status, &ErrorPage { message: message.into(), code: code.map(str::to_owned) })
}

/// A scope in plain words for the consent page.
pub fn scope_words(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your user name)".into(),
        "profile" => "See your basic profile".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Keep access while you are away".into(),
        other => format!("Use the permission \u{201c}{other}\u{201d}"),
    }
}

/// A cookie's value from the request.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS. `None` clears it.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    let mut cookie = Cookie::build((name.to_owned(), value.unwrap_or_default().to_owned()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .build();
    if value.is_none() {
        cookie.make_removal();
    }
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The CSRF protection of the forms (RFC 6749 section 10.12): a random cookie, and in each
/// form an HMAC of it under a key kept in the key folder (`csrf.key`), so a token cannot be made
/// without the key even by someone who can plant a cookie, and a form rendered by one node
/// verifies on every node sharing the folder (several nodes on PostgreSQL).
pub struct Csrf {
    key: [u8; 32],
}

impl Default for Csrf {
    /// A fresh key from the OS generator: forms rendered before a restart stop verifying.
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        Self { key }
    }
}

impl Csrf {
    /// Reads the key file, or creates it (mode 0600) with a fresh key from the OS generator.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, crate::crypto::CryptoError> {
        let shown = path.display().to_string();
        let io = |source| crate::crypto::CryptoError::KeyFile { path: shown.clone(), source };
        let key = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fresh = Self::default();
                if crate::crypto::create_private_once(path, &fresh.key).map_err(&io)? {
                    return Ok(fresh);
                }
                // Another node on the shared key folder created it first: use theirs.
                std::fs::read(path).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        };
        let key =
            <[u8; 32]>::try_from(key).map_err(|_| crate::crypto::CryptoError::KeyLength(shown.clone()))?;
        Ok(Self { key })
    }

    fn mac(&self, cookie: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(cookie.as_bytes());
        mac
    }

    /// The form token for a cookie value.
    pub fn token(&self, cookie: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(cookie).finalize().into_bytes())
    }

    /// Whether a form's token belongs to the request's cookie (constant time).
    pub fn verify(&self, cookie: Option<&str>, token: Option<&str>) -> bool {
        let (Some(cookie), Some(token)) = (cookie, token) else {
            return false;
        };
        let Ok(raw) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        self.mac(cookie).verify_slice(&raw).is_ok()
    }

    /// The request's CSRF cookie, or a new one to set with the page.
    pub fn cookie_for(&self, headers: &HeaderMap) -> (String, bool) {
        match cookie_value(headers, CSRF_COOKIE).filter(|v| v.len() >= 32) {
            Some(v) => (v, false),
            None => (crypto::new_secret(), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csrf_token_verifies_only_with_its_own_cookie() {
        let csrf = Csrf::default();
        let token = csrf.token("cookie-a");
        assert!(csrf.verify(Some("cookie-a"), Some(&token)));
        assert!(!csrf.verify(Some("cookie-b"), Some(&token)));
        assert!(!csrf.verify(None, Some(&token)));
        assert!(!csrf.verify(Some("cookie-a"), None));
        assert!(!Csrf::default().verify(Some("cookie-a"), Some(&token)));
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = ErrorPage { message: "<script>alert(1)</script>".into(), code: Some("\"><b>".into()) };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("\"><b>"), "{html}");
        assert!(html.contains("<html lang=\"en\">"));
    }
}
