//! The views (active tokens, rotated refresh tokens, clients, users) folded from the log. The
//! server, the CLI and a catch-up at start-up all apply events through `apply`, inside the
//! transaction that appended them, with the checkpoint moved in the same transaction.

use rusqlite::{params, Connection};

use super::log::{read_after, StoredEvent};
use super::StoreError;
use crate::domain::events::{Event, RevokeReason};

/// The checkpoint row of the views.
pub const VIEWS: &str = "views";

/// Applies one event to the views. Holds no rules: every historical log replays.
pub fn apply(conn: &Connection, stored: &StoredEvent, event: &Event) -> Result<(), StoreError> {
    if super::authz::apply(conn, stored, event)? {
        return Ok(());
    }
    match event {
        Event::ClientRegistered(e) => {
            let grants: Vec<&str> = e.grant_types.iter().map(|g| g.as_str()).collect();
            conn.prepare_cached(
                "INSERT OR REPLACE INTO clients
                    (client_id, client_name, secret_digest, grant_types, access_token_type, oauth)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                e.client_id.as_str(),
                e.client_name,
                &e.secret_digest.0[..],
                grants.join(" "),
                e.access_token_type,
                // A plain struct with string keys always serialises (as `Event::payload`).
                serde_json::to_string(&e.oauth).expect("ClientOAuth always serialises"),
            ])?;
        }
        Event::ClientDeleted(e) => {
            conn.prepare_cached("DELETE FROM clients WHERE client_id = ?1")?
                .execute([e.client_id.as_str()])?;
            conn.prepare_cached("DELETE FROM rotated_refresh_tokens WHERE client_id = ?1")?
                .execute([e.client_id.as_str()])?;
        }
        Event::UserAdded(e) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO users (username_key, username, password_hash) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![e.username.to_lowercase(), e.username, e.password_hash])?;
        }
        Event::UserPasswordChanged(e) => {
            conn.prepare_cached("UPDATE users SET password_hash = ?2 WHERE username_key = ?1")?
                .execute(params![e.username.to_lowercase(), e.password_hash])?;
        }
        Event::TokenIssued(t) => {
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
                stored.stream,
                t.client_id.as_str(),
                t.username.as_ref().map(|u| u.as_str()),
                t.scopes.to_string(),
                t.grant_type.as_str(),
                &t.access_digest.0[..],
                t.issued_at,
                t.expires_at,
                t.sealed_access,
                r.map(|r| r.digest.0.to_vec()),
                r.map(|r| r.issued_at),
                r.map(|r| r.expires_at),
                r.map(|r| r.sealed.as_str()),
            ])?;
            if let Some(r) = r {
                // A refresh token carried over to the new token is live again, not rotated.
                conn.prepare_cached("DELETE FROM rotated_refresh_tokens WHERE refresh_digest = ?1")?
                    .execute([&r.digest.0[..]])?;
            }
        }
        Event::TokenRevoked(e) => {
            let id = e.token_id.to_string();
            if e.reason == RevokeReason::Refresh {
                let rotated_at = stored.recorded_at_ms().unwrap_or_default();
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO rotated_refresh_tokens
                        (refresh_digest, family_id, client_id, stream, rotated_at)
                     SELECT refresh_digest, family_id, client_id, stream, ?2
                     FROM active_tokens WHERE token_id = ?1 AND refresh_digest IS NOT NULL",
                )?
                .execute(params![id, rotated_at])?;
            }
            conn.prepare_cached("DELETE FROM active_tokens WHERE token_id = ?1")?.execute([id])?;
        }
        Event::TokenReturned(_) | Event::RefreshTokenReplayed(_) | Event::AuthenticationFailed(_) => {}
        // The code flow's events fold in src/store/authz.rs, above.
        Event::CodeIssued(_)
        | Event::CodeRedeemed(_)
        | Event::CodeRejected(_)
        | Event::CodeReplayed(_)
        | Event::LoginSucceeded(_)
        | Event::LoginFailed(_)
        | Event::SessionStarted(_)
        | Event::SessionEnded(_)
        | Event::ConsentGiven(_)
        | Event::ConsentWithdrawn(_) => {}
    }
    Ok(())
}

/// Moves the views' checkpoint.
pub fn set_checkpoint(conn: &Connection, position: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE checkpoints SET position = ?1 WHERE projection = ?2")?
        .execute(params![position, VIEWS])?;
    Ok(())
}

pub fn checkpoint(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT position FROM checkpoints WHERE projection = ?1", [VIEWS], |r| r.get(0))?)
}

/// Folds the events the views have not seen yet (after their checkpoint), in one transaction.
/// Returns how many were applied.
pub fn catch_up(conn: &mut Connection) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let from = checkpoint(&tx)?;
    let mut applied = 0;
    let mut last = from;
    read_after(&tx, from, |stored| {
        let event = stored.decode()?;
        apply(&tx, &stored, &event)?;
        last = stored.position;
        applied += 1;
        Ok(())
    })?;
    if applied > 0 {
        set_checkpoint(&tx, last)?;
    }
    tx.commit()?;
    Ok(applied)
}
