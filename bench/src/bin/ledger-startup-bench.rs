//! `ledger-startup-bench`: how soon a server answers after it is started on a database with many
//! active tokens (issue 9), and how much memory it holds, for two builds in the same run.
//!
//! The prepared database folder is copied once (never modified); a client and one token are
//! added to the copy through the library. Then, per run and per binary: spawn `serve`, poll
//! `POST /oauth2/introspect` (as that client, over one keep-alive connection) until it answers
//! the token active with the right client id ("first answer"), keep introspecting until the
//! server logs `active-token view ready` (a build that loads the view before listening logs
//! `loaded the active-token view` and is ready at its first answer), then 500 more; report both times, the introspection latency
//! while the view loaded and after, VmRSS after and VmHWM (the peak). 127.0.0.1 only; each
//! phase is bounded in time. Not part of `cargo test` (BENCHMARKS.md, "Start-up with a lazily
//! loaded view").
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Parser;
use hdrhistogram::Histogram;
use token_ledger::config::Settings;
use token_ledger::crypto::Sealer;
use token_ledger::domain::types::{GrantType, ScopeSet, Subject, TokenKey};
use token_ledger::store::ledger::{Command as LedgerCommand, Envelope, Ledger, Reply};
use token_ledger::store::log::RequestMeta;
use token_ledger::store::sqlite::SqliteStore;
use token_ledger::tokens::Generators;

#[derive(Parser)]
#[command(
    name = "ledger-startup-bench",
    about = "Time to the first answer and to the loaded view, two builds"
)]
struct Args {
    /// A prepared data folder (ledger.db, token.key, keys): copied, never modified.
    #[arg(long)]
    data: PathBuf,
    /// The build measured first in each run ("before").
    #[arg(long)]
    before: PathBuf,
    /// The build measured second in each run ("after").
    #[arg(long)]
    after: PathBuf,
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Where the copy goes (a temporary folder beside it by default).
    #[arg(long)]
    work: Option<PathBuf>,
    #[arg(long, default_value_t = 18_300)]
    port: u16,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The line a build that loads in the background logs when the view is ready, and the line a
/// build that loads before listening logs.
const READY_LINES: [&str; 2] = ["active-token view ready", "loaded the active-token view"];
/// Longest wait for a first answer, and for the view.
const PHASE_LIMIT: Duration = Duration::from_secs(120);
const AFTER_READY: usize = 500;

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-startup-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let work = match &args.work {
        Some(w) => tempfile::tempdir_in(w)?,
        None => tempfile::tempdir()?,
    };
    let data = work.path().join("data");
    copy_folder(&args.data, &data)?;
    let probe = prepare(&data)?;
    let config = work.path().join("deployment.toml");
    std::fs::write(&config, config_text(&data, args.port))?;
    println!("run | build | first answer s | view ready s | VmRSS after | VmHWM | introspection while loading p50/p99 us (n) | after p50/p99 us");
    for run in 1..=args.runs {
        for (name, binary) in [("before", &args.before), ("after", &args.after)] {
            let m = measure(binary, &config, args.port, &probe)?;
            println!(
                "{run} | {name} | {:.3} | {:.3} | {} MB | {} MB | {} | {}",
                m.first_answer.as_secs_f64(),
                m.ready.as_secs_f64(),
                m.rss_kb / 1024,
                m.hwm_kb / 1024,
                percentiles(&m.loading),
                percentiles(&m.loaded),
            );
        }
    }
    Ok(())
}

/// The token every introspection asks about, and its client's credentials.
struct Probe {
    token: String,
    client_id: String,
    basic: String,
}

/// Registers a client and issues it one token, through the library, on the copy.
fn prepare(data: &Path) -> Result<Probe, Failure> {
    let store = SqliteStore::open(&data.join("ledger.db"))?;
    let sealer = Sealer::load_or_create(&data.join("token.key"))?;
    let mut ledger = Ledger::new(Box::new(store), sealer, Settings::default().policy(), Generators::opaque());
    let command = LedgerCommand::RegisterClient {
        name: "startup-bench".into(),
        grant_types: vec![GrantType::ClientCredentials],
        access_token_type: None,
        oauth: Default::default(),
    };
    let client = match ledger.execute(Envelope { command, meta: RequestMeta::default() })? {
        Ok(Reply::Client(c)) => c,
        other => return Err(format!("registering the client: {other:?}").into()),
    };
    let key = TokenKey {
        client: client.client_id.clone(),
        subject: Subject::Application,
        scopes: ScopeSet::parse("startup")?,
    };
    let command = LedgerCommand::Issue { key, grant_type: GrantType::ClientCredentials };
    let token = match ledger.execute(Envelope { command, meta: RequestMeta::default() })? {
        Ok(Reply::Granted(g)) => g.access_token,
        other => return Err(format!("issuing the token: {other:?}").into()),
    };
    let credentials = format!("{}:{}", client.client_id.as_str(), client.client_secret);
    Ok(Probe {
        token,
        client_id: client.client_id.as_str().to_owned(),
        basic: base64::engine::general_purpose::STANDARD.encode(credentials),
    })
}

fn config_text(data: &Path, port: u16) -> String {
    format!(
        "[server]\nbind_address = \"127.0.0.1\"\nport = {port}\n[transport.https]\nenabled = false\n\
         [database]\npath = \"{}\"\n[oauth.token_cleanup]\nenable = false\n",
        data.join("ledger.db").display()
    )
}

struct Measured {
    first_answer: Duration,
    ready: Duration,
    rss_kb: u64,
    hwm_kb: u64,
    /// Introspection latencies (µs) while the view loaded, and after.
    loading: Vec<u64>,
    loaded: Vec<u64>,
}

fn measure(binary: &Path, config: &Path, port: u16, probe: &Probe) -> Result<Measured, Failure> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let ready_at = watch_log(&mut child, started)?;
    let result = drive(&mut child, port, probe, started, &ready_at);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}

/// Reads the server's log on a thread; sends the instant of the ready line, if any.
fn watch_log(child: &mut Child, started: Instant) -> Result<Receiver<Duration>, Failure> {
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if READY_LINES.iter().any(|l| line.contains(l)) {
                let _ = tx.send(started.elapsed());
            }
        }
    });
    Ok(rx)
}

fn drive(
    child: &mut Child,
    port: u16,
    probe: &Probe,
    started: Instant,
    ready_at: &Receiver<Duration>,
) -> Result<Measured, Failure> {
    let (mut conn, first_answer) = first_answer(child, port, probe, started)?;
    let mut loading = Vec::new();
    let deadline = Instant::now() + PHASE_LIMIT;
    let ready = loop {
        // A build that loads the view before listening logged its line before the first answer.
        if let Ok(at) = ready_at.try_recv() {
            break at.max(first_answer);
        }
        if Instant::now() > deadline {
            return Err("the view was not ready in time".into());
        }
        let t = Instant::now();
        expect_active(&introspect(&mut conn, probe)?, probe)?;
        loading.push(t.elapsed().as_micros() as u64);
    };
    let mut loaded = Vec::with_capacity(AFTER_READY);
    for _ in 0..AFTER_READY {
        let t = Instant::now();
        expect_active(&introspect(&mut conn, probe)?, probe)?;
        loaded.push(t.elapsed().as_micros() as u64);
    }
    let (rss_kb, hwm_kb) = memory_of(child.id())?;
    Ok(Measured { first_answer, ready, rss_kb, hwm_kb, loading, loaded })
}

/// Polls until the server answers the probe token active; returns the connection and when.
fn first_answer(
    child: &mut Child,
    port: u16,
    probe: &Probe,
    started: Instant,
) -> Result<(TcpStream, Duration), Failure> {
    loop {
        if started.elapsed() > PHASE_LIMIT {
            return Err("no answer in time".into());
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the server exited: {status}").into());
        }
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        if let Ok(body) = introspect(&mut conn, probe) {
            expect_active(&body, probe)?;
            return Ok((conn, started.elapsed()));
        }
    }
}

fn expect_active(body: &str, probe: &Probe) -> Result<(), Failure> {
    let json: serde_json::Value = serde_json::from_str(body)?;
    if json["active"] == true && json["client_id"] == probe.client_id.as_str() {
        Ok(())
    } else {
        Err(format!("a wrong introspection answer: {body}").into())
    }
}

/// One `POST /oauth2/introspect` on a keep-alive connection; the body of a 200.
fn introspect(conn: &mut TcpStream, probe: &Probe) -> Result<String, Failure> {
    let form = format!("token={}", form_encode(&probe.token));
    let request = format!(
        "POST /oauth2/introspect HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        probe.basic,
        form.len()
    );
    conn.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(&mut *conn);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err("the connection closed".into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("{} {}", status.trim_end(), String::from_utf8_lossy(&body)).into());
    }
    Ok(String::from_utf8(body)?)
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// VmRSS and VmHWM of a process, in kB.
fn memory_of(pid: u32) -> Result<(u64, u64), Failure> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64, Failure> {
        let line = status.lines().find(|l| l.starts_with(name)).ok_or("no such field")?;
        Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn percentiles(samples: &[u64]) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    let mut h = Histogram::<u64>::new(3).expect("a histogram");
    for &s in samples {
        let _ = h.record(s.max(1));
    }
    format!("{}/{} ({})", h.value_at_quantile(0.5), h.value_at_quantile(0.99), samples.len())
}

/// Copies a flat data folder and its key subfolders.
fn copy_folder(from: &Path, to: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_folder(&entry.path(), &target)?;
        } else if !entry.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
