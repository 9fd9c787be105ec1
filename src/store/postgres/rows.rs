//! The SQL of the log and the views on PostgreSQL, over one connection with its prepared
//! statements (parsed once per connection, as SQLite's `prepare_cached`).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};
use uuid::Uuid;

use crate::store::records::{
    BResult, BackendError, ClientRow, RefreshRow, RequestMeta, RotatedRow, StoredEvent, Tail, TokenRow,
    UserRow, ViewOp,
};

/// A connection and its prepared statements.
pub struct Conn {
    pub client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    pub fn new(client: Client) -> Self {
        Self { client, statements: HashMap::new() }
    }

    fn prepared(&mut self, sql: &'static str) -> BResult<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub fn query(&mut self, sql: &'static str, args: &[&(dyn ToSql + Sync)]) -> BResult<Vec<Row>> {
        let s = self.prepared(sql)?;
        Ok(self.client.query(&s, args)?)
    }

    pub fn query_opt(&mut self, sql: &'static str, args: &[&(dyn ToSql + Sync)]) -> BResult<Option<Row>> {
        let s = self.prepared(sql)?;
        Ok(self.client.query_opt(&s, args)?)
    }

    pub fn execute(&mut self, sql: &'static str, args: &[&(dyn ToSql + Sync)]) -> BResult<u64> {
        let s = self.prepared(sql)?;
        Ok(self.client.execute(&s, args)?)
    }
}

fn corrupt(what: &str) -> BackendError {
    BackendError::Corrupt(what.to_owned())
}

pub(super) fn digest(bytes: Vec<u8>) -> BResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| corrupt("digest is not 32 bytes"))
}

pub(super) fn uuid(text: String) -> BResult<Uuid> {
    Uuid::parse_str(&text).map_err(|_| corrupt("bad uuid"))
}

macro_rules! token_select {
    ($filter:literal) => {
        concat!(
            "SELECT token_id, family_id, stream, client_id, username, scopes, grant_type,
                access_digest, issued_at, expires_at, sealed_access, refresh_digest,
                refresh_issued_at, refresh_expires_at, sealed_refresh FROM active_tokens ",
            $filter
        )
    };
}

fn token_row(r: &Row) -> BResult<TokenRow> {
    let refresh = match r.try_get::<_, Option<Vec<u8>>>(11)? {
        Some(bytes) => Some(RefreshRow {
            digest: digest(bytes)?,
            issued_at: r
                .try_get::<_, Option<i64>>(12)?
                .ok_or_else(|| corrupt("refresh without issue time"))?,
            expires_at: r.try_get::<_, Option<i64>>(13)?.ok_or_else(|| corrupt("refresh without expiry"))?,
            sealed: r.try_get::<_, Option<String>>(14)?.ok_or_else(|| corrupt("refresh without value"))?,
        }),
        None => None,
    };
    Ok(TokenRow {
        token_id: uuid(r.try_get(0)?)?,
        family_id: uuid(r.try_get(1)?)?,
        stream: r.try_get(2)?,
        client_id: r.try_get(3)?,
        username: r.try_get(4)?,
        scopes: r.try_get(5)?,
        grant_type: r.try_get(6)?,
        access_digest: digest(r.try_get(7)?)?,
        issued_at: r.try_get(8)?,
        expires_at: r.try_get(9)?,
        sealed_access: r.try_get(10)?,
        refresh,
    })
}

fn one_token(row: Option<Row>) -> BResult<Option<TokenRow>> {
    row.as_ref().map(token_row).transpose()
}

pub fn token_by_stream(c: &mut Conn, stream: &str) -> BResult<Option<TokenRow>> {
    one_token(c.query_opt(token_select!("WHERE stream = $1"), &[&stream])?)
}

pub fn token_by_access(c: &mut Conn, d: &[u8; 32]) -> BResult<Option<TokenRow>> {
    one_token(c.query_opt(token_select!("WHERE access_digest = $1"), &[&&d[..]])?)
}

pub fn token_by_refresh(c: &mut Conn, d: &[u8; 32]) -> BResult<Option<TokenRow>> {
    one_token(c.query_opt(token_select!("WHERE refresh_digest = $1"), &[&&d[..]])?)
}

pub fn token_by_family(c: &mut Conn, family: Uuid) -> BResult<Option<TokenRow>> {
    one_token(c.query_opt(token_select!("WHERE family_id = $1"), &[&family.to_string()])?)
}

pub fn tokens_of_client(c: &mut Conn, client: &str) -> BResult<Vec<TokenRow>> {
    c.query(token_select!("WHERE client_id = $1 ORDER BY token_id"), &[&client])?
        .iter()
        .map(token_row)
        .collect()
}

/// Every active token without its sealed values (empty): the memory view never needs them.
pub fn all_tokens(c: &mut Conn) -> BResult<Vec<TokenRow>> {
    let sql = "SELECT token_id, family_id, stream, client_id, username, scopes, grant_type,
        access_digest, issued_at, expires_at, NULL::TEXT, refresh_digest, refresh_issued_at,
        refresh_expires_at, ''::TEXT FROM active_tokens";
    c.query(sql, &[])?.iter().map(token_row).collect()
}

pub fn rotated(c: &mut Conn, d: &[u8; 32]) -> BResult<Option<RotatedRow>> {
    let sql = "SELECT family_id, client_id, stream, rotated_at FROM rotated_refresh_tokens WHERE refresh_digest = $1";
    let Some(r) = c.query_opt(sql, &[&&d[..]])? else {
        return Ok(None);
    };
    Ok(Some(RotatedRow {
        family_id: uuid(r.try_get(0)?)?,
        client_id: r.try_get(1)?,
        stream: r.try_get(2)?,
        rotated_at: r.try_get(3)?,
    }))
}

pub fn client(c: &mut Conn, id: &str) -> BResult<Option<ClientRow>> {
    let sql = "SELECT client_id, client_name, secret_digest, grant_types, access_token_type, oauth
               FROM clients WHERE client_id = $1";
    let Some(r) = c.query_opt(sql, &[&id])? else {
        return Ok(None);
    };
    Ok(Some(ClientRow {
        client_id: r.try_get(0)?,
        client_name: r.try_get(1)?,
        secret_digest: digest(r.try_get(2)?)?,
        grant_types: r.try_get(3)?,
        access_token_type: r.try_get(4)?,
        oauth: r.try_get(5)?,
    }))
}

pub fn user(c: &mut Conn, key: &str) -> BResult<Option<UserRow>> {
    let sql = "SELECT username, password_hash FROM users WHERE username_key = $1";
    let Some(r) = c.query_opt(sql, &[&key])? else {
        return Ok(None);
    };
    Ok(Some(UserRow { username: r.try_get(0)?, password_hash: r.try_get(1)? }))
}

/// Locks the log's head row until the transaction ends and returns it.
pub fn lock_head(c: &mut Conn) -> BResult<Tail> {
    let r = c
        .query_opt("SELECT position, hash FROM log_head WHERE id = 1 FOR UPDATE", &[])?
        .ok_or_else(|| corrupt("the log_head row is missing"))?;
    Ok(Tail { position: r.try_get(0)?, hash: r.try_get(1)? })
}

/// The committed head, without a lock.
pub fn head(c: &mut Conn) -> BResult<i64> {
    let r = c.query_opt("SELECT position FROM log_head WHERE id = 1", &[])?;
    Ok(r.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
}

/// Moves the head and the views' checkpoint in one statement.
pub fn move_head(c: &mut Conn, tail: &Tail) -> BResult<()> {
    c.execute(
        "WITH head AS (UPDATE log_head SET position = $1, hash = $2 WHERE id = 1 RETURNING 1)
         UPDATE checkpoints SET position = $1 WHERE projection = 'views'",
        &[&tail.position, &tail.hash],
    )?;
    Ok(())
}

pub fn checkpoint(c: &mut Conn) -> BResult<i64> {
    let r = c.query_opt("SELECT position FROM checkpoints WHERE projection = 'views'", &[])?;
    Ok(r.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
}

/// A stream's highest version, in the live log or carried over the archive boundary.
pub fn stream_version(c: &mut Conn, stream: &str) -> BResult<i64> {
    let r = c.query_opt(
        "SELECT GREATEST((SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = $1),
                         (SELECT COALESCE(MAX(version), 0) FROM archived_streams WHERE stream = $1))::BIGINT",
        &[&stream],
    )?;
    Ok(r.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
}

pub fn insert_event(c: &mut Conn, e: &StoredEvent) -> BResult<()> {
    let m = &e.meta;
    let schema_version = i32::try_from(e.schema_version).map_err(|_| corrupt("schema version too large"))?;
    c.execute(
        "INSERT INTO events (position, event_id, stream, version, event_type, schema_version,
            payload, recorded_at, request_id, actor_client, actor_user, grant_type, peer,
            prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        &[
            &e.position,
            &e.event_id,
            &e.stream,
            &e.version,
            &e.event_type,
            &schema_version,
            &e.payload,
            &e.recorded_at,
            &m.request_id,
            &m.client_id,
            &m.username,
            &m.grant_type,
            &m.peer,
            &e.prev_hash,
            &e.hash,
        ],
    )?;
    Ok(())
}

fn stored_event(r: &Row) -> BResult<StoredEvent> {
    let schema_version: i32 = r.try_get(5)?;
    Ok(StoredEvent {
        position: r.try_get(0)?,
        event_id: r.try_get(1)?,
        stream: r.try_get(2)?,
        version: r.try_get(3)?,
        event_type: r.try_get(4)?,
        schema_version: u32::try_from(schema_version).map_err(|_| corrupt("negative schema version"))?,
        payload: r.try_get(6)?,
        recorded_at: r.try_get(7)?,
        meta: RequestMeta {
            request_id: r.try_get(8)?,
            client_id: r.try_get(9)?,
            username: r.try_get(10)?,
            grant_type: r.try_get(11)?,
            peer: r.try_get(12)?,
        },
        prev_hash: r.try_get(13)?,
        hash: r.try_get(14)?,
    })
}

pub fn read_after(c: &mut Conn, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
    let rows = c.query(
        "SELECT position, event_id, stream, version, event_type, schema_version, payload,
            recorded_at, request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash
         FROM events WHERE position > $1 ORDER BY position LIMIT $2",
        &[&after, &(limit as i64)],
    )?;
    rows.iter().map(stored_event).collect()
}

pub fn anchor(c: &mut Conn) -> BResult<(i64, Vec<u8>)> {
    let r = c
        .query_opt("SELECT position, hash FROM chain_anchor WHERE id = 1", &[])?
        .ok_or_else(|| corrupt("the chain_anchor row is missing"))?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}

pub fn set_anchor(c: &mut Conn, position: i64, hash: &[u8]) -> BResult<()> {
    c.execute("UPDATE chain_anchor SET position = $1, hash = $2 WHERE id = 1", &[&position, &hash])?;
    Ok(())
}

/// The hash at `position`, from the log or from the archiving step that ended there.
pub fn hash_at(c: &mut Conn, position: i64) -> BResult<Option<Vec<u8>>> {
    let sql = "SELECT hash FROM events WHERE position = $1
               UNION ALL SELECT last_hash FROM archive_steps WHERE last_position = $1 LIMIT 1";
    Ok(c.query_opt(sql, &[&position])?.map(|r| r.try_get(0)).transpose()?)
}

/// Applies one view operation. Holds no rules: every historical log replays.
pub fn project(c: &mut Conn, op: &ViewOp) -> BResult<()> {
    match op {
        ViewOp::PutClient(x) => {
            c.execute(
                "INSERT INTO clients (client_id, client_name, secret_digest, grant_types, access_token_type, oauth)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (client_id) DO UPDATE SET client_name = EXCLUDED.client_name,
                    secret_digest = EXCLUDED.secret_digest, grant_types = EXCLUDED.grant_types,
                    access_token_type = EXCLUDED.access_token_type, oauth = EXCLUDED.oauth",
                &[
                    &x.client_id,
                    &x.client_name,
                    &&x.secret_digest[..],
                    &x.grant_types,
                    &x.access_token_type,
                    &x.oauth,
                ],
            )?;
        }
        ViewOp::DeleteClient { client_id } => {
            c.execute("DELETE FROM clients WHERE client_id = $1", &[client_id])?;
            c.execute("DELETE FROM rotated_refresh_tokens WHERE client_id = $1", &[client_id])?;
            super::authz::delete_client(c, client_id)?;
        }
        ViewOp::PutUser { key, user } => {
            c.execute(
                "INSERT INTO users (username_key, username, password_hash) VALUES ($1, $2, $3)
                 ON CONFLICT (username_key) DO UPDATE SET username = EXCLUDED.username,
                    password_hash = EXCLUDED.password_hash",
                &[key, &user.username, &user.password_hash],
            )?;
        }
        ViewOp::SetPassword { key, password_hash } => {
            c.execute("UPDATE users SET password_hash = $2 WHERE username_key = $1", &[key, password_hash])?;
        }
        ViewOp::InsertToken(t) => insert_token(c, t)?,
        ViewOp::RotateRefresh { token_id, rotated_at } => {
            c.execute(
                "INSERT INTO rotated_refresh_tokens (refresh_digest, family_id, client_id, stream, rotated_at)
                 SELECT refresh_digest, family_id, client_id, stream, $2
                 FROM active_tokens WHERE token_id = $1 AND refresh_digest IS NOT NULL
                 ON CONFLICT (refresh_digest) DO UPDATE SET family_id = EXCLUDED.family_id,
                    client_id = EXCLUDED.client_id, stream = EXCLUDED.stream, rotated_at = EXCLUDED.rotated_at",
                &[&token_id.to_string(), rotated_at],
            )?;
        }
        ViewOp::DeleteToken { token_id } => {
            c.execute("DELETE FROM active_tokens WHERE token_id = $1", &[&token_id.to_string()])?;
        }
        ViewOp::PruneExpired { expired_before, rotated_before } => {
            // A token stays while either half can still be used (the refresh grant needs it).
            c.execute(
                "DELETE FROM active_tokens WHERE expires_at < $1 AND COALESCE(refresh_expires_at, 0) < $1",
                &[expired_before],
            )?;
            c.execute("DELETE FROM rotated_refresh_tokens WHERE rotated_at < $1", &[rotated_before])?;
            c.execute("DELETE FROM authorization_codes WHERE expires_at < $1", &[expired_before])?;
            c.execute("DELETE FROM login_sessions WHERE expires_at < $1", &[expired_before])?;
        }
        code_flow => super::authz::project(c, code_flow)?,
    }
    Ok(())
}

fn insert_token(c: &mut Conn, t: &TokenRow) -> BResult<()> {
    let r = t.refresh.as_ref();
    c.execute(
        "INSERT INTO active_tokens (token_id, family_id, stream, client_id, username, scopes,
            grant_type, access_digest, issued_at, expires_at, sealed_access, refresh_digest,
            refresh_issued_at, refresh_expires_at, sealed_refresh)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        &[
            &t.token_id.to_string(),
            &t.family_id.to_string(),
            &t.stream,
            &t.client_id,
            &t.username,
            &t.scopes,
            &t.grant_type,
            &&t.access_digest[..],
            &t.issued_at,
            &t.expires_at,
            &t.sealed_access,
            &r.map(|r| r.digest.to_vec()),
            &r.map(|r| r.issued_at),
            &r.map(|r| r.expires_at),
            &r.map(|r| r.sealed.clone()),
        ],
    )?;
    if let Some(r) = r {
        // A refresh token carried over to the new token is live again, not rotated.
        c.execute("DELETE FROM rotated_refresh_tokens WHERE refresh_digest = $1", &[&&r.digest[..]])?;
    }
    Ok(())
}

/// Empties the views and their checkpoint (the conformance suite's damaged database).
#[cfg(test)]
pub(crate) fn forget_views(client: &mut Client) -> BResult<()> {
    client.batch_execute(
        "DELETE FROM active_tokens; DELETE FROM rotated_refresh_tokens; DELETE FROM clients;
         DELETE FROM users; DELETE FROM authorization_codes; DELETE FROM login_sessions;
         DELETE FROM consents; UPDATE checkpoints SET position = 0;",
    )?;
    Ok(())
}

/// Tries to rewrite and to delete the log; whether each was refused (the conformance suite).
#[cfg(test)]
pub(crate) fn tamper_for_tests(client: &mut Client) -> [bool; 2] {
    [
        client.batch_execute("UPDATE events SET payload = '{}'").is_err(),
        client.batch_execute("DELETE FROM events").is_err(),
    ]
}
