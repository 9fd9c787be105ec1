//! `ledger-rebuild-bench`: `ledger-replay rebuild` of two builds (say main's and this branch's),
//! interleaved in one run on the same log, through the real binaries: wall-clock time, CPU time
//! and peak resident memory of each process (`/usr/bin/time -v`), optionally instructions
//! (`valgrind --tool=callgrind`). Before each rebuild every view is emptied, so each one folds,
//! compares, and writes every row; then a `rebuild --check` of the repaired views is timed too.
//!
//! ```sh
//! cargo run --release -p ledger-replay --bin ledger-gen -- --events 1000000 --db /tmp/big/ledger.db
//! ledger-rebuild-bench --db /tmp/big/ledger.db --before /tmp/main/ledger-replay \
//!     --after target/release/ledger-replay --rounds 2
//! ```
//!
//! A SQLite `--db` is copied afresh before each run (so a newer build's schema migration never
//! meets an older build); a PostgreSQL `--db` (a `postgres://` URL, filled by
//! `token-ledger migrate-store`) has its views emptied in place.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;
use ledger_replay::source::Location;
use serde::Serialize;
use token_ledger::store::image::TABLES;
use token_ledger::store::postgres::PgOptions;

#[derive(Parser)]
#[command(name = "ledger-rebuild-bench", about = "Rebuild time and peak memory of two ledger-replay builds")]
struct Args {
    /// A database written by ledger-gen, or a PostgreSQL URL (no server may be running on it).
    #[arg(long, value_name = "PATH|URL")]
    db: PathBuf,
    /// The `ledger-replay` binary measured first in each round.
    #[arg(long, value_name = "BIN")]
    before: PathBuf,
    /// The `ledger-replay` binary measured second in each round.
    #[arg(long, value_name = "BIN")]
    after: PathBuf,
    /// How many interleaved rounds.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Count instructions with callgrind instead of timing (slow: use a small log).
    #[arg(long)]
    callgrind: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// One measured process.
#[derive(Debug, Serialize)]
struct Run {
    build: &'static str,
    round: u32,
    command: &'static str,
    wall_seconds: f64,
    cpu_seconds: f64,
    peak_mib: f64,
    instructions: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(runs) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&runs).expect("runs serialise"));
            } else {
                for r in &runs {
                    let ir = r.instructions.map_or(String::new(), |n| format!(", {n} instructions"));
                    println!(
                        "round {} {:<6} {:<16} {:>7.2} s wall, {:>7.2} s CPU, peak {:>7.1} MiB{ir}",
                        r.round, r.build, r.command, r.wall_seconds, r.cpu_seconds, r.peak_mib
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ledger-rebuild-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<Vec<Run>, String> {
    let location = Location::of_db(args.db.clone());
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for (build, bin) in [("before", &args.before), ("after", &args.after)] {
            let db = prepare(&location, scratch.path())?;
            for (command, check) in [("rebuild", false), ("rebuild --check", true)] {
                let mut cli = vec!["rebuild".to_owned(), "--db".to_owned(), db.clone()];
                if check {
                    cli.push("--check".into());
                }
                runs.push(measure(bin, &cli, args.callgrind, build, round, command)?);
            }
        }
    }
    Ok(runs)
}

/// The database a run works on, with every view emptied.
fn prepare(location: &Location, scratch: &Path) -> Result<String, String> {
    let empty = TABLES.iter().map(|t| format!("DELETE FROM {};", t.name)).collect::<String>();
    match location {
        Location::Database(path) => {
            let copy = scratch.join("ledger.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
            }
            std::fs::copy(path, &copy).map_err(|e| format!("copy {}: {e}", path.display()))?;
            let conn = rusqlite::Connection::open(&copy).map_err(|e| e.to_string())?;
            conn.execute_batch(&format!("BEGIN; {empty} COMMIT;")).map_err(|e| e.to_string())?;
            Ok(copy.display().to_string())
        }
        Location::Postgres(url) => {
            let password = std::env::var("PGPASSWORD").ok();
            let options = PgOptions::parse(url, password.as_deref(), 1).map_err(|e| e.to_string())?;
            let mut client = options.connect().map_err(|e| e.to_string())?;
            client.batch_execute(&format!("BEGIN; {empty} COMMIT;")).map_err(|e| e.to_string())?;
            Ok(url.clone())
        }
        Location::Log(path) => Err(format!("{} is not a database", path.display())),
    }
}

/// Runs `bin cli` under `/usr/bin/time -v` (or callgrind) and reads its figures.
fn measure(
    bin: &Path,
    cli: &[String],
    callgrind: bool,
    build: &'static str,
    round: u32,
    command: &'static str,
) -> Result<Run, String> {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v");
    if callgrind {
        cmd.args(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]);
    }
    let out = cmd.arg(bin).args(cli).output().map_err(|e| format!("run {}: {e}", bin.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{} {cli:?} failed: {stderr}", bin.display()));
    }
    let field = |name: &str| stderr.lines().find_map(|l| l.trim().strip_prefix(name)).map(str::trim);
    let number = |name: &str| field(name).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):").map_or(f64::NAN, |t| {
        t.split(':').fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap_or(f64::NAN))
    });
    let instructions = callgrind
        .then(|| {
            stderr.lines().find_map(|l| {
                let (_, after) = l.split_once("Collected :")?;
                after.trim().parse::<u64>().ok()
            })
        })
        .flatten();
    Ok(Run {
        build,
        round,
        command,
        wall_seconds: wall,
        cpu_seconds: number("User time (seconds):") + number("System time (seconds):"),
        peak_mib: number("Maximum resident set size (kbytes):") / 1024.0,
        instructions,
    })
}
