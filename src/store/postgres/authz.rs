//! The SQL of the authorization code flow's views (codes, login sessions, remembered consents)
//! on PostgreSQL: their view operations and lookups.

use super::rows::{digest, uuid, Conn};
use crate::store::records::{BResult, CodeRow, ConsentRow, SessionRow, ViewOp};

/// Applies one of the code flow's view operations (`rows::project` dispatches the others).
pub fn project(c: &mut Conn, op: &ViewOp) -> BResult<()> {
    match op {
        ViewOp::PutCode(x) => {
            c.execute(
                "INSERT INTO authorization_codes
                    (code_digest, client_id, issued, status, family_id, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (code_digest) DO UPDATE SET client_id = EXCLUDED.client_id,
                    issued = EXCLUDED.issued, status = EXCLUDED.status,
                    family_id = EXCLUDED.family_id, expires_at = EXCLUDED.expires_at",
                &[
                    &&x.code_digest[..],
                    &x.client_id,
                    &x.issued,
                    &x.status,
                    &x.family_id.map(|f| f.to_string()),
                    &x.expires_at,
                ],
            )?;
        }
        ViewOp::RedeemCode { code_digest, family_id } => {
            c.execute(
                "UPDATE authorization_codes SET status = 'redeemed', family_id = $2 WHERE code_digest = $1",
                &[&&code_digest[..], &family_id.to_string()],
            )?;
        }
        ViewOp::BurnCode { code_digest } => {
            c.execute(
                "UPDATE authorization_codes SET status = 'burned' WHERE code_digest = $1",
                &[&&code_digest[..]],
            )?;
        }
        ViewOp::PutSession(s) => {
            c.execute(
                "INSERT INTO login_sessions (session_digest, username, auth_time, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (session_digest) DO UPDATE SET username = EXCLUDED.username,
                    auth_time = EXCLUDED.auth_time, expires_at = EXCLUDED.expires_at",
                &[&&s.session_digest[..], &s.username, &s.auth_time, &s.expires_at],
            )?;
        }
        ViewOp::DeleteSession { session_digest } => {
            c.execute("DELETE FROM login_sessions WHERE session_digest = $1", &[&&session_digest[..]])?;
        }
        ViewOp::PutConsent(x) => {
            c.execute(
                "INSERT INTO consents (username_key, client_id, scopes) VALUES ($1, $2, $3)
                 ON CONFLICT (username_key, client_id) DO UPDATE SET scopes = EXCLUDED.scopes",
                &[&x.username_key, &x.client_id, &x.scopes],
            )?;
        }
        ViewOp::DeleteConsent { username_key, client_id } => {
            c.execute(
                "DELETE FROM consents WHERE username_key = $1 AND client_id = $2",
                &[username_key, client_id],
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// A deleted client's codes and consents go with it.
pub fn delete_client(c: &mut Conn, client_id: &String) -> BResult<()> {
    c.execute("DELETE FROM authorization_codes WHERE client_id = $1", &[client_id])?;
    c.execute("DELETE FROM consents WHERE client_id = $1", &[client_id])?;
    Ok(())
}

pub fn code(c: &mut Conn, d: &[u8; 32]) -> BResult<Option<CodeRow>> {
    let sql = "SELECT code_digest, client_id, issued, status, family_id, expires_at
               FROM authorization_codes WHERE code_digest = $1";
    let Some(r) = c.query_opt(sql, &[&&d[..]])? else {
        return Ok(None);
    };
    Ok(Some(CodeRow {
        code_digest: digest(r.try_get(0)?)?,
        client_id: r.try_get(1)?,
        issued: r.try_get(2)?,
        status: r.try_get(3)?,
        family_id: r.try_get::<_, Option<String>>(4)?.map(uuid).transpose()?,
        expires_at: r.try_get(5)?,
    }))
}

pub fn session(c: &mut Conn, d: &[u8; 32]) -> BResult<Option<SessionRow>> {
    let sql = "SELECT session_digest, username, auth_time, expires_at
               FROM login_sessions WHERE session_digest = $1";
    let Some(r) = c.query_opt(sql, &[&&d[..]])? else {
        return Ok(None);
    };
    Ok(Some(SessionRow {
        session_digest: digest(r.try_get(0)?)?,
        username: r.try_get(1)?,
        auth_time: r.try_get(2)?,
        expires_at: r.try_get(3)?,
    }))
}

pub fn consent(c: &mut Conn, username_key: &str, client: &str) -> BResult<Option<ConsentRow>> {
    let sql =
        "SELECT username_key, client_id, scopes FROM consents WHERE username_key = $1 AND client_id = $2";
    let Some(r) = c.query_opt(sql, &[&username_key, &client])? else {
        return Ok(None);
    };
    Ok(Some(ConsentRow { username_key: r.try_get(0)?, client_id: r.try_get(1)?, scopes: r.try_get(2)? }))
}
