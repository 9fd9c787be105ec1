//! `token-ledger`: parses arguments and calls the library.
#![forbid(unsafe_code)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use token_ledger::app::{self, StartError};
use token_ledger::config::Settings;
use token_ledger::crypto;
use token_ledger::domain::types::Username;
use token_ledger::http::dcr::{parse_client_name, parse_grant_types, parse_oauth};
use token_ledger::store::ledger::{Command, Envelope, Refusal, Reply};
use token_ledger::store::log::RequestMeta;
use token_ledger::tokens::{keys, Generators};

#[derive(Parser)]
#[command(name = "token-ledger", version, about = "An event-sourced OAuth2 token service")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// The deployment.toml to use.
    #[arg(long, default_value = "deployment.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Top {
    /// Run the token service.
    Serve(ConfigArg),
    /// Manage OAuth clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage users of the password grant.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the JWT signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check the configuration and exit.
    Configtest(ConfigArg),
    /// Print the OpenAPI 3.1 document of the HTTP API (the committed openapi.json).
    Openapi,
    /// Copy this SQLite deployment's log into an empty PostgreSQL database (verified there, views
    /// built), so that several nodes can serve it. The keys stay in the data folder: name it as
    /// the nodes' `[database] key_dir`.
    MigrateStore {
        /// The target: `postgres://user@host/db` or `host=… user=… dbname=…`.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new JWT signing key; the previous one stays published until its tokens expire.
    /// A running server picks the new key up within a second.
    Rotate {
        /// ES256, EdDSA or RS256 (default: [oauth.token_generation] jwt_signing_algorithm).
        #[arg(long)]
        algorithm: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and secret as JSON (the secret is shown only once).
    Register {
        #[arg(long)]
        name: String,
        /// Comma-separated: password, client_credentials, refresh_token (default: all).
        #[arg(long, value_delimiter = ',')]
        grant_types: Vec<String>,
        /// opaque or jwt (default: [oauth.token_generation] access_token_type).
        #[arg(long, value_parser = ["opaque", "jwt"])]
        access_token_type: Option<String>,
        #[command(flatten)]
        code_flow: CodeFlowArgs,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// The authorization code flow settings of a new client.
#[derive(Args, Clone)]
struct CodeFlowArgs {
    /// Comma-separated redirect URIs, compared by exact string (loopback URIs may vary the port).
    #[arg(long, value_delimiter = ',')]
    redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required): a browser or native app.
    #[arg(long)]
    public: bool,
    /// Require PKCE on every authorization request (default: only for public clients).
    #[arg(long)]
    pkce_mandatory: bool,
    /// Also accept the `plain` PKCE method (S256 is always accepted).
    #[arg(long)]
    pkce_support_plain: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        #[arg(long)]
        username: String,
        /// The password (visible in the process list; prefer --password-stdin).
        #[arg(long, conflicts_with = "password_stdin", required_unless_present = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// A failure of a command, printed as one line.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] token_ledger::config::ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` installs the configured log format once it has read the configuration.
    if !matches!(cli.command, Top::Serve(_)) {
        token_ledger::logging::init(token_ledger::config::LogFormat::Text);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("token-ledger: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Top) -> Result<(), CliError> {
    match command {
        Top::Serve(c) => {
            let settings = Settings::load(&c.config)?;
            token_ledger::logging::init(settings.server.log_format);
            let runtime = tokio::runtime::Runtime::new().map_err(|e| CliError::Usage(e.to_string()))?;
            runtime.block_on(app::serve(settings))?;
            Ok(())
        }
        Top::Openapi => {
            print!("{}", token_ledger::http::openapi::json());
            Ok(())
        }
        Top::Configtest(c) => {
            let settings = Settings::load(&c.config)?;
            let database = app::check_database(&settings)?;
            println!("{}: configuration is valid; {database}", c.config.display());
            Ok(())
        }
        Top::Client {
            command: ClientCommand::Register { name, grant_types, access_token_type, code_flow, config },
        } => register_client(&config, name, grant_types, access_token_type, code_flow),
        Top::Keys { command: KeysCommand::Rotate { algorithm, config } } => rotate_keys(&config, algorithm),
        Top::MigrateStore { to, config } => {
            let settings = Settings::load(&config.config)?;
            let done = app::migrate_store(&settings, &to)?;
            println!(
                "copied {} events (head at position {}) into {}; chain verified there. Point every node at it with [database] type = \"postgres\" and key_dir = \"{}\"",
                done.events,
                done.head,
                token_ledger::config::redact_url(&to),
                settings.data_dir().display()
            );
            Ok(())
        }
        Top::User { command: UserCommand::Add { username, password, password_stdin, config } } => {
            let password = match (password, password_stdin) {
                (Some(p), _) => p,
                (None, _) => read_password_line()?,
            };
            add_user(&config, username, password)
        }
    }
}

fn read_password_line() -> Result<String, CliError> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|e| CliError::Usage(format!("cannot read the password from stdin: {e}")))?;
    let line = input.lines().next().unwrap_or_default().to_owned();
    Ok(line)
}

fn cli_meta() -> RequestMeta {
    RequestMeta { peer: Some("cli".into()), ..RequestMeta::default() }
}

fn rotate_keys(config: &ConfigArg, algorithm: Option<String>) -> Result<(), CliError> {
    let settings = Settings::load(&config.config)?;
    let alg = match algorithm {
        None => settings.oauth.token_generation.jwt_signing_algorithm,
        Some(name) => serde_json::from_value(serde_json::Value::String(name.clone()))
            .map_err(|_| CliError::Usage(format!("unknown algorithm {name:?}: use ES256, EdDSA or RS256")))?,
    };
    let dir = settings.data_dir().join("jwt-keys");
    let now = token_ledger::store::ledger::system_clock();
    let kid = keys::rotate(&dir, alg, now).map_err(|e| CliError::Usage(e.to_string()))?;
    println!("{}", serde_json::json!({ "kid": kid, "alg": alg }));
    Ok(())
}

fn register_client(
    config: &ConfigArg,
    name: String,
    grant_types: Vec<String>,
    access_token_type: Option<String>,
    code_flow: CodeFlowArgs,
) -> Result<(), CliError> {
    let settings = Settings::load(&config.config)?;
    let name = parse_client_name(&name).map_err(|e| CliError::Usage(e.into()))?;
    let grant_types = parse_grant_types(&grant_types).map_err(CliError::Usage)?;
    let c = code_flow;
    let mandatory = c.pkce_mandatory.then_some(true);
    let oauth = parse_oauth(c.redirect_uris, c.public, mandatory, c.pkce_support_plain, &grant_types)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut ledger = app::open_ledger(&settings, Generators::opaque())?;
    let command = Command::RegisterClient { name, grant_types, access_token_type, oauth };
    match ledger.execute(Envelope { command, meta: cli_meta() }).map_err(StartError::from)? {
        Ok(Reply::Client(c)) => {
            let mut body = serde_json::json!({
                "client_id": c.client_id.as_str(),
                "client_secret": c.client_secret,
                "client_name": c.client_name,
                "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                "access_token_type": c.access_token_type,
            });
            if !c.oauth.redirect_uris.is_empty() {
                body["redirect_uris"] = serde_json::json!(c.oauth.redirect_uris);
            }
            if c.oauth.public {
                // A public client has no secret to show.
                if let Some(fields) = body.as_object_mut() {
                    fields.remove("client_secret");
                }
                body["token_endpoint_auth_method"] = "none".into();
            }
            println!("{body}");
            Ok(())
        }
        Ok(_) => Err(CliError::Usage("the ledger did not return the new client".into())),
        Err(refusal) => Err(CliError::Usage(refusal.to_string())),
    }
}

fn add_user(config: &ConfigArg, username: String, password: String) -> Result<(), CliError> {
    let settings = Settings::load(&config.config)?;
    let username = Username::parse(&username).map_err(|e| CliError::Usage(e.to_string()))?;
    if password.is_empty() {
        return Err(CliError::Usage("the password must not be empty".into()));
    }
    let password_hash = crypto::hash_password(&password).map_err(StartError::from)?;
    let mut ledger = app::open_ledger(&settings, Generators::opaque())?;
    let shown = username.as_str().to_owned();
    let command = Command::AddUser { username, password_hash };
    match ledger.execute(Envelope { command, meta: cli_meta() }).map_err(StartError::from)? {
        Ok(_) => {
            println!("user {shown} added");
            Ok(())
        }
        Err(Refusal::UserExists) => Err(CliError::Usage(format!("user {shown} already exists"))),
        Err(refusal) => Err(CliError::Usage(refusal.to_string())),
    }
}
