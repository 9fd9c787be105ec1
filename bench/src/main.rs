//! `ledger-bench`: the load benchmarks of issue 5. Starts the real `token-ledger` server on a
//! temporary database (and, first, a bare axum handler as the baseline), drives it over HTTP/1.1
//! keep-alive from an in-process generator, and prints throughput, latency percentiles, errors
//! by status, CPU per request on both sides, log events per request and memory.
//!
//! Only 127.0.0.1; every run is bounded in time; children are stopped when the run ends, also
//! on error. Not part of `cargo test`. See BENCHMARKS.md for the figures and how to read them.
#![forbid(unsafe_code)]

mod bare;
mod callgrind;
mod child;
mod compare;
mod deployment;
mod http_population;
mod load;
mod lock_hold;
mod nodes;
mod nodes_report;
mod oneshot;
mod pg;
mod populate;
mod probes;
mod procfs;
mod report;
mod scenarios;
mod wire;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum as _};

use crate::deployment::ServerRun;
use crate::load::Plan;
use crate::scenarios::{Bench, Scenario};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error("{0} did not print `listening on http://…` within {1:?}")]
    NotReady(String, Duration),
    #[error("{0} exited before it was ready: {1}")]
    Exited(String, std::process::ExitStatus),
    #[error("the server is listening on {0}, not on loopback: refusing to load it")]
    NotLoopback(std::net::SocketAddr),
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("the ledger refused a population command: {0}")]
    Refused(String),
    #[error("unexpected: {0}")]
    Unexpected(&'static str),
    #[error("{0} holds another population than --tokens {1}: remove it or pass its size")]
    CacheMismatch(PathBuf, usize),
    #[error(transparent)]
    Config(#[from] token_ledger::config::ConfigError),
    #[error(transparent)]
    Start(#[from] token_ledger::app::StartError),
    #[error(transparent)]
    Store(#[from] token_ledger::store::StoreError),
    #[error("bad JSON from the CLI: {0}")]
    Json(#[from] serde_json::Error),
    #[error("HTTP: {0}")]
    Http(hyper::Error),
}

impl BenchError {
    fn io(what: &'static str, source: std::io::Error) -> Self {
        Self::Io { what, source }
    }
}

#[derive(Parser)]
#[command(name = "ledger-bench", about = "Load benchmarks of token-ledger (issue 5)")]
struct Cli {
    /// The scenario to run.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Concurrent keep-alive connections (1–1024).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// Measured seconds per scenario (1–600).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=600))]
    seconds: u16,
    /// Warm-up seconds before the measured window (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Active tokens written before `introspect`, `revoke`, `mixed` and `startup`.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1000..=5_000_000))]
    tokens: u32,
    /// Active JWTs written before `introspect-jwt`.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1000..=5_000_000))]
    jwt_tokens: u32,
    /// Keep the population in this folder and reuse it in later runs (same --tokens).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// RUST_LOG for the server (default: its own, `info`, one line per request).
    #[arg(long)]
    rust_log: Option<String>,
    /// Discard the server's log instead of writing it to server.log in its folder.
    #[arg(long)]
    log_to_null: bool,
    /// Count the server's fdatasync/fsync calls (SQLite commits) with `perf stat`.
    #[arg(long)]
    syncs: bool,
    /// Run the server under this command, e.g. "valgrind --tool=callgrind".
    #[arg(long)]
    wrap: Option<String>,
    /// Run the server under callgrind, writing DIR/callgrind.out.PID; its counters are zeroed
    /// at the window's start and dumped at its end (the `.1` part is the window alone).
    #[arg(long, conflicts_with = "wrap")]
    callgrind: Option<PathBuf>,
    /// `perf record` the server during each measured window into FILE.SCENARIO.
    #[arg(long)]
    perf_record: Option<PathBuf>,
    /// The token-ledger binary (default: the one beside ledger-bench, built if missing).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The load generator's HTTP/1.1 client: `raw` (hand-written, the lightest) or `hyper`.
    #[arg(long, value_enum, default_value_t = load::Client::Raw)]
    client: load::Client,
    /// Skip the bare axum baseline.
    #[arg(long)]
    no_baseline: bool,
    /// `nodes`, `compare`: interleaved rounds; each cell reports its best (1–20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=20))]
    rounds: u8,
    /// `nodes`: servers on the one PostgreSQL database of the several-nodes target (2–8).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=8))]
    nodes: u8,
    /// `nodes`, `compare`: an older token-ledger binary, measured beside this one (before/after).
    #[arg(long)]
    before_bin: Option<PathBuf>,
    /// `compare`: the scenarios, comma-separated (default: cc-new, cc-renew, cc-same,
    /// introspect, introspect-jwt, mixed).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// `callgrind`: what the counted requests do.
    #[arg(long = "scenario", id = "callgrind_scenario", value_enum, default_value_t = callgrind::Target::Introspect)]
    target: callgrind::Target,
    /// `callgrind`: requests counted, after the warm-up (1–100,000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    requests: u32,
    /// `callgrind`: requests before the counters are zeroed.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    warmup_requests: u32,
    /// `callgrind`: where the dumps go (default: a new folder under the system's temp folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.scenario == Scenario::BareAxum {
        return exit(bare::serve());
    }
    if cfg!(debug_assertions) {
        eprintln!("ledger-bench: built without --release, the figures mean little");
    }
    exit(run(cli))
}

fn exit(result: Result<(), BenchError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), BenchError> {
    let mut wrap: Vec<String> =
        cli.wrap.as_deref().map(|w| w.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
    if let Some(dir) = &cli.callgrind {
        wrap = vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}/callgrind.out.%p", dir.display()),
        ];
    }
    let server = ServerRun {
        binary: child::server_binary(cli.server_bin.as_deref())?,
        rust_log: cli.rust_log.clone(),
        log_to_null: cli.log_to_null,
        ready_timeout: if wrap.is_empty() { Duration::from_secs(60) } else { Duration::from_secs(600) },
        wrap,
    };
    let plan = Plan {
        warmup: Duration::from_secs_f64(cli.warmup.clamp(0.0, 60.0)),
        measure: Duration::from_secs(cli.seconds.into()),
        request_timeout: Duration::from_secs(30),
        http2: false,
        client: cli.client,
    };
    if cli.scenario == Scenario::Nodes {
        return run_nodes(&cli, server, plan);
    }
    if cli.scenario == Scenario::Callgrind {
        return run_callgrind(&cli, &server);
    }
    let mut bench = Bench::new(
        cli.connections.into(),
        plan,
        cli.tokens as usize,
        cli.jwt_tokens as usize,
        server,
        cli.cache,
        cli.syncs,
    );
    bench.callgrind = cli.callgrind.is_some();
    bench.perf_record = cli.perf_record;
    if cli.scenario == Scenario::Compare {
        let before = cli.before_bin.clone().ok_or(BenchError::Unexpected("compare needs --before-bin"))?;
        let binaries = [("before".to_owned(), before), ("after".to_owned(), bench.server.binary.clone())];
        let scenarios =
            if cli.scenarios.is_empty() { compare::DEFAULT.to_vec() } else { cli.scenarios.clone() };
        println!(
            "ledger-bench compare · {} rounds · {} connections · before {} · after {}",
            cli.rounds,
            cli.connections,
            binaries[0].1.display(),
            binaries[1].1.display()
        );
        return compare::run(&mut bench, &binaries, &scenarios, cli.rounds.into());
    }
    println!(
        "ledger-bench · server {} · {} cores",
        bench.server.binary.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let needs_baseline = !matches!(cli.scenario, Scenario::Startup | Scenario::Populate);
    if needs_baseline && !cli.no_baseline {
        bench.baseline()?;
    }
    bench.run(cli.scenario)?;
    if bench.results.len() > 1 {
        println!("\n{}", report::summary(&bench.results));
    }
    Ok(())
}

/// `ledger-bench callgrind`: one instruction count, printed per request.
fn run_callgrind(cli: &Cli, server: &ServerRun) -> Result<(), BenchError> {
    let out = match &cli.out {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("ledger-callgrind-{}", std::process::id())),
    };
    let target = cli.target.to_possible_value().map_or_else(String::new, |v| v.get_name().to_owned());
    println!(
        "ledger-bench callgrind · server {} · {target} · {} warm-up requests, then {} counted on one keep-alive connection",
        server.binary.display(),
        cli.warmup_requests,
        cli.requests
    );
    let counted = callgrind::count(cli.target, server, &out, cli.warmup_requests, cli.requests)?;
    println!(
        "  instructions   {} in {} requests · {:.0} per request (whole process, all threads)",
        counted.instructions,
        counted.requests,
        counted.instructions as f64 / f64::from(counted.requests)
    );
    println!("  dump           {}", counted.dump.display());
    Ok(())
}

/// `ledger-bench nodes`: the targets, the interleaved rounds, the table.
fn run_nodes(cli: &Cli, server: ServerRun, plan: Plan) -> Result<(), BenchError> {
    use crate::nodes::{Comparison, Store, Target};
    let after = |label: &str, store| Target { label: label.to_owned(), binary: server.binary.clone(), store };
    let mut targets = Vec::new();
    if let Some(before) = &cli.before_bin {
        targets.push(Target {
            label: "SQLite, 1 node, before".into(),
            binary: before.clone(),
            store: Store::Sqlite,
        });
    }
    let reference = targets.len();
    targets.push(after("SQLite, 1 node", Store::Sqlite));
    targets.push(after("PostgreSQL, 1 node", Store::Postgres { nodes: 1 }));
    let nodes = usize::from(cli.nodes);
    targets.push(after(&format!("PostgreSQL, {nodes} nodes"), Store::Postgres { nodes }));
    println!(
        "ledger-bench nodes · server {} · {} cores · {} connections · {} rounds of {:.0} s windows after {:.1} s warm-up · {} tokens populated",
        server.binary.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cli.connections,
        cli.rounds,
        plan.measure.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        cli.tokens
    );
    let tokens = cli.tokens as usize;
    let mut comparison =
        Comparison::new(targets, cli.rounds.into(), cli.connections.into(), plan, tokens, server)?;
    comparison.run()?;
    println!("\n{}", nodes_report::summary(&comparison.samples, &comparison.targets, reference));
    Ok(())
}
