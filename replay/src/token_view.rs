//! The active-token view held in memory, for `replay`: the server's fold (`fold::ops`, the one
//! place that says what each event changes) applied to hash maps instead of SQL tables. Only the
//! operations on the `active_tokens` table mean anything here (`InsertToken`, `DeleteToken`);
//! the others change views `replay` does not show and are passed over, as a SQL backend would
//! leave this table alone for them. The table's uniqueness constraints (token id, stream, access
//! digest, refresh digest) are kept as the SQL table keeps them, so a log whose fold a database
//! would refuse is refused here too, at the same position.

use std::collections::{HashMap, HashSet};

use token_ledger::store::fold;
use token_ledger::store::log::StoredEvent;
use token_ledger::store::records::{TokenRow, ViewOp};
use token_ledger::store::StoreError;
use uuid::Uuid;

use crate::ReplayError;

/// The rows of `active_tokens`, by token id, with the indexes of its UNIQUE columns.
#[derive(Default)]
pub struct TokenView {
    rows: HashMap<Uuid, TokenRow>,
    streams: HashSet<String>,
    access: HashSet<[u8; 32]>,
    refresh: HashSet<[u8; 32]>,
    position: i64,
    last_recorded_at: String,
}

impl TokenView {
    /// Folds one event: decodes it (upcasting older versions) and applies the server's view
    /// operations for it.
    pub fn fold(&mut self, stored: &StoredEvent) -> Result<(), ReplayError> {
        self.fold_prepared(stored, Self::prepare(stored))
    }

    /// The first half of [`TokenView::fold`], which needs the event alone (so it can run on
    /// another thread): decodes the event and asks the server's fold for its view operations.
    pub fn prepare(stored: &StoredEvent) -> Result<Vec<ViewOp>, StoreError> {
        Ok(fold::ops(stored, &stored.decode()?))
    }

    /// The second half of [`TokenView::fold`]: applies what `prepare` made of `stored`.
    pub fn fold_prepared(
        &mut self,
        stored: &StoredEvent,
        prepared: Result<Vec<ViewOp>, StoreError>,
    ) -> Result<(), ReplayError> {
        let fold_error = |source| ReplayError::Fold { position: stored.position, source };
        for op in prepared.map_err(fold_error)? {
            self.apply(op).map_err(fold_error)?;
        }
        self.position = stored.position;
        self.last_recorded_at.clear();
        self.last_recorded_at.push_str(&stored.recorded_at);
        Ok(())
    }

    fn apply(&mut self, op: ViewOp) -> Result<(), StoreError> {
        match op {
            ViewOp::InsertToken(row) => self.insert(row),
            ViewOp::DeleteToken { token_id } => {
                self.remove(token_id);
                Ok(())
            }
            // Token cleanup: the rows `DELETE ... WHERE expires_at < ?1 AND
            // COALESCE(refresh_expires_at, 0) < ?1` removes from the SQL view.
            ViewOp::PruneExpired { expired_before, .. } => {
                let gone: Vec<Uuid> = self
                    .rows
                    .values()
                    .filter(|r| {
                        r.expires_at < expired_before
                            && r.refresh.as_ref().map_or(0, |x| x.expires_at) < expired_before
                    })
                    .map(|r| r.token_id)
                    .collect();
                gone.into_iter().for_each(|id| self.remove(id));
                Ok(())
            }
            // Clients, users, rotated refresh tokens and the code flow's views.
            _ => Ok(()),
        }
    }

    fn remove(&mut self, token_id: Uuid) {
        if let Some(row) = self.rows.remove(&token_id) {
            self.streams.remove(&row.stream);
            self.access.remove(&row.access_digest);
            if let Some(r) = &row.refresh {
                self.refresh.remove(&r.digest);
            }
        }
    }

    /// Inserts a row unless a UNIQUE column of the table already holds its value.
    fn insert(&mut self, row: TokenRow) -> Result<(), StoreError> {
        let taken = if self.rows.contains_key(&row.token_id) {
            Some("token_id")
        } else if self.streams.contains(&row.stream) {
            Some("stream")
        } else if self.access.contains(&row.access_digest) {
            Some("access_digest")
        } else if row.refresh.as_ref().is_some_and(|r| self.refresh.contains(&r.digest)) {
            Some("refresh_digest")
        } else {
            None
        };
        if let Some(column) = taken {
            let cause = format!("UNIQUE constraint failed: active_tokens.{column}");
            return Err(StoreError::Conflict(cause.into()));
        }
        self.streams.insert(row.stream.clone());
        self.access.insert(row.access_digest);
        if let Some(r) = &row.refresh {
            self.refresh.insert(r.digest);
        }
        self.rows.insert(row.token_id, row);
        Ok(())
    }

    /// The position of the last event folded (0 for none).
    pub fn position(&self) -> i64 {
        self.position
    }

    /// `recorded_at` of the last event folded.
    pub fn last_recorded_at(&self) -> Option<&str> {
        (self.position != 0).then_some(self.last_recorded_at.as_str())
    }

    /// Every row, in the order `replay` lists them: by client, issue time, then token id (the
    /// order of the SQL view's `ORDER BY client_id, issued_at, token_id`; a hyphenated UUID's text
    /// sorts as its bytes do).
    pub fn rows(&self) -> Vec<&TokenRow> {
        let mut rows: Vec<&TokenRow> = self.rows.values().collect();
        rows.sort_unstable_by(|a, b| {
            (a.client_id.as_str(), a.issued_at, a.token_id).cmp(&(
                b.client_id.as_str(),
                b.issued_at,
                b.token_id,
            ))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::shadow::Shadow;
    use crate::source::{Flow, Location, Source};

    /// Token id, stream, username, scopes, issue and expiry times, access digest.
    type Row = (String, String, Option<String>, String, i64, i64, Vec<u8>);

    /// The active-token view of a SQL shadow, in `rows()` order.
    fn sql_rows(conn: &rusqlite::Connection) -> Vec<Row> {
        let mut stmt = conn
            .prepare(
                "SELECT token_id, stream, username, scopes, issued_at, expires_at, access_digest
                 FROM active_tokens ORDER BY client_id, issued_at, token_id",
            )
            .unwrap();
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        });
        rows.unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn the_memory_view_equals_the_sql_fold_after_every_event_of_every_fixture() {
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut checked = 0;
        for entry in std::fs::read_dir(fixtures).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let source = Source::open(&Location::Log(path.clone())).unwrap();
            let mut events = Vec::new();
            source
                .scan_after(None, |e| {
                    events.push(e.clone());
                    Ok(Flow::Continue(()))
                })
                .unwrap();
            let mut view = TokenView::default();
            for n in 1..=events.len() {
                view.fold(&events[n - 1]).unwrap();
                let mut shadow = Shadow::in_memory().unwrap();
                for e in &events[..n] {
                    shadow.fold(e).unwrap();
                }
                let expected = sql_rows(&shadow.finish().unwrap());
                let memory: Vec<Row> = view
                    .rows()
                    .into_iter()
                    .map(|r| {
                        let id = r.token_id.to_string();
                        let user = r.username.clone();
                        (
                            id,
                            r.stream.clone(),
                            user,
                            r.scopes.clone(),
                            r.issued_at,
                            r.expires_at,
                            r.access_digest.to_vec(),
                        )
                    })
                    .collect();
                assert_eq!(memory, expected, "{} after position {n}", path.display());
                checked += 1;
            }
        }
        assert!(checked > 30, "every fixture event was compared ({checked})");
    }

    #[test]
    fn a_second_token_on_an_active_stream_is_refused_as_the_table_refuses_it() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/seed-renewal-off.jsonl");
        let source = Source::open(&Location::Log(path)).unwrap();
        let mut issued = None;
        source
            .scan_after(None, |e| {
                if e.event_type == "TokenIssued" {
                    issued = Some(e.clone());
                    return Ok(Flow::Break(()));
                }
                Ok(Flow::Continue(()))
            })
            .unwrap();
        let issued = issued.expect("the fixture issues a token");
        let mut view = TokenView::default();
        view.fold(&issued).unwrap();
        let again = view.fold(&issued);
        assert!(
            matches!(&again, Err(ReplayError::Fold { source: StoreError::Conflict(c), .. })
                if c.to_string() == "UNIQUE constraint failed: active_tokens.token_id"),
            "{again:?}"
        );
    }
}
