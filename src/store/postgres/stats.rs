//! How long appenders hold the `log_head` row lock: from the `FOR UPDATE` to the end of COMMIT,
//! per group-commit batch. Logged every ten seconds while batches run, for the benchmarks
//! (`LEDGER_LOCK_STATS_INTERVAL_MS` shortens the interval: `ledger-bench` reads the cumulative
//! counts at both edges of its measured window and takes the difference).
//!
//! Also the live log's counts and sizes that `ledger-replay stats` shows ([`live_stats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::store::records::BResult;

/// Buckets of 2^k microseconds, k = 0..=23 (up to ~8 s).
const BUCKETS: usize = 24;

static COUNTS: [AtomicU64; BUCKETS] = [const { AtomicU64::new(0) }; BUCKETS];
static TOTAL_MICROS: AtomicU64 = AtomicU64::new(0);
static LAST_REPORT: Mutex<Option<Instant>> = Mutex::new(None);

/// Ten seconds, or `LEDGER_LOCK_STATS_INTERVAL_MS` (100 ms to 60 s) for a benchmark's window.
fn interval() -> Duration {
    static INTERVAL: OnceLock<Duration> = OnceLock::new();
    *INTERVAL.get_or_init(|| {
        std::env::var("LEDGER_LOCK_STATS_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| (100..=60_000).contains(ms))
            .map_or(Duration::from_secs(10), Duration::from_millis)
    })
}

/// The cumulative count of each non-empty bucket, `k:count` comma-separated (bucket k holds
/// hold times in [2^k, 2^(k+1)) µs), so a reader can subtract two reports.
fn buckets() -> String {
    let mut out = String::new();
    for (k, c) in COUNTS.iter().enumerate() {
        let n = c.load(Ordering::Relaxed);
        if n > 0 {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&format!("{k}:{n}"));
        }
    }
    out
}

/// Records one batch's hold time.
pub fn record(held: Duration) {
    let micros = held.as_micros().min(u64::MAX as u128) as u64;
    let bucket = (64 - micros.max(1).leading_zeros() as usize - 1).min(BUCKETS - 1);
    COUNTS[bucket].fetch_add(1, Ordering::Relaxed);
    TOTAL_MICROS.fetch_add(micros, Ordering::Relaxed);
    let mut last = LAST_REPORT.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    match *last {
        Some(at) if now.duration_since(at) < interval() => {}
        Some(_) => {
            *last = Some(now);
            drop(last);
            let (batches, mean, p99) = summary();
            let total_us = TOTAL_MICROS.load(Ordering::Relaxed);
            let buckets = buckets();
            tracing::info!(
                batches,
                mean_us = mean,
                p99_us_at_most = p99,
                total_us,
                buckets = %buckets,
                "log_head lock hold time"
            );
        }
        None => *last = Some(now),
    }
}

/// Batches so far, the mean hold time and the p99's upper bucket bound, in microseconds.
pub fn summary() -> (u64, u64, u64) {
    let counts: Vec<u64> = COUNTS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let batches: u64 = counts.iter().sum();
    if batches == 0 {
        return (0, 0, 0);
    }
    let mean = TOTAL_MICROS.load(Ordering::Relaxed) / batches;
    let wanted = batches - batches / 100;
    let mut seen = 0;
    for (k, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= wanted {
            return (batches, mean, 1u64 << (k + 1));
        }
    }
    (batches, mean, 1u64 << BUCKETS)
}

/// What `ledger-replay stats` shows of a PostgreSQL database (issue 9): the live log's counts
/// and sizes only, so that archived events (counted from the archiving steps and manifests by
/// the caller) are never also counted as live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// (UTC day from `recorded_at`, event type, events) of the live `events` table.
    pub by_day: Vec<(String, String, i64)>,
    /// Access tokens of the live view still unexpired at `now`, per client.
    pub active_by_client: Vec<(String, i64)>,
    /// The views' checkpoint.
    pub checkpoint: i64,
    /// The `events` table with its indexes and TOAST (`pg_total_relation_size`).
    pub events_bytes: i64,
    /// The whole database (`pg_database_size`).
    pub database_bytes: i64,
}

/// Reads [`LiveStats`] in one read-only, repeatable-read transaction (one snapshot for every
/// number), on a connection of its own.
pub fn live_stats(options: &super::PgOptions, now: i64) -> BResult<LiveStats> {
    let mut client = options.connect()?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let by_day = tx
        .query("SELECT left(recorded_at, 10), event_type, COUNT(*) FROM events GROUP BY 1, 2", &[])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<BResult<_>>()?;
    let active_by_client = tx
        .query(
            "SELECT client_id, COUNT(*) FROM active_tokens WHERE expires_at > $1 GROUP BY client_id",
            &[&now],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<BResult<_>>()?;
    let checkpoint = tx
        .query_opt("SELECT position FROM checkpoints WHERE projection = 'views'", &[])?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
    let sizes =
        tx.query_one("SELECT pg_total_relation_size('events'), pg_database_size(current_database())", &[])?;
    let stats = LiveStats {
        by_day,
        active_by_client,
        checkpoint,
        events_bytes: sizes.try_get(0)?,
        database_bytes: sizes.try_get(1)?,
    };
    tx.commit()?;
    Ok(stats)
}
