//! Times on the command line and in reports: RFC 3339, UTC, milliseconds, as `recorded_at` is.

use chrono::DateTime;
use token_ledger::domain::events::Millis;

use crate::ReplayError;

/// Parses `--at`, `--from` and `--to`: RFC 3339 with any offset.
pub fn parse(raw: &str) -> Result<Millis, ReplayError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| ReplayError::BadTime(raw.to_owned()))
}

/// The wall clock, for "now" in fates and in the default `replay`.
pub fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A time as the log stores it (`2026-01-31T12:00:00.000Z`).
pub fn show(ms: Millis) -> String {
    token_ledger::store::log::format_time(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_an_offset_are_read_as_the_same_instant_in_utc() {
        let utc = parse("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(parse("2026-01-31T13:00:00+01:00").unwrap(), utc);
        assert_eq!(show(utc), "2026-01-31T12:00:00.000Z");
        assert!(matches!(parse("yesterday"), Err(ReplayError::BadTime(_))));
    }
}
