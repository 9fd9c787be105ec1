//! `ledger-archive-bench`: days of `renew_access_token_per_request` traffic on a simulated clock
//! (`Ledger::with_clock`), through the server's own writer thread (group commit, `synchronous =
//! FULL`), with the archiver (`token_ledger::archive`) running on its own connection once per
//! simulated day, as the server runs it. Prints, per day, the live database's size and events,
//! the archive's size, bytes per archived event and the archiving round's throughput; then the
//! token requests' latency percentiles while a round ran and while none did, and the start-up
//! path (chain check since the anchor, catch-up, loading the memory view) after archiving.
//!
//! In-process and on a temporary folder; not part of `cargo test` (BENCHMARKS.md, "Archiving").
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use hdrhistogram::Histogram;
use token_ledger::archive::{run_round, ArchivePolicy};
use token_ledger::config::Settings;
use token_ledger::crypto::Sealer;
use token_ledger::domain::types::{ClientId, GrantType, ScopeSet, Subject, TokenKey};
use token_ledger::store::backend::ReadStore as _;
use token_ledger::store::clock::SimulatedClock;
use token_ledger::store::ledger::{Command, Envelope, Ledger, Reply};
use token_ledger::store::log::RequestMeta;
use token_ledger::store::memory::MemoryView;
use token_ledger::store::sqlite::{SqliteReads, SqliteStore};
use token_ledger::store::writer::Writer;
use token_ledger::store::{fold, log};
use token_ledger::tokens::Generators;

const DAY: i64 = 86_400_000;

#[derive(Parser)]
#[command(
    name = "ledger-archive-bench",
    about = "Days of traffic on a simulated clock, archived as the server does"
)]
struct Args {
    /// Simulated days of traffic.
    #[arg(long, default_value_t = 6)]
    days: u32,
    /// Token requests per simulated day (each appends two events: a revocation and an issue).
    #[arg(long, default_value_t = 20_000)]
    requests_per_day: u32,
    /// `keep_in_database`, in simulated days.
    #[arg(long, default_value_t = 1)]
    keep_days: u32,
    /// Distinct token keys (client_credentials scopes) the traffic rotates through.
    #[arg(long, default_value_t = 2_000)]
    keys: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-archive-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Latencies of token requests, split by whether an archiving round was running.
struct Latencies {
    quiet: Histogram<u64>,
    archiving: Histogram<u64>,
}

fn run(args: &Args) -> Result<(), Failure> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("ledger.db");
    let archive = dir.path().join("archive");
    let clock = SimulatedClock::starting_at(1_767_225_600_000); // 2026-01-01
    let mut settings = Settings::default();
    settings.oauth.token_renewal.renew_access_token_per_request = true;
    let sealer = Sealer::load_or_create(&dir.path().join("token.key"))?;
    let store = SqliteStore::open(&db)?;
    store.serve(&db)?;
    let mut ledger = Ledger::new(Box::new(store), sealer, settings.policy(), Generators::opaque())
        .with_clock(clock.clock());
    let client = register(&mut ledger)?;
    let (writer, writer_thread) = Writer::spawn(ledger)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let archiving = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Latencies { quiet: histogram(), archiving: histogram() }));
    let mut archiver = SqliteStore::open(&db)?;
    let policy = ArchivePolicy::new(archive.clone(), i64::from(args.keep_days) * DAY, true);
    println!("day | live events | live DB bytes (+WAL) | archived events | archive bytes | B/event | round s | events/s");
    let mut round: Option<std::thread::JoinHandle<Result<(u64, f64), Failure>>> = None;
    let mut archived_total = 0u64;
    for day in 1..=args.days {
        let traffic =
            runtime.block_on(day_of_traffic(args, &writer, &client, &clock, &archiving, &latencies));
        traffic?;
        if let Some(handle) = round.take() {
            let (events, seconds) = handle.join().map_err(|_| "the archiver panicked")??;
            archived_total += events;
            report(day - 1, &db, &archive, archived_total, events, seconds)?;
        }
        // The next round runs beside the next day's traffic, as in the server.
        let (flag, now) = (archiving.clone(), clock.now());
        let mut store = std::mem::replace(&mut archiver, SqliteStore::open(&db)?);
        let policy = policy.clone();
        round = Some(std::thread::spawn(move || {
            flag.store(true, Ordering::SeqCst);
            let started = Instant::now();
            let done = run_round(&mut store, &policy, now);
            flag.store(false, Ordering::SeqCst);
            Ok((done?.archived, started.elapsed().as_secs_f64()))
        }));
    }
    if let Some(handle) = round.take() {
        let (events, seconds) = handle.join().map_err(|_| "the archiver panicked")??;
        archived_total += events;
        report(args.days, &db, &archive, archived_total, events, seconds)?;
    }
    drop(writer);
    writer_thread.join();
    let l = latencies.lock().map_err(|_| "poisoned")?;
    for (name, h) in [("no round running", &l.quiet), ("while archiving", &l.archiving)] {
        println!(
            "token requests {name}: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }
    startup(&db)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn register(ledger: &mut Ledger) -> Result<ClientId, Failure> {
    let command = Command::RegisterClient {
        name: "bench".into(),
        grant_types: vec![GrantType::ClientCredentials],
        access_token_type: None,
        oauth: Default::default(),
    };
    match ledger.execute(Envelope { command, meta: RequestMeta::default() })? {
        Ok(Reply::Client(c)) => Ok(c.client_id),
        other => Err(format!("registering the client: {other:?}").into()),
    }
}

/// One simulated day: `requests_per_day` token requests, `concurrency` in flight, the clock
/// moving evenly through the day.
async fn day_of_traffic(
    args: &Args,
    writer: &Writer,
    client: &ClientId,
    clock: &SimulatedClock,
    archiving: &Arc<AtomicBool>,
    latencies: &Arc<Mutex<Latencies>>,
) -> Result<(), Failure> {
    let per_task = args.requests_per_day as usize / args.concurrency;
    let step = DAY / i64::from(args.requests_per_day.max(1));
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let (writer, client, clock) = (writer.clone(), client.clone(), clock.clone());
        let (archiving, latencies, keys) = (archiving.clone(), latencies.clone(), args.keys as usize);
        tasks.push(tokio::spawn(async move {
            for n in 0..per_task {
                clock.advance(step);
                let scope = format!("k{}", (task * per_task + n) % keys);
                let key = TokenKey {
                    client: client.clone(),
                    subject: Subject::Application,
                    scopes: ScopeSet::parse(&scope).expect("a scope"),
                };
                let command = Command::Issue { key, grant_type: GrantType::ClientCredentials };
                let during = archiving.load(Ordering::SeqCst);
                let started = Instant::now();
                let result = writer.execute(Envelope { command, meta: RequestMeta::default() }).await;
                let took = started.elapsed().as_micros() as u64;
                if !matches!(result, Ok(Ok(Reply::Granted(_)))) {
                    return Err(format!("a token request failed: {result:?}"));
                }
                let mut l = latencies.lock().map_err(|_| "poisoned".to_string())?;
                let h =
                    if during || archiving.load(Ordering::SeqCst) { &mut l.archiving } else { &mut l.quiet };
                let _ = h.record(took.max(1));
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await?.map_err(Failure::from)?;
    }
    Ok(())
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn report(day: u32, db: &Path, archive: &Path, total: u64, events: u64, seconds: f64) -> Result<(), Failure> {
    let conn = rusqlite::Connection::open(db)?;
    let live: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    let archive_bytes: u64 = match std::fs::read_dir(archive) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| file_len(&e.path())).sum(),
        Err(_) => 0,
    };
    let per_event = if total > 0 { archive_bytes as f64 / total as f64 } else { 0.0 };
    let rate = if seconds > 0.0 { events as f64 / seconds } else { 0.0 };
    println!(
        "{day} | {live} | {} (+{}) | {total} | {archive_bytes} | {per_event:.0} | {seconds:.2} | {rate:.0}",
        file_len(db),
        file_len(&with_suffix(db, "-wal")),
    );
    Ok(())
}

/// The server's start-up path after archiving: the chain since the anchor, the views' catch-up,
/// and the memory view loaded from the SQL view.
fn startup(db: &Path) -> Result<(), Failure> {
    let started = Instant::now();
    let mut store = SqliteStore::open(db)?;
    let checked = log::verify_since_anchor(&mut store)??;
    fold::catch_up(&mut store)?;
    let (position, rows) = SqliteReads::new(db.to_owned()).snapshot()?;
    let memory = MemoryView::load(position, rows);
    println!(
        "start-up after archiving: {:.1} ms (chain checked for {checked} events since the anchor, {} active tokens loaded, position {position})",
        started.elapsed().as_secs_f64() * 1000.0,
        memory.token_count()
    );
    Ok(())
}
