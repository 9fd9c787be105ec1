//! The views of the authorization code flow (codes, login sessions, remembered consents): how
//! the events fold into them, and the queries the writer and the readers make.

use rusqlite::{params, Connection, OptionalExtension};

use super::log::StoredEvent;
use super::StoreError;
use crate::domain::authorize::SignedIn;
use crate::domain::authz_events::CodeIssued;
use crate::domain::code::{CodeRecord, CodeStatus};
use crate::domain::events::{Event, Millis};
use crate::domain::types::{ClientId, Digest, ScopeSet, Username};

/// The view tables this module writes (the audit CLI's rebuild compares them too).
pub const TABLES: [&str; 3] = ["authorization_codes", "login_sessions", "consents"];

fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.to_owned().into())
}

/// Applies one event of the code flow; `false` when the event is not one of them.
pub fn apply(conn: &Connection, _stored: &StoredEvent, event: &Event) -> Result<bool, StoreError> {
    match event {
        Event::CodeIssued(c) => {
            // Serialising a plain struct with string keys cannot fail (as `Event::payload`).
            let issued = serde_json::to_string(c).expect("a CodeIssued always serialises");
            conn.prepare_cached(
                "INSERT OR REPLACE INTO authorization_codes
                    (code_digest, client_id, issued, status, family_id, expires_at)
                 VALUES (?1, ?2, ?3, 'active', NULL, ?4)",
            )?
            .execute(params![
                &c.code_digest.0[..],
                c.client_id.as_str(),
                issued,
                c.expires_at
            ])?;
        }
        Event::CodeRedeemed(c) => {
            conn.prepare_cached(
                "UPDATE authorization_codes SET status = 'redeemed', family_id = ?2 WHERE code_digest = ?1",
            )?
            .execute(params![&c.code_digest.0[..], c.family_id.to_string()])?;
        }
        Event::CodeRejected(c) => {
            conn.prepare_cached("UPDATE authorization_codes SET status = 'burned' WHERE code_digest = ?1")?
                .execute([&c.code_digest.0[..]])?;
        }
        Event::SessionStarted(s) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO login_sessions (session_digest, username, auth_time, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                &s.session_digest.0[..],
                s.username.as_str(),
                s.auth_time,
                s.expires_at
            ])?;
        }
        Event::SessionEnded(s) => {
            conn.prepare_cached("DELETE FROM login_sessions WHERE session_digest = ?1")?
                .execute([&s.session_digest.0[..]])?;
        }
        Event::ConsentGiven(c) if c.remember => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO consents (username_key, client_id, scopes) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                c.username.canonical(),
                c.client_id.as_str(),
                c.scopes.to_string()
            ])?;
        }
        Event::ConsentWithdrawn(c) => {
            conn.prepare_cached("DELETE FROM consents WHERE username_key = ?1 AND client_id = ?2")?
                .execute(params![c.username.canonical(), c.client_id.as_str()])?;
        }
        Event::ClientDeleted(c) => {
            // Its codes and consents die with it; the client's own row is the main projection's.
            conn.prepare_cached("DELETE FROM authorization_codes WHERE client_id = ?1")?
                .execute([c.client_id.as_str()])?;
            conn.prepare_cached("DELETE FROM consents WHERE client_id = ?1")?
                .execute([c.client_id.as_str()])?;
            return Ok(false);
        }
        Event::ConsentGiven(_)
        | Event::CodeReplayed(_)
        | Event::LoginSucceeded(_)
        | Event::LoginFailed(_) => {}
        _ => return Ok(false),
    }
    Ok(true)
}

/// A code by its digest.
pub fn code(conn: &Connection, digest: &Digest) -> Result<Option<CodeRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT issued, status, family_id FROM authorization_codes WHERE code_digest = ?1")?;
    let row = stmt
        .query_row([&digest.0[..]], |r| {
            let issued: CodeIssued =
                serde_json::from_str(&r.get::<_, String>(0)?).map_err(|_| corrupt(0, "bad code"))?;
            let status = match (r.get::<_, String>(1)?.as_str(), r.get::<_, Option<String>>(2)?) {
                ("active", _) => CodeStatus::Active,
                ("redeemed", Some(family)) => CodeStatus::Redeemed {
                    family_id: uuid::Uuid::parse_str(&family).map_err(|_| corrupt(2, "bad uuid"))?,
                },
                ("burned", _) => CodeStatus::Burned,
                _ => return Err(corrupt(1, "bad code status")),
            };
            Ok(CodeRecord { issued, status })
        })
        .optional()?;
    Ok(row)
}

/// The person signed in by a live session.
pub fn session(conn: &Connection, digest: &Digest, now: Millis) -> Result<Option<SignedIn>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT username, auth_time FROM login_sessions WHERE session_digest = ?1 AND expires_at > ?2",
    )?;
    let row = stmt
        .query_row(params![&digest.0[..], now], |r| {
            Ok(SignedIn {
                username: Username::parse(&r.get::<_, String>(0)?).map_err(|_| corrupt(0, "bad username"))?,
                auth_time: r.get(1)?,
            })
        })
        .optional()?;
    Ok(row)
}

/// The scopes a person approved always for a client.
pub fn remembered(
    conn: &Connection,
    username: &Username,
    client: &ClientId,
) -> Result<Option<ScopeSet>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT scopes FROM consents WHERE username_key = ?1 AND client_id = ?2")?;
    let row = stmt
        .query_row(params![username.canonical(), client.as_str()], |r| {
            ScopeSet::parse(&r.get::<_, String>(0)?).map_err(|_| corrupt(0, "bad scopes"))
        })
        .optional()?;
    Ok(row)
}
