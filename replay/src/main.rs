//! `ledger-replay`: the audit CLI of token-ledger. Parses arguments, runs one command of the
//! `ledger_replay` library and prints its report (text, or JSON with `--json`).
//!
//! Exit status: 0 when the answer is good news (intact, no drift), 1 when it is a finding
//! (a broken log, drifted views), 2 when the command could not run (one line on stderr).
#![forbid(unsafe_code)]

use std::fmt::Display;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ledger_replay::audit::{self, Subject, Window};
use ledger_replay::export;
use ledger_replay::progress::Progress;
use ledger_replay::rebuild::{self, Options};
use ledger_replay::replay::{self, Moment};
use ledger_replay::source::{Location, Source};
use ledger_replay::{stats, time, verify, ReplayError};
use serde::Serialize;
use token_ledger::config::{DatabaseKind, Settings};
use token_ledger::domain::types::Digest;

#[derive(Parser)]
#[command(
    name = "ledger-replay",
    version,
    about = "Questions the token-ledger event log: verify, export, audit, replay, rebuild, stats"
)]
struct Cli {
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// A database, named directly or through the server's configuration.
#[derive(Args, Clone)]
#[group(multiple = false)]
struct DatabaseArgs {
    /// The SQLite database of the ledger.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// The server's deployment.toml, whose [database] path is used (default: ./deployment.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

/// Where the archive segments are (default: `[ledger.archive] dir` of --config, or `archive`
/// beside the --db file).
#[derive(Args, Clone)]
struct ArchiveArgs {
    /// The archive folder of the ledger, whose segments are read as the start of the log.
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
}

/// A database, or a JSON Lines export in its place.
#[derive(Args, Clone)]
#[group(multiple = false)]
struct SourceArgs {
    /// The SQLite database of the ledger.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// The server's deployment.toml, whose [database] path is used (default: ./deployment.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// A log written by `ledger-replay export`, in place of a database.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the hash chain, positions, stream versions, decoding and consistency of every event.
    Verify {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        archive: ArchiveArgs,
    },
    /// Write the log as JSON Lines, hash chain included.
    Export {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        archive: ArchiveArgs,
        /// Only the events after this position.
        #[arg(long, value_name = "POSITION", default_value_t = 0)]
        since: i64,
        /// Write to this file (atomically) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The timeline of a token, a client or a user, and each token's fate.
    Audit {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        archive: ArchiveArgs,
        #[command(flatten)]
        target: AuditTarget,
        /// List events recorded at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Stop at this time (RFC 3339); fates are told as they stood then.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
    },
    /// The active-token view as it stood at an instant or a position.
    Replay {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        archive: ArchiveArgs,
        /// The instant (RFC 3339); default: the whole log, judged now.
        #[arg(long, value_name = "TIME", conflicts_with = "position")]
        at: Option<String>,
        /// The position of the last event to include.
        #[arg(long, value_name = "N")]
        position: Option<i64>,
    },
    /// Rebuild the views from the log (offline), or with --check only compare.
    Rebuild {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        archive: ArchiveArgs,
        /// Compare and report every difference; change nothing (exit 1 on drift).
        #[arg(long)]
        check: bool,
        /// After archiving: fold every archive segment from position 1 instead of starting
        /// from the boundary snapshot of the last archiving step (refused after dropping).
        #[arg(long)]
        full: bool,
        /// Swap the views even though a server holds the database's lock, or (PostgreSQL) nodes
        /// beat in `node_heartbeats` (the server keeps the view it loaded at start-up in memory:
        /// restart it afterwards; on PostgreSQL appenders wait until the swap commits).
        #[arg(long)]
        force_while_serving: bool,
    },
    /// Events by type and day, active tokens by client, live and archived size on disk.
    Stats {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        archive: ArchiveArgs,
    },
}

#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
struct AuditTarget {
    /// A token value (access or refresh); `-` reads it from stdin. Only its SHA-256 is used.
    /// Values may begin with `-` (one base64url token in 64 does): they are never a flag here.
    #[arg(long, value_name = "TOKEN", allow_hyphen_values = true)]
    token: Option<String>,
    /// A token's SHA-256 digest, in hex, as the log and the other reports show it.
    #[arg(long, value_name = "HEX", allow_hyphen_values = true)]
    digest: Option<String>,
    /// A client id.
    #[arg(long, value_name = "ID")]
    client: Option<String>,
    /// A username (case-insensitive).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command, cli.json) {
        Ok(code) => code,
        // `ledger-replay export | head`: the reader has what it wanted.
        Err(ReplayError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-replay: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command, json: bool) -> Result<ExitCode, ReplayError> {
    match command {
        Command::Verify { source, archive } => {
            let verdict = verify::verify(&source.open(&archive)?)?;
            print(&verdict, json)?;
            Ok(exit(verdict.intact))
        }
        Command::Export { database, archive, since, out } => {
            export(&database, &archive, since, out.as_deref(), json)
        }
        Command::Audit { source, archive, target, from, to } => {
            let window = Window {
                from: from.as_deref().map(time::parse).transpose()?,
                to: to.as_deref().map(time::parse).transpose()?,
            };
            let subject = target.subject()?;
            let source = source.open(&archive)?;
            print(&audit::audit(&source, &subject, window)?, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { source, archive, at, position } => {
            let moment = match (at, position) {
                (Some(at), _) => Moment::At(time::parse(&at)?),
                (None, Some(n)) => Moment::Position(n),
                (None, None) => Moment::Now,
            };
            let source = source.open(&archive)?;
            print(&replay::replay(&source, moment)?, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild { database, archive, check, full, force_while_serving } => {
            // After archiving, the fold starts from the boundary snapshot in the archive folder
            // (or, with --full, reads every segment from position 1).
            let archive = archive.dir(&database.db, &database.config)?;
            let options = Options { check_only: check, force_while_serving, full, archive };
            let mut progress = Progress::on_stderr("rebuild", 0);
            let report = rebuild::rebuild_at(&Location::of_db(database.path()?), options, &mut progress)?;
            print(&report, json)?;
            Ok(exit(!(check && report.drift)))
        }
        Command::Stats { source, archive } => {
            print(&stats::stats(&source.open(&archive)?)?, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exports to a file (atomically, with a summary) or streams the log to stdout.
fn export(
    database: &DatabaseArgs,
    archive: &ArchiveArgs,
    since: i64,
    out: Option<&Path>,
    json: bool,
) -> Result<ExitCode, ReplayError> {
    let path = database.path()?;
    let dir = archive.dir(&database.db, &database.config)?;
    let source = Source::open_with_archive(&Location::of_db(path), dir)?;
    match out {
        Some(file) => print(&export::export_to_file(&source, since, file)?, json)?,
        None => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            export::export(&source, since, &mut stdout)?;
            stdout.flush().map_err(stdout_error)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exit(good: bool) -> ExitCode {
    if good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

impl DatabaseArgs {
    fn path(&self) -> Result<PathBuf, ReplayError> {
        database_path(&self.db, &self.config)
    }
}

impl SourceArgs {
    fn location(&self) -> Result<Location, ReplayError> {
        match &self.log {
            Some(log) => Ok(Location::Log(log.clone())),
            None => Ok(Location::of_db(database_path(&self.db, &self.config)?)),
        }
    }

    /// Opens the source with its archive (a database's; an exported log has none).
    fn open(&self, archive: &ArchiveArgs) -> Result<Source, ReplayError> {
        let dir = if self.log.is_some() { None } else { archive.dir(&self.db, &self.config)? };
        Source::open_with_archive(&self.location()?, dir)
    }
}

impl ArchiveArgs {
    /// `--archive`, else the config's `[ledger.archive] dir`, else `archive` beside a SQLite
    /// `--db` (a PostgreSQL `--db` has no file to be beside).
    fn dir(&self, db: &Option<PathBuf>, config: &Option<PathBuf>) -> Result<Option<PathBuf>, ReplayError> {
        if let Some(dir) = &self.archive {
            return Ok(Some(dir.clone()));
        }
        match db {
            Some(db) => Ok(match Location::of_db(db.clone()) {
                Location::Database(path) => {
                    Some(path.parent().map_or_else(|| PathBuf::from("archive"), |p| p.join("archive")))
                }
                _ => None,
            }),
            None => {
                let config = config.clone().unwrap_or_else(|| PathBuf::from("deployment.toml"));
                Ok(Some(Settings::load(&config)?.archive_dir()))
            }
        }
    }
}

fn database_path(db: &Option<PathBuf>, config: &Option<PathBuf>) -> Result<PathBuf, ReplayError> {
    if let Some(db) = db {
        return Ok(db.clone());
    }
    let config = config.clone().unwrap_or_else(|| PathBuf::from("deployment.toml"));
    let database = Settings::load(&config)?.database;
    // A PostgreSQL deployment's log is at its URL; `path` then only places the key folder.
    match (database.kind, database.url) {
        (DatabaseKind::Postgres, Some(url)) => Ok(PathBuf::from(url)),
        _ => Ok(database.path),
    }
}

impl AuditTarget {
    fn subject(&self) -> Result<Subject, ReplayError> {
        if let Some(token) = &self.token {
            let value = if token == "-" { read_token()? } else { token.clone() };
            return Ok(Subject::Token(Digest::of(value.as_bytes())));
        }
        if let Some(hex) = &self.digest {
            let digest = Digest::parse_hex(hex.trim()).map_err(|_| ReplayError::BadDigest(hex.clone()))?;
            return Ok(Subject::Token(digest));
        }
        if let Some(client) = &self.client {
            return Ok(Subject::Client(client.clone()));
        }
        Ok(Subject::User(self.user.clone().unwrap_or_default()))
    }
}

/// The first line of stdin, so a token need not appear in the process list or shell history.
fn read_token() -> Result<String, ReplayError> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(ReplayError::Stdin)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn print(report: &(impl Serialize + Display), json: bool) -> Result<(), ReplayError> {
    let mut out = std::io::stdout().lock();
    let written = if json {
        let text = serde_json::to_string_pretty(report).expect("reports serialise to JSON");
        writeln!(out, "{text}")
    } else {
        write!(out, "{report}")
    };
    written.and_then(|()| out.flush()).map_err(stdout_error)
}

fn stdout_error(source: std::io::Error) -> ReplayError {
    ReplayError::Output(source)
}
