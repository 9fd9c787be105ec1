//! The human-readable form of every report (`--json` prints the same reports as JSON).

use std::fmt::{self, Display, Formatter};

use crate::audit;
use crate::export::ExportSummary;
use crate::rebuild;
use crate::replay::PointInTime;
use crate::stats::Stats;
use crate::verify::Verdict;
use crate::views_diff::{Difference, Kind};

/// Digests are 64 hex digits; 16 are plenty to tell tokens apart on a screen.
fn short(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

impl Display for Verdict {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.problem {
            let place = match (p.position, p.line) {
                (Some(position), _) => format!("position {position}"),
                (None, Some(line)) => format!("line {line}"),
                (None, None) => "the log".into(),
            };
            return writeln!(f, "BROKEN at {place} ({:?} check): {}", p.check, p.detail);
        }
        let Some(head) = self.head_position else {
            return writeln!(f, "intact: the log is empty");
        };
        writeln!(
            f,
            "intact: {} events, positions {} to {head}; head hash {}",
            self.events,
            self.first_position.unwrap_or(1),
            self.head_hash.as_deref().unwrap_or("-")
        )?;
        if self.partial {
            writeln!(
                f,
                "partial log: the chain is checked from its first event's prev_hash; the \
                 consistency checks need the whole log and were skipped"
            )?;
        }
        Ok(())
    }
}

impl Display for ExportSummary {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match (self.first_position, self.last_position) {
            (Some(first), Some(last)) => {
                writeln!(f, "exported {} events, positions {first} to {last}", self.events)
            }
            _ => writeln!(f, "exported 0 events"),
        }
    }
}

impl Display for PointInTime {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let at = self.at.as_deref().unwrap_or("the start");
        writeln!(
            f,
            "after position {} (judged at {at}): {} active access tokens",
            self.position, self.active
        )?;
        for (client, n) in &self.by_client {
            writeln!(f, "  client {client}: {n} active")?;
        }
        for t in &self.tokens {
            let state = if t.active { "active " } else { "expired" };
            let refresh = match (&t.refresh_digest, &t.refresh_expires_at) {
                (Some(d), Some(until)) => {
                    let usable = if t.refresh_active { "usable" } else { "expired" };
                    format!("refresh {} {usable} until {until}", short(d))
                }
                _ => "no refresh token".into(),
            };
            writeln!(
                f,
                "{state} {}  client {}  user {}  scope \"{}\"  {}  until {}  {refresh}",
                short(&t.access_digest),
                t.client_id,
                or_dash(&t.username),
                t.scopes,
                t.grant_type,
                t.expires_at
            )?;
        }
        Ok(())
    }
}

impl Display for audit::Report {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "audit of {}, as of {}", self.subject, self.as_of)?;
        if self.entries.is_empty() {
            writeln!(f, "no event in the log touches it")?;
        }
        for e in &self.entries {
            writeln!(
                f,
                "{}  #{}  {}  token {}  grant {}  client {}  user {}  request {}  peer {}",
                e.time,
                e.position,
                e.event,
                e.token.as_deref().map_or("-", short),
                or_dash(&e.grant_type),
                or_dash(&e.client),
                or_dash(&e.user),
                or_dash(&e.request_id),
                or_dash(&e.peer),
            )?;
        }
        for fate in &self.fates {
            writeln!(f, "{} token {}: {}", fate.half, short(&fate.digest), fate.fate)?;
        }
        Ok(())
    }
}

impl Display for Difference {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            Kind::Missing => "missing from the live view".to_owned(),
            Kind::Unexpected => "in the live view, but not in the log's fold".to_owned(),
            Kind::Differs => {
                let columns: Vec<String> = self
                    .columns
                    .iter()
                    .map(|c| format!("{} live {} rebuilt {}", c.column, c.live, c.rebuilt))
                    .collect();
                format!("differs: {}", columns.join("; "))
            }
        };
        write!(f, "{} {}: {what}", self.view, self.key)
    }
}

impl Display for rebuild::Report {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let from = if self.started_from > 0 {
            format!("from the boundary snapshot at position {}", self.started_from)
        } else {
            "from its start".to_owned()
        };
        writeln!(
            f,
            "{}: folded the log {from} to position {}; {} differences",
            self.database.display(),
            self.position,
            self.differences.len()
        )?;
        for d in &self.differences {
            writeln!(f, "  {d}")?;
        }
        if !self.drift {
            writeln!(f, "no drift: the live views are exactly the log's fold")
        } else if self.check_only {
            writeln!(f, "drift: run `ledger-replay rebuild` to replace the views")
        } else {
            writeln!(
                f,
                "the live views were replaced in one transaction ({} later events folded in)",
                self.caught_up
            )
        }
    }
}

impl Display for Stats {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} events", self.events)?;
        for (event_type, n) in &self.by_type {
            writeln!(f, "  {event_type}: {n}")?;
        }
        writeln!(f, "by day:")?;
        for (day, counts) in &self.by_day {
            let parts: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
            writeln!(f, "  {day}: {}", parts.join(", "))?;
        }
        writeln!(f, "{} active access tokens", self.active_tokens)?;
        for (client, n) in &self.active_by_client {
            writeln!(f, "  client {client}: {n}")?;
        }
        if let Some(checkpoint) = self.checkpoint {
            writeln!(f, "views checkpoint: position {checkpoint}")?;
        }
        write!(f, "size: {} bytes", self.size.file_bytes)?;
        if let Some(wal) = self.size.wal_bytes {
            write!(f, " + {wal} bytes of write-ahead log")?;
        }
        if let Some(free) = self.size.free_bytes {
            write!(f, " ({free} bytes free for reuse)")?;
        }
        writeln!(f)?;
        if let Some(a) = &self.archive {
            writeln!(
                f,
                "archived: {} events in {} segments, {} bytes; {} events verified and dropped",
                a.archived_events, a.segments, a.segment_bytes, a.dropped_events
            )?;
        }
        Ok(())
    }
}
