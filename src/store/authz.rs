//! Typed lookups on the views of the authorization code flow (codes, login sessions,
//! remembered consents), over any backend: the seam's rows parsed into domain types. How the
//! events fold into these views is `fold::ops`; the SQL is in each backend.

use super::backend::{ReadStore, ViewReads};
use super::records::{BackendError, CodeRow, ConsentRow, SessionRow};
use super::StoreError;
use crate::domain::authorize::SignedIn;
use crate::domain::authz_events::CodeIssued;
use crate::domain::code::{CodeRecord, CodeStatus};
use crate::domain::events::Millis;
use crate::domain::types::{ClientId, Digest, ScopeSet, Username};

fn corrupt(what: &str) -> StoreError {
    StoreError::from(BackendError::Corrupt(what.to_owned()))
}

fn code_record(row: CodeRow) -> Result<CodeRecord, StoreError> {
    let issued: CodeIssued = serde_json::from_str(&row.issued).map_err(|_| corrupt("bad code"))?;
    let status = match (row.status.as_str(), row.family_id) {
        ("active", _) => CodeStatus::Active,
        ("redeemed", Some(family_id)) => CodeStatus::Redeemed { family_id },
        ("burned", _) => CodeStatus::Burned,
        _ => return Err(corrupt("bad code status")),
    };
    Ok(CodeRecord { issued, status })
}

/// A code by its digest (inside the writer's transaction).
pub fn code(s: &mut dyn ViewReads, digest: &Digest) -> Result<Option<CodeRecord>, StoreError> {
    s.code(&digest.0)?.map(code_record).transpose()
}

/// A session row as the person it signed in, when it is still live at `now`.
fn signed_in(row: SessionRow, now: Millis) -> Result<Option<SignedIn>, StoreError> {
    if row.expires_at <= now {
        return Ok(None);
    }
    let username = Username::parse(&row.username).map_err(|_| corrupt("bad username"))?;
    Ok(Some(SignedIn { username, auth_time: row.auth_time }))
}

/// The person a session signed in, live at `now` (inside the writer's transaction; `i64::MIN`
/// finds an expired session too).
pub fn session_in(
    s: &mut dyn ViewReads,
    digest: &Digest,
    now: Millis,
) -> Result<Option<SignedIn>, StoreError> {
    match s.session(&digest.0)? {
        Some(row) => signed_in(row, now),
        None => Ok(None),
    }
}

/// The person signed in by a live session (request handlers).
pub fn session(r: &dyn ReadStore, digest: &Digest, now: Millis) -> Result<Option<SignedIn>, StoreError> {
    match r.session(&digest.0)? {
        Some(row) => signed_in(row, now),
        None => Ok(None),
    }
}

fn scopes(row: ConsentRow) -> Result<ScopeSet, StoreError> {
    ScopeSet::parse(&row.scopes).map_err(|_| corrupt("bad scopes"))
}

/// The scopes a person approved always for a client (request handlers).
pub fn remembered(
    r: &dyn ReadStore,
    username: &Username,
    client: &ClientId,
) -> Result<Option<ScopeSet>, StoreError> {
    r.consent(username.canonical(), client.as_str())?.map(scopes).transpose()
}
