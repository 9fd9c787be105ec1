//! Child processes: the real `token-ledger` server and the bare axum server, each started with a
//! `listening on http://127.0.0.1:PORT` line awaited, and always stopped when dropped (SIGTERM,
//! then SIGKILL), even when the benchmark fails halfway.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::BenchError;

/// How long a stopped child gets to finish its in-flight work before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running server process.
pub struct Running {
    child: Child,
    pub name: String,
    pub addr: SocketAddr,
    pub spawned_at: Instant,
    /// From spawn to the `listening on` line.
    pub announced_after: Duration,
}

impl Running {
    /// Spawns `command` (stdout is taken over here) and waits for its `listening on` line.
    pub fn start(name: &str, mut command: Command, ready_timeout: Duration) -> Result<Self, BenchError> {
        command.stdout(Stdio::piped()).stdin(Stdio::null());
        let spawned_at = Instant::now();
        let mut child =
            command.spawn().map_err(|source| BenchError::io("cannot start a server process", source))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // The reader thread keeps draining stdout after the announcement, so the child never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .strip_prefix("listening on http://")
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let mut running = Self {
            child,
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            spawned_at,
            announced_after: Duration::ZERO,
        };
        let deadline = spawned_at + ready_timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(addr) => {
                    running.announced_after = spawned_at.elapsed();
                    running.addr = addr;
                    break;
                }
                Err(_) if Instant::now() >= deadline => {
                    return Err(BenchError::NotReady(name.to_owned(), ready_timeout));
                }
                Err(_) => {
                    if let Ok(Some(status)) = running.child.try_wait() {
                        return Err(BenchError::Exited(name.to_owned(), status));
                    }
                }
            }
        }
        if !running.addr.ip().is_loopback() {
            return Err(BenchError::NotLoopback(running.addr));
        }
        Ok(running)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, a grace period for a clean shutdown, then SIGKILL. Returns how it ended.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("{} did not stop within {STOP_GRACE:?}: killed", self.name);
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends SIGINT to a helper (perf) so that it prints its summary and exits, then waits for it.
pub fn interrupt_and_wait(child: &mut Child) -> Option<std::process::Output> {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().ok()?;
    Some(std::process::Output { status, stdout: Vec::new(), stderr: stderr.into_bytes() })
}

/// The `token-ledger` binary beside this one in the same target folder, built first with the
/// same profile if it is missing (`cargo build --release -p token-ledger`).
pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf, BenchError> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    let exe =
        std::env::current_exe().map_err(|source| BenchError::io("cannot locate ledger-bench", source))?;
    let sibling = exe.with_file_name("token-ledger");
    if sibling.exists() {
        return Ok(sibling);
    }
    let mut args = vec!["build", "-p", "token-ledger"];
    if !cfg!(debug_assertions) {
        args.push("--release");
    }
    eprintln!("{} is missing: cargo {}", sibling.display(), args.join(" "));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(&args)
        .status()
        .map_err(|source| BenchError::io("cannot run cargo", source))?;
    if !status.success() || !sibling.exists() {
        return Err(BenchError::Exited("cargo build".into(), status));
    }
    Ok(sibling)
}
