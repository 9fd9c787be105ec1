//! The scenarios of issue 5: each sets up a fresh deployment of the real server, drives it,
//! and stops it.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::ValueEnum;

use crate::child::Running;
use crate::deployment::{free_port, super_admin, Credentials, Deployment, Flags, ServerRun};
use crate::load::{self, Conn, Plan, Probe};
use crate::populate::{Format, Population, TokenList};
use crate::probes::{Callgrind, PerfRecord, Syncs};
use crate::report::{self, Figures};
use crate::workloads::{
    Bare, Expect, Introspect, Mixed, NewKeys, Revoke, RevokeQueue, Rng, Rotation, SameKey,
};
use crate::{bare, procfs, BenchError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// client_credentials, a new key (scope) per request: one TokenIssued each.
    CcNew,
    /// renew_access_token_per_request = true, one key per connection: a revoke and an issue each.
    CcRenew,
    /// Renewal off, one key per connection: the same token handed back (a TokenReturned each).
    CcSame,
    /// The password grant as admin/admin: one argon2id verification each.
    Password,
    /// Refresh-token rotation, one chain per connection.
    Refresh,
    /// Opaque-token introspection of random tokens among --tokens active ones.
    Introspect,
    /// JWT introspection (ES256, RFC 9068) among --jwt-tokens active JWTs.
    IntrospectJwt,
    /// RFC 7009 revocation of live tokens, each once.
    Revoke,
    /// 80% introspect, 15% issue (new key), 5% revoke.
    Mixed,
    /// Offline: start-up over the populated log and resident memory.
    Startup,
    /// Every scenario above, in this order.
    All,
    /// cc-new, cc-renew, introspect and mixed on one node on SQLite, one node on PostgreSQL and
    /// several nodes on one PostgreSQL database (and `--before-bin` on SQLite), interleaved
    /// rounds in one run (issue 13). Not part of `all`.
    Nodes,
    /// Instructions per request under callgrind, one keep-alive connection (`--scenario`,
    /// `--requests`). Not part of `all`.
    Callgrind,
    /// Two server binaries (`--before-bin` and this one) on the same scenarios, interleaved
    /// rounds with bare axum in each (`--rounds`, `--scenarios`). Not part of `all`.
    Compare,
    /// Only the population (in this process: for profiling the write path without HTTP).
    #[value(hide = true)]
    Populate,
    /// The baseline server (internal: run by the harness as a child process).
    #[value(hide = true)]
    BareAxum,
}

impl Scenario {
    pub const EVERY: [Scenario; 10] = [
        Self::CcNew,
        Self::CcRenew,
        Self::CcSame,
        Self::Password,
        Self::Refresh,
        Self::Introspect,
        Self::IntrospectJwt,
        Self::Revoke,
        Self::Mixed,
        Self::Startup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CcNew => "cc-new",
            Self::CcRenew => "cc-renew",
            Self::CcSame => "cc-same",
            Self::Password => "password",
            Self::Refresh => "refresh",
            Self::Introspect => "introspect",
            Self::IntrospectJwt => "introspect-jwt",
            Self::Revoke => "revoke",
            Self::Mixed => "mixed",
            Self::Startup => "startup",
            Self::All => "all",
            Self::Nodes => "nodes",
            Self::Callgrind => "callgrind",
            Self::Compare => "compare",
            Self::Populate => "populate",
            Self::BareAxum => "bare-axum",
        }
    }
}

/// Everything the scenarios share.
pub struct Bench {
    pub connections: usize,
    pub plan: Plan,
    pub tokens: usize,
    pub jwt_tokens: usize,
    pub cache: Option<std::path::PathBuf>,
    pub syncs: bool,
    /// Zero and dump callgrind's counters around the window.
    pub callgrind: bool,
    /// `perf record` the server during the window into this file (per scenario: `FILE.NAME`).
    pub perf_record: Option<std::path::PathBuf>,
    /// `introspect` without its HTTP/2 measurement.
    pub skip_h2: bool,
    pub server: ServerRun,
    pub baseline: Option<f64>,
    /// Make populations through the server binary's own HTTP API (`compare`: each binary
    /// measured on a database of its own schema) instead of through this library.
    pub http_population: bool,
    population: Option<Population>,
    jwt_population: Option<Population>,
    pub results: Vec<Figures>,
}

/// A binary's populations (opaque, JWT), kept apart from another binary's by `compare`.
#[derive(Default)]
pub struct Populations(Option<Population>, Option<Population>);

type Conns = Vec<Box<dyn Conn>>;

impl Bench {
    pub fn new(
        connections: usize,
        plan: Plan,
        tokens: usize,
        jwt_tokens: usize,
        server: ServerRun,
        cache: Option<std::path::PathBuf>,
        syncs: bool,
    ) -> Self {
        Self {
            connections,
            plan,
            tokens,
            jwt_tokens,
            cache,
            syncs,
            callgrind: false,
            perf_record: None,
            skip_h2: false,
            server,
            baseline: None,
            http_population: false,
            jwt_population: None,
            population: None,
            results: Vec::new(),
        }
    }

    /// Exchanges the populations in use with `other` (those of the binary about to run).
    pub fn swap_populations(&mut self, other: &mut Populations) {
        std::mem::swap(&mut self.population, &mut other.0);
        std::mem::swap(&mut self.jwt_population, &mut other.1);
    }

    fn header(&self, name: &str, what: &str) {
        println!(
            "\n== {name}: {what} · {} connections · {:.0} s measured after {:.1} s warm-up",
            self.connections,
            self.plan.measure.as_secs_f64(),
            self.plan.warmup.as_secs_f64()
        );
    }

    /// Drives a running server and records the scenario's figures.
    fn measure(&mut self, name: &'static str, server: &Running, conns: Conns) -> Result<(), BenchError> {
        let mut probes: Vec<Box<dyn Probe>> = Vec::new();
        if name != "bare-axum" {
            if self.syncs {
                probes.push(Box::new(Syncs::default()));
            }
            if self.callgrind {
                probes.push(Box::new(Callgrind::default()));
            }
            if let Some(file) = &self.perf_record {
                let mut path = file.clone().into_os_string();
                path.push(format!(".{name}"));
                probes.push(Box::new(PerfRecord::new(path.into())));
            }
        }
        let outcome = load::run(server.addr, server.pid(), self.plan, conns, probes)?;
        let memory = procfs::memory(server.pid());
        let figures = Figures::new(name, &outcome, self.baseline, memory);
        report::print(&figures, &outcome, self.baseline);
        self.results.push(figures);
        Ok(())
    }

    /// The bare axum handler, measured first so every scenario has a same-run ratio.
    pub fn baseline(&mut self) -> Result<(), BenchError> {
        self.header("bare-axum", "a trivial axum handler served the same way");
        let server = bare::start()?;
        let conns = (0..self.connections)
            .map(|_| {
                Box::new(Bare {
                    auth: super_admin(),
                    body: Bytes::from_static(b"token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                }) as Box<dyn Conn>
            })
            .collect();
        self.measure("bare-axum", &server, conns)?;
        self.baseline = self.results.last().map(|f| f.throughput);
        Ok(())
    }

    pub fn run(&mut self, scenario: Scenario) -> Result<(), BenchError> {
        match scenario {
            Scenario::CcNew => self.cc_new(),
            Scenario::CcRenew => self.same_key(scenario, true),
            Scenario::CcSame => self.same_key(scenario, false),
            Scenario::Password => self.same_key(scenario, false),
            Scenario::Refresh => self.refresh(),
            Scenario::Introspect => self.introspect(),
            Scenario::IntrospectJwt => self.introspect_jwt(),
            Scenario::Revoke => self.revoke(),
            Scenario::Mixed => self.mixed(),
            Scenario::Startup => self.startup(),
            Scenario::All => Scenario::EVERY.iter().try_for_each(|s| self.run(*s)),
            Scenario::Nodes => Err(BenchError::Unexpected("`nodes` runs through crate::nodes, not a Bench")),
            Scenario::Callgrind => Err(BenchError::Unexpected("`callgrind` runs through crate::callgrind")),
            Scenario::Compare => Err(BenchError::Unexpected("`compare` runs through crate::compare")),
            Scenario::Populate => self.population(false).map(|_| ()),
            Scenario::BareAxum => bare::serve(),
        }
    }

    fn cc_new(&mut self) -> Result<(), BenchError> {
        self.header("cc-new", "client_credentials, a new key per request (renewal off)");
        let d = Deployment::new(Flags::default())?;
        let client = d.register_client(&self.server.binary, "bench")?;
        let server = d.start(&self.server)?;
        let conns = (0..self.connections)
            .map(|c| Box::new(NewKeys { auth: client.basic(), connection: c, sent: 0 }) as Box<dyn Conn>)
            .collect();
        self.finish("cc-new", &d, server, conns)
    }

    /// `cc-renew`, `cc-same` and `password`: the same request for one key per connection.
    fn same_key(&mut self, scenario: Scenario, renew: bool) -> Result<(), BenchError> {
        let password = scenario == Scenario::Password;
        let what = match (password, renew) {
            (true, _) => {
                "password grant as admin/admin: argon2id m=19456 KiB, t=2, p=1 per request (renewal off)"
            }
            (false, true) => "client_credentials, renewal on: a revoke and an issue per request",
            (false, false) => "client_credentials, renewal off: the same token handed back",
        };
        self.header(scenario.name(), what);
        let d = Deployment::new(Flags { renew, ..Flags::default() })?;
        let client = d.register_client(&self.server.binary, "bench")?;
        let server = d.start(&self.server)?;
        let conns = (0..self.connections)
            .map(|c| {
                let body = if password {
                    format!("grant_type=password&username=admin&password=admin&scope=openid+k{c}")
                } else {
                    format!("grant_type=client_credentials&scope=k{c}")
                };
                Box::new(SameKey {
                    auth: client.basic(),
                    body: Bytes::from(body),
                    expect: if renew { Expect::New } else { Expect::Same },
                    last: None,
                }) as Box<dyn Conn>
            })
            .collect();
        self.finish(scenario.name(), &d, server, conns)
    }

    fn refresh(&mut self) -> Result<(), BenchError> {
        self.header("refresh", "refresh_token rotation, one chain per connection");
        let d = Deployment::new(Flags { cc_refresh: true, ..Flags::default() })?;
        let client = d.register_client(&self.server.binary, "bench")?;
        let server = d.start(&self.server)?;
        let conns = (0..self.connections)
            .map(|c| {
                Box::new(Rotation { auth: client.basic(), connection: c, refresh: None, broken: false })
                    as Box<dyn Conn>
            })
            .collect();
        self.finish("refresh", &d, server, conns)
    }

    fn finish(
        &mut self,
        name: &'static str,
        d: &Deployment,
        server: Running,
        conns: Conns,
    ) -> Result<(), BenchError> {
        self.measure(name, &server, conns)?;
        self.finish_running(d, server)
    }

    /// Stops a measured server and reports its files.
    fn finish_running(&mut self, d: &Deployment, mut server: Running) -> Result<(), BenchError> {
        server.stop();
        let log = std::fs::metadata(d.log_file()).map_or(0, |m| m.len());
        let db = crate::deployment::database_bytes(&d.database());
        println!(
            "  files          server log {:.1} MB · database {:.1} MB",
            log as f64 / 1e6,
            db as f64 / 1e6
        );
        Ok(())
    }

    /// The populated database of a format, made once per run (or loaded from `--cache`).
    fn population(&mut self, jwt: bool) -> Result<&Population, BenchError> {
        let slot = if jwt { &mut self.jwt_population } else { &mut self.population };
        if slot.is_none() {
            let (format, count) = if jwt {
                (Format::Jwt { port: free_port()? }, self.jwt_tokens)
            } else {
                (Format::Opaque, self.tokens)
            };
            let what = if jwt { "JWT (ES256)" } else { "opaque" };
            let p = if self.http_population {
                println!(
                    "\n== population: {count} active {what} tokens through {}'s HTTP API",
                    self.server.binary.display()
                );
                Population::through_http(format, count, &self.server)?
            } else {
                println!(
                    "\n== population: {count} active {what} tokens through Ledger::execute_batch (batches of 256)"
                );
                Population::make(format, count, self.cache.as_deref())?
            };
            let rate = p.events as f64 / p.took.as_secs_f64().max(1e-9);
            let reused = if p.reused { " (from --cache)" } else { "" };
            println!("  took           {:.1} s · {rate:.0} events/s{reused}", p.took.as_secs_f64());
            println!(
                "  database       {:.1} MB for {} events · {:.0} bytes/event (log and views)",
                p.database_bytes as f64 / 1e6,
                p.events,
                p.bytes_per_event()
            );
            *slot = Some(p);
        }
        Ok(slot.as_ref().expect("just made"))
    }

    /// A deployment holding a copy of a population.
    fn populated(&mut self, jwt: bool) -> Result<(Deployment, Arc<TokenList>, Credentials), BenchError> {
        let p = self.population(jwt)?;
        let (tokens, client, data) = (p.tokens.clone(), p.client.clone(), p.data_dir.clone());
        let d = Deployment::new(p.format.flags())?;
        d.install_data(&data)?;
        Ok((d, tokens, client))
    }

    fn introspect_jwt(&mut self) -> Result<(), BenchError> {
        let (d, tokens, _) = self.populated(true)?;
        self.header(
            "introspect-jwt",
            &format!("ES256 JWTs (RFC 9068), as the super admin, random among {} active ones", tokens.len()),
        );
        let server = d.start(&self.server)?;
        let conns = self.introspectors(&tokens, tokens.len());
        self.finish("introspect-jwt", &d, server, conns)
    }

    fn introspectors(&self, tokens: &Arc<TokenList>, live: usize) -> Conns {
        (0..self.connections)
            .map(|c| {
                Box::new(Introspect {
                    auth: super_admin(),
                    live,
                    tokens: tokens.clone(),
                    rng: Rng::new(c as u64 + 1),
                }) as Box<dyn Conn>
            })
            .collect()
    }

    /// Introspection over HTTP/1.1, then over HTTP/2 (h2c, same connections) on the same server.
    fn introspect(&mut self) -> Result<(), BenchError> {
        let (d, tokens, _) = self.populated(false)?;
        self.header(
            "introspect",
            &format!("opaque, as the super admin, random among {} active tokens", tokens.len()),
        );
        let server = d.start(&self.server)?;
        let conns = |seed: u64| -> Conns {
            (0..self.connections)
                .map(|c| {
                    Box::new(Introspect {
                        auth: super_admin(),
                        live: tokens.len(),
                        tokens: tokens.clone(),
                        rng: Rng::new(seed + c as u64),
                    }) as Box<dyn Conn>
                })
                .collect()
        };
        let (http1, http2) = (conns(1), conns(1_000_001));
        self.measure("introspect", &server, http1)?;
        if self.skip_h2 {
            return self.finish_running(&d, server);
        }
        self.header(
            "introspect-h2",
            "the same over cleartext HTTP/2 (prior knowledge), one stream per connection",
        );
        self.plan.http2 = true;
        let measured = self.measure("introspect-h2", &server, http2);
        self.plan.http2 = false;
        measured?;
        self.finish_running(&d, server)
    }

    fn revoke(&mut self) -> Result<(), BenchError> {
        let (d, tokens, client) = self.populated(false)?;
        self.header("revoke", "RFC 7009 by the owning client, each live token once");
        let server = d.start(&self.server)?;
        let queue = Arc::new(RevokeQueue { end: tokens.len(), tokens, next: AtomicUsize::new(0) });
        let conns = (0..self.connections)
            .map(|_| Box::new(Revoke { auth: client.basic(), queue: queue.clone() }) as Box<dyn Conn>)
            .collect();
        self.finish("revoke", &d, server, conns)
    }

    fn mixed(&mut self) -> Result<(), BenchError> {
        let (d, tokens, client) = self.populated(false)?;
        self.header("mixed", "80% introspect, 15% issue (new key), 5% revoke");
        let server = d.start(&self.server)?;
        // The last fifth is revoked, never introspected, so every introspection should say active.
        let live = tokens.len() - tokens.len() / 5;
        let queue =
            Arc::new(RevokeQueue { end: tokens.len(), tokens: tokens.clone(), next: AtomicUsize::new(live) });
        let conns = (0..self.connections)
            .map(|c| {
                Box::new(Mixed {
                    introspect: Introspect {
                        auth: super_admin(),
                        live,
                        tokens: tokens.clone(),
                        rng: Rng::new(c as u64 + 1),
                    },
                    issue: NewKeys { auth: client.basic(), connection: c, sent: 0 },
                    revoke: Revoke { auth: client.basic(), queue: queue.clone() },
                }) as Box<dyn Conn>
            })
            .collect();
        self.finish("mixed", &d, server, conns)
    }

    /// Start-up over the populated log (checkpoint up to date, warm page cache), three times:
    /// spawn → `listening on`, spawn → first introspection answered `active:true`, and RSS.
    fn startup(&mut self) -> Result<(), BenchError> {
        let (d, tokens, _) = self.populated(false)?;
        println!(
            "\n== startup: server start-up over the populated log (checkpoint up to date, warm page cache)"
        );
        let first = tokens.get(0).to_vec();
        for attempt in 1..=3 {
            let mut server = d.start(&self.server)?;
            let answered = first_answer(server.addr, &first, server.spawned_at)?;
            let memory = procfs::memory(server.pid());
            server.stop();
            println!(
                "  start {attempt}        listening after {:.0} ms · first answer after {:.0} ms · RSS {:.1} MB",
                server.announced_after.as_secs_f64() * 1e3,
                answered.as_secs_f64() * 1e3,
                memory.map_or(0.0, |m| m.rss as f64 / 1e6)
            );
        }
        Ok(())
    }
}

/// Polls with one introspection until it is answered `active:true`; the time since `since`.
fn first_answer(addr: SocketAddr, token: &[u8], since: Instant) -> Result<Duration, BenchError> {
    let deadline = since + Duration::from_secs(60);
    while Instant::now() < deadline {
        if crate::oneshot::introspect_active(addr, token)? {
            return Ok(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(BenchError::Unexpected("no active introspection within 60 s of start"))
}
