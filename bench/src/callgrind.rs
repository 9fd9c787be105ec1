//! `ledger-bench callgrind --scenario S`: instructions per request, the figure that no other
//! process on the machine can disturb. The release server runs under
//! `valgrind --tool=callgrind`; one keep-alive connection sends warm-up requests, then
//! `callgrind_control -z` zeroes the counters, the measured requests follow one after the other,
//! and `callgrind_control -d` dumps them. The dump's total covers the whole process, every
//! thread (the writer's commits included), divided by the requests.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::deployment::{free_port, super_admin, Deployment, Flags, ServerRun};
use crate::load::{Check, Conn};
use crate::populate::{Format, Population};
use crate::workloads::{Expect, Introspect, NewKeys, Rng, SameKey};
use crate::{wire, BenchError};

/// What the counted requests do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Opaque-token introspection as the super admin.
    Introspect,
    /// ES256 JWT introspection as the super admin.
    IntrospectJwt,
    /// client_credentials, a new key each (one commit per request: one connection).
    CcNew,
    /// Renewal off, the same token handed back.
    CcSame,
    /// Renewal on: a revoke and an issue per request.
    CcRenew,
}

/// Tokens populated for the introspection targets.
const POPULATION: usize = 1000;

/// One instruction count.
pub struct Counted {
    pub instructions: u64,
    pub requests: u32,
    pub dump: PathBuf,
}

/// Runs `target` under callgrind: `warmup` requests, then `requests` counted ones.
pub fn count(
    target: Target,
    server: &ServerRun,
    out: &Path,
    warmup: u32,
    requests: u32,
) -> Result<Counted, BenchError> {
    std::fs::create_dir_all(out)
        .map_err(|source| BenchError::io("cannot create the callgrind folder", source))?;
    let run = ServerRun {
        wrap: vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}/callgrind.out.%p", out.display()),
        ],
        ready_timeout: Duration::from_secs(600),
        ..server.clone()
    };
    let (deployment, mut conn, _population) = prepare(target, &server.binary)?;
    let mut running = deployment.start(&run)?;
    let pid = running.pid();
    let measured = (|| {
        let mut client = Client::connect(running.addr)?;
        client.send(conn.as_mut(), warmup)?;
        control("-z", pid)?;
        client.send(conn.as_mut(), requests)?;
        control("-d", pid)?;
        let dump = out.join(format!("callgrind.out.{pid}.1"));
        let instructions = wait_for_total(&dump)?;
        Ok(Counted { instructions, requests, dump })
    })();
    running.stop();
    measured
}

/// A deployment, the connection's request sequence, and the population kept alive meanwhile.
type Prepared = (Deployment, Box<dyn Conn>, Option<Population>);

/// A fresh deployment for `target` and the connection's request sequence.
fn prepare(target: Target, binary: &Path) -> Result<Prepared, BenchError> {
    let same = |renew: bool| -> Result<Prepared, BenchError> {
        let d = Deployment::new(Flags { renew, ..Flags::default() })?;
        let client = d.register_client(binary, "callgrind")?;
        let conn = SameKey {
            auth: client.basic(),
            body: bytes::Bytes::from_static(b"grant_type=client_credentials&scope=k0"),
            expect: if renew { Expect::New } else { Expect::Same },
            last: None,
        };
        Ok((d, Box::new(conn), None))
    };
    match target {
        Target::CcNew => {
            let d = Deployment::new(Flags::default())?;
            let client = d.register_client(binary, "callgrind")?;
            Ok((d, Box::new(NewKeys { auth: client.basic(), connection: 0, sent: 0 }), None))
        }
        Target::CcSame => same(false),
        Target::CcRenew => same(true),
        Target::Introspect | Target::IntrospectJwt => {
            let format = match target {
                Target::IntrospectJwt => Format::Jwt { port: free_port()? },
                _ => Format::Opaque,
            };
            let p = Population::make(format, POPULATION, None)?;
            let d = Deployment::new(p.format.flags())?;
            d.install_data(&p.data_dir)?;
            let tokens = Arc::clone(&p.tokens);
            let conn = Introspect { auth: super_admin(), live: tokens.len(), tokens, rng: Rng::new(1) };
            Ok((d, Box::new(conn), Some(p)))
        }
    }
}

/// `callgrind_control FLAG PID`, which waits until callgrind has done it.
fn control(flag: &str, pid: u32) -> Result<(), BenchError> {
    let output = Command::new("callgrind_control")
        .args([flag, &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BenchError::io("cannot run callgrind_control (valgrind installed?)", source))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BenchError::Command {
            command: format!("callgrind_control {flag} {pid}"),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// The `totals:` (or `summary:`) line of a finished dump: instructions of every thread.
fn wait_for_total(dump: &Path) -> Result<u64, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(dump) {
            if let Some(total) = total_of(&text) {
                return Ok(total);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(BenchError::Unexpected("no complete callgrind dump within 60 s"))
}

/// The first event's count on the dump's `totals:` line (else its `summary:` line).
pub fn total_of(dump: &str) -> Option<u64> {
    let line = |prefix: &str| {
        dump.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    line("totals:").or_else(|| line("summary:"))
}

/// One blocking keep-alive connection: nothing else runs between the requests.
struct Client {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Result<Self, BenchError> {
        let io = |source| BenchError::io("cannot connect to the server", source);
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        // Under callgrind a request takes ~50 times longer than natively.
        stream.set_read_timeout(Some(Duration::from_secs(120))).map_err(io)?;
        Ok(Self { stream, host: addr.to_string(), buf: Vec::with_capacity(4096) })
    }

    /// Sends `n` requests of `conn` one after the other; any unexpected answer is an error,
    /// so a count never includes refused requests.
    fn send(&mut self, conn: &mut dyn Conn, n: u32) -> Result<(), BenchError> {
        for _ in 0..n {
            let planned = conn.next().ok_or(BenchError::Unexpected("the scenario ran out of requests"))?;
            let kind = planned.kind;
            let io = |source| BenchError::io("the keep-alive connection failed", source);
            self.stream.write_all(&wire::request(&self.host, &planned)).map_err(io)?;
            let (status, body) = self.answer()?;
            if !status.is_success() {
                return Err(BenchError::Refused(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            if let Check::Unexpected(what) = conn.answered(kind, status, &body) {
                return Err(BenchError::Refused(what.to_owned()));
            }
        }
        Ok(())
    }

    fn answer(&mut self) -> Result<(axum::http::StatusCode, Vec<u8>), BenchError> {
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            match wire::head(&self.buf) {
                Ok(h) if self.buf.len() >= h.head_len + h.body_len => {
                    return Ok((h.status, self.buf[h.head_len..h.head_len + h.body_len].to_vec()));
                }
                Ok(_) | Err(wire::Unframed::Incomplete) => {}
                Err(wire::Unframed::Malformed) => {
                    return Err(BenchError::Unexpected("a malformed HTTP answer"))
                }
            }
            let n =
                self.stream.read(&mut chunk).map_err(|source| BenchError::io("reading an answer", source))?;
            if n == 0 {
                return Err(BenchError::Unexpected("the server closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::total_of;

    #[test]
    fn the_total_is_read_from_the_dump() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 1234\n\nfn=main\n0 5\ntotals: 1200\n";
        assert_eq!(total_of(dump), Some(1200));
        assert_eq!(total_of("events: Ir\nsummary: 77\n"), Some(77));
        assert_eq!(total_of("events: Ir\n"), None);
    }
}
