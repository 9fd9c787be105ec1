//! The `deployment.toml` each test writes: the contract's test config plus a test's overrides.

/// The database folder, relative to the config file. It is a sub-folder so that the secrets scan
/// never reads `deployment.toml`, which holds the super admin password by design.
pub const DATA_DIR: &str = "data";
pub const ADMIN_USER: &str = "admin";

/// The settings a test may change; everything else is the contract's test config.
#[derive(Debug, Clone)]
pub struct ConfigOverrides {
    pub renew_access_token_per_request: bool,
    pub renew_refresh_token: bool,
    pub revoke_token_family_on_refresh_token_reuse: bool,
    pub refresh_token_reuse_grace_period: &'static str,
    pub user_access_token_validity: &'static str,
    pub app_access_token_validity: &'static str,
    pub refresh_token_validity: &'static str,
    pub client_credentials_refresh_tokens: bool,
    pub admin_password: String,
    pub https: bool,
    /// `[oauth.token_generation] access_token_type`: "opaque" or "jwt".
    pub access_token_type: &'static str,
    /// `[server] log_format`: "text" or "json".
    pub log_format: &'static str,
    /// `[monitoring] port`: `Some(0)` for a separate metrics listener on a free port.
    pub monitoring_port: Option<u16>,
    /// `RUST_LOG` for the server process (`None`: inherited).
    pub rust_log: Option<&'static str>,
    /// `[database] type = "postgres"` with this connection string; `None` for SQLite.
    pub postgres_url: Option<String>,
    /// `[database] key_dir`: the keys' folder, shared by the nodes of one PostgreSQL database.
    pub key_dir: Option<String>,
    /// Stay on SQLite even under `TOKEN_LEDGER_TEST_DATABASE=postgres` (e.g. `migrate-store`'s
    /// source deployment).
    pub sqlite_only: bool,
}

impl Default for ConfigOverrides {
    fn default() -> Self {
        Self {
            renew_access_token_per_request: false,
            renew_refresh_token: true,
            revoke_token_family_on_refresh_token_reuse: true,
            refresh_token_reuse_grace_period: "10s",
            user_access_token_validity: "1h",
            app_access_token_validity: "1h",
            refresh_token_validity: "1d",
            client_credentials_refresh_tokens: false,
            admin_password: "admin".to_string(),
            https: false,
            access_token_type: "opaque",
            log_format: "text",
            monitoring_port: None,
            rust_log: None,
            postgres_url: None,
            key_dir: None,
            sqlite_only: false,
        }
    }
}

impl ConfigOverrides {
    /// The shipped behaviour: the same token comes back while it is usable.
    pub fn renewal_off() -> Self {
        Self::default()
    }

    /// `renew_access_token_per_request = true`: every request revokes and reissues.
    pub fn renewal_on() -> Self {
        Self { renew_access_token_per_request: true, ..Self::default() }
    }

    /// Renders `deployment.toml`. Durations made only of digits are written as TOML integers.
    pub fn to_toml(&self) -> String {
        format!(
            r#"[server]
hostname = "localhost"
bind_address = "127.0.0.1"
port = 0
log_format = "{log_format}"

[transport.https]
enabled = {https}

[database]
path = "{DATA_DIR}/ledger.db"
{postgres}

[super_admin]
username = "{ADMIN_USER}"
password = "{admin_password}"

[oauth.token_generation]
access_token_type = "{token_type}"

[oauth.token_renewal]
renew_access_token_per_request = {renew}
renew_refresh_token = {renew_rt}
extend_refresh_token_expiry_time_on_renewal = true
revoke_token_family_on_refresh_token_reuse = {family}
refresh_token_reuse_grace_period = {grace}

[oauth.token_validation]
user_access_token_validity = {user_at}
app_access_token_validity = {app_at}
refresh_token_validity = {rt}

[oauth.grant_type.client_credentials]
allow_refresh_tokens = {cc_rt}
{monitoring}"#,
            https = self.https,
            token_type = self.access_token_type,
            admin_password = self.admin_password,
            renew = self.renew_access_token_per_request,
            renew_rt = self.renew_refresh_token,
            family = self.revoke_token_family_on_refresh_token_reuse,
            grace = duration_literal(self.refresh_token_reuse_grace_period),
            user_at = duration_literal(self.user_access_token_validity),
            app_at = duration_literal(self.app_access_token_validity),
            rt = duration_literal(self.refresh_token_validity),
            cc_rt = self.client_credentials_refresh_tokens,
            log_format = self.log_format,
            monitoring =
                self.monitoring_port.map_or(String::new(), |p| format!("\n[monitoring]\nport = {p}\n")),
            postgres = self.postgres_section(),
        )
    }
}

impl ConfigOverrides {
    fn postgres_section(&self) -> String {
        let mut lines = String::new();
        if let Some(url) = &self.postgres_url {
            lines.push_str(&format!("type = \"postgres\"\nurl = \"{url}\"\npool_size = 4\n"));
        }
        if let Some(dir) = &self.key_dir {
            lines.push_str(&format!("key_dir = \"{dir}\"\n"));
        }
        lines
    }
}

fn duration_literal(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.to_string()
    } else {
        format!("\"{value}\"")
    }
}
