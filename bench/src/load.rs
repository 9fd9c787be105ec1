//! The load generator: N HTTP/1.1 keep-alive connections on one thread (hyper's low-level
//! `client::conn::http1` on a current-thread tokio runtime), each sending its next request when
//! the previous answer is in (closed loop). With `Plan::http2` each connection speaks cleartext
//! HTTP/2 instead (prior knowledge, `client::conn::http2`), one stream at a time, so the two
//! protocols are compared on the same shape of load. Only requests started inside the measured window
//! count; a warm-up before it fills caches and pools. The window's edges also sample the
//! server's CPU time, this process's CPU time, the log position and any attached probes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::{HeaderValue, Method, Request, StatusCode};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::BenchError;
use crate::{procfs, wire};

/// Most reconnections one connection makes after transport errors before it gives up.
const MAX_RECONNECTS: u32 = 20;
/// Longest latency the histograms hold, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;

/// What a request is, for the breakdown of `mixed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Bare,
    Token,
    Introspect,
    Revoke,
    /// Requests that prepare a connection's state; never counted in the figures.
    Setup,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Token => "token",
            Self::Introspect => "introspect",
            Self::Revoke => "revoke",
            Self::Setup => "setup",
        }
    }
}

/// One request to send.
pub struct Planned {
    pub kind: Kind,
    pub path: &'static str,
    pub auth: HeaderValue,
    /// A form body (`application/x-www-form-urlencoded`).
    pub body: Bytes,
}

/// Whether an answer is the one the scenario expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// A 2xx answer with the wrong content (e.g. `{"active":false}` for a live token).
    Unexpected(&'static str),
}

/// One connection's sequence of requests.
pub trait Conn: Send + 'static {
    /// The next request; `None` when this connection has no more work (e.g. tokens to revoke).
    fn next(&mut self) -> Option<Planned>;
    /// Sees every answer (also non-2xx ones), to check it and to carry state forward.
    fn answered(&mut self, kind: Kind, status: StatusCode, body: &[u8]) -> Check;
}

/// How long to drive and how hard.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub warmup: Duration,
    pub measure: Duration,
    pub request_timeout: Duration,
    /// Cleartext HTTP/2 (prior knowledge) instead of HTTP/1.1 for the load connections.
    pub http2: bool,
    /// The HTTP/1.1 client of the load connections.
    pub client: Client,
}

/// Which HTTP/1.1 client drives the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    /// Requests written and answers framed by hand (`wire.rs`): a third of hyper's CPU per
    /// request, so more of the two cores is left to the server.
    Raw,
    /// hyper's `client::conn::http1` (the generator of the figures before issue 11).
    Hyper,
}

/// Figures of one kind of request inside the window.
pub struct KindStats {
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    /// Non-2xx answers by status.
    pub statuses: BTreeMap<u16, u64>,
    pub unexpected: BTreeMap<&'static str, u64>,
}

impl KindStats {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"),
            ok: 0,
            statuses: BTreeMap::new(),
            unexpected: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &KindStats) {
        self.latency_us.add(&other.latency_us).expect("histograms of the same bounds");
        self.ok += other.ok;
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        for (s, n) in &other.unexpected {
            *self.unexpected.entry(s).or_default() += n;
        }
    }

    /// Every answer counted, whatever its status.
    pub fn answered(&self) -> u64 {
        self.latency_us.len()
    }
}

/// Samples taken at the edges of the window.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    /// CPU seconds of every server process together.
    pub server_cpu: Option<f64>,
    /// CPU seconds of the database server's processes (PostgreSQL), by process id.
    pub database_cpu: Vec<(u32, f64)>,
    pub own_cpu: Option<f64>,
    pub machine_busy: Option<f64>,
    pub position: Option<i64>,
    /// The server's bytes written (syscalls, storage).
    pub written: Option<(u64, u64)>,
    /// The server's threads: id, name, CPU seconds.
    pub threads: Vec<(u32, String, f64)>,
    /// The writer's batch sizes so far (`ledger_writer_batch_size` of `GET /metrics`).
    pub batches: Option<Batches>,
}

/// Batches per bucket (`le`, not cumulative) and the mean batch size, over a window.
pub type BatchesInWindow = (Vec<(String, u64)>, Option<f64>);

/// A cumulative Prometheus histogram: `(le, count)` per bucket, the sum and the count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batches {
    pub buckets: Vec<(String, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Batches {
    /// The `ledger_writer_batch_size` histogram of a `/metrics` text.
    pub fn parse(text: &str) -> Option<Self> {
        let mut out = Batches::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("ledger_writer_batch_size") else { continue };
            let (name, value) = rest.rsplit_once(' ')?;
            if let Some(le) = name.strip_prefix("_bucket{le=\"").and_then(|l| l.strip_suffix("\"}")) {
                out.buckets.push((le.to_owned(), value.parse().ok()?));
            } else if name == "_sum" {
                out.sum = value.parse().ok()?;
            } else if name == "_count" {
                out.count = value.parse().ok()?;
            }
        }
        (!out.buckets.is_empty()).then_some(out)
    }

    /// What was added between `self` and a later `end`: batches per bucket (not cumulative),
    /// and the mean batch size.
    pub fn since(&self, end: &Batches) -> BatchesInWindow {
        let mut previous = 0;
        let mut per_bucket = Vec::new();
        for (le, total) in &end.buckets {
            let before = self.buckets.iter().find(|(l, _)| l == le).map_or(0, |b| b.1);
            let cumulative = total.saturating_sub(before);
            per_bucket.push((le.clone(), cumulative.saturating_sub(previous)));
            previous = cumulative;
        }
        let count = end.count.saturating_sub(self.count);
        (per_bucket, (count > 0).then(|| (end.sum - self.sum) / count as f64))
    }
}

/// Something attached to the server for exactly the measured window (e.g. `perf stat`).
pub trait Probe: Send {
    fn start(&mut self, pid: u32);
    /// Stops and returns what it measured, for the report.
    fn stop(&mut self) -> Option<String>;
}

/// Everything a run measured.
pub struct Outcome {
    pub kinds: BTreeMap<Kind, KindStats>,
    pub window: Duration,
    pub transport_errors: u64,
    pub timeouts: u64,
    pub exhausted: usize,
    pub start: Edge,
    pub end: Edge,
    pub probes: Vec<String>,
}

impl Outcome {
    /// All counted kinds together.
    pub fn total(&self) -> KindStats {
        let mut all = KindStats::new();
        for (kind, s) in &self.kinds {
            if *kind != Kind::Setup {
                all.merge(s);
            }
        }
        all
    }

    fn delta(&self, f: impl Fn(&Edge) -> Option<f64>) -> Option<f64> {
        Some(f(&self.end)? - f(&self.start)?)
    }

    pub fn server_cpu(&self) -> Option<f64> {
        self.delta(|e| e.server_cpu)
    }

    pub fn own_cpu(&self) -> Option<f64> {
        self.delta(|e| e.own_cpu)
    }

    /// CPU seconds the database server's processes used in the window (0 for SQLite), per
    /// process so that backends started inside the window count from zero.
    pub fn database_cpu(&self) -> f64 {
        let at_start =
            |pid: u32| self.start.database_cpu.iter().find(|(p, _)| *p == pid).map_or(0.0, |s| s.1);
        self.end.database_cpu.iter().map(|(pid, end)| (end - at_start(*pid)).max(0.0)).sum()
    }

    /// CPU seconds that neither the servers, the database nor the generator used: the noise.
    pub fn others_cpu(&self) -> Option<f64> {
        let machine = self.delta(|e| e.machine_busy)?;
        Some((machine - self.server_cpu()? - self.own_cpu()? - self.database_cpu()).max(0.0))
    }

    /// The server's CPU seconds in the window by thread name (threads that ended in the window
    /// are missing; the process total still counts them).
    pub fn threads_cpu(&self) -> BTreeMap<String, (usize, f64)> {
        let mut by_name: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for (tid, name, end) in &self.end.threads {
            let start = self.start.threads.iter().find(|(t, _, _)| t == tid).map_or(0.0, |(_, _, s)| *s);
            let entry = by_name.entry(name.clone()).or_default();
            entry.0 += 1;
            entry.1 += end - start;
        }
        by_name
    }

    /// Bytes the server wrote in the window: through syscalls, and to storage.
    pub fn written(&self) -> Option<(f64, f64)> {
        let (a, b) = (self.start.written?, self.end.written?);
        Some((b.0.saturating_sub(a.0) as f64, b.1.saturating_sub(a.1) as f64))
    }

    pub fn events(&self) -> Option<f64> {
        self.delta(|e| e.position.map(|p| p as f64))
    }

    /// The writer's batches in the window: per bucket, and the mean size.
    pub fn batches(&self) -> Option<BatchesInWindow> {
        Some(self.start.batches.as_ref()?.since(self.end.batches.as_ref()?))
    }
}

#[derive(Clone, Copy)]
struct Clock {
    record_from: Instant,
    deadline: Instant,
    timeout: Duration,
    http2: bool,
    raw: bool,
}

/// What a run drives: one or more server processes (the nodes of one deployment), and the
/// database server's parent process if there is one.
pub struct Servers {
    /// Connection `c` goes to `addrs[c % addrs.len()]`: round-robin over the nodes.
    pub addrs: Vec<SocketAddr>,
    pub pids: Vec<u32>,
    /// PostgreSQL's postmaster, whose children's CPU is counted as the database's.
    pub database_pid: Option<u32>,
}

/// Drives `conns` against `addr` on a current-thread runtime and measures the window.
pub fn run(
    addr: SocketAddr,
    server_pid: u32,
    plan: Plan,
    conns: Vec<Box<dyn Conn>>,
    probes: Vec<Box<dyn Probe>>,
) -> Result<Outcome, BenchError> {
    let servers = Servers { addrs: vec![addr], pids: vec![server_pid], database_pid: None };
    run_spread(&servers, plan, conns, probes)
}

/// `run` over several nodes: the connections are spread round-robin over `servers.addrs`, the
/// CPU of all their processes is summed, and probes attach to the first.
pub fn run_spread(
    servers: &Servers,
    plan: Plan,
    conns: Vec<Box<dyn Conn>>,
    mut probes: Vec<Box<dyn Probe>>,
) -> Result<Outcome, BenchError> {
    let (Some(&addr), Some(&server_pid)) = (servers.addrs.first(), servers.pids.first()) else {
        return Err(BenchError::Unexpected("no server to drive"));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchError::io("cannot start the load generator", source))?;
    runtime.block_on(async move {
        let mut health = connect(addr).await?;
        let began = Instant::now();
        let clock = Clock {
            record_from: began + plan.warmup,
            deadline: began + plan.warmup + plan.measure,
            timeout: plan.request_timeout,
            http2: plan.http2,
            raw: !plan.http2 && plan.client == Client::Raw,
        };
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let addr = servers.addrs[i % servers.addrs.len()];
                let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a header");
                tokio::spawn(drive(addr, host, c, clock))
            })
            .collect();
        tokio::time::sleep_until(clock.record_from.into()).await;
        let start = edge(&mut health, servers).await;
        probes.iter_mut().for_each(|p| p.start(server_pid));
        tokio::time::sleep_until(clock.deadline.into()).await;
        let end = edge(&mut health, servers).await;
        let probes = probes.iter_mut().filter_map(|p| p.stop()).collect();
        let mut outcome = Outcome {
            kinds: BTreeMap::new(),
            window: clock.deadline - clock.record_from,
            transport_errors: 0,
            timeouts: 0,
            exhausted: 0,
            start,
            end,
            probes,
        };
        for task in tasks {
            let r = task.await.map_err(|_| BenchError::Unexpected("a connection panicked"))?;
            for (kind, s) in &r.kinds {
                outcome.kinds.entry(*kind).or_insert_with(KindStats::new).merge(s);
            }
            outcome.transport_errors += r.transport_errors;
            outcome.timeouts += r.timeouts;
            outcome.exhausted += usize::from(r.exhausted);
        }
        Ok(outcome)
    })
}

async fn edge(health: &mut SendRequest<Empty<Bytes>>, servers: &Servers) -> Edge {
    let pids = &servers.pids;
    let written: Option<Vec<(u64, u64)>> = pids.iter().map(|p| procfs::written_bytes(*p)).collect();
    Edge {
        batches: batches(health).await,
        position: position(health).await,
        server_cpu: pids.iter().map(|p| procfs::cpu_seconds(*p)).sum(),
        database_cpu: servers.database_pid.map(procfs::family_cpu).unwrap_or_default(),
        own_cpu: procfs::own_cpu_seconds(),
        machine_busy: procfs::machine_busy_seconds(),
        threads: pids.iter().flat_map(|p| procfs::threads_cpu(*p)).collect(),
        written: written.map(|w| w.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))),
    }
}

/// The views' checkpoint from `GET /health` (the last event's position); `None` for a server
/// without it (the bare axum one).
async fn position(health: &mut SendRequest<Empty<Bytes>>) -> Option<i64> {
    health.ready().await.ok()?;
    let req = Request::get("/health").header(HOST, "127.0.0.1").body(Empty::new()).ok()?;
    let resp = health.send_request(req).await.ok()?;
    let ok = resp.status().is_success();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    if !ok {
        return None;
    }
    let text = std::str::from_utf8(&body).ok()?;
    let at = text.find("\"position\":")? + "\"position\":".len();
    let digits: String = text[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The writer's batch-size histogram from `GET /metrics` (as the bench's super admin); `None`
/// for a server without it.
async fn batches(health: &mut SendRequest<Empty<Bytes>>) -> Option<Batches> {
    health.ready().await.ok()?;
    let req = Request::get("/metrics")
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, crate::deployment::super_admin())
        .body(Empty::new())
        .ok()?;
    let resp = health.send_request(req).await.ok()?;
    let ok = resp.status().is_success();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Batches::parse(std::str::from_utf8(&body).ok().filter(|_| ok)?)
}

pub(crate) async fn connect<B>(addr: SocketAddr) -> Result<SendRequest<B>, BenchError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.map_err(|source| BenchError::io("cannot connect", source))?;
    stream.set_nodelay(true).map_err(|source| BenchError::io("cannot set TCP_NODELAY", source))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(BenchError::Http)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A load connection of either protocol, or the hand-written HTTP/1.1 client.
enum Sender {
    H1(SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
    Raw(RawConn),
}

impl Sender {
    async fn open(addr: SocketAddr, clock: &Clock) -> Result<Self, BenchError> {
        if clock.raw {
            return Ok(Self::Raw(RawConn::open(addr).await?));
        }
        if !clock.http2 {
            return Ok(Self::H1(connect(addr).await?));
        }
        let stream =
            TcpStream::connect(addr).await.map_err(|source| BenchError::io("cannot connect", source))?;
        stream.set_nodelay(true).map_err(|source| BenchError::io("cannot set TCP_NODELAY", source))?;
        let (sender, connection) =
            http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.map_err(BenchError::Http)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self::H2(sender))
    }

    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), hyper::Error> {
        let resp = match self {
            Self::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Self::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Self::Raw(_) => unreachable!("raw connections exchange through RawConn::exchange"),
        };
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

#[derive(Default)]
struct ConnResult {
    kinds: BTreeMap<Kind, KindStats>,
    transport_errors: u64,
    timeouts: u64,
    exhausted: bool,
}

enum Sent {
    Answered(StatusCode, Bytes),
    Failed,
    TimedOut,
}

async fn drive(addr: SocketAddr, host: HeaderValue, mut conn: Box<dyn Conn>, clock: Clock) -> ConnResult {
    let mut result = ConnResult::default();
    let mut reconnects = 0;
    'connection: while Instant::now() < clock.deadline && reconnects <= MAX_RECONNECTS {
        let mut sender = match Sender::open(addr, &clock).await {
            Ok(s) => s,
            Err(_) => {
                result.transport_errors += 1;
                reconnects += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        loop {
            let started = Instant::now();
            if started >= clock.deadline {
                break 'connection;
            }
            let Some(planned) = conn.next() else {
                result.exhausted = true;
                break 'connection;
            };
            let kind = planned.kind;
            let sent = send(&mut sender, &host, planned, clock).await;
            let latency = started.elapsed().as_micros() as u64;
            let counted = started >= clock.record_from;
            let (status, body) = match sent {
                Sent::Answered(status, body) => (status, body),
                Sent::Failed | Sent::TimedOut => {
                    if counted {
                        match sent {
                            Sent::TimedOut => result.timeouts += 1,
                            _ => result.transport_errors += 1,
                        }
                    }
                    reconnects += 1;
                    continue 'connection;
                }
            };
            let check = conn.answered(kind, status, &body);
            if counted {
                let stats = result.kinds.entry(kind).or_insert_with(KindStats::new);
                let _ = stats.latency_us.record(latency.clamp(1, MAX_LATENCY_US));
                if !status.is_success() {
                    *stats.statuses.entry(status.as_u16()).or_default() += 1;
                } else if let Check::Unexpected(what) = check {
                    *stats.unexpected.entry(what).or_default() += 1;
                } else {
                    stats.ok += 1;
                }
            }
        }
    }
    result
}

async fn send(sender: &mut Sender, host: &HeaderValue, planned: Planned, clock: Clock) -> Sent {
    if let Sender::Raw(raw) = sender {
        let request = wire::request(host.to_str().unwrap_or("127.0.0.1"), &planned);
        return match tokio::time::timeout(clock.timeout, raw.exchange(&request)).await {
            Ok(Ok((status, body))) => Sent::Answered(status, body),
            Ok(Err(_)) => Sent::Failed,
            Err(_) => Sent::TimedOut,
        };
    }
    // HTTP/2 carries the scheme and authority as pseudo-headers: it needs an absolute URI.
    let uri = if clock.http2 {
        format!("http://{}{}", host.to_str().unwrap_or("127.0.0.1"), planned.path)
    } else {
        planned.path.to_owned()
    };
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(HOST, host)
        .header(AUTHORIZATION, planned.auth)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"))
        .body(Full::new(planned.body))
        .expect("a valid request");
    match tokio::time::timeout(clock.timeout, sender.exchange(req)).await {
        Ok(Ok((status, body))) => Sent::Answered(status, body),
        Ok(Err(_)) => Sent::Failed,
        Err(_) => Sent::TimedOut,
    }
}

/// A keep-alive HTTP/1.1 connection without a client library: the request is one write, the
/// answer is read until its `Content-Length` is in.
struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    async fn open(addr: SocketAddr) -> Result<Self, BenchError> {
        let stream =
            TcpStream::connect(addr).await.map_err(|source| BenchError::io("cannot connect", source))?;
        stream.set_nodelay(true).map_err(|source| BenchError::io("cannot set TCP_NODELAY", source))?;
        Ok(Self { stream, buf: Vec::with_capacity(2048) })
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(StatusCode, Bytes)> {
        let mut written = 0;
        while written < request.len() {
            self.stream.writable().await?;
            match self.stream.try_write(&request[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            match wire::head(&self.buf) {
                Ok(h) if self.buf.len() >= h.head_len + h.body_len => {
                    let body = Bytes::copy_from_slice(&self.buf[h.head_len..h.head_len + h.body_len]);
                    return Ok((h.status, body));
                }
                Ok(_) | Err(wire::Unframed::Incomplete) => {}
                Err(wire::Unframed::Malformed) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a malformed answer"));
                }
            }
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod batch_tests {
    use super::Batches;

    const START: &str = "# TYPE ledger_writer_batch_size histogram\n\
        ledger_writer_batch_size_sum 30.0\nledger_writer_batch_size_count 10\n\
        ledger_writer_batch_size_bucket{le=\"1.0\"} 5\nledger_writer_batch_size_bucket{le=\"2.0\"} 6\n\
        ledger_writer_batch_size_bucket{le=\"4.0\"} 10\nledger_writer_batch_size_bucket{le=\"+Inf\"} 10\n\
        ledger_writer_commit_seconds_sum 0.5\n";
    const END: &str = "ledger_writer_batch_size_sum 130.0\nledger_writer_batch_size_count 15\n\
        ledger_writer_batch_size_bucket{le=\"1.0\"} 6\nledger_writer_batch_size_bucket{le=\"2.0\"} 7\n\
        ledger_writer_batch_size_bucket{le=\"4.0\"} 11\nledger_writer_batch_size_bucket{le=\"+Inf\"} 15\n";

    #[test]
    fn the_window_s_batches_are_the_histogram_s_growth_per_bucket() {
        let (start, end) = (Batches::parse(START).unwrap(), Batches::parse(END).unwrap());
        assert_eq!(start.count, 10);
        assert_eq!(start.buckets.len(), 4);
        let (per_bucket, mean) = start.since(&end);
        let counts: Vec<u64> = per_bucket.iter().map(|b| b.1).collect();
        assert_eq!(counts, [1, 0, 0, 4]);
        assert_eq!(mean, Some(20.0));
        assert!(Batches::parse("ledger_http_requests_total 3\n").is_none());
    }
}
