//! The critical section's hold time on PostgreSQL, read from the nodes' own logs: each node logs
//! its cumulative `log_head` lock figures (`src/store/postgres/stats.rs`, every
//! `LEDGER_LOCK_STATS_INTERVAL_MS` while batches run). This probe reads the last report of every
//! node at both edges of the measured window and subtracts, so the figures cover the window
//! (to within one reporting interval) and every node's batches together.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::load::Probe;

/// How often the nodes report under the bench (milliseconds, passed in their environment).
pub const REPORT_EVERY_MS: &str = "250";

/// Buckets of the server's histogram: bucket k holds hold times in [2^k, 2^(k+1)) µs.
const BUCKETS: usize = 24;

/// Cumulative lock figures of one node, or their difference over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Hold {
    pub batches: u64,
    pub total_us: u64,
    pub buckets: [u64; BUCKETS],
    /// When the report was logged (seconds of the UTC day), or for a window: how many seconds
    /// lie between its two reports, summed over the nodes.
    pub at_s: f64,
    /// For a window: the lock's busy share (held time ÷ time between the reports), summed over
    /// the nodes; their batches never overlap, so 1.0 means the critical section is saturated.
    pub busy: f64,
    /// For a window: batches per second, summed over the nodes.
    pub batches_per_s: f64,
}

/// Seconds of the UTC day of a log line's leading timestamp (`2026-11-29T23:40:00.123456Z`).
fn seconds_of_day(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.splitn(3, ':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

impl Hold {
    /// The last report in a node's log text, if it has one.
    pub fn last_in(log: &str) -> Option<Self> {
        let line = log.lines().rev().find(|l| l.contains("log_head lock hold time"))?;
        let field = |name: &str| -> Option<&str> {
            let at = line.find(&format!(" {name}="))? + name.len() + 2;
            line[at..].split_whitespace().next()
        };
        let mut hold = Self {
            batches: field("batches")?.parse().ok()?,
            total_us: field("total_us")?.parse().ok()?,
            buckets: [0; BUCKETS],
            at_s: seconds_of_day(line)?,
            busy: 0.0,
            batches_per_s: 0.0,
        };
        for pair in field("buckets")?.trim_matches('"').split(',').filter(|p| !p.is_empty()) {
            let (k, n) = pair.split_once(':')?;
            *hold.buckets.get_mut(k.parse::<usize>().ok()?)? = n.parse().ok()?;
        }
        Some(hold)
    }

    fn add(mut self, other: &Self) -> Self {
        self.batches += other.batches;
        self.total_us += other.total_us;
        self.buckets.iter_mut().zip(other.buckets).for_each(|(a, b)| *a += b);
        self.at_s += other.at_s;
        self.busy += other.busy;
        self.batches_per_s += other.batches_per_s;
        self
    }

    /// The window from `earlier` to this report of the same node.
    fn minus(mut self, earlier: &Self) -> Self {
        self.batches = self.batches.saturating_sub(earlier.batches);
        self.total_us = self.total_us.saturating_sub(earlier.total_us);
        self.buckets.iter_mut().zip(earlier.buckets).for_each(|(a, b)| *a = a.saturating_sub(b));
        // A window across midnight UTC.
        let span = (self.at_s - earlier.at_s).rem_euclid(86_400.0);
        self.at_s = span;
        (self.busy, self.batches_per_s) = if span > 0.0 {
            (self.total_us as f64 / 1e6 / span, self.batches as f64 / span)
        } else {
            (0.0, 0.0)
        };
        self
    }

    pub fn mean_us(&self) -> f64 {
        self.total_us as f64 / self.batches.max(1) as f64
    }

    /// The upper bound of the bucket holding quantile `q` (µs): the server keeps powers of two.
    pub fn quantile_at_most_us(&self, q: f64) -> u64 {
        let wanted = (self.batches as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (k, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= wanted.max(1) {
                return 1 << (k + 1);
            }
        }
        1 << BUCKETS
    }
}

/// Reads every node's last report at the window's edges; the difference lands in `result`.
pub struct LockHold {
    logs: Vec<PathBuf>,
    at_start: Vec<Option<Hold>>,
    pub result: Arc<Mutex<Option<Hold>>>,
}

impl LockHold {
    pub fn new(logs: Vec<PathBuf>) -> Self {
        Self { logs, at_start: Vec::new(), result: Arc::new(Mutex::new(None)) }
    }

    fn read(&self) -> Vec<Option<Hold>> {
        self.logs.iter().map(|p| std::fs::read_to_string(p).ok().and_then(|t| Hold::last_in(&t))).collect()
    }
}

impl Probe for LockHold {
    fn start(&mut self, _pid: u32) {
        self.at_start = self.read();
    }

    fn stop(&mut self) -> Option<String> {
        let at_end = self.read();
        let mut window = Hold::default();
        for (i, end) in at_end.iter().enumerate() {
            // A node without a report at the window's start contributes nothing: its span would
            // be unknown (at 250 ms reports and 1 s of warm-up, every busy node has one).
            if let (Some(start), Some(end)) = (self.at_start.get(i).copied().flatten(), end) {
                window = window.add(&end.minus(&start));
            }
        }
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(window);
        Some(format!(
            "log_head lock: {} batches, hold mean {:.0} µs, p99 ≤ {} µs, busy {:.0} %",
            window.batches,
            window.mean_us(),
            window.quantile_at_most_us(0.99),
            window.busy * 100.0
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "2026-11-29T23:40:00.000000Z  INFO token_ledger::store::postgres::stats: \
        log_head lock hold time batches=10 mean_us=300 p99_us_at_most=1024 total_us=3000 buckets=7:4,8:5,9:1";

    #[test]
    fn the_last_report_of_a_log_is_read_with_its_buckets() {
        let log = format!("{}\nother line\n{LINE}\n", LINE.replace("batches=10", "batches=1"));
        let hold = Hold::last_in(&log).expect("a report");
        assert_eq!((hold.batches, hold.total_us), (10, 3000));
        assert_eq!(hold.buckets[7..10], [4, 5, 1]);
        assert_eq!(hold.quantile_at_most_us(0.5), 512);
        assert_eq!(hold.quantile_at_most_us(0.99), 1024);
        assert_eq!(hold.mean_us(), 300.0);
    }

    #[test]
    fn a_window_is_the_difference_of_two_reports_over_the_time_between_them() {
        let end = Hold::last_in(LINE).unwrap();
        let earlier = LINE
            .replace("23:40:00.000000", "23:39:58.000000")
            .replace("batches=10", "batches=4")
            .replace("total_us=3000", "total_us=1000")
            .replace("7:4", "7:0");
        let window = end.minus(&Hold::last_in(&earlier).unwrap());
        assert_eq!(window.batches, 6);
        assert_eq!(window.buckets[7], 4);
        assert_eq!(window.at_s, 2.0);
        assert_eq!(window.batches_per_s, 3.0);
        assert!((window.busy - 0.001).abs() < 1e-12, "2,000 µs held in 2 s: {}", window.busy);
        assert_eq!(Hold::last_in("no report here"), None);
    }
}
