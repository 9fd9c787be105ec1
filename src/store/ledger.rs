//! The write side: commands in, events appended and projected in one transaction, replies out.
//! The writer thread runs batches of commands through `Ledger::execute_batch` (group commit);
//! the CLI runs single commands through the same code.

use rusqlite::{Connection, Transaction, TransactionBehavior};
use uuid::Uuid;

use super::log::{append, RequestMeta, Tail};
use super::projection::{apply, set_checkpoint};
use super::views::{self, Half};
use super::StoreError;
use crate::crypto::{self, Sealer};
use crate::domain::events::{
    ClientDeleted, ClientRegistered, Event, Millis, Pending, TokenIssued, UserAdded,
    UserPasswordChanged,
};
use crate::domain::grant::{
    decide_issue, decide_refresh, decide_revoke, refreshed_scopes, revoke_all_of_client, Decision,
    DomainError, FreshToken, IssueRequest, Outcome, Policy, RefreshLookup,
};
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, TokenKey, Username};

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
    },
    DeleteClient {
        client_id: ClientId,
    },
    AddUser {
        username: Username,
        password_hash: String,
    },
    /// Creates the user, or changes its password hash (the super admin at start-up).
    SetUserPassword {
        username: Username,
        password_hash: String,
    },
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
}

#[derive(Debug, Clone)]
pub enum Reply {
    Granted(Granted),
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
    clock: fn() -> Millis,
}

/// The wall clock in milliseconds.
pub fn system_clock() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

impl Ledger {
    pub fn new(conn: Connection, sealer: Sealer, policy: Policy) -> Self {
        Self {
            conn,
            sealer,
            policy,
            clock: system_clock,
        }
    }

    /// Runs the commands in one transaction (group commit), each under a savepoint so one
    /// failing command does not undo the others. Replies only count once the commit returned.
    pub fn execute_batch(&mut self, batch: Vec<Envelope>) -> Vec<CommandResult> {
        let count = batch.len();
        let fail_all = |e: StoreError| -> Vec<CommandResult> {
            let shown = e.to_string();
            (0..count)
                .map(|_| Err(StoreError::BatchFailed(shown.clone())))
                .collect()
        };
        let mut tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => return fail_all(e.into()),
        };
        let mut results = Vec::with_capacity(count);
        for envelope in batch {
            let now = (self.clock)();
            let result = run_in_savepoint(&mut tx, |sp| {
                execute(sp, &self.sealer, &self.policy, envelope, now)
            });
            results.push(result);
        }
        match tx.commit() {
            Ok(()) => results,
            Err(e) => fail_all(e.into()),
        }
    }

    /// The write connection, for reads outside any command (start-up checks).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs one command on its own.
    pub fn execute(&mut self, envelope: Envelope) -> CommandResult {
        self.execute_batch(vec![envelope])
            .pop()
            .unwrap_or(Err(StoreError::WriterGone))
    }
}

fn run_in_savepoint(
    tx: &mut Transaction<'_>,
    f: impl FnOnce(&Connection) -> CommandResult,
) -> CommandResult {
    let sp = tx.savepoint()?;
    let result = f(&sp);
    if result.is_ok() {
        sp.commit()?;
    }
    // Dropping an uncommitted savepoint rolls it back: a failed command leaves nothing behind.
    result
}

fn commit_events(
    conn: &Connection,
    pending: Vec<Pending>,
    meta: &RequestMeta,
    now: Millis,
) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut tail = Tail::load(conn)?;
    for (stored, event) in append(conn, &mut tail, pending, meta, now)? {
        apply(conn, &stored, &event)?;
    }
    set_checkpoint(conn, tail.position)
}

fn execute(
    conn: &Connection,
    sealer: &Sealer,
    policy: &Policy,
    envelope: Envelope,
    now: Millis,
) -> CommandResult {
    let Envelope { command, meta } = envelope;
    let fresh = || fresh_token(sealer);
    let (events, reply) = match command {
        Command::Issue { key, grant_type } => {
            let Some(client) = views::client(conn, &key.client)? else {
                return Ok(Err(Refusal::UnknownClient));
            };
            let current = views::active_by_stream(conn, &key.stream())?;
            let req = IssueRequest {
                key,
                grant_type,
                client_allows_refresh: client.allows(GrantType::RefreshToken),
            };
            decision(
                decide_issue(current.as_ref(), &req, &fresh(), policy, now),
                sealer,
            )?
        }
        Command::Refresh {
            client,
            refresh_digest,
            scopes,
        } => {
            if views::client(conn, &client)?.is_none() {
                return Ok(Err(Refusal::UnknownClient));
            }
            let lookup = refresh_lookup(conn, &refresh_digest)?;
            let target = match &lookup {
                RefreshLookup::Active(source) => match refreshed_scopes(source, scopes.as_ref()) {
                    Ok(s) => views::active_by_stream(
                        conn,
                        &TokenKey {
                            scopes: s,
                            ..source.key()
                        }
                        .stream(),
                    )?,
                    Err(_) => None,
                },
                _ => None,
            };
            let d = decide_refresh(
                &lookup,
                target.as_ref(),
                &client,
                scopes.as_ref(),
                &fresh(),
                policy,
                now,
            );
            decision(d, sealer)?
        }
        Command::Revoke { client, digest } => {
            let found = views::active_by_digest(conn, &digest)?.map(|(t, _)| t);
            decision(decide_revoke(found.as_ref(), &client), sealer)?
        }
        Command::RegisterClient { name, grant_types } => register_client(name, grant_types),
        Command::DeleteClient { client_id } => {
            if views::client(conn, &client_id)?.is_none() {
                return Ok(Err(Refusal::UnknownClient));
            }
            let mut events = revoke_all_of_client(&views::active_of_client(conn, &client_id)?);
            let stream = format!("client-{client_id}");
            events.push(Pending {
                stream,
                event: Event::ClientDeleted(ClientDeleted { client_id }),
            });
            (events, Ok(Reply::Done))
        }
        Command::AddUser {
            username,
            password_hash,
        } => {
            if views::user(conn, &username)?.is_some() {
                return Ok(Err(Refusal::UserExists));
            }
            let event = Event::UserAdded(UserAdded {
                username: username.as_str().to_owned(),
                password_hash,
            });
            (
                vec![Pending {
                    stream: user_stream(&username),
                    event,
                }],
                Ok(Reply::Done),
            )
        }
        Command::SetUserPassword {
            username,
            password_hash,
        } => {
            let stream = user_stream(&username);
            let event = match views::user(conn, &username)? {
                None => Event::UserAdded(UserAdded {
                    username: username.as_str().to_owned(),
                    password_hash,
                }),
                Some(u) => Event::UserPasswordChanged(UserPasswordChanged {
                    username: u.username.as_str().to_owned(),
                    password_hash,
                }),
            };
            (vec![Pending { stream, event }], Ok(Reply::Done))
        }
    };
    commit_events(conn, events, &meta, now)?;
    Ok(reply)
}

fn user_stream(username: &Username) -> String {
    format!("user-{}", username.canonical())
}

fn register_client(
    name: String,
    grant_types: Vec<GrantType>,
) -> (Vec<Pending>, Result<Reply, Refusal>) {
    let client_id =
        ClientId::parse(&Uuid::new_v4().simple().to_string()).expect("a uuid is a client id");
    let client_secret = crypto::new_secret();
    let event = Event::ClientRegistered(ClientRegistered {
        client_id: client_id.clone(),
        client_name: name.clone(),
        secret_digest: Digest::of(client_secret.as_bytes()),
        grant_types: grant_types.clone(),
    });
    let stream = format!("client-{client_id}");
    let reply = Reply::Client(NewClient {
        client_id,
        client_secret,
        client_name: name,
        grant_types,
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

/// New random values, sealed under the data folder's key with their digest as context.
fn fresh_token(sealer: &Sealer) -> FreshToken {
    let access = crypto::new_secret();
    let refresh = crypto::new_secret();
    let access_digest = Digest::of(access.as_bytes());
    let refresh_digest = Digest::of(refresh.as_bytes());
    FreshToken {
        token_id: Uuid::new_v4(),
        sealed_access: sealer.seal(&access, &access_digest.0),
        sealed_refresh: sealer.seal(&refresh, &refresh_digest.0),
        access_digest,
        refresh_digest,
    }
}

/// Turns a decision into events to commit and the reply, opening the sealed values to answer.
fn decision(
    d: Decision,
    sealer: &Sealer,
) -> Result<(Vec<Pending>, Result<Reply, Refusal>), StoreError> {
    let reply = match d.outcome {
        Ok(Outcome::Issued(token)) => {
            let expires_in = (token.expires_at - token.issued_at) / 1000;
            Ok(Reply::Granted(granted(&token, expires_in, sealer)?))
        }
        Ok(Outcome::Returned { token, expires_in }) => {
            Ok(Reply::Granted(granted(&token, expires_in, sealer)?))
        }
        Ok(Outcome::Done) => Ok(Reply::Done),
        Err(e) => Err(Refusal::Domain(e)),
    };
    Ok((d.events, reply))
}

fn granted(token: &TokenIssued, expires_in: i64, sealer: &Sealer) -> Result<Granted, StoreError> {
    let access_token = sealer.open(&token.sealed_access, &token.access_digest.0)?;
    let refresh_token = match &token.refresh {
        Some(r) => Some(sealer.open(&r.sealed, &r.digest.0)?),
        None => None,
    };
    Ok(Granted {
        access_token,
        refresh_token,
        scopes: token.scopes.clone(),
        expires_in,
    })
}
