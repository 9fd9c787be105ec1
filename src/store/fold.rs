//! The projection's rules-free fold: what each event changes in the views, as backend-neutral
//! `ViewOp`s. The server, the CLI, a catch-up at start-up and the audit CLI's rebuild all fold
//! through `ops`, inside the transaction that appended the events, with the checkpoint moved in
//! the same transaction.

use super::backend::WriteStore;
use super::lookup::token_row;
use super::records::{ClientRow, CodeRow, ConsentRow, SessionRow, StoredEvent, UserRow, ViewOp};
use super::StoreError;
use crate::domain::events::{Event, RevokeReason};

/// The name of the views' checkpoint row.
pub const VIEWS: &str = "views";

/// The view changes of one event. Holds no rules: every historical log replays.
pub fn ops(stored: &StoredEvent, event: &Event) -> Vec<ViewOp> {
    match event {
        Event::ClientRegistered(e) => {
            let grants: Vec<&str> = e.grant_types.iter().map(|g| g.as_str()).collect();
            vec![ViewOp::PutClient(ClientRow {
                client_id: e.client_id.as_str().to_owned(),
                client_name: e.client_name.clone(),
                secret_digest: e.secret_digest.0,
                grant_types: grants.join(" "),
                access_token_type: e.access_token_type.clone(),
                // A plain struct with string keys always serialises (as `Event::payload`).
                oauth: serde_json::to_string(&e.oauth).expect("ClientOAuth always serialises"),
            })]
        }
        Event::ClientDeleted(e) => vec![ViewOp::DeleteClient { client_id: e.client_id.as_str().to_owned() }],
        Event::UserAdded(e) => vec![ViewOp::PutUser {
            key: e.username.to_lowercase(),
            user: UserRow { username: e.username.clone(), password_hash: e.password_hash.clone() },
        }],
        Event::UserPasswordChanged(e) => vec![ViewOp::SetPassword {
            key: e.username.to_lowercase(),
            password_hash: e.password_hash.clone(),
        }],
        Event::TokenIssued(t) => vec![ViewOp::InsertToken(token_row(&stored.stream, t))],
        Event::TokenRevoked(e) => {
            let delete = ViewOp::DeleteToken { token_id: e.token_id };
            if e.reason == RevokeReason::Refresh {
                let rotated_at = stored.recorded_at_ms().unwrap_or_default();
                vec![ViewOp::RotateRefresh { token_id: e.token_id, rotated_at }, delete]
            } else {
                vec![delete]
            }
        }
        Event::TokenReturned(_) | Event::RefreshTokenReplayed(_) | Event::AuthenticationFailed(_) => vec![],
        Event::ExpiredPruned(p) => {
            vec![ViewOp::PruneExpired { expired_before: p.expired_before, rotated_before: p.rotated_before }]
        }
        _ => code_flow_ops(event),
    }
}

/// The view changes of the authorization code flow's events.
fn code_flow_ops(event: &Event) -> Vec<ViewOp> {
    match event {
        Event::CodeIssued(c) => vec![ViewOp::PutCode(CodeRow {
            code_digest: c.code_digest.0,
            client_id: c.client_id.as_str().to_owned(),
            // A plain struct with string keys always serialises (as `Event::payload`).
            issued: serde_json::to_string(c).expect("a CodeIssued always serialises"),
            status: "active".to_owned(),
            family_id: None,
            expires_at: c.expires_at,
        })],
        Event::CodeRedeemed(c) => {
            vec![ViewOp::RedeemCode { code_digest: c.code_digest.0, family_id: c.family_id }]
        }
        Event::CodeRejected(c) => vec![ViewOp::BurnCode { code_digest: c.code_digest.0 }],
        Event::SessionStarted(s) => vec![ViewOp::PutSession(SessionRow {
            session_digest: s.session_digest.0,
            username: s.username.as_str().to_owned(),
            auth_time: s.auth_time,
            expires_at: s.expires_at,
        })],
        Event::SessionEnded(s) => vec![ViewOp::DeleteSession { session_digest: s.session_digest.0 }],
        Event::ConsentGiven(c) if c.remember => vec![ViewOp::PutConsent(ConsentRow {
            username_key: c.username.canonical().to_owned(),
            client_id: c.client_id.as_str().to_owned(),
            scopes: c.scopes.to_string(),
        })],
        Event::ConsentWithdrawn(c) => vec![ViewOp::DeleteConsent {
            username_key: c.username.canonical().to_owned(),
            client_id: c.client_id.as_str().to_owned(),
        }],
        // Login outcomes, replays and one-time consents change no view.
        _ => vec![],
    }
}

/// Applies one event to the views of the store's open transaction.
pub fn apply(store: &mut dyn WriteStore, stored: &StoredEvent, event: &Event) -> Result<(), StoreError> {
    for op in ops(stored, event) {
        store.project(&op)?;
    }
    Ok(())
}

/// How many events a catch-up reads per query.
const PAGE: usize = 1000;

/// Folds the events the views have not seen yet (after their checkpoint), in one transaction.
/// Returns how many were applied.
pub fn catch_up(store: &mut dyn WriteStore) -> Result<u64, StoreError> {
    let tail = store.begin()?;
    let folded = fold_pending(store);
    match folded {
        Ok(0) => {
            store.commit(None)?;
            Ok(0)
        }
        Ok(applied) => {
            store.commit(Some(&tail))?;
            Ok(applied)
        }
        Err(e) => {
            store.rollback();
            Err(e)
        }
    }
}

fn fold_pending(store: &mut dyn WriteStore) -> Result<u64, StoreError> {
    let mut from = store.checkpoint()?;
    let mut applied = 0;
    loop {
        let page = store.read_after(from, PAGE)?;
        let Some(last) = page.last().map(|e| e.position) else {
            return Ok(applied);
        };
        for stored in &page {
            apply(store, stored, &stored.decode()?)?;
            applied += 1;
        }
        from = last;
    }
}
