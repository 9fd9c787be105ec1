//! `audit`: the timeline of every event touching a token, a client or a user, and each token's
//! fate in one line. A token is looked up by its SHA-256 digest, as the log keeps it; its value
//! is never printed.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use token_ledger::domain::events::{Event, Millis, RevokeReason, TokenIssued};
use token_ledger::domain::types::Digest;
use token_ledger::store::log::StoredEvent;
use uuid::Uuid;

use crate::source::{Flow, Source};
use crate::time;
use crate::ReplayError;

/// What is audited.
#[derive(Debug, Clone)]
pub enum Subject {
    /// An access or refresh token, by digest.
    Token(Digest),
    Client(String),
    /// A username; compared case-insensitively, as the server does.
    User(String),
}

/// The part of the log to list: `from` filters the timeline; `to` also ends the walk, so fates
/// are told as they stood at that instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

/// One line of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub position: i64,
    pub time: String,
    /// The event type, with the reason of a revocation: `TokenRevoked (renewal)`.
    pub event: String,
    /// The access-token digest of the token the event is about.
    pub token: Option<String>,
    pub grant_type: Option<String>,
    pub client: Option<String>,
    pub user: Option<String>,
    pub request_id: Option<String>,
    pub peer: Option<String>,
}

/// A token's fate in one line.
#[derive(Debug, Clone, Serialize)]
pub struct Fate {
    /// `access` or `refresh`: which half of the pair the digest is.
    pub half: &'static str,
    pub digest: String,
    pub token_id: String,
    pub fate: String,
}

/// The answer of `audit`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub subject: String,
    /// The instant fates are told at: `--to`, or now.
    pub as_of: String,
    pub entries: Vec<Entry>,
    pub fates: Vec<Fate>,
}

/// How a token stopped being active.
#[derive(Debug, Clone)]
struct End {
    at: Millis,
    reason: RevokeReason,
    request_id: Option<String>,
    peer: Option<String>,
}

/// What the walk keeps of a relevant token.
#[derive(Debug, Clone)]
struct Life {
    issued: TokenIssued,
    end: Option<End>,
}

/// Walks the log once and answers for the subject.
pub fn audit(source: &Source, subject: &Subject, window: Window) -> Result<Report, ReplayError> {
    let as_of = window.to.unwrap_or_else(time::now);
    let mut walk = Walk::default();
    let mut entries = Vec::new();
    source.scan_after(None, |stored| {
        let at = stored.recorded_at_ms().ok_or_else(|| ReplayError::BadRecordedAt {
            position: stored.position,
            value: stored.recorded_at.clone(),
        })?;
        if window.to.is_some_and(|to| at > to) {
            return Ok(Flow::Break(()));
        }
        let event =
            stored.decode().map_err(|source| ReplayError::Fold { position: stored.position, source })?;
        if let Some(token) = walk.observe(subject, stored, &event, at) {
            if window.from.is_none_or(|from| at >= from) {
                entries.push(entry(stored, &event, token));
            }
        }
        Ok(Flow::Continue(()))
    })?;
    let in_window = |life: &&Life| window.from.is_none_or(|from| life.issued.issued_at >= from);
    let fates = match subject {
        Subject::Token(d) => token_fates(&walk.lives, d, as_of),
        _ => walk.lives.iter().filter(in_window).map(|life| access_fate(life, as_of)).collect(),
    };
    Ok(Report { subject: describe(subject), as_of: time::show(as_of), entries, fates })
}

fn describe(subject: &Subject) -> String {
    match subject {
        Subject::Token(d) => format!("token with digest {}", d.to_hex()),
        Subject::Client(id) => format!("client {id}"),
        Subject::User(name) => format!("user {name}"),
    }
}

/// The relevant tokens, in issue order, and the index of each by id and family.
#[derive(Default)]
struct Walk {
    lives: Vec<Life>,
    by_id: HashMap<Uuid, usize>,
    families: HashSet<Uuid>,
}

impl Walk {
    /// Whether the event touches the subject; if so, the access digest of its token, if any.
    fn observe(
        &mut self,
        subject: &Subject,
        stored: &StoredEvent,
        event: &Event,
        at: Millis,
    ) -> Option<Option<Digest>> {
        let about = match event {
            Event::TokenIssued(_)
            | Event::TokenReturned(_)
            | Event::TokenRevoked(_)
            | Event::RefreshTokenReplayed(_) => self.token_event(subject, stored, event, at),
            _ => names(subject, event).then_some(None),
        };
        // Events this build does not audit by payload are still found by their envelope.
        about.or(by_actor(subject, stored).then_some(None))
    }

    /// Follows the relevant tokens through their events, recording how each one ended.
    fn token_event(
        &mut self,
        subject: &Subject,
        stored: &StoredEvent,
        event: &Event,
        at: Millis,
    ) -> Option<Option<Digest>> {
        match event {
            Event::TokenIssued(t) if issued_to(subject, t) => {
                self.by_id.insert(t.token_id, self.lives.len());
                self.families.insert(t.family_id);
                self.lives.push(Life { issued: t.clone(), end: None });
                Some(Some(t.access_digest))
            }
            Event::TokenReturned(t) => self.digest_of(t.token_id),
            Event::TokenRevoked(t) => {
                let index = self.by_id.get(&t.token_id).copied();
                if let Some(life) = index.map(|i| &mut self.lives[i]) {
                    let meta = &stored.meta;
                    let (request_id, peer) = (meta.request_id.clone(), meta.peer.clone());
                    life.end = Some(End { at, reason: t.reason, request_id, peer });
                }
                self.digest_of(t.token_id)
            }
            Event::RefreshTokenReplayed(r) => {
                let ours = match subject {
                    Subject::Token(d) => r.refresh_digest == *d,
                    _ => self.families.contains(&r.family_id),
                };
                ours.then_some(None)
            }
            _ => None,
        }
    }

    fn digest_of(&self, token: Uuid) -> Option<Option<Digest>> {
        self.by_id.get(&token).map(|i| Some(self.lives[*i].issued.access_digest))
    }
}

fn issued_to(subject: &Subject, t: &TokenIssued) -> bool {
    match subject {
        Subject::Token(d) => t.access_digest == *d || t.refresh.as_ref().is_some_and(|r| r.digest == *d),
        Subject::Client(id) => t.client_id.as_str() == id,
        Subject::User(name) => t.username.as_ref().is_some_and(|u| u.canonical() == name.to_lowercase()),
    }
}

/// Whether a client or user event names the subject in its payload.
fn names(subject: &Subject, event: &Event) -> bool {
    let client = |id: &str| matches!(subject, Subject::Client(c) if c == id);
    match event {
        Event::ClientRegistered(c) => client(c.client_id.as_str()),
        Event::ClientDeleted(c) => client(c.client_id.as_str()),
        Event::UserAdded(u) => same_user(subject, &u.username),
        Event::UserPasswordChanged(u) => same_user(subject, &u.username),
        Event::AuthenticationFailed(f) => {
            client(f.client_id.as_str()) || f.username.as_deref().is_some_and(|u| same_user(subject, u))
        }
        _ => match code_flow_parties(event) {
            Some((c, u)) => c.is_some_and(client) || u.is_some_and(|u| same_user(subject, &u)),
            None => false,
        },
    }
}

/// Whether the subject is the client or user the request came from.
fn by_actor(subject: &Subject, stored: &StoredEvent) -> bool {
    let m = &stored.meta;
    match subject {
        Subject::Token(_) => false,
        Subject::Client(id) => m.client_id.as_deref() == Some(id.as_str()),
        Subject::User(name) => m.username.as_deref().is_some_and(|u| u.to_lowercase() == name.to_lowercase()),
    }
}

/// The client and user a code-flow event names (codes, sign-ins, sessions, consents).
fn code_flow_parties(event: &Event) -> Option<(Option<&str>, Option<String>)> {
    let user = |u: &token_ledger::domain::types::Username| Some(u.as_str().to_owned());
    Some(match event {
        Event::CodeIssued(c) => (Some(c.client_id.as_str()), user(&c.username)),
        Event::LoginSucceeded(l) => (Some(l.client_id.as_str()), user(&l.username)),
        Event::LoginFailed(l) => (Some(l.client_id.as_str()), Some(l.username.clone())),
        Event::SessionStarted(s) => (None, user(&s.username)),
        Event::SessionEnded(s) => (None, user(&s.username)),
        Event::ConsentGiven(c) => (Some(c.client_id.as_str()), user(&c.username)),
        Event::ConsentWithdrawn(c) => (Some(c.client_id.as_str()), user(&c.username)),
        _ => return None,
    })
}

fn same_user(subject: &Subject, username: &str) -> bool {
    matches!(subject, Subject::User(name) if name.to_lowercase() == username.to_lowercase())
}

fn entry(stored: &StoredEvent, event: &Event, token: Option<Digest>) -> Entry {
    let m = &stored.meta;
    let (grant_type, client, user) = match event {
        Event::TokenIssued(t) => (
            Some(t.grant_type.as_str().to_owned()),
            Some(t.client_id.to_string()),
            t.username.as_ref().map(|u| u.as_str().to_owned()),
        ),
        Event::ClientRegistered(c) => (None, Some(c.client_id.to_string()), None),
        Event::ClientDeleted(c) => (None, Some(c.client_id.to_string()), None),
        Event::UserAdded(u) => (None, None, Some(u.username.clone())),
        Event::UserPasswordChanged(u) => (None, None, Some(u.username.clone())),
        Event::AuthenticationFailed(f) => (None, Some(f.client_id.to_string()), f.username.clone()),
        _ => match code_flow_parties(event) {
            Some((c, u)) => (None, c.map(str::to_owned), u),
            None => (None, None, None),
        },
    };
    let name = match event {
        Event::TokenRevoked(r) => format!("{} ({})", stored.event_type, r.reason.as_str()),
        _ => stored.event_type.clone(),
    };
    Entry {
        position: stored.position,
        time: stored.recorded_at.clone(),
        event: name,
        token: token.map(|d| d.to_hex()),
        grant_type: m.grant_type.clone().or(grant_type),
        client: m.client_id.clone().or(client),
        user: m.username.clone().or(user),
        request_id: m.request_id.clone(),
        peer: m.peer.clone(),
    }
}

/// The fates of the token(s) with digest `d`: the access token it names, or the refresh token,
/// whose fate is its last carrier's (a refresh token is carried over to the next access token
/// under IDENTITY-6777, or by a refresh without renewal).
fn token_fates(lives: &[Life], d: &Digest, as_of: Millis) -> Vec<Fate> {
    let mut fates: Vec<Fate> =
        lives.iter().filter(|l| l.issued.access_digest == *d).map(|l| access_fate(l, as_of)).collect();
    let carries = |l: &&Life| l.issued.refresh.as_ref().is_some_and(|r| r.digest == *d);
    if let Some(last) = lives.iter().rev().find(carries) {
        fates.push(refresh_fate(last, as_of));
    }
    fates
}

fn access_fate(life: &Life, as_of: Millis) -> Fate {
    let expires_at = life.issued.expires_at;
    let fate = match &life.end {
        Some(end) if expires_at <= end.at => {
            let then = match end.reason {
                RevokeReason::ExpiryReplacement => format!("replaced at {}", time::show(end.at)),
                r => format!("revoked at {} by {}", time::show(end.at), reason_text(r)),
            };
            format!("expired at {}; {then}{}", time::show(expires_at), request(end))
        }
        Some(end) if end.reason == RevokeReason::Refresh => {
            format!("inactive since {}: refreshed{}", time::show(end.at), request(end))
        }
        Some(end) => {
            format!("revoked at {} by {}{}", time::show(end.at), reason_text(end.reason), request(end))
        }
        None if expires_at <= as_of => format!("expired at {}", time::show(expires_at)),
        None => format!("active until {}", time::show(expires_at)),
    };
    Fate {
        half: "access",
        digest: life.issued.access_digest.to_hex(),
        token_id: life.issued.token_id.to_string(),
        fate,
    }
}

fn refresh_fate(carrier: &Life, as_of: Millis) -> Fate {
    let refresh = carrier.issued.refresh.as_ref().expect("a carrier has a refresh part");
    let expires_at = refresh.expires_at;
    let fate = match &carrier.end {
        Some(end) if expires_at <= end.at => format!("expired at {}", time::show(expires_at)),
        Some(end) if end.reason == RevokeReason::Refresh => {
            format!("inactive since {}: rotated by a refresh{}", time::show(end.at), request(end))
        }
        Some(end) if end.reason == RevokeReason::ExpiryReplacement => format!(
            "inactive since {}: its access token expired and was replaced without it{}",
            time::show(end.at),
            request(end)
        ),
        Some(end) => {
            format!("revoked at {} by {}{}", time::show(end.at), reason_text(end.reason), request(end))
        }
        None if expires_at <= as_of => format!("expired at {}", time::show(expires_at)),
        None => format!("usable until {}", time::show(expires_at)),
    };
    Fate {
        half: "refresh",
        digest: refresh.digest.to_hex(),
        token_id: carrier.issued.token_id.to_string(),
        fate,
    }
}

fn reason_text(reason: RevokeReason) -> &'static str {
    match reason {
        RevokeReason::Renewal => "renewal",
        RevokeReason::Refresh => "refresh",
        RevokeReason::RevocationRequest => "revocation request",
        RevokeReason::RefreshTokenReuse => "refresh token reuse",
        RevokeReason::ExpiryReplacement => "expiry replacement",
        RevokeReason::ClientDeleted => "client deletion",
        RevokeReason::CodeReplay => "a replayed authorization code",
    }
}

fn request(end: &End) -> String {
    match (&end.request_id, &end.peer) {
        (Some(id), _) => format!(" (request {id})"),
        (None, Some(peer)) => format!(" (from {peer})"),
        (None, None) => String::new(),
    }
}
