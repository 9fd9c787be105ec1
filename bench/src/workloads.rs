//! The request sequences of the scenarios, one `Conn` per connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use bytes::{BufMut as _, Bytes, BytesMut};

use crate::load::{Check, Conn, Kind, Planned};
use crate::populate::TokenList;

const TOKEN: &str = "/oauth2/token";
const INTROSPECT: &str = "/oauth2/introspect";
const REVOKE: &str = "/oauth2/revoke";

fn form(text: String) -> Bytes {
    Bytes::from(text)
}

fn token_form(token: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(6 + token.len());
    b.put_slice(b"token=");
    b.put_slice(token);
    b.freeze()
}

/// The string value of a top-level JSON field, for the few fields the scenarios read back.
pub fn json_field<'a>(body: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let key = format!("\"{name}\":\"");
    let at = body.windows(key.len()).position(|w| w == key.as_bytes())? + key.len();
    let len = body[at..].iter().position(|b| *b == b'"')?;
    Some(&body[at..at + len])
}

/// A small, fast generator (xorshift64*) so each connection draws its own sequence.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize % n.max(1)
    }
}

/// The bare axum baseline: the introspection request's shape, to a handler that does nothing.
pub struct Bare {
    pub auth: HeaderValue,
    pub body: Bytes,
}

impl Conn for Bare {
    fn next(&mut self) -> Option<Planned> {
        Some(Planned { kind: Kind::Bare, path: INTROSPECT, auth: self.auth.clone(), body: self.body.clone() })
    }

    fn answered(&mut self, _: Kind, _: StatusCode, _: &[u8]) -> Check {
        Check::Ok
    }
}

/// `client_credentials` with a scope never asked before: a new key, so a new token, each time.
pub struct NewKeys {
    pub auth: HeaderValue,
    pub connection: usize,
    pub sent: u64,
}

impl NewKeys {
    fn plan(&mut self) -> Planned {
        self.sent += 1;
        Planned {
            kind: Kind::Token,
            path: TOKEN,
            auth: self.auth.clone(),
            body: form(format!("grant_type=client_credentials&scope=n{}x{}", self.connection, self.sent)),
        }
    }
}

impl Conn for NewKeys {
    fn next(&mut self) -> Option<Planned> {
        Some(self.plan())
    }

    fn answered(&mut self, _: Kind, _: StatusCode, body: &[u8]) -> Check {
        match json_field(body, "access_token") {
            Some(_) => Check::Ok,
            None => Check::Unexpected("no access_token"),
        }
    }
}

/// What a repeated request for one key must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Renewal off: the same access token every time.
    Same,
    /// Renewal on: a different access token every time.
    New,
}

/// The same token request for one key, again and again (`cc-same`, `cc-renew`, `password`).
pub struct SameKey {
    pub auth: HeaderValue,
    pub body: Bytes,
    pub expect: Expect,
    pub last: Option<Vec<u8>>,
}

impl Conn for SameKey {
    fn next(&mut self) -> Option<Planned> {
        Some(Planned { kind: Kind::Token, path: TOKEN, auth: self.auth.clone(), body: self.body.clone() })
    }

    fn answered(&mut self, _: Kind, _: StatusCode, body: &[u8]) -> Check {
        let Some(token) = json_field(body, "access_token") else {
            return Check::Unexpected("no access_token");
        };
        let check = match (&self.last, self.expect) {
            (None, _) => Check::Ok,
            (Some(last), Expect::Same) if last != token => Check::Unexpected("a different token"),
            (Some(last), Expect::New) if last == token => Check::Unexpected("the same token"),
            _ => Check::Ok,
        };
        self.last = Some(token.to_vec());
        check
    }
}

/// A refresh-token rotation chain: a `client_credentials` pair first (with
/// `allow_refresh_tokens`), then `refresh_token` with the newest refresh token each time.
pub struct Rotation {
    pub auth: HeaderValue,
    pub connection: usize,
    pub refresh: Option<Vec<u8>>,
    pub broken: bool,
}

impl Conn for Rotation {
    fn next(&mut self) -> Option<Planned> {
        if self.broken {
            return None;
        }
        let (kind, body) = match &self.refresh {
            None => {
                (Kind::Setup, form(format!("grant_type=client_credentials&scope=chain{}", self.connection)))
            }
            Some(r) => {
                let mut b = BytesMut::from(&b"grant_type=refresh_token&refresh_token="[..]);
                b.put_slice(r);
                (Kind::Token, b.freeze())
            }
        };
        Some(Planned { kind, path: TOKEN, auth: self.auth.clone(), body })
    }

    fn answered(&mut self, _: Kind, status: StatusCode, body: &[u8]) -> Check {
        match json_field(body, "refresh_token") {
            Some(r) if status.is_success() => {
                self.refresh = Some(r.to_vec());
                Check::Ok
            }
            // A broken chain cannot go on: a rotated token presented again is refused.
            _ => {
                self.broken = true;
                Check::Unexpected("no refresh_token")
            }
        }
    }
}

/// Introspection of random live tokens as the super admin.
pub struct Introspect {
    pub auth: HeaderValue,
    pub tokens: Arc<TokenList>,
    /// Only the first `live` tokens are drawn (the rest may be revoked by `mixed`).
    pub live: usize,
    pub rng: Rng,
}

impl Introspect {
    fn plan(&mut self) -> Planned {
        let i = self.rng.below(self.live);
        Planned {
            kind: Kind::Introspect,
            path: INTROSPECT,
            auth: self.auth.clone(),
            body: token_form(self.tokens.get(i)),
        }
    }
}

fn introspected(body: &[u8]) -> Check {
    if body.starts_with(b"{\"active\":true") {
        Check::Ok
    } else {
        Check::Unexpected("active:false for a live token")
    }
}

impl Conn for Introspect {
    fn next(&mut self) -> Option<Planned> {
        Some(self.plan())
    }

    fn answered(&mut self, _: Kind, _: StatusCode, body: &[u8]) -> Check {
        introspected(body)
    }
}

/// Tokens handed out for revocation, each once, shared by every connection.
pub struct RevokeQueue {
    pub tokens: Arc<TokenList>,
    pub next: AtomicUsize,
    pub end: usize,
}

impl RevokeQueue {
    fn take(&self) -> Option<&[u8]> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.end).then(|| self.tokens.get(i))
    }
}

/// RFC 7009 revocation of live tokens by their client, each token once.
pub struct Revoke {
    pub auth: HeaderValue,
    pub queue: Arc<RevokeQueue>,
}

impl Revoke {
    fn plan(&mut self) -> Option<Planned> {
        Some(Planned {
            kind: Kind::Revoke,
            path: REVOKE,
            auth: self.auth.clone(),
            body: token_form(self.queue.take()?),
        })
    }
}

impl Conn for Revoke {
    fn next(&mut self) -> Option<Planned> {
        self.plan()
    }

    fn answered(&mut self, _: Kind, _: StatusCode, _: &[u8]) -> Check {
        Check::Ok
    }
}

/// 80% introspection, 15% new tokens, 5% revocations, drawn at random per request.
pub struct Mixed {
    pub introspect: Introspect,
    pub issue: NewKeys,
    pub revoke: Revoke,
}

impl Conn for Mixed {
    fn next(&mut self) -> Option<Planned> {
        match self.introspect.rng.below(100) {
            0..80 => Some(self.introspect.plan()),
            80..95 => Some(self.issue.plan()),
            // When the revocation tokens run out, introspect instead.
            _ => self.revoke.plan().or_else(|| Some(self.introspect.plan())),
        }
    }

    fn answered(&mut self, kind: Kind, status: StatusCode, body: &[u8]) -> Check {
        match kind {
            Kind::Introspect => introspected(body),
            Kind::Token => self.issue.answered(kind, status, body),
            _ => Check::Ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_reads_a_string_value() {
        let body = br#"{"access_token":"abc","refresh_token":"d-e_f","expires_in":3600}"#;
        assert_eq!(json_field(body, "access_token"), Some(&b"abc"[..]));
        assert_eq!(json_field(body, "refresh_token"), Some(&b"d-e_f"[..]));
        assert_eq!(json_field(body, "scope"), None);
    }

    #[test]
    fn the_generator_stays_below_its_bound() {
        let mut rng = Rng::new(7);
        assert!((0..10_000).all(|_| rng.below(100) < 100));
    }
}
