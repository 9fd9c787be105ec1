//! Queries on the views. Used by the writer inside its transaction and by the readers.

use rusqlite::{Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::StoreError;
use crate::domain::events::{Millis, RefreshPart, TokenIssued};
use crate::domain::grant::ActiveToken;
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, Username};

const TOKEN_COLUMNS: &str = "token_id, family_id, stream, client_id, username, scopes, grant_type,
    access_digest, issued_at, expires_at, sealed_access, refresh_digest, refresh_issued_at,
    refresh_expires_at, sealed_refresh";

fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.to_owned().into())
}

fn digest(bytes: Vec<u8>, column: usize) -> rusqlite::Result<Digest> {
    <[u8; 32]>::try_from(bytes).map(Digest).map_err(|_| corrupt(column, "digest is not 32 bytes"))
}

fn active_token(r: &Row<'_>) -> rusqlite::Result<ActiveToken> {
    let uuid = |i: usize| -> rusqlite::Result<Uuid> {
        Uuid::parse_str(&r.get::<_, String>(i)?).map_err(|_| corrupt(i, "bad uuid"))
    };
    let refresh = match r.get::<_, Option<Vec<u8>>>(11)? {
        Some(bytes) => Some(RefreshPart {
            digest: digest(bytes, 11)?,
            issued_at: r.get(12)?,
            expires_at: r.get(13)?,
            sealed: r.get(14)?,
        }),
        None => None,
    };
    let username = match r.get::<_, Option<String>>(4)? {
        Some(name) => Some(Username::parse(&name).map_err(|_| corrupt(4, "bad username"))?),
        None => None,
    };
    let token = TokenIssued {
        token_id: uuid(0)?,
        family_id: uuid(1)?,
        client_id: ClientId::parse(&r.get::<_, String>(3)?).map_err(|_| corrupt(3, "bad client id"))?,
        username,
        scopes: ScopeSet::parse(&r.get::<_, String>(5)?).map_err(|_| corrupt(5, "bad scopes"))?,
        grant_type: GrantType::parse(&r.get::<_, String>(6)?).ok_or_else(|| corrupt(6, "bad grant"))?,
        access_digest: digest(r.get(7)?, 7)?,
        issued_at: r.get(8)?,
        expires_at: r.get(9)?,
        sealed_access: r.get(10)?,
        refresh,
    };
    Ok(ActiveToken { stream: r.get(2)?, token })
}

fn one_token(
    conn: &Connection,
    filter: &str,
    arg: &dyn rusqlite::ToSql,
) -> Result<Option<ActiveToken>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM active_tokens WHERE {filter}");
    Ok(conn.prepare_cached(&sql)?.query_row([arg], active_token).optional()?)
}

/// The active token of a key's stream.
pub fn active_by_stream(conn: &Connection, stream: &str) -> Result<Option<ActiveToken>, StoreError> {
    one_token(conn, "stream = ?1", &stream)
}

/// Which half of a pair a presented value matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Access,
    Refresh,
}

/// The active token whose access or refresh digest is `d`.
pub fn active_by_digest(conn: &Connection, d: &Digest) -> Result<Option<(ActiveToken, Half)>, StoreError> {
    if let Some(t) = one_token(conn, "access_digest = ?1", &&d.0[..])? {
        return Ok(Some((t, Half::Access)));
    }
    Ok(one_token(conn, "refresh_digest = ?1", &&d.0[..])?.map(|t| (t, Half::Refresh)))
}

/// The access and refresh digests of an active token.
pub fn digests_of(conn: &Connection, token_id: Uuid) -> Result<Option<(Digest, Option<Digest>)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT access_digest, refresh_digest FROM active_tokens WHERE token_id = ?1")?;
    let row = stmt
        .query_row([token_id.to_string()], |r| {
            let access = digest(r.get(0)?, 0)?;
            let refresh = match r.get::<_, Option<Vec<u8>>>(1)? {
                Some(bytes) => Some(digest(bytes, 1)?),
                None => None,
            };
            Ok((access, refresh))
        })
        .optional()?;
    Ok(row)
}

pub fn active_by_family(conn: &Connection, family: Uuid) -> Result<Option<ActiveToken>, StoreError> {
    one_token(conn, "family_id = ?1", &family.to_string())
}

pub fn active_of_client(conn: &Connection, client: &ClientId) -> Result<Vec<ActiveToken>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM active_tokens WHERE client_id = ?1 ORDER BY token_id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([client.as_str()], active_token)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A refresh token rotated away by the refresh grant.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub family_id: Uuid,
    pub client_id: ClientId,
    pub stream: String,
    pub rotated_at: Millis,
}

pub fn rotated(conn: &Connection, d: &Digest) -> Result<Option<Rotated>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT family_id, client_id, stream, rotated_at FROM rotated_refresh_tokens WHERE refresh_digest = ?1",
    )?;
    let row = stmt
        .query_row([&d.0[..]], |r| {
            Ok(Rotated {
                family_id: Uuid::parse_str(&r.get::<_, String>(0)?).map_err(|_| corrupt(0, "bad uuid"))?,
                client_id: ClientId::parse(&r.get::<_, String>(1)?).map_err(|_| corrupt(1, "bad client"))?,
                stream: r.get(2)?,
                rotated_at: r.get(3)?,
            })
        })
        .optional()?;
    Ok(row)
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

pub fn client(conn: &Connection, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT client_id, client_name, secret_digest, grant_types, access_token_type, oauth
         FROM clients WHERE client_id = ?1",
    )?;
    let row = stmt
        .query_row([id.as_str()], |r| {
            Ok(ClientRecord {
                client_id: ClientId::parse(&r.get::<_, String>(0)?).map_err(|_| corrupt(0, "bad client"))?,
                client_name: r.get(1)?,
                secret_digest: digest(r.get(2)?, 2)?,
                grant_types: r.get::<_, String>(3)?.split(' ').filter_map(GrantType::parse).collect(),
                access_token_type: r.get(4)?,
                oauth: serde_json::from_str(&r.get::<_, String>(5)?).map_err(|_| corrupt(5, "bad oauth"))?,
            })
        })
        .optional()?;
    Ok(row)
}

/// A user as the view holds it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub username: Username,
    pub password_hash: String,
}

pub fn user(conn: &Connection, name: &Username) -> Result<Option<UserRecord>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT username, password_hash FROM users WHERE username_key = ?1")?;
    let row = stmt
        .query_row([name.canonical()], |r| {
            Ok(UserRecord {
                username: Username::parse(&r.get::<_, String>(0)?).map_err(|_| corrupt(0, "bad username"))?,
                password_hash: r.get(1)?,
            })
        })
        .optional()?;
    Ok(row)
}
