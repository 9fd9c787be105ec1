//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary folder (as `nobody` when
//! the tests run as root, since PostgreSQL refuses to run as root), listening only on a Unix
//! socket in that folder, one database per test. A watchdog process stops the cluster and
//! removes the folder once the test process is gone, however it ends.
//!
//! Shared by the storage conformance suite (`src/store/conformance.rs`) and the HTTP suite
//! (`tests/api/helpers`), each including this file with `#[path]`.
//!
//! Under `CI=true` a missing PostgreSQL fails the test; elsewhere `cluster()` returns `None`
//! after printing why, and the caller skips.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// A running cluster.
pub struct PgCluster {
    /// The temporary folder: `data/` (the cluster) and the socket.
    pub dir: PathBuf,
    bin: PathBuf,
    /// `Some("nobody")` when the server programs must run as another user.
    run_as: Option<String>,
}

/// The superuser `initdb` creates; the cluster trusts local socket connections.
pub const SUPERUSER: &str = "ledger";
const PORT: u16 = 5432;

static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);
static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// A cluster of the calling test's own, for tests that stop and start the database; `None` as
/// for `cluster()`. Stopped and removed when dropped (or by its watchdog).
pub fn own_cluster() -> Option<PgCluster> {
    cluster()?;
    match PgCluster::start() {
        Ok(c) => Some(c),
        Err(why) => panic!("a second PostgreSQL cluster did not start: {why}"),
    }
}

/// The process's cluster, started on first use; `None` (after saying why) when PostgreSQL is
/// missing and not required. Panics under `CI=true` when it cannot start.
pub fn cluster() -> Option<&'static PgCluster> {
    match CLUSTER.get_or_init(PgCluster::start) {
        Ok(c) => Some(c),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL is required under CI=true: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: the PostgreSQL tests need PostgreSQL 15+ server programs: {why}");
            None
        }
    }
}

/// The folder of `initdb`, `pg_ctl` and `postgres`: Debian keeps them off the PATH.
fn server_bin() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    candidates
        .into_iter()
        .rev()
        .find(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
        .ok_or_else(|| "no initdb/pg_ctl under /usr/lib/postgresql/*/bin or `pg_config --bindir`".into())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PgCluster {
    fn start() -> Result<Self, String> {
        let bin = server_bin()?;
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ledger-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let run_as = is_root().then(|| "nobody".to_owned());
        if let Some(user) = &run_as {
            let status = Command::new("chown").arg(user).arg(&dir).status();
            if !status.is_ok_and(|s| s.success()) {
                return Err(format!("cannot hand {} to {user}", dir.display()));
            }
        }
        let cluster = Self { dir, bin, run_as };
        cluster.watchdog()?;
        let data = cluster.data();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs a server program as the cluster's user.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
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
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), String> {
        let socket = self.dir.display().to_string();
        let options = format!(
            "-k {socket} -p {PORT} -c listen_addresses='' -c fsync=off -c synchronous_commit=on -c max_connections=200"
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-t", "30", "-o", &options, "start"])
    }

    /// Stops the server (fast shutdown: connections are cut, as in a crash of the database).
    pub fn stop_server(&self) -> Result<(), String> {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
    }

    /// A shell process that waits for this test process to end, then stops the cluster and
    /// removes its folder.
    fn watchdog(&self) -> Result<(), String> {
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
            .map_err(|e| format!("cannot start the cluster's watchdog: {e}"))
    }

    /// The key=value connection string of a database on this cluster.
    pub fn url(&self, dbname: &str) -> String {
        format!("host={} port={PORT} user={SUPERUSER} dbname={dbname}", self.dir.display())
    }

    /// The URL form of the same connection (the socket folder percent-encoded as the host).
    pub fn postgres_url(&self, dbname: &str) -> String {
        let host: String = self.dir.display().to_string().replace('/', "%2F");
        format!("postgres://{SUPERUSER}@{host}:{PORT}/{dbname}")
    }

    /// Creates an empty database and returns its key=value connection string. Runs on a thread
    /// of its own: the blocking client may not run inside an async test's runtime.
    pub fn create_database(&self) -> String {
        let name = format!("t{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
        let admin_url = self.url("postgres");
        let statement = format!("CREATE DATABASE {name}");
        std::thread::spawn(move || {
            let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("cannot reach the test cluster: {e}"));
            admin.batch_execute(&statement).expect("create a test database");
        })
        .join()
        .expect("the database creation thread");
        self.url(&name)
    }

    /// Drops a database that `create_database` made, cutting its connections (best effort: a
    /// database left behind goes with the cluster).
    pub fn drop_database(&self, url: &str) {
        let Some(name) = url.split_whitespace().find_map(|kv| kv.strip_prefix("dbname=")) else { return };
        let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let admin_url = self.url("postgres");
        let _ = std::thread::spawn(move || {
            if let Ok(mut admin) = postgres::Client::connect(&admin_url, postgres::NoTls) {
                let _ = admin.batch_execute(&statement);
            }
        })
        .join();
    }

    /// The folder of the socket, for tests that need it.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
