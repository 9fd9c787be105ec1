//! The write side: commands in, events appended and projected in one transaction, replies out.
//! The writer thread runs batches of commands through `Ledger::execute_batch` (group commit);
//! the CLI runs single commands through the same code.

use std::sync::Arc;

use uuid::Uuid;

use super::authz_commands::{self, AuthzCommand, Redeemed};
use super::backend::WriteStore;
use super::fold::apply;
use super::log::{append, RequestMeta, Tail};
use super::lookup::{self as views, ClientRecord, Half};
use super::memory::{Change, MemoryView};
use super::mint::LedgerMint;
use super::{BackendError, StoreError};
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
    /// Token cleanup: rows that expired more than `keep` ago leave the views (`ExpiredPruned`).
    PruneExpired {
        keep: Millis,
    },
}

/// The stream of the token cleanup's events.
pub const CLEANUP_STREAM: &str = "token-cleanup";

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

/// Owns the write side of the store.
pub struct Ledger {
    store: Box<dyn WriteStore>,
    sealer: Sealer,
    policy: Policy,
    generators: Generators,
    memory: Option<Arc<MemoryView>>,
    /// Catches the memory view up when other nodes appended (a shared log); `None` when this
    /// process is the only writer.
    follower: Option<Arc<super::follow::Follower>>,
    clock: super::clock::Clock,
    /// The clients this writer read, kept while nobody else writes (see `ClientCache`).
    clients: ClientCache,
}

/// The writer's clients, read once through the store and then kept: a token command needs its
/// client under the write lock (a deletion committed just before must refuse it), and reading
/// it through SQL cost a twentieth of a `cc-new`. An entry is only as good as the transaction
/// it was read in, so the cache is emptied whenever that may no longer hold: another connection
/// committed (`WriteStore::unchanged_by_others`), a command or batch was rolled back, or a
/// command of this writer appended a client event.
#[derive(Default)]
struct ClientCache(std::cell::RefCell<std::collections::HashMap<ClientId, Option<Arc<ClientRecord>>>>);

impl ClientCache {
    fn get(
        &self,
        store: &mut dyn WriteStore,
        id: &ClientId,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        if let Some(known) = self.0.borrow().get(id) {
            return Ok(known.clone());
        }
        let read = views::client(store, id)?.map(Arc::new);
        self.0.borrow_mut().insert(id.clone(), read.clone());
        Ok(read)
    }

    fn clear(&self) {
        self.0.borrow_mut().clear();
    }
}

/// The wall clock in milliseconds.
pub fn system_clock() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

impl Ledger {
    pub fn new(store: Box<dyn WriteStore>, sealer: Sealer, policy: Policy, generators: Generators) -> Self {
        let clock = super::clock::wall_clock();
        Self {
            store,
            sealer,
            policy,
            generators,
            memory: None,
            follower: None,
            clock,
            clients: ClientCache::default(),
        }
    }

    /// Takes "now" from `clock` instead of the wall clock (`store::clock::SimulatedClock`): the
    /// generator and the benchmarks write days of traffic in seconds.
    pub fn with_clock(mut self, clock: super::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps `memory` in step with every commit (the server's introspection view).
    pub fn with_memory(mut self, memory: Arc<MemoryView>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Replaces the write side (a benchmark's experimentally tuned connection).
    pub fn with_store(mut self, store: Box<dyn WriteStore>) -> Self {
        self.store = store;
        self
    }

    /// The memory view follows a log other nodes append to: after each commit it is caught up
    /// through `follower` unless the batch directly follows what it applied.
    pub fn with_follower(mut self, follower: Arc<super::follow::Follower>) -> Self {
        self.follower = Some(follower);
        self
    }

    /// How often a batch is run again after a serialization failure (SQLSTATE 40001) before
    /// its commands fail as unavailable.
    const RETRIES: usize = 5;

    /// Runs the commands in one transaction (see `try_batch`), again from the start when the
    /// database serialised the transaction out: nothing of it was committed then.
    ///
    /// A batch first runs without a savepoint per command: a savepoint costs two statements
    /// and SQLite's statement journal (a copy of every page a command first touches), and
    /// PostgreSQL two round trips, for a command that almost never fails. When one does fail
    /// (a storage error: a refusal by the rules is not a failure and commits its events), the
    /// whole transaction is rolled back, nothing of it having been committed or answered, and
    /// the batch runs again with a savepoint per command, so the failing command leaves the
    /// others committed.
    pub fn execute_batch(&mut self, batch: Vec<Envelope>) -> Vec<CommandResult> {
        let mut guarded = false;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_batch(&batch, guarded) {
                Ok(Some(results)) => return results,
                // A command failed unguarded: run the batch again, each command under its own
                // savepoint (not a retry: the database refused nothing as a whole).
                Ok(None) => guarded = true,
                Err(BackendError::Retry(e)) if tries < Self::RETRIES => {
                    tracing::debug!(error = %e, "batch serialised out; retrying")
                }
                Err(e) => return fail_all(batch.len(), e.into()),
            }
        }
    }

    /// Runs the commands in one transaction (group commit); with `guarded`, each under a
    /// savepoint so one failing command does not undo the others. Replies only count once the
    /// commit returned. `Err` when the batch as a whole failed (nothing of it was committed);
    /// `Ok(None)` when, unguarded, a command failed and the transaction was rolled back.
    fn try_batch(
        &mut self,
        batch: &[Envelope],
        guarded: bool,
    ) -> Result<Option<Vec<CommandResult>>, BackendError> {
        // Loaded once inside the write lock: nobody else can append until the commit.
        let mut tail = self.store.begin()?;
        if !self.store.unchanged_by_others() {
            self.clients.clear();
        }
        let start = tail.position;
        let mut results = Vec::with_capacity(batch.len());
        let mut changes = Vec::new();
        for envelope in batch {
            let now = (self.clock)();
            let cx = Context {
                sealer: &self.sealer,
                policy: &self.policy,
                generators: &self.generators,
                now,
                clients: &self.clients,
            };
            let mut own = Vec::new();
            let before = tail.clone();
            let store = self.store.as_mut();
            let mut run = |s: &mut dyn WriteStore| execute(s, &cx, envelope, &mut tail, &mut own);
            let result = if guarded {
                match in_savepoint(store, run) {
                    Ok(result) => result,
                    // The savepoint itself failed: the transaction's state is unknown, so
                    // nothing of this batch may be committed.
                    Err(e) => return Err(self.abandon(e)),
                }
            } else {
                run(store)
            };
            if let Err(e) = retry_of(&result) {
                // A serialization failure inside a command dooms the whole transaction.
                return Err(self.abandon(e));
            }
            if result.is_ok() {
                if own.iter().any(|c| matches!(c, Change::ClientRegistered(_) | Change::ClientDeleted(_))) {
                    self.clients.clear();
                }
                changes.append(&mut own);
            } else if guarded {
                // Rolled back to the savepoint: what the command read may have been its own.
                self.clients.clear();
                tail = before;
            } else {
                self.store.rollback();
                self.clients.clear();
                return Ok(None);
            }
            results.push(result);
        }
        let moved = (tail.position > start).then_some(&tail);
        if let Err(e) = self.store.commit(moved) {
            return Err(self.abandon(e));
        }
        debug_assert_eq!(results.len(), batch.len());
        // Before any reply leaves: an acknowledged revocation is never seen active.
        self.update_memory(start, tail.position, changes);
        Ok(Some(results))
    }

    /// Rolls the batch's transaction back after `e`, forgetting what it read.
    fn abandon(&mut self, e: BackendError) -> BackendError {
        self.store.rollback();
        self.clients.clear();
        e
    }

    /// Applies a committed batch's changes to the memory view. On a shared log the view may
    /// lag behind `start` (other nodes appended): then it is caught up from the log instead.
    fn update_memory(&self, start: i64, end: i64, changes: Vec<Change>) {
        let Some(memory) = &self.memory else {
            return;
        };
        if end == start && changes.is_empty() {
            return;
        }
        match &self.follower {
            None => memory.apply(end, changes),
            Some(follower) => {
                if !memory.apply_at(start, end, changes) {
                    if let Err(e) = follower.catch_up_to(end) {
                        // The view stays behind; introspection's read barrier refuses to answer
                        // from it until the follower has caught up.
                        tracing::warn!(error = %e, "the memory view could not catch up after a commit");
                    }
                }
            }
        }
    }

    /// The write side of the store, for reads outside any command (start-up checks).
    pub fn store(&mut self) -> &mut dyn WriteStore {
        self.store.as_mut()
    }

    /// Gives the store back (the writer's final clean-up).
    pub fn close(&mut self) {
        self.store.close();
    }

    /// Runs one command on its own.
    pub fn execute(&mut self, envelope: Envelope) -> CommandResult {
        self.execute_batch(vec![envelope]).pop().unwrap_or(Err(StoreError::WriterGone))
    }
}

/// Every command of a failed batch fails with the batch's cause.
fn fail_all(count: usize, e: StoreError) -> Vec<CommandResult> {
    let shown = e.to_string();
    (0..count).map(|_| Err(StoreError::BatchFailed(shown.clone()))).collect()
}

/// A command that failed on a serialization failure, taken out to retry the batch.
fn retry_of(result: &CommandResult) -> Result<(), BackendError> {
    match result {
        Err(StoreError::Retry(message)) => Err(BackendError::Retry(message.to_string().into())),
        _ => Ok(()),
    }
}

/// Runs one command under a savepoint. A refused or failed command is rolled back to it, so it
/// leaves nothing behind; the outer `Err` means the savepoint could not be released or rolled
/// back.
fn in_savepoint(
    store: &mut dyn WriteStore,
    f: impl FnOnce(&mut dyn WriteStore) -> CommandResult,
) -> Result<CommandResult, BackendError> {
    store.savepoint()?;
    let result = f(store);
    if result.is_err() {
        store.rollback_to_savepoint()?;
    } else {
        store.release_savepoint()?;
    }
    Ok(result)
}

fn commit_events(
    store: &mut dyn WriteStore,
    pending: Vec<Pending>,
    meta: &RequestMeta,
    now: Millis,
    tail: &mut Tail,
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    for (stored, event) in append(store, tail, pending, meta, now)? {
        changes.extend(Change::of(&event));
        apply(store, &stored, &event)?;
    }
    // The views' checkpoint moves once per batch, in the same transaction (`try_batch`).
    Ok(())
}

/// What the ledger needs to decide.
pub(super) struct Context<'a> {
    pub(super) sealer: &'a Sealer,
    pub(super) policy: &'a Policy,
    pub(super) generators: &'a Generators,
    pub(super) now: Millis,
    clients: &'a ClientCache,
}

/// Events to commit and the reply to give.
pub(super) type Answer = (Vec<Pending>, Result<Reply, Refusal>);

/// Runs one command of a batch. It borrows the envelope: a batch that runs again (unguarded,
/// then guarded; or after a serialization failure) still has it, and only what a command keeps
/// is copied.
fn execute(
    store: &mut dyn WriteStore,
    cx: &Context<'_>,
    envelope: &Envelope,
    tail: &mut Tail,
    changes: &mut Vec<Change>,
) -> CommandResult {
    let Envelope { command, meta } = envelope;
    let (events, reply) = match command {
        Command::Issue { key, grant_type } => match issue(store, cx, key, *grant_type)? {
            Some(done) => done,
            None => return Ok(Err(Refusal::UnknownClient)),
        },
        Command::Refresh { client, refresh_digest, scopes } => {
            match refresh(store, cx, client, refresh_digest, scopes.as_ref())? {
                Some(done) => done,
                None => return Ok(Err(Refusal::UnknownClient)),
            }
        }
        Command::Revoke { client, digest } => {
            let found = views::active_by_digest(store, digest)?.map(|(t, _)| t);
            let d = decide_revoke(found.as_ref(), client);
            (d.events, d.outcome.map(|_| Reply::Done).map_err(Refusal::Domain))
        }
        Command::RegisterClient { name, grant_types, access_token_type, oauth } => {
            register_client(name.clone(), grant_types.clone(), access_token_type.clone(), oauth.clone())
        }
        Command::Authz(command) => match authz_commands::execute(store, cx, command.clone())? {
            Some(done) => done,
            None => return Ok(Err(Refusal::UnknownClient)),
        },
        Command::DeleteClient { client_id } => {
            if views::client(store, client_id)?.is_none() {
                return Ok(Err(Refusal::UnknownClient));
            }
            let mut events = revoke_all_of_client(&views::active_of_client(store, client_id)?);
            let stream = format!("client-{client_id}");
            let event = Event::ClientDeleted(ClientDeleted { client_id: client_id.clone() });
            events.push(Pending { stream, event });
            (events, Ok(Reply::Done))
        }
        Command::AddUser { username, password_hash } => {
            if views::user(store, username)?.is_some() {
                return Ok(Err(Refusal::UserExists));
            }
            let event = Event::UserAdded(UserAdded {
                username: username.as_str().to_owned(),
                password_hash: password_hash.clone(),
            });
            (vec![Pending { stream: user_stream(username), event }], Ok(Reply::Done))
        }
        Command::RecordAuthFailure(failure) => {
            let user = match failure.method {
                AuthMethod::Password => failure.username.as_deref().and_then(|n| Username::parse(n).ok()),
                AuthMethod::ClientSecret => None,
            };
            let stream = user.map_or_else(|| format!("client-{}", failure.client_id), |u| user_stream(&u));
            (vec![Pending { stream, event: Event::AuthenticationFailed(failure.clone()) }], Ok(Reply::Done))
        }
        Command::PruneExpired { keep } => {
            let event = Event::ExpiredPruned(cx.policy.cleanup_cutoffs(cx.now, *keep));
            (vec![Pending { stream: CLEANUP_STREAM.to_owned(), event }], Ok(Reply::Done))
        }
        Command::SetUserPassword { username, password_hash } => {
            let stream = user_stream(username);
            let password_hash = password_hash.clone();
            let event = match views::user(store, username)? {
                None => Event::UserAdded(UserAdded { username: username.as_str().to_owned(), password_hash }),
                Some(u) => Event::UserPasswordChanged(UserPasswordChanged {
                    username: u.username.as_str().to_owned(),
                    password_hash,
                }),
            };
            (vec![Pending { stream, event }], Ok(Reply::Done))
        }
    };
    commit_events(store, events, meta, cx.now, tail, changes)?;
    Ok(reply)
}

/// The client's generator and how its requests treat an active token (code beats config).
pub(super) fn generator_of<'a>(cx: &Context<'a>, client: &ClientRecord) -> (&'a dyn TokenGenerator, Renewal) {
    let generator = cx.generators.for_client(client.access_token_type.as_deref());
    let renewal = Renewal::resolve(cx.policy.renew_access_token_per_request, generator.renew_per_request());
    (generator, renewal)
}

fn issue(
    store: &mut dyn WriteStore,
    cx: &Context<'_>,
    key: &TokenKey,
    grant_type: GrantType,
) -> Result<Option<Answer>, StoreError> {
    let Some(client) = cx.clients.get(store, &key.client)? else {
        return Ok(None);
    };
    let (generator, renewal) = generator_of(cx, &client);
    let client_allows_refresh = client.allows(GrantType::RefreshToken);
    let req = IssueRequest::new(key.clone(), grant_type, client_allows_refresh, renewal);
    let current = views::active_by_stream(store, &req.stream)?;
    let mut mint = LedgerMint::new(cx.sealer, generator, renewal == Renewal::Off);
    let d = decide_issue(current.as_ref(), &req, &mut mint, cx.policy, cx.now)
        .map_err(|e| StoreError::Mint(e.0))?;
    Ok(Some(respond(d, &mint)?))
}

fn refresh(
    store: &mut dyn WriteStore,
    cx: &Context<'_>,
    client_id: &ClientId,
    refresh_digest: &Digest,
    scopes: Option<&ScopeSet>,
) -> Result<Option<Answer>, StoreError> {
    let Some(client) = cx.clients.get(store, client_id)? else {
        return Ok(None);
    };
    let (generator, renewal) = generator_of(cx, &client);
    let lookup = refresh_lookup(store, refresh_digest)?;
    let target = match &lookup {
        RefreshLookup::Active(source) => match refreshed_scopes(source, scopes) {
            Ok(s) => views::active_by_stream(store, &TokenKey { scopes: s, ..source.key() }.stream())?,
            Err(_) => None,
        },
        _ => None,
    };
    let mut mint = LedgerMint::new(cx.sealer, generator, renewal == Renewal::Off);
    let d = decide_refresh(&lookup, target.as_ref(), client_id, scopes, &mut mint, cx.policy, cx.now)
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

fn refresh_lookup(store: &mut dyn WriteStore, digest: &Digest) -> Result<RefreshLookup, StoreError> {
    if let Some((token, Half::Refresh)) = views::active_by_digest(store, digest)? {
        return Ok(RefreshLookup::Active(token));
    }
    let Some(r) = views::rotated(store, digest)? else {
        return Ok(RefreshLookup::Unknown);
    };
    Ok(RefreshLookup::Rotated {
        family_active: views::active_by_family(store, r.family_id)?,
        stream: r.stream,
        refresh_digest: *digest,
        family_id: r.family_id,
        client_id: r.client_id,
        rotated_at: r.rotated_at,
    })
}
