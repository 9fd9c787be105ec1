//! A temporary deployment of the real server: a folder with its `deployment.toml` and data
//! folder, clients registered through the real CLI, and the server started on port 0.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::HeaderValue;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tempfile::TempDir;

use crate::child::Running;
use crate::BenchError;

/// How the server is configured for a scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// `renew_access_token_per_request`.
    pub renew: bool,
    /// `[oauth.grant_type.client_credentials] allow_refresh_tokens`.
    pub cc_refresh: bool,
    /// JWT access tokens by default, served on this fixed port (their `iss` names it).
    pub jwt_port: Option<u16>,
}

/// How the server process is run.
#[derive(Debug, Clone)]
pub struct ServerRun {
    pub binary: PathBuf,
    /// `RUST_LOG` for the server; `None` keeps its default (`info`: one line per request).
    pub rust_log: Option<String>,
    /// Discard the server's log instead of writing it to a file in the deployment folder.
    pub log_to_null: bool,
    /// A command the server runs under (e.g. `valgrind --tool=callgrind`).
    pub wrap: Vec<String>,
    pub ready_timeout: Duration,
}

/// A client's credentials, as `client register` printed them.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub id: String,
    pub secret: String,
}

impl Credentials {
    /// `Authorization: Basic` (the values are base64url and a hex id: nothing to form-encode).
    pub fn basic(&self) -> HeaderValue {
        basic(&self.id, &self.secret)
    }
}

pub fn basic(id: &str, secret: &str) -> HeaderValue {
    let encoded = STANDARD.encode(format!("{id}:{secret}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value")
}

/// The super admin of the shipped defaults authenticates introspection.
pub fn super_admin() -> HeaderValue {
    basic("admin", "admin")
}

/// A deployment folder, removed when dropped.
pub struct Deployment {
    dir: TempDir,
    pub config: PathBuf,
}

impl Deployment {
    pub fn new(flags: Flags) -> Result<Self, BenchError> {
        Self::on(flags, postgres_env().as_deref())
    }

    /// A deployment on PostgreSQL database `postgres` (a connection string), or on SQLite in
    /// its own folder when `None`. The keys are in its data folder either way, which every node
    /// started from this deployment shares.
    pub fn on(flags: Flags, postgres: Option<&str>) -> Result<Self, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("ledger-bench-")
            .tempdir()
            .map_err(|source| BenchError::io("cannot create a temporary folder", source))?;
        let config = dir.path().join("deployment.toml");
        write_config_on(&config, flags, postgres)?;
        Ok(Self { dir, config })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder, which is removed when the returned value is dropped.
    pub fn into_dir(self) -> TempDir {
        self.dir
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir().join("ledger.db")
    }

    pub fn log_file(&self) -> PathBuf {
        self.node_log_file(0)
    }

    /// The log of node `n` of this deployment (node 0 writes `server.log`).
    pub fn node_log_file(&self, n: usize) -> PathBuf {
        match n {
            0 => self.dir.path().join("server.log"),
            n => self.dir.path().join(format!("server-{n}.log")),
        }
    }

    /// `token-ledger client register --name NAME --config PATH` (every grant type).
    pub fn register_client(&self, binary: &Path, name: &str) -> Result<Credentials, BenchError> {
        let output = Command::new(binary)
            .args(["client", "register", "--name", name, "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| BenchError::io("cannot run token-ledger client register", source))?;
        if !output.status.success() {
            return Err(BenchError::Command {
                command: "token-ledger client register".into(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let reply: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let field = |name: &str| {
            reply[name].as_str().map(str::to_owned).ok_or_else(|| BenchError::Command {
                command: "token-ledger client register".into(),
                stderr: format!("no {name} in its output"),
            })
        };
        Ok(Credentials { id: field("client_id")?, secret: field("client_secret")? })
    }

    /// Copies a populated data folder (database, sealing key, JWT keys) into this deployment.
    pub fn install_data(&self, from: &Path) -> Result<(), BenchError> {
        copy_tree(from, &self.data_dir())
    }

    /// `token-ledger serve`, its log in `server.log` (or discarded).
    pub fn start(&self, run: &ServerRun) -> Result<Running, BenchError> {
        self.start_node(run, 0, &[])
    }

    /// Node `n` of this deployment (`token-ledger serve` on port 0, its log in
    /// `node_log_file(n)`), with extra environment variables.
    pub fn start_node(&self, run: &ServerRun, n: usize, env: &[(&str, &str)]) -> Result<Running, BenchError> {
        let mut command = match run.wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&run.binary);
                c
            }
            None => Command::new(&run.binary),
        };
        command.arg("serve").arg("--config").arg(&self.config).envs(env.iter().copied());
        match &run.rust_log {
            Some(level) => command.env("RUST_LOG", level),
            None => command.env_remove("RUST_LOG"),
        };
        let log = if run.log_to_null {
            Stdio::null()
        } else {
            File::create(self.node_log_file(n))
                .map_err(|source| BenchError::io("cannot create server.log", source))?
                .into()
        };
        command.stderr(log);
        Running::start("token-ledger", command, run.ready_timeout)
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), BenchError> {
    let io = |source| BenchError::io("cannot copy the populated data folder", source);
    create_private_dir(to)?;
    for entry in std::fs::read_dir(from).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if entry.file_type().map_err(io)?.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else if !name.to_string_lossy().ends_with(".lock") {
            std::fs::copy(entry.path(), to.join(&name)).map_err(io)?;
        }
    }
    Ok(())
}

/// A loopback port that was free a moment ago (for a JWT population, whose `iss` names it).
pub fn free_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|source| BenchError::io("cannot find a free port", source))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| BenchError::io("cannot find a free port", source))
}

fn create_private_dir(dir: &Path) -> Result<(), BenchError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| BenchError::io("cannot create the data folder", source))
}

/// `LEDGER_BENCH_DATABASE_URL=host=/tmp/pg user=ledger dbname=bench` runs the single-server
/// scenarios on that PostgreSQL database instead of SQLite (an empty database per run: the
/// harness registers its client there); their populations (introspect, revoke, mixed) stay on
/// SQLite. `ledger-bench nodes` starts a PostgreSQL of its own instead.
fn postgres_env() -> Option<String> {
    std::env::var("LEDGER_BENCH_DATABASE_URL").ok()
}

/// Plain HTTP on an ephemeral loopback port; everything else at the shipped defaults.
pub fn write_config(path: &Path, flags: Flags) -> Result<(), BenchError> {
    write_config_on(path, flags, postgres_env().as_deref())
}

/// The config of `write_config`, on PostgreSQL database `postgres` when given.
pub fn write_config_on(path: &Path, flags: Flags, postgres: Option<&str>) -> Result<(), BenchError> {
    let format = if flags.jwt_port.is_some() { "jwt" } else { "opaque" };
    let text = format!(
        r#"# Written by ledger-bench.
[server]
bind_address = "127.0.0.1"
port = {port}

[transport.https]
enabled = false

[database]
path = "data/ledger.db"
{postgres}
[oauth.token_generation]
access_token_type = "{format}"

[oauth.token_renewal]
renew_access_token_per_request = {renew}

[oauth.grant_type.client_credentials]
allow_refresh_tokens = {cc_refresh}
"#,
        port = flags.jwt_port.unwrap_or(0),
        renew = flags.renew,
        cc_refresh = flags.cc_refresh,
        postgres = postgres.map(|url| format!("type = \"postgres\"\nurl = \"{url}\"\n")).unwrap_or_default(),
    );
    std::fs::write(path, text).map_err(|source| BenchError::io("cannot write the config", source))
}

/// Bytes of a database with its WAL, if any.
pub fn database_bytes(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_owned(), PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}
