//! The views (active tokens, rotated refresh tokens, clients, users) folded from the log: the
//! SQL of each view operation, applied inside the transaction that appended the events, with
//! the checkpoint moved in the same transaction.

use rusqlite::{params, Connection};

use crate::store::records::{BResult, ViewOp};

/// The checkpoint row of the views.
pub const VIEWS: &str = "views";

/// Applies one view operation. Holds no rules: every historical log replays.
pub fn apply(conn: &Connection, op: &ViewOp) -> BResult<()> {
    match op {
        ViewOp::PutClient(c) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO clients
                    (client_id, client_name, secret_digest, grant_types, access_token_type, oauth)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                c.client_id,
                c.client_name,
                &c.secret_digest[..],
                c.grant_types,
                c.access_token_type,
                c.oauth
            ])?;
        }
        ViewOp::DeleteClient { client_id } => {
            conn.prepare_cached("DELETE FROM clients WHERE client_id = ?1")?.execute([client_id])?;
            conn.prepare_cached("DELETE FROM rotated_refresh_tokens WHERE client_id = ?1")?
                .execute([client_id])?;
            super::authz::delete_client(conn, client_id)?;
        }
        ViewOp::PutUser { key, user } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO users (username_key, username, password_hash) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, user.username, user.password_hash])?;
        }
        ViewOp::SetPassword { key, password_hash } => {
            conn.prepare_cached("UPDATE users SET password_hash = ?2 WHERE username_key = ?1")?
                .execute(params![key, password_hash])?;
        }
        ViewOp::InsertToken(t) => {
            let r = t.refresh.as_ref();
            conn.prepare_cached(
                "INSERT INTO active_tokens (token_id, family_id, stream, client_id, username, scopes,
                    grant_type, access_digest, issued_at, expires_at, sealed_access, refresh_digest,
                    refresh_issued_at, refresh_expires_at, sealed_refresh)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                t.token_id.to_string(),
                t.family_id.to_string(),
                t.stream,
                t.client_id,
                t.username,
                t.scopes,
                t.grant_type,
                &t.access_digest[..],
                t.issued_at,
                t.expires_at,
                t.sealed_access,
                r.map(|r| r.digest.to_vec()),
                r.map(|r| r.issued_at),
                r.map(|r| r.expires_at),
                r.map(|r| r.sealed.as_str()),
            ])?;
            if let Some(r) = r {
                // A refresh token carried over to the new token is live again, not rotated.
                conn.prepare_cached("DELETE FROM rotated_refresh_tokens WHERE refresh_digest = ?1")?
                    .execute([&r.digest[..]])?;
            }
        }
        ViewOp::RotateRefresh { token_id, rotated_at } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO rotated_refresh_tokens
                    (refresh_digest, family_id, client_id, stream, rotated_at)
                 SELECT refresh_digest, family_id, client_id, stream, ?2
                 FROM active_tokens WHERE token_id = ?1 AND refresh_digest IS NOT NULL",
            )?
            .execute(params![token_id.to_string(), rotated_at])?;
        }
        ViewOp::DeleteToken { token_id } => {
            conn.prepare_cached("DELETE FROM active_tokens WHERE token_id = ?1")?
                .execute([token_id.to_string()])?;
        }
        ViewOp::PruneExpired { expired_before, rotated_before } => {
            // A token stays while either half can still be used (the refresh grant needs it).
            conn.prepare_cached(
                "DELETE FROM active_tokens WHERE expires_at < ?1 AND COALESCE(refresh_expires_at, 0) < ?1",
            )?
            .execute([expired_before])?;
            conn.prepare_cached("DELETE FROM rotated_refresh_tokens WHERE rotated_at < ?1")?
                .execute([rotated_before])?;
            conn.prepare_cached("DELETE FROM authorization_codes WHERE expires_at < ?1")?
                .execute([expired_before])?;
            conn.prepare_cached("DELETE FROM login_sessions WHERE expires_at < ?1")?
                .execute([expired_before])?;
        }
        code_flow => super::authz::apply(conn, code_flow)?,
    }
    Ok(())
}

/// Moves the views' checkpoint.
pub fn set_checkpoint(conn: &Connection, position: i64) -> BResult<()> {
    conn.prepare_cached("UPDATE checkpoints SET position = ?1 WHERE projection = ?2")?
        .execute(params![position, VIEWS])?;
    Ok(())
}

pub fn checkpoint(conn: &Connection) -> BResult<i64> {
    Ok(conn.query_row("SELECT position FROM checkpoints WHERE projection = ?1", [VIEWS], |r| r.get(0))?)
}

/// Empties the views and their checkpoint (the conformance suite's damaged database).
#[cfg(test)]
pub(crate) fn forget_views(conn: &Connection) -> BResult<()> {
    conn.execute_batch(
        "DELETE FROM active_tokens; DELETE FROM rotated_refresh_tokens; DELETE FROM clients;
         DELETE FROM users; DELETE FROM authorization_codes; DELETE FROM login_sessions;
         DELETE FROM consents; UPDATE checkpoints SET position = 0;",
    )?;
    Ok(())
}
