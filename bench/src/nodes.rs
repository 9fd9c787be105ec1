//! `ledger-bench nodes`: one node on SQLite, one node on PostgreSQL and N nodes on one PostgreSQL
//! database (issue 13), optionally with an older server binary on SQLite beside them, measured
//! in ONE run: rounds of every workload on every target, interleaved, so that the machine's
//! noise falls on all of them alike; the report takes each cell's best round.
//!
//! PostgreSQL is a throwaway cluster of the bench's own (`pg.rs`). Populations are made through
//! each target's own HTTP API once per run (`http_population.rs`) and copied for every
//! measurement: a folder copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::child::Running;
use crate::deployment::{super_admin, Credentials, Deployment, Flags, ServerRun};
use crate::load::{self, Conn, Plan, Probe, Servers};
use crate::lock_hold::{Hold, LockHold, REPORT_EVERY_MS};
use crate::nodes_report::{print_sample, Sample};
use crate::pg::PgCluster;
use crate::populate::TokenList;
use crate::report::Figures;
use crate::workloads::{Expect, Introspect, Mixed, NewKeys, Revoke, RevokeQueue, Rng, SameKey};
use crate::{http_population, BenchError};

/// The workloads compared, in the order each round runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    CcNew,
    CcRenew,
    Introspect,
    Mixed,
}

impl Workload {
    pub const ALL: [Workload; 4] = [Self::CcNew, Self::CcRenew, Self::Introspect, Self::Mixed];

    pub fn name(self) -> &'static str {
        match self {
            Self::CcNew => "cc-new",
            Self::CcRenew => "cc-renew",
            Self::Introspect => "introspect",
            Self::Mixed => "mixed",
        }
    }

    fn populated(self) -> bool {
        matches!(self, Self::Introspect | Self::Mixed)
    }
}

/// Where a target keeps its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    /// `nodes` servers on one PostgreSQL database.
    Postgres {
        nodes: usize,
    },
}

/// A server binary on a store.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    pub binary: PathBuf,
    pub store: Store,
}

/// A populated log, made once per run and copied for each measurement.
struct Seed {
    binary: PathBuf,
    postgres: bool,
    /// The deployment it was made in (its data folder holds the keys, and the SQLite file).
    deployment: Deployment,
    /// The PostgreSQL database to copy, for a PostgreSQL seed.
    database: Option<String>,
    client: Credentials,
    tokens: Arc<TokenList>,
}

/// What one measurement needs from its deployment.
struct Started {
    deployment: Deployment,
    nodes: Vec<Running>,
    database: Option<String>,
    client: Credentials,
    tokens: Option<Arc<TokenList>>,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

fn next_database(prefix: &str) -> String {
    format!("{prefix}{}", DATABASES.fetch_add(1, Ordering::Relaxed))
}

/// The whole comparison.
pub struct Comparison {
    pub targets: Vec<Target>,
    pub rounds: usize,
    pub connections: usize,
    pub plan: Plan,
    pub tokens: usize,
    pub server: ServerRun,
    pg: Option<PgCluster>,
    seeds: Vec<Seed>,
    pub samples: Vec<Sample>,
}

impl Comparison {
    /// Starts the PostgreSQL cluster; PostgreSQL targets are dropped (said why) without one.
    pub fn new(
        mut targets: Vec<Target>,
        rounds: usize,
        connections: usize,
        plan: Plan,
        tokens: usize,
        server: ServerRun,
    ) -> Result<Self, BenchError> {
        let pg = if targets.iter().any(|t| t.store != Store::Sqlite) { PgCluster::start()? } else { None };
        if pg.is_none() && targets.iter().any(|t| t.store != Store::Sqlite) {
            eprintln!("SKIPPED: the PostgreSQL targets need PostgreSQL 15+ server programs (initdb, pg_ctl) under /usr/lib/postgresql/*/bin");
            targets.retain(|t| t.store == Store::Sqlite);
        }
        Ok(Self {
            targets,
            rounds,
            connections,
            plan,
            tokens,
            server,
            pg,
            seeds: Vec::new(),
            samples: Vec::new(),
        })
    }

    /// Every round: every workload on every target (the targets' order turns each round).
    pub fn run(&mut self) -> Result<(), BenchError> {
        for round in 1..=self.rounds {
            for workload in Workload::ALL {
                for k in 0..self.targets.len() {
                    let t = (k + round - 1) % self.targets.len();
                    self.measure(round, workload, t)?;
                }
            }
        }
        Ok(())
    }

    fn measure(&mut self, round: usize, workload: Workload, t: usize) -> Result<(), BenchError> {
        let target = self.targets[t].clone();
        let mut started = self.start(&target, workload)?;
        let servers = Servers {
            addrs: started.nodes.iter().map(|n| n.addr).collect(),
            pids: started.nodes.iter().map(|n| n.pid()).collect(),
            database_pid: self
                .pg
                .as_ref()
                .filter(|_| target.store != Store::Sqlite)
                .and_then(PgCluster::postmaster_pid),
        };
        let logs = (0..started.nodes.len()).map(|n| started.deployment.node_log_file(n)).collect();
        let probe = LockHold::new(logs);
        let hold = probe.result.clone();
        let probes: Vec<Box<dyn Probe>> = vec![Box::new(probe)];
        let conns = self.conns(workload, &started);
        let outcome = load::run_spread(&servers, self.plan, conns, probes)?;
        let figures = Figures::new(workload.name(), &outcome, None, None);
        let hold: Option<Hold> = *hold.lock().unwrap_or_else(|p| p.into_inner());
        let sample = Sample {
            round,
            workload,
            target: t,
            figures,
            database_cores: servers
                .database_pid
                .map(|_| outcome.database_cpu() / outcome.window.as_secs_f64()),
            generator_cores: outcome.own_cpu().map(|c| c / outcome.window.as_secs_f64()),
            hold: hold.filter(|h| h.batches > 0),
        };
        print_sample(&sample, &target, &outcome);
        self.samples.push(sample);
        self.stop(&mut started)
    }

    /// A deployment for one measurement: a copy of the target's population for the populated
    /// workloads, else an empty log with a client registered by the CLI; its nodes started.
    fn start(&mut self, target: &Target, workload: Workload) -> Result<Started, BenchError> {
        let flags = Flags { renew: workload == Workload::CcRenew, ..Flags::default() };
        let postgres = target.store != Store::Sqlite;
        let seed = if workload.populated() { Some(self.seed(target)?) } else { None };
        let database = match (postgres, seed) {
            (false, _) => None,
            (true, Some(s)) => Some((next_database("m"), self.seeds[s].database.clone())),
            (true, None) => Some((next_database("m"), None)),
        };
        let url = match &database {
            Some((name, template)) => Some(self.cluster()?.create_database(name, template.as_deref())?),
            None => None,
        };
        let deployment = Deployment::on(flags, url.as_deref())?;
        let (client, tokens) = match seed {
            Some(s) => {
                let seed = &self.seeds[s];
                deployment.install_data(&seed.deployment.data_dir())?;
                (seed.client.clone(), Some(seed.tokens.clone()))
            }
            None => (deployment.register_client(&target.binary, "bench")?, None),
        };
        let nodes = self.start_nodes(&deployment, target)?;
        Ok(Started { deployment, nodes, database: database.map(|d| d.0), client, tokens })
    }

    fn start_nodes(&self, deployment: &Deployment, target: &Target) -> Result<Vec<Running>, BenchError> {
        let count = match target.store {
            Store::Sqlite => 1,
            Store::Postgres { nodes } => nodes,
        };
        let run = ServerRun { binary: target.binary.clone(), ..self.server.clone() };
        // Started one after the other, as an operator would add nodes.
        (0..count)
            .map(|n| deployment.start_node(&run, n, &[("LEDGER_LOCK_STATS_INTERVAL_MS", REPORT_EVERY_MS)]))
            .collect()
    }

    fn stop(&self, started: &mut Started) -> Result<(), BenchError> {
        for node in &mut started.nodes {
            node.stop();
        }
        if let Some(name) = &started.database {
            self.cluster()?.drop_database(name)?;
        }
        Ok(())
    }

    fn cluster(&self) -> Result<&PgCluster, BenchError> {
        self.pg.as_ref().ok_or(BenchError::Unexpected("a PostgreSQL target without a cluster"))
    }

    /// The index of the target's seed (one per binary and backend), made on first use.
    fn seed(&mut self, target: &Target) -> Result<usize, BenchError> {
        let postgres = target.store != Store::Sqlite;
        if let Some(i) = self.seeds.iter().position(|s| s.binary == target.binary && s.postgres == postgres) {
            return Ok(i);
        }
        println!("\n== population: {} tokens through {}'s HTTP API", self.tokens, target.label);
        let database = if postgres { Some(next_database("seed")) } else { None };
        let url = match &database {
            Some(name) => Some(self.cluster()?.create_database(name, None)?),
            None => None,
        };
        let deployment = Deployment::on(Flags::default(), url.as_deref())?;
        let client = deployment.register_client(&target.binary, "bench-population")?;
        let single = Target {
            store: if postgres { Store::Postgres { nodes: 1 } } else { Store::Sqlite },
            ..target.clone()
        };
        let mut nodes = self.start_nodes(&deployment, &single)?;
        let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
        let tokens = http_population::populate(&addrs, &client, self.tokens);
        // A clean stop: SQLite folds its WAL into the file that is copied.
        nodes.iter_mut().for_each(|n| {
            n.stop();
        });
        let tokens = Arc::new(tokens?);
        self.seeds.push(Seed {
            binary: target.binary.clone(),
            postgres,
            deployment,
            database,
            client,
            tokens,
        });
        Ok(self.seeds.len() - 1)
    }

    /// The connections of a workload; `cc-renew` gives each connection a key of its own.
    fn conns(&self, workload: Workload, started: &Started) -> Vec<Box<dyn Conn>> {
        let auth = started.client.basic();
        let tokens = started.tokens.clone().unwrap_or_default();
        // `mixed` revokes the last fifth, never introspected, so every introspection says active.
        let live = tokens.len() - tokens.len() / 5;
        let live = if workload == Workload::Mixed { live } else { tokens.len() };
        let queue =
            Arc::new(RevokeQueue { end: tokens.len(), tokens: tokens.clone(), next: AtomicUsize::new(live) });
        (0..self.connections)
            .map(|c| -> Box<dyn Conn> {
                let introspect = Introspect {
                    auth: super_admin(),
                    live,
                    tokens: tokens.clone(),
                    rng: Rng::new(c as u64 + 1),
                };
                let issue = NewKeys { auth: auth.clone(), connection: c, sent: 0 };
                match workload {
                    Workload::CcNew => Box::new(issue),
                    Workload::CcRenew => Box::new(SameKey {
                        auth: auth.clone(),
                        body: Bytes::from(format!("grant_type=client_credentials&scope=k{c}")),
                        expect: Expect::New,
                        last: None,
                    }),
                    Workload::Introspect => Box::new(introspect),
                    Workload::Mixed => Box::new(Mixed {
                        introspect,
                        issue,
                        revoke: Revoke { auth: auth.clone(), queue: queue.clone() },
                    }),
                }
            })
            .collect()
    }
}
