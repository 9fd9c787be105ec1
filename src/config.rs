//! `deployment.toml`, deserialised into typed settings that refuse unknown keys. WSO2's key names
//! where WSO2 has one. Relative paths resolve against the config file's folder.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::domain::grant::Policy;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A length of time, written as "90s", "5m", "1h", "1d" or a plain integer of seconds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl fmt::Debug for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

impl Seconds {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => text.split_at(at),
            None => (text, "s"),
        };
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        n.checked_mul(factor).filter(|s| *s <= 100 * 365 * 86_400).map(Self)
    }

    pub fn millis(self) -> i64 {
        (self.0 * 1000) as i64
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let bad = || {
            serde::de::Error::custom(
                "expected a duration such as \"90s\", \"5m\", \"1h\", \"1d\" or whole seconds",
            )
        };
        match Raw::deserialize(d)? {
            Raw::Int(n) => u64::try_from(n).ok().and_then(|n| Seconds::parse(&n.to_string())).ok_or_else(bad),
            Raw::Text(t) => Seconds::parse(&t).ok_or_else(bad),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub hostname: String,
    pub bind_address: std::net::IpAddr,
    pub port: u16,
    /// The shape of the log lines on stderr.
    pub log_format: LogFormat,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            bind_address: [127, 0, 0, 1].into(),
            port: 9443,
            log_format: LogFormat::Text,
        }
    }
}

/// `[server] log_format`: human-readable lines, or one JSON object per line for collectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[monitoring]`: where `GET /metrics` is served. With a `port`, on a listener of its own
/// (plain HTTP, no authentication: keep it on loopback or a private network); without one, on
/// the main port behind the super admin's Basic authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSection {
    pub enabled: bool,
    pub bind_address: std::net::IpAddr,
    /// The separate listener's port (0 picks a free one); absent: the main port.
    pub port: Option<u16>,
}

impl Default for MonitoringSection {
    fn default() -> Self {
        Self { enabled: true, bind_address: [127, 0, 0, 1].into(), port: None }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportSection {
    pub https: HttpsSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpsSection {
    pub enabled: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl Default for HttpsSection {
    fn default() -> Self {
        Self { enabled: true, cert_file: None, key_file: None }
    }
}

/// Which store holds the log: one SQLite file (the default) or a shared PostgreSQL database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    #[default]
    Sqlite,
    Postgres,
}

/// `[database]`. With `type = "postgres"`, `url` names the database (URL or `key=value` form)
/// and `path`'s folder (or `key_dir`) is where the shared keys live.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    #[serde(rename = "type")]
    pub kind: DatabaseKind,
    pub path: PathBuf,
    pub url: Option<String>,
    /// Most idle reader connections to PostgreSQL.
    pub pool_size: usize,
    /// The PostgreSQL password, if neither the URL nor `PGPASSWORD` carries it.
    pub password: Option<String>,
    /// The folder holding the token sealing key and the JWT signing keys, shared by every node
    /// (default: the folder of `path`).
    pub key_dir: Option<PathBuf>,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            kind: DatabaseKind::Sqlite,
            path: "data/ledger.db".into(),
            url: None,
            pool_size: 16,
            password: None,
            key_dir: None,
        }
    }
}

impl fmt::Debug for DatabaseSection {
    /// Never prints a password: the `password` key is hidden and the URL's is masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSection")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("pool_size", &self.pool_size)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("key_dir", &self.key_dir)
            .finish()
    }
}

/// A connection string with any password replaced: `user:<hidden>@` in a URL, `password=<hidden>`
/// in the key=value form.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = rest.split_once('@').map_or((None, rest), |(a, t)| (Some(a), t));
        return match authority.and_then(|a| a.split_once(':')) {
            Some((user, _)) => format!("{scheme}://{user}:<hidden>@{tail}"),
            None => url.to_owned(),
        };
    }
    url.split_whitespace()
        .map(
            |pair| {
                if pair.starts_with("password=") {
                    "password=<hidden>".to_owned()
                } else {
                    pair.to_owned()
                }
            },
        )
        .collect::<Vec<_>>()
        .join(" ")
}

/// The super admin: introspection and DCR caller, and a user of the password grant.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuperAdmin {
    pub username: String,
    pub password: String,
}

impl SuperAdmin {
    pub fn is_default(&self) -> bool {
        self.username == "admin" && self.password == "admin"
    }
}

impl Default for SuperAdmin {
    fn default() -> Self {
        Self { username: "admin".into(), password: "admin".into() }
    }
}

impl fmt::Debug for SuperAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SuperAdmin").field("username", &self.username).field("password", &"<hidden>").finish()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthSection {
    pub token_generation: TokenGeneration,
    pub token_renewal: TokenRenewal,
    pub token_validation: TokenValidation,
    pub grant_type: GrantTypeSection,
    pub token_cleanup: TokenCleanup,
}

/// `[oauth.token_cleanup]` (WSO2's keys): finished history leaves the live database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenCleanup {
    /// Archive (or drop) history older than `[ledger.archive] keep_in_database` in the background.
    pub enable: bool,
    /// true: into archive segments that still verify; false: verify, then drop (WSO2's
    /// behaviour). The default differs from WSO2's: a ledger keeps its history unless told not to.
    pub retain_access_tokens_for_auditing: bool,
}

impl Default for TokenCleanup {
    fn default() -> Self {
        Self { enable: true, retain_access_tokens_for_auditing: true }
    }
}

/// `[ledger]`: the event log itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    pub archive: ArchiveSection,
}

/// `[ledger.archive]`: where archive segments go and what stays in the live database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSection {
    /// Default: a folder `archive` beside the database file.
    pub dir: Option<PathBuf>,
    /// Events younger than this always stay in the live database.
    pub keep_in_database: Seconds,
    /// How often the server looks for work.
    pub interval: Seconds,
}

impl Default for ArchiveSection {
    fn default() -> Self {
        Self { dir: None, keep_in_database: Seconds(7 * 86_400), interval: Seconds(600) }
    }
}

/// `[oauth.token_generation]`: which generator makes access tokens by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenGeneration {
    /// `opaque` or `jwt` (or a generator a downstream crate registered); clients may override it.
    pub access_token_type: String,
    /// The algorithm of newly created JWT signing keys: ES256, EdDSA or RS256.
    pub jwt_signing_algorithm: crate::tokens::keys::SigningAlgorithm,
}

impl Default for TokenGeneration {
    fn default() -> Self {
        Self { access_token_type: "opaque".into(), jwt_signing_algorithm: Default::default() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenRenewal {
    pub renew_access_token_per_request: bool,
    pub renew_refresh_token: bool,
    pub extend_refresh_token_expiry_time_on_renewal: bool,
    pub revoke_token_family_on_refresh_token_reuse: bool,
    pub refresh_token_reuse_grace_period: Seconds,
}

impl Default for TokenRenewal {
    fn default() -> Self {
        Self {
            renew_access_token_per_request: false,
            renew_refresh_token: true,
            extend_refresh_token_expiry_time_on_renewal: true,
            revoke_token_family_on_refresh_token_reuse: true,
            refresh_token_reuse_grace_period: Seconds(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenValidation {
    pub user_access_token_validity: Seconds,
    pub app_access_token_validity: Seconds,
    pub refresh_token_validity: Seconds,
    /// How long an authorization code may be exchanged (WSO2's key; default 5 minutes).
    pub authorization_code_validity: Seconds,
}

impl Default for TokenValidation {
    fn default() -> Self {
        Self {
            user_access_token_validity: Seconds(3600),
            app_access_token_validity: Seconds(3600),
            refresh_token_validity: Seconds(86_400),
            authorization_code_validity: Seconds(300),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrantTypeSection {
    pub client_credentials: ClientCredentialsSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCredentialsSection {
    pub allow_refresh_tokens: bool,
}

/// The whole `deployment.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSection,
    pub transport: TransportSection,
    pub database: DatabaseSection,
    pub super_admin: SuperAdmin,
    pub oauth: OAuthSection,
    pub monitoring: MonitoringSection,
    pub ledger: LedgerSection,
}

impl Settings {
    /// Reads and checks a config file; relative paths in it become relative to its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let invalid = |message: String| ConfigError::Invalid { path: path.to_owned(), message };
        let mut settings = parse(&text).map_err(invalid)?;
        settings.check().map_err(invalid)?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        settings.database.path = base.join(&settings.database.path);
        settings.database.key_dir = settings.database.key_dir.take().map(|p| base.join(p));
        settings.ledger.archive.dir = settings.ledger.archive.dir.take().map(|p| base.join(p));
        let https = &mut settings.transport.https;
        https.cert_file = https.cert_file.take().map(|p| base.join(p));
        https.key_file = https.key_file.take().map(|p| base.join(p));
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        let v = &self.oauth.token_validation;
        for (key, value) in [
            ("oauth.token_validation.user_access_token_validity", v.user_access_token_validity),
            ("oauth.token_validation.app_access_token_validity", v.app_access_token_validity),
            ("oauth.token_validation.refresh_token_validity", v.refresh_token_validity),
            ("oauth.token_validation.authorization_code_validity", v.authorization_code_validity),
        ] {
            if value.0 == 0 {
                return Err(format!("{key} must be longer than 0 seconds"));
            }
        }
        let https = &self.transport.https;
        if https.cert_file.is_some() != https.key_file.is_some() {
            return Err("transport.https.cert_file and transport.https.key_file go together".into());
        }
        if self.super_admin.username.trim().is_empty() || self.super_admin.password.is_empty() {
            return Err("super_admin.username and super_admin.password must not be empty".into());
        }
        if self.server.hostname.trim().is_empty() {
            return Err("server.hostname must not be empty".into());
        }
        let db = &self.database;
        match (db.kind, &db.url) {
            (DatabaseKind::Postgres, None) => {
                return Err("database.url is required with type = \"postgres\"".into())
            }
            (DatabaseKind::Sqlite, Some(_)) => return Err("database.url needs type = \"postgres\"".into()),
            _ => {}
        }
        if db.pool_size == 0 {
            return Err("database.pool_size must be at least 1".into());
        }
        let archive = &self.ledger.archive;
        if archive.interval.0 == 0 || archive.keep_in_database.0 == 0 {
            return Err(
                "ledger.archive.interval and ledger.archive.keep_in_database must be longer than 0 seconds"
                    .into(),
            );
        }
        Ok(())
    }

    /// `scheme://hostname:port`: where clients reach the service listening on `port`.
    pub fn base_url(&self, port: u16) -> String {
        let scheme = if self.transport.https.enabled { "https" } else { "http" };
        format!("{scheme}://{}:{port}", self.server.hostname)
    }

    /// The longest an access token can live: how long a retired JWT key stays published.
    pub fn max_access_token_ms(&self) -> i64 {
        let v = &self.oauth.token_validation;
        v.user_access_token_validity.millis().max(v.app_access_token_validity.millis())
    }

    /// The folder holding the database, the sealing key and the generated TLS certificate.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.database.key_dir {
            return dir.clone();
        }
        self.database.path.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into())
    }

    /// Where archive segments go: `[ledger.archive] dir`, or `archive` beside the database file.
    pub fn archive_dir(&self) -> PathBuf {
        if let Some(dir) = &self.ledger.archive.dir {
            return dir.clone();
        }
        let beside = self.database.path.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into());
        beside.join("archive")
    }

    /// The token rules for the pure core.
    pub fn policy(&self) -> Policy {
        let r = &self.oauth.token_renewal;
        let v = &self.oauth.token_validation;
        Policy {
            renew_access_token_per_request: r.renew_access_token_per_request,
            renew_refresh_token: r.renew_refresh_token,
            extend_refresh_token_expiry_on_renewal: r.extend_refresh_token_expiry_time_on_renewal,
            revoke_family_on_refresh_token_reuse: r.revoke_token_family_on_refresh_token_reuse,
            refresh_token_reuse_grace_ms: r.refresh_token_reuse_grace_period.millis(),
            user_access_token_ms: v.user_access_token_validity.millis(),
            app_access_token_ms: v.app_access_token_validity.millis(),
            refresh_token_ms: v.refresh_token_validity.millis(),
            client_credentials_refresh_tokens: self.oauth.grant_type.client_credentials.allow_refresh_tokens,
        }
    }
}

/// The one issuer identifier of the service, given its base URL: the token endpoint URL, as in
/// WSO2 Identity Server. It is the RFC 8414 metadata's `issuer`, the `iss` of every JWT and
/// id_token, and the RFC 9207 `iss` authorization response parameter; clients derive the
/// metadata's URL from it by RFC 8414 section 3.1 path insertion. Every use goes through here.
pub fn issuer(base_url: &str) -> String {
    format!("{}/oauth2/token", base_url.trim_end_matches('/'))
}

/// Deserialises with the path of the offending key in every error, so a bad value is named
/// (`oauth.token_validation.user_access_token_validity: expected a duration ...`).
fn parse(text: &str) -> Result<Settings, String> {
    let de = toml::de::Deserializer::parse(text).map_err(|e| one_line(&e, text))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = one_line(e.inner(), text);
        if path.is_empty() || path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}

/// toml's errors span several lines with a source excerpt; one line is what operators grep.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text.get(..span.start).map_or(0, |t| t.matches('\n').count()) + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployment.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(&path)
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(Seconds::parse("90s"), Some(Seconds(90)));
        assert_eq!(Seconds::parse("5m"), Some(Seconds(300)));
        assert_eq!(Seconds::parse("1h"), Some(Seconds(3600)));
        assert_eq!(Seconds::parse("1d"), Some(Seconds(86_400)));
        assert_eq!(Seconds::parse("42"), Some(Seconds(42)));
        assert_eq!(Seconds::parse("1w"), None);
        assert_eq!(Seconds::parse("h"), None);
    }

    #[test]
    fn an_empty_file_gives_wso2_defaults() {
        let s = load("").unwrap();
        assert!(!s.oauth.token_renewal.renew_access_token_per_request);
        assert_eq!(s.policy().user_access_token_ms, 3_600_000);
        assert_eq!(s.policy().refresh_token_ms, 86_400_000);
        assert_eq!(s.server.port, 9443);
        assert!(s.transport.https.enabled);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = load("[oauth.token_renewal]\nrenew_acess_token_per_request = true\n").unwrap_err();
        assert!(err.to_string().contains("renew_acess_token_per_request"), "{err}");
    }

    #[test]
    fn bad_durations_are_refused_by_name() {
        let err = load("[oauth.token_validation]\nuser_access_token_validity = \"1 week\"\n").unwrap_err();
        assert!(err.to_string().contains("duration"), "{err}");
        let zero = load("[oauth.token_validation]\nuser_access_token_validity = 0\n").unwrap_err();
        assert!(zero.to_string().contains("user_access_token_validity"), "{zero}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployment.toml");
        std::fs::write(&path, "[database]\npath = \"x/ledger.db\"\n").unwrap();
        assert_eq!(Settings::load(&path).unwrap().database.path, dir.path().join("x/ledger.db"));
    }

    #[test]
    fn the_issuer_is_the_token_endpoint_url() {
        let s = load("[server]\nhostname = \"id.example\"\n").unwrap();
        assert_eq!(issuer(&s.base_url(9443)), "https://id.example:9443/oauth2/token");
        assert_eq!(issuer("http://h:1/"), "http://h:1/oauth2/token");
    }

    #[test]
    fn log_format_and_monitoring_are_checked_by_name() {
        let s = load("[server]\nlog_format = \"json\"\n[monitoring]\nport = 9464\n").unwrap();
        assert_eq!(s.server.log_format, LogFormat::Json);
        assert_eq!(s.monitoring.port, Some(9464));
        let err = load("[server]\nlog_format = \"xml\"\n").unwrap_err();
        assert!(err.to_string().contains("log_format"), "{err}");
        let err = load("[monitoring]\nprot = 1\n").unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn a_postgres_database_needs_a_url_and_its_password_never_prints() {
        let missing = load("[database]\ntype = \"postgres\"\n").unwrap_err();
        assert!(missing.to_string().contains("database.url"), "{missing}");
        let s = load(
            "[database]\ntype = \"postgres\"\nurl = \"postgres://ledger:pw-in-url@db/ledger\"\npassword = \"pw-key\"\n",
        )
        .unwrap();
        assert_eq!(s.database.kind, DatabaseKind::Postgres);
        let shown = format!("{s:?}");
        assert!(!shown.contains("pw-in-url") && !shown.contains("pw-key"), "{shown}");
        assert_eq!(
            redact_url("host=/tmp user=a password=x dbname=b"),
            "host=/tmp user=a password=<hidden> dbname=b"
        );
    }

    #[test]
    fn archiving_is_configured_with_wso2s_cleanup_keys_and_a_folder_beside_the_database() {
        let s = load("").unwrap();
        assert!(s.oauth.token_cleanup.enable && s.oauth.token_cleanup.retain_access_tokens_for_auditing);
        assert_eq!(s.ledger.archive.keep_in_database, Seconds(7 * 86_400));
        assert!(s.archive_dir().ends_with("data/archive"), "{:?}", s.archive_dir());
        let s = load(
            "[oauth.token_cleanup]\nretain_access_tokens_for_auditing = false\n[ledger.archive]\ndir = \"old\"\nkeep_in_database = \"2s\"\ninterval = \"1s\"\n",
        )
        .unwrap();
        assert!(!s.oauth.token_cleanup.retain_access_tokens_for_auditing);
        assert_eq!(s.ledger.archive.keep_in_database, Seconds(2));
        assert!(s.archive_dir().ends_with("old"));
        let err = load("[ledger.archive]\nkeep_in_databse = \"1d\"\n").unwrap_err();
        assert!(err.to_string().contains("keep_in_databse"), "{err}");
        let err = load("[ledger.archive]\ninterval = 0\n").unwrap_err();
        assert!(err.to_string().contains("ledger.archive.interval"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_admin_password() {
        let s = load("[super_admin]\nusername = \"root\"\npassword = \"s3cret-pw\"\n").unwrap();
        assert!(!format!("{s:?}").contains("s3cret-pw"));
    }
}
