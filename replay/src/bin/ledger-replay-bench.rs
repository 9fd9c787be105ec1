//! `ledger-replay-bench`: how fast the audit CLI folds a large log, and how much memory it needs.
//! Run it on a log made by `ledger-gen`, in a release build:
//!
//! ```sh
//! cargo run --release -p ledger-replay --bin ledger-gen -- --events 1000000 --db /tmp/big/ledger.db
//! cargo run --release -p ledger-replay --bin ledger-replay-bench -- --db /tmp/big/ledger.db
//! ```
//!
//! Phases, each timed on its own with the peak resident memory reset before it (Linux
//! `/proc/self/clear_refs`, then `VmHWM` from `/proc/self/status`):
//! 1. `rebuild` after the live views were deleted: fold into a scratch file, compare, swap.
//! 2. `rebuild --check` on the repaired views: fold and compare, no drift.
//! 3. `replay`: the fold into an in-memory database.
//! 4. `verify`: the hash chain and consistency walk.
//!
//! The views are deleted before phase 1 in a transaction of their own, so the database ends
//! as it started: views equal to the log's fold.
//!
//! `--audit` runs only the read-only phases of the audit CLI (issue 11), on SQLite or on a
//! PostgreSQL connection string, with `--archive DIR` reading the archived prefix too:
//! `verify`, `replay` (the whole log, judged now) and `replay --at` the last event's time (the
//! whole log again, with each event's `recorded_at` parsed), each `--rounds` times, best kept.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ledger_replay::progress::Progress;
use ledger_replay::rebuild::{rebuild, Options};
use ledger_replay::replay::{fold_until, replay, Moment};
use ledger_replay::source::{Flow, Location, Source};
use ledger_replay::verify::verify;
use ledger_replay::ReplayError;
use serde::Serialize;

#[derive(Parser)]
#[command(name = "ledger-replay-bench", about = "Rebuild and replay throughput with peak memory")]
struct Args {
    /// A database written by ledger-gen (no server may be running on it).
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Only the read-only audit phases (verify, replay, replay --at); `--db` may then be a
    /// PostgreSQL connection string.
    #[arg(long)]
    audit: bool,
    /// The archive folder whose segments come before the live log (with --audit).
    #[arg(long, value_name = "DIR", requires = "audit")]
    archive: Option<PathBuf>,
    /// Runs of each audit phase; the fastest is reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

/// One timed phase.
#[derive(Debug, Serialize)]
struct Phase {
    name: &'static str,
    events: i64,
    seconds: f64,
    events_per_second: f64,
    /// Peak resident memory during the phase, in MiB (VmHWM).
    peak_mib: Option<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let ran = if args.audit { run_audit(&args) } else { run(&args.db) };
    match ran {
        Ok(phases) => {
            if args.json {
                let text = serde_json::to_string_pretty(&phases).expect("phases serialise");
                println!("{text}");
            } else {
                for p in &phases {
                    let peak = p.peak_mib.map_or("unknown".to_owned(), |m| format!("{m:.1} MiB"));
                    println!(
                        "{:<16} {} events in {:.2} s: {:.0} events/s, peak memory {peak}",
                        p.name, p.events, p.seconds, p.events_per_second
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ledger-replay-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(db: &Path) -> Result<Vec<Phase>, ReplayError> {
    delete_views(db)?;
    let mut phases = Vec::new();
    phases.push(timed("rebuild", || {
        let report = rebuild(db, Options::default(), &mut Progress::hidden())?;
        assert!(report.swapped, "the views were deleted, so the rebuild swaps");
        Ok(report.position)
    })?);
    phases.push(timed("rebuild --check", || {
        let check = Options { check_only: true, ..Options::default() };
        let report = rebuild(db, check, &mut Progress::hidden())?;
        assert!(!report.drift, "a rebuilt database has no drift");
        Ok(report.position)
    })?);
    let source = Source::open(&Location::Database(db.to_owned()))?;
    phases.push(timed("replay (memory)", || {
        let (view, _) = fold_until(&source, Moment::Now)?;
        Ok(view.position())
    })?);
    phases.push(timed("verify", || {
        let verdict = verify(&source)?;
        assert!(verdict.intact, "a generated log verifies");
        Ok(verdict.head_position.unwrap_or(0))
    })?);
    Ok(phases)
}

/// The audit CLI's read-only phases, best of `rounds` each.
fn run_audit(args: &Args) -> Result<Vec<Phase>, ReplayError> {
    let location = Location::of_db(args.db.clone());
    let source = Source::open_with_archive(&location, args.archive.clone())?;
    let last_at = last_recorded_at(&source)?;
    let best = |name: &'static str, phase: &dyn Fn() -> Result<i64, ReplayError>| {
        let mut best: Option<Phase> = None;
        for _ in 0..args.rounds {
            let run = timed(name, phase)?;
            if best.as_ref().is_none_or(|b| run.seconds < b.seconds) {
                best = Some(run);
            }
        }
        Ok::<_, ReplayError>(best.expect("at least one round"))
    };
    Ok(vec![
        best("verify", &|| {
            let verdict = verify(&source)?;
            assert!(verdict.intact, "the benchmark's log verifies: {:?}", verdict.problem);
            Ok(verdict.events as i64)
        })?,
        best("replay", &|| Ok(replay(&source, Moment::Now)?.position))?,
        best("replay --at", &|| Ok(replay(&source, Moment::At(last_at))?.position))?,
    ])
}

/// The time of the log's last event, so that `replay --at` folds all of it.
fn last_recorded_at(source: &Source) -> Result<i64, ReplayError> {
    let mut last = None;
    source.scan_after(None, |event| {
        last = Some(event.recorded_at.clone());
        Ok(Flow::Continue(()))
    })?;
    ledger_replay::time::parse(&last.unwrap_or_default())
}

/// Loses the views, as a damaged deployment would, in one transaction of its own.
fn delete_views(db: &Path) -> Result<(), ReplayError> {
    let conn = token_ledger::store::sqlite::open_writer(db)?;
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         DELETE FROM active_tokens; DELETE FROM rotated_refresh_tokens;
         DELETE FROM clients; DELETE FROM users;
         COMMIT;",
    )?;
    Ok(())
}

fn timed(name: &'static str, phase: impl FnOnce() -> Result<i64, ReplayError>) -> Result<Phase, ReplayError> {
    let reset = reset_peak();
    let started = Instant::now();
    let events = phase()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Phase {
        name,
        events,
        seconds,
        events_per_second: events as f64 / seconds,
        peak_mib: reset.then(peak_mib).flatten(),
    })
}

/// Resets the kernel's peak-RSS mark for this process (Linux 4.0+): writing 5 to clear_refs.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` of /proc/self/status in MiB.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
