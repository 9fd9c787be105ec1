//! The SQL of the authorization code flow's views (codes, login sessions, remembered consents):
//! their view operations and lookups. Codes and session ids are kept only as digests.

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::views::digest;
use crate::store::records::{BResult, CodeRow, ConsentRow, SessionRow, ViewOp};

fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.to_owned().into())
}

/// Applies one of the code flow's view operations (`project` dispatches the others).
pub fn apply(conn: &Connection, op: &ViewOp) -> BResult<()> {
    match op {
        ViewOp::PutCode(c) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO authorization_codes
                    (code_digest, client_id, issued, status, family_id, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                &c.code_digest[..],
                c.client_id,
                c.issued,
                c.status,
                c.family_id.map(|f| f.to_string()),
                c.expires_at
            ])?;
        }
        ViewOp::RedeemCode { code_digest, family_id } => {
            conn.prepare_cached(
                "UPDATE authorization_codes SET status = 'redeemed', family_id = ?2 WHERE code_digest = ?1",
            )?
            .execute(params![&code_digest[..], family_id.to_string()])?;
        }
        ViewOp::BurnCode { code_digest } => {
            conn.prepare_cached("UPDATE authorization_codes SET status = 'burned' WHERE code_digest = ?1")?
                .execute([&code_digest[..]])?;
        }
        ViewOp::PutSession(s) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO login_sessions (session_digest, username, auth_time, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![&s.session_digest[..], s.username, s.auth_time, s.expires_at])?;
        }
        ViewOp::DeleteSession { session_digest } => {
            conn.prepare_cached("DELETE FROM login_sessions WHERE session_digest = ?1")?
                .execute([&session_digest[..]])?;
        }
        ViewOp::PutConsent(c) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO consents (username_key, client_id, scopes) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![c.username_key, c.client_id, c.scopes])?;
        }
        ViewOp::DeleteConsent { username_key, client_id } => {
            conn.prepare_cached("DELETE FROM consents WHERE username_key = ?1 AND client_id = ?2")?
                .execute(params![username_key, client_id])?;
        }
        _ => {}
    }
    Ok(())
}

/// A deleted client's codes and consents go with it.
pub fn delete_client(conn: &Connection, client_id: &str) -> BResult<()> {
    conn.prepare_cached("DELETE FROM authorization_codes WHERE client_id = ?1")?.execute([client_id])?;
    conn.prepare_cached("DELETE FROM consents WHERE client_id = ?1")?.execute([client_id])?;
    Ok(())
}

pub fn code(conn: &Connection, d: &[u8; 32]) -> BResult<Option<CodeRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT code_digest, client_id, issued, status, family_id, expires_at
         FROM authorization_codes WHERE code_digest = ?1",
    )?;
    let row = stmt
        .query_row([&d[..]], |r| {
            let family_id = match r.get::<_, Option<String>>(4)? {
                Some(f) => Some(Uuid::parse_str(&f).map_err(|_| corrupt(4, "bad uuid"))?),
                None => None,
            };
            Ok(CodeRow {
                code_digest: digest(r.get(0)?, 0)?,
                client_id: r.get(1)?,
                issued: r.get(2)?,
                status: r.get(3)?,
                family_id,
                expires_at: r.get(5)?,
            })
        })
        .optional()?;
    Ok(row)
}

pub fn session(conn: &Connection, d: &[u8; 32]) -> BResult<Option<SessionRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT session_digest, username, auth_time, expires_at FROM login_sessions WHERE session_digest = ?1",
    )?;
    let row = stmt
        .query_row([&d[..]], |r| {
            Ok(SessionRow {
                session_digest: digest(r.get(0)?, 0)?,
                username: r.get(1)?,
                auth_time: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })
        .optional()?;
    Ok(row)
}

pub fn consent(conn: &Connection, username_key: &str, client: &str) -> BResult<Option<ConsentRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT username_key, client_id, scopes FROM consents WHERE username_key = ?1 AND client_id = ?2",
    )?;
    let row = stmt
        .query_row(params![username_key, client], |r| {
            Ok(ConsentRow { username_key: r.get(0)?, client_id: r.get(1)?, scopes: r.get(2)? })
        })
        .optional()?;
    Ok(row)
}
