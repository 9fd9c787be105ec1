//! A temporary folder with `deployment.toml` and a data folder; the CLI and the server process.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::config::{ConfigOverrides, DATA_DIR};
use super::oauth::Client;

/// The binary under test, built by cargo for this test target.
const BINARY: &str = env!("CARGO_BIN_EXE_token-ledger");
/// How long a server may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a CLI command may run.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// A temporary folder holding `deployment.toml` and the data folder.
pub struct Deployment {
    dir: TempDir,
    admin_password: String,
    /// Everything the server and the CLI wrote to stderr, across restarts.
    logs: Arc<Mutex<Vec<u8>>>,
    /// The separate metrics listener's URL, when the server printed one.
    metrics_url: Arc<Mutex<Option<String>>>,
    /// `RUST_LOG` for the server process.
    rust_log: Option<&'static str>,
    /// More environment for the server processes started from now on (test hooks).
    server_env: Mutex<Vec<(String, String)>>,
    /// The PostgreSQL database the harness created for this deployment alone (under
    /// `TOKEN_LEDGER_TEST_DATABASE=postgres`), dropped with it.
    owned_database: Option<String>,
}

/// What a CLI run left behind.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Deployment {
    /// A new folder for `config`; under `TOKEN_LEDGER_TEST_DATABASE=postgres` its database is a
    /// fresh one on the shared PostgreSQL cluster unless the test named one.
    pub fn new(config: &ConfigOverrides) -> Self {
        let chosen = super::database::for_this_run(config);
        let owned_database = if config.postgres_url.is_none() { chosen.postgres_url.clone() } else { None };
        let config = &chosen;
        let dir = tempfile::tempdir().expect("create a temporary folder");
        std::fs::create_dir_all(dir.path().join(DATA_DIR)).expect("create the data folder");
        let deployment = Self {
            dir,
            admin_password: config.admin_password.clone(),
            logs: Arc::new(Mutex::new(Vec::new())),
            metrics_url: Arc::default(),
            rust_log: config.rust_log,
            server_env: Mutex::default(),
            owned_database,
        };
        deployment.write_config(&config.to_toml());
        deployment
    }

    /// Sets `key=value` in the environment of the server processes started from now on.
    pub fn set_server_env(&self, key: &str, value: &str) {
        self.server_env.lock().expect("server env").push((key.to_owned(), value.to_owned()));
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("deployment.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join(DATA_DIR)
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir().join("ledger.db")
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The PostgreSQL connection string of this deployment's config (panics on SQLite).
    pub fn config_url(&self) -> String {
        let text = std::fs::read_to_string(self.config_path()).expect("read deployment.toml");
        let line = text.lines().find_map(|l| l.strip_prefix("url = ")).expect("a [database] url");
        line.trim_matches('"').to_owned()
    }

    /// Rewrites the config file from overrides.
    pub fn write_config_overrides(&self, config: &ConfigOverrides) {
        self.write_config(&config.to_toml());
    }

    fn write_config(&self, toml: &str) {
        std::fs::write(self.config_path(), toml).expect("write deployment.toml");
    }

    /// Rewrites the config file, e.g. to plant an unknown key.
    pub fn edit_config(&self, edit: impl FnOnce(&str) -> String) {
        let current = std::fs::read_to_string(self.config_path()).expect("read deployment.toml");
        let edited = edit(&current);
        assert_ne!(current, edited, "the config edit changed nothing");
        self.write_config(&edited);
    }

    /// `http://127.0.0.1:PORT/metrics` when `[monitoring] port` gave metrics a listener.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics_url.lock().expect("metrics url").clone()
    }

    /// Every byte the server processes and CLI runs wrote to stderr so far.
    pub fn logs(&self) -> Vec<u8> {
        self.logs.lock().expect("log buffer").clone()
    }

    /// Runs `token-ledger ARGS --config PATH` to completion.
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with_stdin(args, None).await
    }

    /// Runs the CLI with `stdin` written to its standard input, then closed.
    pub async fn cli_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let mut child = Command::new(BINARY)
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the token-ledger CLI");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
        }
        let output = tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`token-ledger {}` did not finish", args.join(" ")))
            .expect("run the token-ledger CLI");
        self.logs.lock().expect("log buffer").extend_from_slice(&output.stderr);
        CliOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `token-ledger client register`, asserting success; the printed JSON becomes a [`Client`].
    /// No grant types means the CLI default (all three).
    pub async fn register_client_with_grants(&self, name: &str, grant_types: &[&str]) -> Client {
        let joined = grant_types.join(",");
        let mut args = vec!["client", "register", "--name", name];
        if !grant_types.is_empty() {
            args.extend(["--grant-types", joined.as_str()]);
        }
        let output = self.cli(&args).await;
        assert!(output.status.success(), "client register failed: {}", output.stderr);
        let json: Value = serde_json::from_str(output.stdout.trim())
            .unwrap_or_else(|e| panic!("client register printed no JSON ({e}): {:?}", output.stdout));
        Client::from_json(&json)
    }

    /// `token-ledger user add --username NAME --password P`, asserting success.
    pub async fn add_user(&self, username: &str, password: &str) {
        let output = self.cli(&["user", "add", "--username", username, "--password", password]).await;
        assert!(output.status.success(), "user add failed: {}", output.stderr);
    }

    /// Starts `token-ledger serve` on this folder and waits for its listening line.
    /// Returns the process and the base URL it printed.
    pub(super) async fn start_server(&self) -> (Child, String) {
        let mut command = Command::new(BINARY);
        if let Some(filter) = self.rust_log {
            command.env("RUST_LOG", filter);
        }
        command.envs(self.server_env.lock().expect("server env").iter().cloned());
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn token-ledger serve");
        let stderr = child.stderr.take().expect("stderr pipe");
        let stderr_done = tokio::spawn(collect_into(stderr, self.logs.clone()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout pipe")).lines();
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(_) => {
                    let status = child.wait().await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), stderr_done).await;
                    panic!(
                        "token-ledger serve exited before listening ({status:?}); stderr:\n{}",
                        String::from_utf8_lossy(&self.logs())
                    );
                }
                Err(_) => panic!(
                    "token-ledger serve printed no listening line in {STARTUP_TIMEOUT:?}; stderr:\n{}",
                    String::from_utf8_lossy(&self.logs())
                ),
            };
            if let Some(url) = line.trim().strip_prefix("metrics on ") {
                *self.metrics_url.lock().expect("metrics url") = Some(url.to_owned());
            }
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                // Keep draining stdout so that the server never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return (child, url.trim_end_matches('/').to_string());
            }
        }
    }
}

impl Drop for Deployment {
    /// A suite run on PostgreSQL makes a database per deployment: dropped here, so that a whole
    /// run does not fill the disk (the cluster itself goes when the test process ends).
    fn drop(&mut self) {
        if let Some(url) = self.owned_database.take() {
            if let Some(cluster) = super::postgres::pg_cluster::cluster() {
                cluster.drop_database(&url);
            }
        }
    }
}

async fn collect_into(mut pipe: impl AsyncRead + Unpin, sink: Arc<Mutex<Vec<u8>>>) {
    let mut buffer = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        sink.lock().expect("log buffer").extend_from_slice(&buffer[..n]);
    }
}
