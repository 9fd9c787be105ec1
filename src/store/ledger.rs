//! The write side: commands in, events appended and projected in one transaction, replies out.
//! The writer thread runs batches of commands through `Ledger::execute_batch` (group commit);
//! the CLI runs single commands through the same code.

use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior};
use uuid::Uuid;

use super::authz_commands::{self, AuthzCommand, Redeemed};
use super::log::{append, RequestMeta, Tail};
use super::memory::{Change, MemoryView};
use super::mint::LedgerMint;
use super::projection::{apply, set_checkpoint};
use super::views::{self, ClientRecord, Half};
use super::StoreError;
use crate::crypto::{self, Sealer};
use crate::domain::client::ClientOAuth;
use crate::domain::events::{
    AuthMethod, AuthenticationFailed, ClientDeleted, ClientRegistered, Event, Millis, Pending, UserAdded,
    UserPasswordChanged,
};
use crate::domain::grant::{
    decide_issue, decide_refresh, decide_revoke, refreshed_scopes, revoke_all_of_client, Decision,
    DomainError, IssueRequest, Policy, RefreshLookup, Renewal,
};
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, TokenKey, Username};
use crate::tokens::{Generators, TokenGenerator};

/// What a caller asks the ledger to do.
#[derive(Debug, Clone)]
pub enum Command {
    /// Password or client_credentials grant for a key.
    Issue {
        key: TokenKey,
        grant_type: GrantType,
    },
    /// Refresh grant with a presented refresh token's digest.
    Refresh {
        client: ClientId,
        refresh_digest: Digest,
        scopes: Option<ScopeSet>,
    },
    /// RFC 7009 revocation of an access or refresh token by its client.
    Revoke {
        client: ClientId,
        digest: Digest,
    },
    RegisterClient {
        name: String,
        grant_types: Vec<GrantType>,
        /// The client's token generator by name; `None` for the server-wide default.
        access_token_type: Option<String>,
        /// Redirect URIs, public client, PKCE rules.
        oauth: ClientOAuth,
    },
    DeleteClient {
        client_id: ClientId,
    },
    AddUser {
        username: Username,
        password_hash: String,
    },
    /// Records a failed authentication (brute-force evidence for auditors).
    RecordAuthFailure(AuthenticationFailed),
    /// Creates the user, or changes its password hash (the super admin at start-up).
    SetUserPassword {
        username: Username,
        password_hash: String,
    },
    /// The authorization code flow (src/store/authz_commands.rs).
    Authz(AuthzCommand),
}

/// A command with the request it came from.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub command: Command,
    pub meta: RequestMeta,
}

/// A token response's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub scopes: ScopeSet,
    pub expires_in: i64,
}

/// A new client's credentials; the secret is shown once and kept only as a digest.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: ClientId,
    pub client_secret: String,
    pub client_name: String,
    pub grant_types: Vec<GrantType>,
    pub access_token_type: Option<String>,
    pub oauth: ClientOAuth,
}

#[derive(Debug, Clone)]
pub enum Reply {
    Granted(Granted),
    /// A code was exchanged: the tokens and what the ID token needs.
    Redeemed(Redeemed),
    Client(NewClient),
    Done,
}

/// A refusal that is not a storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the client is not registered")]
    UnknownClient,
    #[error("the user already exists")]
    UserExists,
}

/// The result of one command: a reply, a refusal (whose events, if any, were still committed),
/// or a storage failure (nothing of it was committed).
pub type CommandResult = Result<Result<Reply, Refusal>, StoreError>;

/// Owns the write connection.
pub struct Ledger {
    conn: Connection,
    sealer: Sealer,
    policy: Policy,
    generators: Generators,
    memory: Option<Arc<MemoryView>>,
    clock: fn() -> Millis,
}

/// The wall clock in milliseconds.
pub fn system_clock() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

impl Ledger {
    pub fn new(conn: Connection, sealer: Sealer, policy: Policy, generators: Generators) -> Self {
        Self { conn, sealer, policy, generators, memory: None, clock: system_clock }
    }

    /// Keeps `memory` in step with every commit (the server's introspection view).
    pub fn with_memory(mut self, memory: Arc<MemoryView>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Runs the commands in one transaction (group commit), each under a savepoint so one
    /// failing command does not undo the others. Replies only count once the commit returned.
    pub fn execute_batch(&mut self, batch: Vec<Envelope>) -> Vec<CommandResult> {
        let count = batch.len();
        let fail_all = |e: StoreError| -> Vec<CommandResult> {
            let shown = e.to_string();
            (0..count).map(|_| Err(StoreError::BatchFailed(shown.clone()))).collect()
        };
        let tx = match self.conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return fail_all(e.into()),
        };
        // Loaded once inside the write lock: nobody else can append until the commit.
        let mut tail = match Tail::load(&tx) {
            Ok(tail) => tail,
            Err(e) => return fail_all(e),
        };
        let start = tail.position;
        let mut results = Vec::with_capacity(count);
        let mut changes = Vec::new();
        for envelope in batch {
            let now = (self.clock)();
            let cx =
                Context { sealer: &self.sealer, policy: &self.policy, generators: &self.generators, now };
            let mut own = Vec::new();
            let before = tail.clone();
            let result = match in_savepoint(&tx, |conn| execute(conn, &cx, envelope, &mut tail, &mut own)) {
                Ok(result) => result,
                // The savepoint itself failed: the transaction's state is unknown, so nothing of
                // this batch may be committed. Dropping `tx` rolls it all back.
                Err(e) => return fail_all(e),
            };
            if result.is_ok() {
                changes.append(&mut own);
            } else {
                tail = before;
            }
            results.push(result);
        }
        if tail.position > start {
            if let Err(e) = set_checkpoint(&tx, tail.position) {
                return fail_all(e);
            }
        }
        match tx.commit() {
            Ok(()) => {
                // Before any reply leaves: an acknowledged revocation is never seen active.
                if let Some(memory) = &self.memory {
                    memory.apply(changes);
                }
                results
            }
            Err(e) => fail_all(e.into()),
        }
    }

    /// The write connection, for reads outside any command (start-up checks).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs one command on its own.
    pub fn execute(&mut self, envelope: Envelope) -> CommandResult {
        self.execute_batch(vec![envelope]).pop().unwrap_or(Err(StoreError::WriterGone))
    }
}

/// Runs one command under a savepoint (cached statements: they are parsed once). A refused or
/// failed command is rolled back to it, so it leaves nothing behind; the outer `Err` means the
/// savepoint could not be released or rolled back.
fn in_savepoint(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> CommandResult,
) -> Result<CommandResult, StoreError> {
    conn.prepare_cached("SAVEPOINT command")?.execute([])?;
    let result = f(conn);
    if result.is_err() {
        conn.prepare_cached("ROLLBACK TO command")?.execute([])?;
    }
    conn.prepare_cached("RELEASE command")?.execute([])?;
    Ok(result)
}

fn commit_events(
    conn: &Connection,
    pending: Vec<Pending>,
    meta: &RequestMeta,
    now: Millis,
    tail: &mut Tail,
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    for (stored, event) in append(conn, tail, pending, meta, now)? {
        changes.extend(memory_change(conn, &event)?);
        apply(conn, &stored, &event)?;
    }
    // The views' checkpoint moves once per batch, in the same transaction (`execute_batch`).
    Ok(())
}

/// What an event changes in the memory view; read before the SQL view applies it.
fn memory_change(conn: &Connection, event: &Event) -> Result<Option<Change>, StoreError> {
    Ok(match event {
        Event::TokenIssued(t) => Some(Change::issued(t)),
        Event::TokenRevoked(r) => {
            views::digests_of(conn, r.token_id)?.map(|(access, refresh)| Change::Revoked { access, refresh })
        }
        Event::ClientRegistered(c) => Some(Change::ClientRegistered(Arc::new(ClientRecord {
            client_id: c.client_id.clone(),
            client_name: c.client_name.clone(),
            secret_digest: c.secret_digest,
            grant_types: c.grant_types.clone(),
            access_token_type: c.access_token_type.clone(),
            oauth: c.oauth.clone(),
        }))),
        Event::ClientDeleted(c) => Some(Change::ClientDeleted(c.client_id.clone())),
        _ => None,
    })
}

/// What the ledger needs to decide.
pub(super) struct Context<'a> {
    pub(super) sealer: &'a Sealer,
    pub(super) policy: &'a Policy,
    pub(super) generators: &'a Generators,
    pub(super) now: Millis,
}

/// Events to commit and the reply to give.
pub(super) type Answer = (Vec<Pending>, Result<Reply, Refusal>);

fn execute(
    conn: &Connection,
    cx: &Context<'_>,
    envelope: Envelope,
    tail: &mut Tail,
    changes: &mut Vec<Change>,
) -> CommandResult {
    let Envelope { command, meta } = envelope;
    let (events, reply) = match command {
        Command::Issue { key, grant_type } => match issue(conn, cx, key, grant_type)? {
            Some(done) => done,
            None => return Ok(Err(Refusal::UnknownClient)),
        },
        Command::Refresh { client, refresh_digest, scopes } => {
            match refresh(conn, cx, client, refresh_digest, scopes)? {
                Some(done) => done,
                None => return Ok(Err(Refusal::UnknownClient)),
            }
        }
        Command::Revoke { client, digest } => {
            let found = views::active_by_digest(conn, &digest)?.map(|(t, _)| t);
            let d = decide_revoke(found.as_ref(), &client);
            (d.events, d.outcome.map(|_| Reply::Done).map_err(Refusal::Domain))
        }
        Command::RegisterClient { name, grant_types, access_token_type, oauth } => {
            register_client(name, grant_types, access_token_type, oauth)
        }
        Command::Authz(command) => match authz_commands::execute(conn, cx, command)? {
            Some(done) => done,
            None => return Ok(Err(Refusal::UnknownClient)),
        },
        Command::DeleteClient { client_id } => {
            if views::client(conn, &client_id)?.is_none() {
                return Ok(Err(Refusal::UnknownClient));
            }
            let mut events = revoke_all_of_client(&views::active_of_client(conn, &client_id)?);
            let stream = format!("client-{client_id}");
            events.push(Pending { stream, event: Event::ClientDeleted(ClientDeleted { client_id }) });
            (events, Ok(Reply::Done))
        }
        Command::AddUser { username, password_hash } => {
            if views::user(conn, &username)?.is_some() {
                return Ok(Err(Refusal::UserExists));
            }
            let event = Event::UserAdded(UserAdded { username: username.as_str().to_owned(), password_hash });
            (vec![Pending { stream: user_stream(&username), event }], Ok(Reply::Done))
        }
        Command::RecordAuthFailure(failure) => {
            let user = match failure.method {
                AuthMethod::Password => failure.username.as_deref().and_then(|n| Username::parse(n).ok()),
                AuthMethod::ClientSecret => None,
            };
            let stream = user.map_or_else(|| format!("client-{}", failure.client_id), |u| user_stream(&u));
            (vec![Pending { stream, event: Event::AuthenticationFailed(failure) }], Ok(Reply::Done))
        }
        Command::SetUserPassword { username, password_hash } => {
            let stream = user_stream(&username);
            let event = match views::user(conn, &username)? {
                None => Event::UserAdded(UserAdded { username: username.as_str().to_owned(), password_hash }),
                Some(u) => Event::UserPasswordChanged(UserPasswordChanged {
                    username: u.username.as_str().to_owned(),
                    password_hash,
                }),
            };
            (vec![Pending { stream, event }], Ok(Reply::Done))
        }
    };
    commit_events(conn, events, &meta, cx.now, tail, changes)?;
    Ok(reply)
}

/// The client's generator and how its requests treat an active token (code beats config).
pub(super) fn generator_of<'a>(cx: &Context<'a>, client: &ClientRecord) -> (&'a dyn TokenGenerator, Renewal) {
    let generator = cx.generators.for_client(client.access_token_type.as_deref());
    let renewal = Renewal::resolve(cx.policy.renew_access_token_per_request, generator.renew_per_request());
    (generator, renewal)
}

fn issue(
    conn: &Connection,
    cx: &Context<'_>,
    key: TokenKey,
    grant_type: GrantType,
) -> Result<Option<Answer>, StoreError> {
    let Some(client) = views::client(conn, &key.client)? else {
        return Ok(None);
    };
    let (generator, renewal) = generator_of(cx, &client);
    let current = views::active_by_stream(conn, &key.stream())?;
    let client_allows_refresh = client.allows(GrantType::RefreshToken);
    let req = IssueRequest { key, grant_type, client_allows_refresh, renewal };
    let mut mint = LedgerMint::new(cx.sealer, generator, renewal == Renewal::Off);
    let d = decide_issue(current.as_ref(), &req, &mut mint, cx.policy, cx.now)
        .map_err(|e| StoreError::Mint(e.0))?;
    Ok(Some(respond(d, &mint)?))
}

fn refresh(
    conn: &Connection,
    cx: &Context<'_>,
    client_id: ClientId,
    refresh_digest: Digest,
    scopes: Option<ScopeSet>,
) -> Result<Option<Answer>, StoreError> {
    let Some(client) = views::client(conn, &client_id)? else {
        return Ok(None);
    };
    let (generator, renewal) = generator_of(cx, &client);
    let lookup = refresh_lookup(conn, &refresh_digest)?;
    let target = match &lookup {
        RefreshLookup::Active(source) => match refreshed_scopes(source, scopes.as_ref()) {
            Ok(s) => views::active_by_stream(conn, &TokenKey { scopes: s, ..source.key() }.stream())?,
            Err(_) => None,
        },
        _ => None,
    };
    let mut mint = LedgerMint::new(cx.sealer, generator, renewal == Renewal::Off);
    let d =
        decide_refresh(&lookup, target.as_ref(), &client_id, scopes.as_ref(), &mut mint, cx.policy, cx.now)
            .map_err(|e| StoreError::Mint(e.0))?;
    Ok(Some(respond(d, &mint)?))
}

/// The events to commit and the reply, with the token values the mint made or kept.
pub(super) fn respond(d: Decision, mint: &LedgerMint<'_>) -> Result<Answer, StoreError> {
    let reply = match &d.outcome {
        Ok(outcome) => Ok(mint.granted(outcome)?.map_or(Reply::Done, Reply::Granted)),
        Err(e) => Err(Refusal::Domain(e.clone())),
    };
    Ok((d.events, reply))
}

pub(super) fn user_stream(username: &Username) -> String {
    format!("user-{}", username.canonical())
}

fn register_client(
    name: String,
    grant_types: Vec<GrantType>,
    access_token_type: Option<String>,
    oauth: ClientOAuth,
) -> Answer {
    let client_id = ClientId::parse(&Uuid::new_v4().simple().to_string()).expect("a uuid is a client id");
    // A public client has no secret; the digest of a value nobody ever sees matches nothing.
    let client_secret = crypto::new_secret();
    let event = Event::ClientRegistered(ClientRegistered {
        client_id: client_id.clone(),
        client_name: name.clone(),
        secret_digest: Digest::of(client_secret.as_bytes()),
        grant_types: grant_types.clone(),
        access_token_type: access_token_type.clone(),
        oauth: oauth.clone(),
    });
    let stream = format!("client-{client_id}");
    let reply = Reply::Client(NewClient {
        client_id,
        client_secret,
        client_name: name,
        grant_types,
        access_token_type,
        oauth,
    });
    (vec![Pending { stream, event }], Ok(reply))
}

fn refresh_lookup(conn: &Connection, digest: &Digest) -> Result<RefreshLookup, StoreError> {
    if let Some((token, Half::Refresh)) = views::active_by_digest(conn, digest)? {
        return Ok(RefreshLookup::Active(token));
    }
    let Some(r) = views::rotated(conn, digest)? else {
        return Ok(RefreshLookup::Unknown);
    };
    Ok(RefreshLookup::Rotated {
        family_active: views::active_by_family(conn, r.family_id)?,
        stream: r.stream,
        refresh_digest: *digest,
        family_id: r.family_id,
        client_id: r.client_id,
        rotated_at: r.rotated_at,
    })
}
