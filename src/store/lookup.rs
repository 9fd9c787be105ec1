//! Typed lookups on the views, over any backend: rows from the seam parsed into domain types
//! (a row that does not parse is corruption, never a panic).

use std::sync::Arc;

use uuid::Uuid;

use super::backend::{ReadStore, ViewReads};
use super::memory::TokenInfo;
use super::records::{BackendError, ClientRow, RefreshRow, TokenRow, UserRow};
use super::StoreError;
use crate::domain::events::{Millis, RefreshPart, TokenIssued};
use crate::domain::grant::ActiveToken;
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, Username};

fn corrupt(what: &str) -> StoreError {
    StoreError::from(BackendError::Corrupt(what.to_owned()))
}

/// A token row as the domain's active token.
pub fn active_token(row: TokenRow) -> Result<ActiveToken, StoreError> {
    let username = match row.username {
        Some(name) => Some(Username::parse(&name).map_err(|_| corrupt("bad username"))?),
        None => None,
    };
    let token = TokenIssued {
        token_id: row.token_id,
        family_id: row.family_id,
        client_id: ClientId::parse(&row.client_id).map_err(|_| corrupt("bad client id"))?,
        username,
        scopes: ScopeSet::parse(&row.scopes).map_err(|_| corrupt("bad scopes"))?,
        grant_type: GrantType::parse(&row.grant_type).ok_or_else(|| corrupt("bad grant"))?,
        access_digest: Digest(row.access_digest),
        issued_at: row.issued_at,
        expires_at: row.expires_at,
        sealed_access: row.sealed_access,
        refresh: row.refresh.map(|r| RefreshPart {
            digest: Digest(r.digest),
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            sealed: r.sealed,
        }),
    };
    Ok(ActiveToken { stream: row.stream, token })
}

/// The row the active-token view holds for a token issued on `stream`.
pub fn token_row(stream: &str, t: &TokenIssued) -> TokenRow {
    TokenRow {
        token_id: t.token_id,
        family_id: t.family_id,
        stream: stream.to_owned(),
        client_id: t.client_id.as_str().to_owned(),
        username: t.username.as_ref().map(|u| u.as_str().to_owned()),
        scopes: t.scopes.to_string(),
        grant_type: t.grant_type.as_str().to_owned(),
        access_digest: t.access_digest.0,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        sealed_access: t.sealed_access.clone(),
        refresh: t.refresh.as_ref().map(|r| RefreshRow {
            digest: r.digest.0,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            sealed: r.sealed.clone(),
        }),
    }
}

fn one(row: Option<TokenRow>) -> Result<Option<ActiveToken>, StoreError> {
    row.map(active_token).transpose()
}

/// The active token of a key's stream.
pub fn active_by_stream(s: &mut dyn ViewReads, stream: &str) -> Result<Option<ActiveToken>, StoreError> {
    one(s.token_by_stream(stream)?)
}

/// Which half of a pair a presented value matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Access,
    Refresh,
}

/// The active token whose access or refresh digest is `d`.
pub fn active_by_digest(
    s: &mut dyn ViewReads,
    d: &Digest,
) -> Result<Option<(ActiveToken, Half)>, StoreError> {
    if let Some(t) = one(s.token_by_access(&d.0)?)? {
        return Ok(Some((t, Half::Access)));
    }
    Ok(one(s.token_by_refresh(&d.0)?)?.map(|t| (t, Half::Refresh)))
}

pub fn active_by_family(s: &mut dyn ViewReads, family: Uuid) -> Result<Option<ActiveToken>, StoreError> {
    one(s.token_by_family(family)?)
}

pub fn active_of_client(s: &mut dyn ViewReads, client: &ClientId) -> Result<Vec<ActiveToken>, StoreError> {
    s.tokens_of_client(client.as_str())?.into_iter().map(active_token).collect()
}

/// A refresh token rotated away by the refresh grant.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub family_id: Uuid,
    pub client_id: ClientId,
    pub stream: String,
    pub rotated_at: Millis,
}

pub fn rotated(s: &mut dyn ViewReads, d: &Digest) -> Result<Option<Rotated>, StoreError> {
    let Some(r) = s.rotated(&d.0)? else {
        return Ok(None);
    };
    Ok(Some(Rotated {
        family_id: r.family_id,
        client_id: ClientId::parse(&r.client_id).map_err(|_| corrupt("bad client"))?,
        stream: r.stream,
        rotated_at: r.rotated_at,
    }))
}

/// A registered client as the view holds it.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub client_id: ClientId,
    pub client_name: String,
    pub secret_digest: Digest,
    pub grant_types: Vec<GrantType>,
    pub access_token_type: Option<String>,
    /// Redirect URIs, public client, PKCE rules.
    pub oauth: crate::domain::client::ClientOAuth,
}

impl ClientRecord {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

fn client_record(r: ClientRow) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        client_id: ClientId::parse(&r.client_id).map_err(|_| corrupt("bad client"))?,
        client_name: r.client_name,
        secret_digest: Digest(r.secret_digest),
        grant_types: r.grant_types.split(' ').filter_map(GrantType::parse).collect(),
        access_token_type: r.access_token_type,
        oauth: serde_json::from_str(&r.oauth).map_err(|_| corrupt("bad client oauth"))?,
    })
}

/// A user as the view holds it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub username: Username,
    pub password_hash: String,
}

fn user_record(r: UserRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        username: Username::parse(&r.username).map_err(|_| corrupt("bad username"))?,
        password_hash: r.password_hash,
    })
}

pub fn client(s: &mut dyn ViewReads, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
    s.client(id.as_str())?.map(client_record).transpose()
}

pub fn user(s: &mut dyn ViewReads, name: &Username) -> Result<Option<UserRecord>, StoreError> {
    s.user(name.canonical())?.map(user_record).transpose()
}

/// A client read outside any write (client authentication, DCR reads).
pub fn read_client(r: &dyn ReadStore, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
    r.client(id.as_str())?.map(client_record).transpose()
}

/// The active token whose access or refresh digest is `d`, read from the SQL view outside any
/// write: introspection's answer while the memory view loads. The SQL view moves in the same
/// transaction as the log, so it is never behind what was acknowledged.
pub fn read_active_token(
    r: &dyn ReadStore,
    d: &Digest,
) -> Result<Option<(Half, Arc<TokenInfo>)>, StoreError> {
    let Some(row) = r.token_by_digest(&d.0)? else {
        return Ok(None);
    };
    let half = if row.access_digest == d.0 { Half::Access } else { Half::Refresh };
    let client_id = row.client_id.as_str().into();
    let (.., info) = TokenInfo::of_row(row, client_id);
    Ok(Some((half, Arc::new(info))))
}

/// A user read outside any write (the password grant).
pub fn read_user(r: &dyn ReadStore, name: &Username) -> Result<Option<UserRecord>, StoreError> {
    r.user(name.canonical())?.map(user_record).transpose()
}
