//! `ledger-gen`: writes a realistic log of at least `--events` events into a new database,
//! through the server's own write path (`Ledger::execute_batch`, group commits of 256 commands):
//! a real hash chain, real events, real views. Clients and users are registered, then tokens are
//! issued (password and client_credentials), handed back, renewed, refreshed, replayed after
//! rotation, revoked, and clients deleted, in proportions chosen by a seeded random generator.
//!
//! Two ledgers share the database, one with renewal off and one with renewal on (and no reuse
//! grace period), so both of WSO2's behaviours appear. Time is the wall clock, or with `--days D`
//! a simulated clock (`Ledger::with_clock`) that spreads the log over the D days before now, so
//! that archiving (issue 9) has days of history to work on.
#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use token_ledger::config::Settings;
use token_ledger::crypto::{self, Sealer};
use token_ledger::domain::grant::Policy;
use token_ledger::domain::types::{ClientId, Digest, GrantType, ScopeSet, Subject, TokenKey, Username};
use token_ledger::store::backend::ReadStore as _;
use token_ledger::store::clock::SimulatedClock;
use token_ledger::store::ledger::{Command, Envelope, Ledger, Reply};
use token_ledger::store::log::RequestMeta;
use token_ledger::store::sqlite::{SqliteReads, SqliteStore};
use token_ledger::store::StoreError;
use token_ledger::tokens::Generators;

#[derive(Parser)]
#[command(name = "ledger-gen", about = "Writes a realistic token-ledger log of any length")]
struct Args {
    /// Stop once the log holds at least this many events.
    #[arg(long, default_value_t = 1_000_000)]
    events: i64,
    /// The database to create (it must not exist); its folder also gets token.key.
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Seed of the traffic mix, for a repeatable shape.
    #[arg(long, default_value_t = 6777)]
    seed: u64,
    /// How many clients are registered at any time (at least 1).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// How many users are added up front (at least 1).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    users: u32,
    /// Spread the log over this many simulated days ending now, instead of the run's wall clock.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    days: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
enum GenError {
    #[error("{0} exists already: ledger-gen only writes new databases")]
    Exists(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error("cannot create {0}: {1}")]
    Dir(PathBuf, std::io::Error),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match generate(&args) {
        Ok(events) => {
            println!("{}: {events} events", args.db.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ledger-gen: {e}");
            ExitCode::from(2)
        }
    }
}

/// Scopes that real clients ask for: a few shapes, so keys repeat and tokens come back.
const SCOPES: [&str; 5] = ["openid", "read", "read write", "openid profile", ""];
/// How many live token pairs the traffic remembers to refresh or revoke later.
const REMEMBERED: usize = 20_000;
const BATCH: usize = 256;

fn generate(args: &Args) -> Result<i64, GenError> {
    if args.db.exists() {
        return Err(GenError::Exists(args.db.clone()));
    }
    let dir = args.db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| GenError::Dir(dir.to_owned(), e))?;
    let sealer = Sealer::load_or_create(&dir.join("token.key"))?;
    let steady_policy = Settings::default().policy();
    let renewing_policy = Policy {
        renew_access_token_per_request: true,
        refresh_token_reuse_grace_ms: 0,
        ..steady_policy.clone()
    };
    let open = || SqliteStore::open(&args.db).map(|s| Box::new(s) as Box<_>).map_err(StoreError::from);
    let mut steady = Ledger::new(open()?, sealer.clone(), steady_policy, Generators::opaque());
    let mut renewing = Ledger::new(open()?, sealer, renewing_policy, Generators::opaque());
    // With --days, each batch moves a simulated clock on by its share of the days.
    let simulated = args.days.map(|days| {
        let span = i64::from(days) * 86_400_000;
        let clock = SimulatedClock::starting_at(token_ledger::store::ledger::system_clock() - span);
        let per_batch = span * BATCH as i64 / args.events.max(1);
        (clock, per_batch)
    });
    if let Some((clock, _)) = &simulated {
        steady = steady.with_clock(clock.clock());
        renewing = renewing.with_clock(clock.clock());
    }
    let reads = SqliteReads::new(args.db.clone());
    let mut traffic = Traffic::new(args.seed, crypto::hash_password("generated-user")?);
    let bar = progress(args.events as u64);
    traffic.setup(&mut steady, args.clients, args.users)?;
    loop {
        let position = reads.head().map_err(StoreError::from)?;
        bar.set_position(position as u64);
        if position >= args.events {
            bar.finish_and_clear();
            return Ok(position);
        }
        let ledger = if traffic.rng.gen_bool(0.2) { &mut renewing } else { &mut steady };
        traffic.batch(ledger)?;
        if let Some((clock, per_batch)) = &simulated {
            clock.advance(*per_batch);
        }
    }
}

fn progress(total: u64) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    }
}

/// A token pair the traffic may come back to.
#[derive(Clone)]
struct Pair {
    client: ClientId,
    access: Digest,
    refresh: Option<Digest>,
}

/// What a command in a batch was, to read its reply.
#[derive(Clone)]
enum Sent {
    Token { client: ClientId, refreshed: Option<Digest> },
    Client,
    Other,
}

struct Traffic {
    rng: StdRng,
    password_hash: String,
    clients: Vec<ClientId>,
    users: Vec<Username>,
    pairs: Vec<Pair>,
    rotated: Vec<(ClientId, Digest)>,
    next_user: usize,
}

impl Traffic {
    fn new(seed: u64, password_hash: String) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            password_hash,
            clients: Vec::new(),
            users: Vec::new(),
            pairs: Vec::new(),
            rotated: Vec::new(),
            next_user: 0,
        }
    }

    fn setup(&mut self, ledger: &mut Ledger, clients: u32, users: u32) -> Result<(), GenError> {
        let mut commands: Vec<(Command, Sent)> = (0..clients).map(|_| self.register()).collect();
        commands.extend((0..users).map(|_| self.add_user()));
        for chunk in commands.chunks(BATCH) {
            self.run(ledger, chunk.to_vec())?;
        }
        Ok(())
    }

    fn batch(&mut self, ledger: &mut Ledger) -> Result<(), GenError> {
        let commands = (0..BATCH).map(|_| self.command()).collect();
        self.run(ledger, commands)
    }

    fn run(&mut self, ledger: &mut Ledger, commands: Vec<(Command, Sent)>) -> Result<(), GenError> {
        let (commands, sent): (Vec<_>, Vec<_>) = commands.into_iter().unzip();
        let envelopes =
            commands.into_iter().map(|command| Envelope { meta: self.meta(&command), command }).collect();
        for (result, sent) in ledger.execute_batch(envelopes).into_iter().zip(sent) {
            match (result?, sent) {
                (Ok(Reply::Granted(g)), Sent::Token { client, refreshed }) => {
                    if let Some(old) = refreshed {
                        self.remember_rotated(client.clone(), old);
                    }
                    self.remember(Pair {
                        client,
                        access: Digest::of(g.access_token.as_bytes()),
                        refresh: g.refresh_token.map(|r| Digest::of(r.as_bytes())),
                    });
                }
                (Ok(Reply::Client(c)), Sent::Client) => self.clients.push(c.client_id),
                _ => {}
            }
        }
        Ok(())
    }

    /// One command of the mix.
    fn command(&mut self) -> (Command, Sent) {
        let roll = self.rng.gen_range(0..1000);
        match roll {
            0..=1 if self.clients.len() > 1 => self.delete_client(),
            2..=3 => self.register(),
            4..=8 => self.add_user(),
            9..=128 if !self.pairs.is_empty() => self.refresh(),
            129..=158 if !self.rotated.is_empty() => self.replay_rotated(),
            159..=218 if !self.pairs.is_empty() => self.revoke(),
            219..=318 => self.issue(true),
            _ => self.issue(false),
        }
    }

    fn issue(&mut self, application: bool) -> (Command, Sent) {
        let client = self.pick_client();
        let subject = if application {
            Subject::Application
        } else {
            Subject::User(self.users[self.rng.gen_range(0..self.users.len())].clone())
        };
        let scopes =
            ScopeSet::parse(SCOPES[self.rng.gen_range(0..SCOPES.len())]).expect("the scope shapes parse");
        let grant_type = if application { GrantType::ClientCredentials } else { GrantType::Password };
        let key = TokenKey { client: client.clone(), subject, scopes };
        let sent = Sent::Token { client, refreshed: None };
        (Command::Issue { key, grant_type }, sent)
    }

    fn refresh(&mut self) -> (Command, Sent) {
        let pair = self.take_pair();
        let Some(refresh) = pair.refresh else {
            return self.revoke_pair(pair);
        };
        let command = Command::Refresh { client: pair.client.clone(), refresh_digest: refresh, scopes: None };
        let sent = Sent::Token { client: pair.client, refreshed: Some(refresh) };
        (command, sent)
    }

    fn replay_rotated(&mut self) -> (Command, Sent) {
        let (client, digest) = self.rotated[self.rng.gen_range(0..self.rotated.len())].clone();
        let command = Command::Refresh { client, refresh_digest: digest, scopes: None };
        (command, Sent::Other)
    }

    fn revoke(&mut self) -> (Command, Sent) {
        let pair = self.take_pair();
        self.revoke_pair(pair)
    }

    fn revoke_pair(&mut self, pair: Pair) -> (Command, Sent) {
        let digest = match pair.refresh {
            Some(refresh) if self.rng.gen_bool(0.3) => refresh,
            _ => pair.access,
        };
        let command = Command::Revoke { client: pair.client, digest };
        (command, Sent::Other)
    }

    fn register(&mut self) -> (Command, Sent) {
        let name = format!("app-{}", self.rng.gen_range(0..100_000));
        let command = Command::RegisterClient {
            name,
            grant_types: GrantType::ALL.to_vec(),
            access_token_type: None,
            oauth: Default::default(),
        };
        (command, Sent::Client)
    }

    fn delete_client(&mut self) -> (Command, Sent) {
        let index = self.rng.gen_range(0..self.clients.len());
        let client_id = self.clients.swap_remove(index);
        self.pairs.retain(|p| p.client != client_id);
        self.rotated.retain(|(c, _)| *c != client_id);
        (Command::DeleteClient { client_id }, Sent::Other)
    }

    fn add_user(&mut self) -> (Command, Sent) {
        self.next_user += 1;
        let username = Username::parse(&format!("user{:06}", self.next_user)).expect("a plain username");
        self.users.push(username.clone());
        let command = Command::AddUser { username, password_hash: self.password_hash.clone() };
        (command, Sent::Other)
    }

    fn pick_client(&mut self) -> ClientId {
        self.clients[self.rng.gen_range(0..self.clients.len())].clone()
    }

    fn take_pair(&mut self) -> Pair {
        let index = self.rng.gen_range(0..self.pairs.len());
        self.pairs.swap_remove(index)
    }

    fn remember(&mut self, pair: Pair) {
        if self.pairs.len() < REMEMBERED {
            self.pairs.push(pair);
        } else {
            let index = self.rng.gen_range(0..REMEMBERED);
            self.pairs[index] = pair;
        }
    }

    fn remember_rotated(&mut self, client: ClientId, digest: Digest) {
        if self.rotated.len() < REMEMBERED {
            self.rotated.push((client, digest));
        } else {
            let index = self.rng.gen_range(0..REMEMBERED);
            self.rotated[index] = (client, digest);
        }
    }

    /// The envelope an HTTP request would carry: a request id, the caller and a peer address
    /// from the documentation range.
    fn meta(&mut self, command: &Command) -> RequestMeta {
        let (client, user, grant) = match command {
            Command::Issue { key, grant_type } => (
                Some(key.client.to_string()),
                match &key.subject {
                    Subject::User(u) => Some(u.as_str().to_owned()),
                    Subject::Application => None,
                },
                Some(grant_type.as_str().to_owned()),
            ),
            Command::Refresh { client, .. } => {
                (Some(client.to_string()), None, Some("refresh_token".to_owned()))
            }
            Command::Revoke { client, .. } => (Some(client.to_string()), None, None),
            _ => (None, None, None),
        };
        RequestMeta {
            request_id: Some(uuid::Uuid::from_u128(self.rng.gen()).to_string()),
            client_id: client,
            username: user,
            grant_type: grant,
            peer: Some(format!(
                "198.51.100.{}:{}",
                self.rng.gen_range(1..255),
                self.rng.gen_range(1024..65535)
            )),
        }
    }
}
