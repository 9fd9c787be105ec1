//! A throwaway PostgreSQL cluster for the benchmarks: `initdb` into a temporary folder (as
//! `nobody` when the bench runs as root, since PostgreSQL refuses to run as root), listening only
//! on a Unix socket in that folder, stopped and removed when dropped or, if the bench dies, by a
//! watchdog process.
//!
//! The same approach as the tests' `tests/support/pg_cluster.rs`, with one difference that
//! matters for figures: the tests run PostgreSQL with `fsync=off` for speed, while here every
//! commit is flushed (`fsync=on`, `synchronous_commit=on`, PostgreSQL's defaults), as SQLite's
//! `synchronous = FULL` flushes its WAL: the two backends are measured at the same durability.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::BenchError;

/// The superuser `initdb` creates; the cluster trusts local socket connections.
const SUPERUSER: &str = "ledger";
const PORT: u16 = 5432;

/// A running cluster.
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
}

/// The folder of `initdb`, `pg_ctl` and `postgres` (Debian keeps them off the PATH).
fn server_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates.into_iter().rev().find(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn failed(command: &str, stderr: String) -> BenchError {
    BenchError::Command { command: command.to_owned(), stderr }
}

impl PgCluster {
    /// Starts a cluster, or `Ok(None)` when PostgreSQL's server programs are not installed.
    pub fn start() -> Result<Option<Self>, BenchError> {
        let Some(bin) = server_bin() else { return Ok(None) };
        let dir = std::env::temp_dir().join(format!("ledger-bench-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|source| BenchError::io("cannot create the PG folder", source))?;
        let run_as = is_root().then(|| "nobody".to_owned());
        if let Some(user) = &run_as {
            let ok = Command::new("chown").arg(user).arg(&dir).status().is_ok_and(|s| s.success());
            if !ok {
                return Err(failed("chown", format!("cannot hand {} to {user}", dir.display())));
            }
        }
        let cluster = Self { dir, bin, run_as };
        cluster.watchdog()?;
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])?;
        let options = format!(
            "-k {} -p {PORT} -c listen_addresses='' -c fsync=on -c synchronous_commit=on -c max_connections=200",
            cluster.dir.display()
        );
        let log = cluster.dir.join("postgres.log").display().to_string();
        cluster.run("pg_ctl", &["-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start"])?;
        Ok(Some(cluster))
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs a server program as the cluster's user.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), BenchError> {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| BenchError::io("cannot run a PostgreSQL program", source))?;
        if !out.status.success() {
            let text =
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return Err(failed(program, text.trim().to_owned()));
        }
        Ok(())
    }

    /// A shell process that waits for this process to end, then stops the cluster and removes
    /// its folder (the bench may be interrupted).
    fn watchdog(&self) -> Result<(), BenchError> {
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let stop = match &self.run_as {
            Some(user) => format!("runuser -u {user} -- {pg_ctl}"),
            None => pg_ctl,
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            data = self.data(),
            dir = self.dir.display(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|source| BenchError::io("cannot start the cluster's watchdog", source))
    }

    /// The key=value connection string of a database on this cluster.
    pub fn url(&self, dbname: &str) -> String {
        format!("host={} port={PORT} user={SUPERUSER} dbname={dbname}", self.dir.display())
    }

    fn admin(&self, statement: &str) -> Result<(), BenchError> {
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| failed("connect to the bench cluster", e.to_string()))?;
        client.batch_execute(statement).map_err(|e| failed(statement, e.to_string()))
    }

    /// Creates database `name`, empty or as a copy of `template` (a file copy: fast).
    pub fn create_database(&self, name: &str, template: Option<&str>) -> Result<String, BenchError> {
        let statement = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        self.admin(&statement)?;
        Ok(self.url(name))
    }

    /// Drops database `name` once its nodes are gone.
    pub fn drop_database(&self, name: &str) -> Result<(), BenchError> {
        self.admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    }

    /// The postmaster's process id (its children are the backends and helpers).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
