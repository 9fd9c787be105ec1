//! `replay`: the active-token view as it stood at an instant or a position, folded in memory from
//! the log through the server's projection. The view holds a key's token until something
//! replaces it, so a row can be in the view yet expired: each row says whether its access and
//! refresh halves were live at the instant, exactly as introspection would have judged them
//! (live while `expires_at` is after the instant).

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;
use token_ledger::domain::events::Millis;

use crate::shadow::Shadow;
use crate::source::{Flow, Source};
use crate::time;
use crate::ReplayError;

/// Which moment of the log to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The whole log, judged now.
    Now,
    /// The events recorded at or before this time. The log is cut at its first event recorded
    /// later, in position order: the state at an instant is a prefix of the log, never a
    /// selection by timestamp.
    At(Millis),
    /// The events up to and including this position, judged at its `recorded_at`.
    Position(i64),
}

/// One row of the active-token view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub access_digest: String,
    pub token_id: String,
    pub client_id: String,
    pub username: Option<String>,
    pub scopes: String,
    pub grant_type: String,
    pub issued_at: String,
    pub expires_at: String,
    pub refresh_digest: Option<String>,
    pub refresh_expires_at: Option<String>,
    /// The access token was live at the instant.
    pub active: bool,
    /// The refresh token was usable at the instant.
    pub refresh_active: bool,
}

/// The answer of `replay`.
#[derive(Debug, Clone, Serialize)]
pub struct PointInTime {
    /// The last event folded (0: none).
    pub position: i64,
    /// The instant the rows are judged at.
    pub at: Option<String>,
    /// Live access tokens.
    pub active: u64,
    /// Live access tokens per client.
    pub by_client: BTreeMap<String, u64>,
    /// Every row of the view, live or not.
    pub tokens: Vec<TokenRow>,
}

/// Folds the log up to the moment and reads the view.
pub fn replay(source: &Source, moment: Moment) -> Result<PointInTime, ReplayError> {
    let (shadow, tail) = fold_until(source, moment)?;
    if let Moment::Position(n) = moment {
        if n > shadow.position() {
            return Err(ReplayError::NoSuchPosition(n, tail));
        }
    }
    let position = shadow.position();
    let judged_at = match moment {
        Moment::Now => Some(time::now()),
        Moment::At(t) => Some(t),
        Moment::Position(_) => shadow.last_recorded_at().map(|t| time::parse(t).unwrap_or_default()),
    };
    let conn = shadow.finish()?;
    let tokens = match judged_at {
        Some(at) => token_rows(&conn, at)?,
        None => Vec::new(),
    };
    let mut by_client = BTreeMap::new();
    for row in tokens.iter().filter(|r| r.active) {
        *by_client.entry(row.client_id.clone()).or_insert(0) += 1;
    }
    Ok(PointInTime {
        position,
        at: judged_at.map(time::show),
        active: by_client.values().sum(),
        by_client,
        tokens,
    })
}

/// Folds into memory every event the moment includes. Returns the shadow and the last position
/// seen in the log.
pub fn fold_until(source: &Source, moment: Moment) -> Result<(Shadow, i64), ReplayError> {
    let mut shadow = Shadow::in_memory()?;
    let mut seen = 0;
    source.walk(|event| {
        if seen == 0 && event.position != 1 {
            return Err(ReplayError::PartialLog(event.position));
        }
        seen = event.position;
        let included = match moment {
            Moment::Now => true,
            Moment::Position(n) => event.position <= n,
            Moment::At(t) => {
                let recorded = event.recorded_at_ms().ok_or_else(|| ReplayError::BadRecordedAt {
                    position: event.position,
                    value: event.recorded_at.clone(),
                })?;
                recorded <= t
            }
        };
        if !included {
            return Ok(Flow::Break(()));
        }
        shadow.fold(&event)?;
        Ok(Flow::Continue(()))
    })?;
    Ok((shadow, seen))
}

/// Every row of the active-token view, judged at `at`.
pub fn token_rows(conn: &Connection, at: Millis) -> Result<Vec<TokenRow>, ReplayError> {
    let mut stmt = conn.prepare(
        "SELECT token_id, client_id, username, scopes, grant_type, access_digest, issued_at,
            expires_at, refresh_digest, refresh_expires_at
         FROM active_tokens ORDER BY client_id, issued_at, token_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let expires_at: Millis = r.get(7)?;
        let refresh_expires_at: Option<Millis> = r.get(9)?;
        Ok(TokenRow {
            token_id: r.get(0)?,
            client_id: r.get(1)?,
            username: r.get(2)?,
            scopes: r.get(3)?,
            grant_type: r.get(4)?,
            access_digest: hex::encode(r.get::<_, Vec<u8>>(5)?),
            issued_at: time::show(r.get(6)?),
            expires_at: time::show(expires_at),
            refresh_digest: r.get::<_, Option<Vec<u8>>>(8)?.map(hex::encode),
            refresh_expires_at: refresh_expires_at.map(time::show),
            active: expires_at > at,
            refresh_active: refresh_expires_at.is_some_and(|e| e > at),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
