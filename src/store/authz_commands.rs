//! The ledger's commands of the authorization code flow. A code exchange goes through the same
//! token key and rules as every grant (`decide_issue`), then marks the code used.

use super::authz;
use super::backend::WriteStore;
use super::ledger::{generator_of, respond, user_stream, Answer, Context, Granted, Refusal, Reply};
use super::lookup as views;
use super::mint::LedgerMint;
use super::StoreError;
use crate::domain::authz_events::{
    CodeIssued, ConsentGiven, ConsentWithdrawn, LoginFailed, LoginSucceeded, SessionEnded, SessionStarted,
};
use crate::domain::code::{check_redeem, code_stream, redeemed, CodeStatus, RedeemCheck, Redemption};
use crate::domain::events::{Event, Millis, Pending};
use crate::domain::grant::{decide_issue, IssueRequest, Outcome, Renewal};
use crate::domain::types::{ClientId, Digest, GrantType, Username};

/// A command of the code flow.
#[derive(Debug, Clone)]
pub enum AuthzCommand {
    /// The person signed in on the login page: a session begins.
    StartSession { client_id: ClientId, session: SessionStarted },
    /// `/oidc/logout`: the session ends (nothing happens for an unknown session).
    EndSession { session_digest: Digest },
    /// A wrong username or password on the login page.
    RecordLoginFailure(LoginFailed),
    /// A code for the person, after consent (recorded first when given on the page).
    IssueCode { code: Box<CodeIssued>, consent: Option<Box<ConsentGiven>> },
    /// The person denied the client.
    Deny(ConsentWithdrawn),
    /// `grant_type=authorization_code` by an authenticated (or public) client.
    Redeem {
        client: ClientId,
        code_digest: Digest,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
}

/// A code exchanged for tokens, with what the ID token needs.
#[derive(Debug, Clone)]
pub struct Redeemed {
    pub granted: Granted,
    pub username: Username,
    pub nonce: Option<String>,
    pub auth_time: Millis,
}

fn session_stream(digest: &Digest) -> String {
    format!("session-{}", digest.to_hex())
}

/// Runs a command; `None` when the client is unknown.
pub(super) fn execute(
    store: &mut dyn WriteStore,
    cx: &Context<'_>,
    command: AuthzCommand,
) -> Result<Option<Answer>, StoreError> {
    let done = |events: Vec<Pending>| Ok(Some((events, Ok(Reply::Done))));
    match command {
        AuthzCommand::StartSession { client_id, session } => {
            let login = LoginSucceeded { username: session.username.clone(), client_id };
            done(vec![
                Pending { stream: user_stream(&session.username), event: Event::LoginSucceeded(login) },
                Pending {
                    stream: session_stream(&session.session_digest),
                    event: Event::SessionStarted(session),
                },
            ])
        }
        AuthzCommand::EndSession { session_digest } => {
            match authz::session_in(store, &session_digest, i64::MIN)? {
                Some(signed_in) => {
                    let ended = SessionEnded { session_digest, username: signed_in.username };
                    done(vec![Pending {
                        stream: session_stream(&session_digest),
                        event: Event::SessionEnded(ended),
                    }])
                }
                None => done(vec![]),
            }
        }
        AuthzCommand::RecordLoginFailure(failure) => {
            let stream = match Username::parse(&failure.username) {
                Ok(u) => user_stream(&u),
                Err(_) => format!("client-{}", failure.client_id),
            };
            done(vec![Pending { stream, event: Event::LoginFailed(failure) }])
        }
        AuthzCommand::IssueCode { code, consent } => {
            let mut events = Vec::new();
            if let Some(c) = consent {
                events.push(Pending { stream: user_stream(&c.username), event: Event::ConsentGiven(*c) });
            }
            events.push(Pending { stream: code_stream(&code.code_digest), event: Event::CodeIssued(*code) });
            done(events)
        }
        AuthzCommand::Deny(withdrawn) => done(vec![Pending {
            stream: user_stream(&withdrawn.username),
            event: Event::ConsentWithdrawn(withdrawn),
        }]),
        AuthzCommand::Redeem { client, code_digest, redirect_uri, code_verifier } => {
            let req = Redemption {
                client: &client,
                code_digest,
                redirect_uri: redirect_uri.as_deref(),
                code_verifier: code_verifier.as_deref(),
            };
            redeem(store, cx, &req)
        }
    }
}

/// Checks the code, then issues on the user's key through the same rules as every grant.
fn redeem(
    store: &mut dyn WriteStore,
    cx: &Context<'_>,
    req: &Redemption<'_>,
) -> Result<Option<Answer>, StoreError> {
    let Some(client) = views::client(store, req.client)? else {
        return Ok(None);
    };
    let code = authz::code(store, &req.code_digest)?;
    let family_active = match code.as_ref().map(|c| &c.status) {
        Some(CodeStatus::Redeemed { family_id }) => views::active_by_family(store, *family_id)?,
        _ => None,
    };
    let key = match check_redeem(code.as_ref(), family_active.as_ref(), req, cx.now) {
        RedeemCheck::Refused { events, error } => return Ok(Some((events, Err(Refusal::Domain(error))))),
        RedeemCheck::Proceed(key) => key,
    };
    let Some(code) = code else {
        return Err(StoreError::Mint("a code that proceeds is a known code".into()));
    };
    let (generator, renewal) = generator_of(cx, &client);
    let client_allows_refresh = client.allows(GrantType::RefreshToken);
    let issue = IssueRequest::new(key, GrantType::AuthorizationCode, client_allows_refresh, renewal);
    let current = views::active_by_stream(store, &issue.stream)?;
    let mut mint = LedgerMint::new(cx.sealer, generator, renewal == Renewal::Off);
    let d = decide_issue(current.as_ref(), &issue, &mut mint, cx.policy, cx.now)
        .map_err(|e| StoreError::Mint(e.0))?;
    let token = match &d.outcome {
        Ok(Outcome::Issued(t)) | Ok(Outcome::Returned { token: t, .. }) => t.clone(),
        _ => return Err(StoreError::Mint("issuing for a code handed out no token".into())),
    };
    let (mut events, reply) = respond(d, &mint)?;
    events.push(redeemed(req.code_digest, &token));
    let reply = reply.map(|r| match r {
        Reply::Granted(granted) => Reply::Redeemed(Redeemed {
            granted,
            username: code.issued.username.clone(),
            nonce: code.issued.nonce.clone(),
            auth_time: code.issued.auth_time,
        }),
        other => other,
    });
    Ok(Some((events, reply)))
}
