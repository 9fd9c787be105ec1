//! A folder with `deployment.toml` and a data folder, as an operator would have.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The settings a scenario chooses; the rest is the server's default.
#[derive(Debug, Clone)]
pub struct Config {
    pub renew_access_token_per_request: bool,
    pub user_access_token_validity: &'static str,
    pub refresh_token_validity: &'static str,
    pub refresh_token_reuse_grace_period: &'static str,
    /// `[oauth.token_cleanup]` and `[ledger.archive]`; `None`: archiving off.
    pub archive: Option<Archiving>,
    /// `[database] type = "postgres"` with this connection string; `None`: SQLite.
    pub postgres_url: Option<String>,
}

/// Short retention settings (seconds), so that a test sees history archived while it serves.
#[derive(Debug, Clone)]
pub struct Archiving {
    pub keep_in_database: &'static str,
    pub interval: &'static str,
    /// `retain_access_tokens_for_auditing`: segments (true) or verify-and-drop (false).
    pub retain: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            renew_access_token_per_request: false,
            user_access_token_validity: "1h",
            refresh_token_validity: "1d",
            refresh_token_reuse_grace_period: "10s",
            archive: None,
            postgres_url: None,
        }
    }
}

impl Config {
    pub fn renewal_on() -> Self {
        Self { renew_access_token_per_request: true, ..Self::default() }
    }

    fn to_toml(&self) -> String {
        format!(
            r#"[server]
bind_address = "127.0.0.1"
port = 0

[transport.https]
enabled = false

[database]
path = "data/ledger.db"
{}
[super_admin]
username = "admin"
password = "admin"

[oauth.token_renewal]
renew_access_token_per_request = {}
refresh_token_reuse_grace_period = "{}"

[oauth.token_validation]
user_access_token_validity = "{}"
refresh_token_validity = "{}"
"#,
            self.postgres_url
                .as_ref()
                .map_or(String::new(), |url| format!("type = \"postgres\"\nurl = \"{url}\"\n")),
            self.renew_access_token_per_request,
            self.refresh_token_reuse_grace_period,
            self.user_access_token_validity,
            self.refresh_token_validity,
        ) + &self.archive_toml()
    }

    fn archive_toml(&self) -> String {
        let Some(a) = &self.archive else {
            return "\n[oauth.token_cleanup]\nenable = false\n".into();
        };
        format!(
            "\n[oauth.token_cleanup]\nenable = true\nretain_access_tokens_for_auditing = {}\n\n[ledger.archive]\nkeep_in_database = \"{}\"\ninterval = \"{}\"\n",
            a.retain, a.keep_in_database, a.interval
        )
    }
}

/// A deployment folder; removed when dropped.
pub struct Deployment {
    dir: TempDir,
}

impl Deployment {
    pub fn new(config: &Config) -> Self {
        Self::with_prefix(".tmp", config)
    }

    /// A deployment whose folder name starts with `prefix`, so that it can be found again.
    pub fn with_prefix(prefix: &str, config: &Config) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a temporary folder");
        std::fs::create_dir_all(dir.path().join("data")).expect("the data folder");
        let deployment = Self { dir };
        deployment.configure(config);
        deployment
    }

    /// Rewrites `deployment.toml` (the server reads it when it starts).
    pub fn configure(&self, config: &Config) {
        std::fs::write(self.config_path(), config.to_toml()).expect("write deployment.toml");
    }

    /// A copy of this deployment's folder (the server must be stopped), for a test that damages
    /// it.
    pub fn copy(&self) -> Deployment {
        let copy = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary folder");
        copy_tree(self.dir.path(), copy.path());
        Deployment { dir: copy }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("deployment.toml")
    }

    pub fn database(&self) -> PathBuf {
        self.dir.path().join("data/ledger.db")
    }

    /// The archive folder (the default: beside the database).
    pub fn archive_dir(&self) -> PathBuf {
        self.dir.path().join("data/archive")
    }

    /// The database path as an argument.
    pub fn db_arg(&self) -> String {
        self.database().display().to_string()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("create a folder");
            copy_tree(&entry.path(), &target);
        } else if entry.file_name() != "ledger.db.lock" {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}
