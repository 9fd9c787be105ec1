//! A database with many active tokens, written before the server starts through the library's
//! own write path (`open_ledger`, then `Ledger::execute_batch` with batches of `Command::Issue`),
//! so every row is exactly what the server would have written. The token values are kept for
//! introspection and revocation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use token_ledger::app::{ensure_super_admin, open_ledger, StartError};
use token_ledger::config::Settings;
use token_ledger::domain::types::{ClientId, GrantType, ScopeSet, Subject, TokenKey};
use token_ledger::store::ledger::{system_clock, Command, Envelope, Ledger, Reply};
use token_ledger::store::log::RequestMeta;
use token_ledger::store::sqlite::SqliteStore;
use token_ledger::store::{BackendError, StoreError};
use token_ledger::tokens::jwt::JwtGenerator;
use token_ledger::tokens::keys::KeyStore;
use token_ledger::tokens::{Generators, JWT};

use crate::deployment::{database_bytes, write_config, Credentials, Deployment, Flags, ServerRun};
use crate::BenchError;

/// Commands per transaction by default: the server's own group-commit bound
/// (`writer::MAX_BATCH`). `LEDGER_BENCH_BATCH` overrides it, to see how the write path's cost
/// per event depends on the transaction's size.
const BATCH: usize = 256;

fn batch_size() -> usize {
    std::env::var("LEDGER_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=100_000).contains(n))
        .unwrap_or(BATCH)
}
/// Token values, packed one after the other (1,000,000 opaque ones take 47 MB).
#[derive(Debug, Default)]
pub struct TokenList {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl TokenList {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    pub fn push(&mut self, token: &[u8]) -> Result<(), BenchError> {
        self.bytes.extend_from_slice(token);
        let end = u32::try_from(self.bytes.len())
            .map_err(|_| BenchError::Unexpected("more than 4 GB of token values"))?;
        self.ends.push(end);
        Ok(())
    }

    /// One value a line (token values are base64url or JWTs: no newlines).
    fn to_lines(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + self.len());
        for i in 0..self.len() {
            out.extend_from_slice(self.get(i));
            out.push(b'\n');
        }
        out
    }

    fn from_lines(text: &[u8]) -> Result<Self, BenchError> {
        let mut list = Self::default();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            list.push(line)?;
        }
        Ok(list)
    }
}

/// The format of the populated access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Opaque,
    /// RFC 9068 JWTs signed by the server's key; their `iss` names the port, so a JWT
    /// population is served on the port it was made for.
    Jwt {
        port: u16,
    },
}

impl Format {
    pub fn flags(self) -> Flags {
        match self {
            Self::Opaque => Flags::default(),
            Self::Jwt { port } => Flags { jwt_port: Some(port), ..Flags::default() },
        }
    }
}

/// A populated data folder and what it holds.
pub struct Population {
    /// Kept alive while the population is used (absent for a `--cache` folder).
    _temp: Option<TempDir>,
    pub data_dir: PathBuf,
    pub client: Credentials,
    pub tokens: Arc<TokenList>,
    /// Events in the log (the tokens, the client, the super admin).
    pub events: u64,
    pub took: Duration,
    pub database_bytes: u64,
    pub reused: bool,
    pub format: Format,
}

impl Population {
    pub fn bytes_per_event(&self) -> f64 {
        self.database_bytes as f64 / self.events.max(1) as f64
    }

    /// Populates a new temporary folder, or `cache/opaque` or `cache/jwt` (reused when it
    /// already holds `count` tokens).
    pub fn make(format: Format, count: usize, cache: Option<&Path>) -> Result<Self, BenchError> {
        let sub = match format {
            Format::Opaque => "opaque",
            Format::Jwt { .. } => "jwt",
        };
        let cache = cache.map(|c| c.join(sub));
        let cache = cache.as_deref();
        if let Some(dir) = cache {
            if let Some(found) = Self::load(dir, count)? {
                return Ok(found);
            }
        }
        let (temp, dir) = match cache {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|source| BenchError::io("cannot create the cache folder", source))?;
                (None, dir.to_owned())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("ledger-bench-population-")
                    .tempdir()
                    .map_err(|source| BenchError::io("cannot create a temporary folder", source))?;
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        let mut made = populate(&dir, format, count)?;
        made._temp = temp;
        if cache.is_some() {
            made.save(&dir)?;
        }
        Ok(made)
    }

    /// Populates a new temporary folder through `run.binary`'s own HTTP API (client_credentials
    /// requests, scope `p<i>`): slower than `make`, but the database is that binary's own, so an
    /// older server whose schema this library would not write can be measured on it.
    pub fn through_http(format: Format, count: usize, run: &ServerRun) -> Result<Self, BenchError> {
        let deployment = Deployment::new(format.flags())?;
        let client = deployment.register_client(&run.binary, "bench-population")?;
        let started = Instant::now();
        let mut server = deployment.start(run)?;
        let tokens = crate::http_population::populate(&[server.addr], &client, count);
        // A clean stop: SQLite folds its WAL into the file that is copied.
        server.stop();
        let tokens = Arc::new(tokens?);
        let took = started.elapsed();
        let data_dir = deployment.data_dir();
        Ok(Population {
            database_bytes: database_bytes(&data_dir.join("ledger.db")),
            data_dir,
            _temp: Some(deployment.into_dir()),
            client,
            tokens,
            events: count as u64 + 2,
            took,
            reused: false,
            format,
        })
    }

    fn save(&self, dir: &Path) -> Result<(), BenchError> {
        let port = match self.format {
            Format::Opaque => 0,
            Format::Jwt { port } => port,
        };
        let meta = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{port}\n",
            self.tokens.len(),
            self.client.id,
            self.client.secret,
            self.events,
            self.took.as_secs_f64(),
            self.database_bytes
        );
        let io = |source| BenchError::io("cannot write the population cache", source);
        std::fs::write(dir.join("tokens.txt"), self.tokens.to_lines()).map_err(io)?;
        std::fs::write(dir.join("population.txt"), meta).map_err(io)
    }

    fn load(dir: &Path, count: usize) -> Result<Option<Self>, BenchError> {
        let Ok(meta) = std::fs::read_to_string(dir.join("population.txt")) else {
            return Ok(None);
        };
        let lines: Vec<&str> = meta.lines().collect();
        let [n, id, secret, events, took, bytes, port] = lines[..] else {
            return Ok(None);
        };
        if n.parse::<usize>().ok() != Some(count) {
            return Err(BenchError::CacheMismatch(dir.to_owned(), count));
        }
        let tokens = std::fs::read(dir.join("tokens.txt"))
            .map_err(|source| BenchError::io("cannot read the population cache", source))?;
        let bad = || BenchError::CacheMismatch(dir.to_owned(), count);
        Ok(Some(Self {
            _temp: None,
            data_dir: dir.join("data"),
            client: Credentials { id: id.to_owned(), secret: secret.to_owned() },
            tokens: Arc::new(TokenList::from_lines(&tokens)?),
            events: events.parse().map_err(|_| bad())?,
            took: Duration::from_secs_f64(took.parse().map_err(|_| bad())?),
            database_bytes: bytes.parse().map_err(|_| bad())?,
            reused: true,
            format: match port.parse().map_err(|_| bad())? {
                0 => Format::Opaque,
                port => Format::Jwt { port },
            },
        }))
    }
}

fn populate(dir: &Path, format: Format, count: usize) -> Result<Population, BenchError> {
    let config = dir.join("deployment.toml");
    write_config(&config, format.flags())?;
    let settings = Settings::load(&config)?;
    let mut ledger = open_ledger(&settings, generators(&settings, format)?)?;
    if let Some(store) = experimental_pragmas(&settings)? {
        ledger = ledger.with_store(Box::new(store));
    }
    ensure_super_admin(&mut ledger, &settings)?;
    let client = register(&mut ledger)?;
    let client_id = ClientId::parse(&client.id).map_err(|_| BenchError::Unexpected("a bad client id"))?;
    let started = Instant::now();
    let mut tokens = TokenList::default();
    let mut next = 0;
    let batch_size = batch_size();
    while next < count {
        let end = (next + batch_size).min(count);
        let batch = (next..end).map(|i| issue(&client_id, i)).collect::<Result<Vec<_>, _>>()?;
        for result in ledger.execute_batch(batch) {
            match result? {
                Ok(Reply::Granted(g)) => tokens.push(g.access_token.as_bytes())?,
                Ok(_) => return Err(BenchError::Unexpected("an issue without a token")),
                Err(refusal) => return Err(BenchError::Refused(refusal.to_string())),
            }
        }
        if end / 100_000 > next / 100_000 {
            let rate = end as f64 / started.elapsed().as_secs_f64();
            eprintln!("  populated {end} tokens ({rate:.0} tokens/s)");
        }
        next = end;
    }
    let took = started.elapsed();
    drop(ledger); // closes the connection: SQLite checkpoints the WAL into the database
    let data_dir = dir.join("data");
    Ok(Population {
        _temp: None,
        database_bytes: database_bytes(&data_dir.join("ledger.db")),
        data_dir,
        client,
        tokens: Arc::new(tokens),
        events: count as u64 + 2,
        took,
        reused: false,
        format,
    })
}

/// `LEDGER_BENCH_PRAGMAS="cache_size=-131072,temp_store=MEMORY"` applies SQLite pragmas to
/// the population's write connection: an experiment on the write path's cost, never the
/// server's configuration (the server's own connections are untouched).
fn experimental_pragmas(settings: &Settings) -> Result<Option<SqliteStore>, BenchError> {
    let Ok(list) = std::env::var("LEDGER_BENCH_PRAGMAS") else {
        return Ok(None);
    };
    let store = SqliteStore::open(&settings.database.path).map_err(StoreError::from)?;
    for pair in list.split(',').filter(|p| !p.is_empty()) {
        let (name, value) =
            pair.split_once('=').ok_or(BenchError::Unexpected("LEDGER_BENCH_PRAGMAS wants name=value,…"))?;
        store
            .connection()
            .pragma_update(None, name.trim(), value.trim())
            .map_err(|e| StoreError::from(BackendError::from(e)))?;
        eprintln!("  experiment: PRAGMA {name} = {value} on the population's connection");
    }
    Ok(Some(store))
}

/// The generators the server would have: opaque, and for a JWT population the JWT generator
/// with the server's key store and issuer (as `Application::build` makes them).
fn generators(settings: &Settings, format: Format) -> Result<Generators, BenchError> {
    let mut generators = Generators::opaque();
    if let Format::Jwt { port } = format {
        let keys = KeyStore::open(
            &settings.data_dir().join("jwt-keys"),
            settings.oauth.token_generation.jwt_signing_algorithm,
            system_clock(),
        )
        .map_err(StartError::from)?;
        let issuer = format!("http://{}:{port}/oauth2/token", settings.server.hostname);
        generators.register(JWT, Arc::new(JwtGenerator::new(Arc::new(keys), issuer)));
        generators.set_default(JWT).map_err(|_| BenchError::Unexpected("no jwt generator"))?;
    }
    Ok(generators)
}

fn register(ledger: &mut Ledger) -> Result<Credentials, BenchError> {
    let command = Command::RegisterClient {
        name: "bench-population".into(),
        grant_types: vec![GrantType::ClientCredentials, GrantType::Password, GrantType::RefreshToken],
        access_token_type: None,
        oauth: Default::default(),
    };
    match ledger.execute(Envelope { command, meta: RequestMeta::default() })? {
        Ok(Reply::Client(c)) => {
            Ok(Credentials { id: c.client_id.as_str().to_owned(), secret: c.client_secret })
        }
        Ok(_) => Err(BenchError::Unexpected("a registration without a client")),
        Err(refusal) => Err(BenchError::Refused(refusal.to_string())),
    }
}

/// A client_credentials issue for a key of its own (scope `p<i>`), with the envelope an HTTP
/// request would carry, so the bytes per event are those of the server's events.
fn issue(client: &ClientId, i: usize) -> Result<Envelope, BenchError> {
    let scopes = ScopeSet::parse(&format!("p{i}")).map_err(|_| BenchError::Unexpected("a bad scope"))?;
    Ok(Envelope {
        command: Command::Issue {
            key: TokenKey { client: client.clone(), subject: Subject::Application, scopes },
            grant_type: GrantType::ClientCredentials,
        },
        meta: RequestMeta {
            request_id: Some(format!("{:08x}-0000-4000-8000-{:012x}", i >> 16, i)),
            client_id: Some(client.as_str().to_owned()),
            username: None,
            grant_type: Some("client_credentials".into()),
            peer: Some(format!("127.0.0.1:{}", 40_000 + i % 20_000)),
        },
    })
}
