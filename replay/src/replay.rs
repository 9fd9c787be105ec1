//! `replay`: the active-token view as it stood at an instant or a position, folded in memory from
//! the log through the server's projection. The view holds a key's token until something
//! replaces it, so a row can be in the view yet expired: each row says whether its access and
//! refresh halves were live at the instant, exactly as introspection would have judged them
//! (live while `expires_at` is after the instant).

use std::collections::BTreeMap;

use serde::Serialize;
use token_ledger::domain::events::Millis;
use token_ledger::store::records::TokenRow as ViewRow;

use crate::source::{Flow, Source};
use crate::time;
use crate::token_view::TokenView;
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
    let (view, tail) = fold_until(source, moment)?;
    if let Moment::Position(n) = moment {
        if n > view.position() {
            return Err(ReplayError::NoSuchPosition(n, tail));
        }
    }
    let judged_at = match moment {
        Moment::Now => Some(time::now()),
        Moment::At(t) => Some(t),
        Moment::Position(_) => view.last_recorded_at().map(|t| time::parse(t).unwrap_or_default()),
    };
    let tokens = match judged_at {
        Some(at) => token_rows(&view, at),
        None => Vec::new(),
    };
    let mut by_client = BTreeMap::new();
    for row in tokens.iter().filter(|r| r.active) {
        *by_client.entry(row.client_id.clone()).or_insert(0) += 1;
    }
    Ok(PointInTime {
        position: view.position(),
        at: judged_at.map(time::show),
        active: by_client.values().sum(),
        by_client,
        tokens,
    })
}

/// Folds into memory every event the moment includes. Returns the view and the last position
/// seen in the log.
pub fn fold_until(source: &Source, moment: Moment) -> Result<(TokenView, i64), ReplayError> {
    let mut view = TokenView::default();
    let mut seen = 0;
    // Decoding and the server's fold run on the reading thread; the view is applied here.
    source.scan_pipelined(None, TokenView::prepare, |event, prepared| {
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
        view.fold_prepared(event, prepared)?;
        Ok(Flow::Continue(()))
    })?;
    Ok((view, seen))
}

/// Every row of the active-token view, judged at `at`.
pub fn token_rows(view: &TokenView, at: Millis) -> Vec<TokenRow> {
    view.rows().into_iter().map(|r| judged(r, at)).collect()
}

/// One row as `replay` shows it, with whether each half was live at `at`.
fn judged(r: &ViewRow, at: Millis) -> TokenRow {
    let refresh = r.refresh.as_ref();
    TokenRow {
        token_id: r.token_id.to_string(),
        client_id: r.client_id.clone(),
        username: r.username.clone(),
        scopes: r.scopes.clone(),
        grant_type: r.grant_type.clone(),
        access_digest: hex::encode(r.access_digest),
        issued_at: time::show(r.issued_at),
        expires_at: time::show(r.expires_at),
        refresh_digest: refresh.map(|x| hex::encode(x.digest)),
        refresh_expires_at: refresh.map(|x| time::show(x.expires_at)),
        active: r.expires_at > at,
        refresh_active: refresh.is_some_and(|x| x.expires_at > at),
    }
}
