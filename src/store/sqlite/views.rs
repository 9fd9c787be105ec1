//! Queries on the views. Used by the writer inside its transaction and by the readers.

use rusqlite::{Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::store::records::{BResult, ClientRow, RefreshRow, RotatedRow, TokenRow, UserRow};

const TOKEN_COLUMNS: &str = "token_id, family_id, stream, client_id, username, scopes, grant_type,
    access_digest, issued_at, expires_at, sealed_access, refresh_digest, refresh_issued_at,
    refresh_expires_at, sealed_refresh";

fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.to_owned().into())
}

pub(super) fn digest(bytes: Vec<u8>, column: usize) -> rusqlite::Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| corrupt(column, "digest is not 32 bytes"))
}

fn uuid(r: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&r.get::<_, String>(i)?).map_err(|_| corrupt(i, "bad uuid"))
}

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    let refresh = match r.get::<_, Option<Vec<u8>>>(11)? {
        Some(bytes) => Some(RefreshRow {
            digest: digest(bytes, 11)?,
            issued_at: r.get(12)?,
            expires_at: r.get(13)?,
            sealed: r.get(14)?,
        }),
        None => None,
    };
    Ok(TokenRow {
        token_id: uuid(r, 0)?,
        family_id: uuid(r, 1)?,
        stream: r.get(2)?,
        client_id: r.get(3)?,
        username: r.get(4)?,
        scopes: r.get(5)?,
        grant_type: r.get(6)?,
        access_digest: digest(r.get(7)?, 7)?,
        issued_at: r.get(8)?,
        expires_at: r.get(9)?,
        sealed_access: r.get(10)?,
        refresh,
    })
}

fn one_token(conn: &Connection, filter: &str, arg: &dyn rusqlite::ToSql) -> BResult<Option<TokenRow>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM active_tokens WHERE {filter}");
    Ok(conn.prepare_cached(&sql)?.query_row([arg], token_row).optional()?)
}

/// The active token of a key's stream.
pub fn active_by_stream(conn: &Connection, stream: &str) -> BResult<Option<TokenRow>> {
    one_token(conn, "stream = ?1", &stream)
}

pub fn active_by_access(conn: &Connection, d: &[u8; 32]) -> BResult<Option<TokenRow>> {
    one_token(conn, "access_digest = ?1", &&d[..])
}

pub fn active_by_refresh(conn: &Connection, d: &[u8; 32]) -> BResult<Option<TokenRow>> {
    one_token(conn, "refresh_digest = ?1", &&d[..])
}

pub fn active_by_family(conn: &Connection, family: Uuid) -> BResult<Option<TokenRow>> {
    one_token(conn, "family_id = ?1", &family.to_string())
}

pub fn active_of_client(conn: &Connection, client: &str) -> BResult<Vec<TokenRow>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM active_tokens WHERE client_id = ?1 ORDER BY token_id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([client], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every active token without its sealed values (empty), which the memory view never needs:
/// loading a million tokens at start-up should not copy a million sealed strings.
pub fn all_active(conn: &Connection) -> BResult<Vec<TokenRow>> {
    let sql = "SELECT token_id, family_id, stream, client_id, username, scopes, grant_type,
        access_digest, issued_at, expires_at, NULL, refresh_digest, refresh_issued_at,
        refresh_expires_at, '' FROM active_tokens";
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn rotated(conn: &Connection, d: &[u8; 32]) -> BResult<Option<RotatedRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT family_id, client_id, stream, rotated_at FROM rotated_refresh_tokens WHERE refresh_digest = ?1",
    )?;
    let row = stmt
        .query_row([&d[..]], |r| {
            Ok(RotatedRow {
                family_id: uuid(r, 0)?,
                client_id: r.get(1)?,
                stream: r.get(2)?,
                rotated_at: r.get(3)?,
            })
        })
        .optional()?;
    Ok(row)
}

pub fn client(conn: &Connection, id: &str) -> BResult<Option<ClientRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT client_id, client_name, secret_digest, grant_types, access_token_type, oauth
         FROM clients WHERE client_id = ?1",
    )?;
    let row = stmt
        .query_row([id], |r| {
            Ok(ClientRow {
                client_id: r.get(0)?,
                client_name: r.get(1)?,
                secret_digest: digest(r.get(2)?, 2)?,
                grant_types: r.get(3)?,
                access_token_type: r.get(4)?,
                oauth: r.get(5)?,
            })
        })
        .optional()?;
    Ok(row)
}

pub fn user(conn: &Connection, key: &str) -> BResult<Option<UserRow>> {
    let mut stmt =
        conn.prepare_cached("SELECT username, password_hash FROM users WHERE username_key = ?1")?;
    let row = stmt
        .query_row([key], |r| Ok(UserRow { username: r.get(0)?, password_hash: r.get(1)? }))
        .optional()?;
    Ok(row)
}
