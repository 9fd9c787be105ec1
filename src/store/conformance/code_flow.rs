//! The authorization code flow's views on every backend: codes, login sessions and remembered
//! consents, written through the ledger, read back through `ViewReads` and `ReadStore`, and
//! refolded from the log.

use super::{envelope, Kind, Store};
use crate::domain::authz_events::{CodeIssued, ConsentGiven, ConsentWithdrawn, SessionStarted};
use crate::domain::client::ClientOAuth;
use crate::domain::code::CodeStatus;
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, Username};
use crate::store::authz;
use crate::store::authz_commands::AuthzCommand;
use crate::store::ledger::{system_clock, Command, Ledger, Refusal, Reply};
use crate::store::{fold, lookup};

const CALLBACK: &str = "https://app.example/callback";

fn code_client(ledger: &mut Ledger) -> ClientId {
    let oauth = ClientOAuth { redirect_uris: vec![CALLBACK.into()], ..ClientOAuth::default() };
    let command = Command::RegisterClient {
        access_token_type: None,
        name: "web".into(),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        oauth,
    };
    match ledger.execute(envelope(command)).unwrap().unwrap() {
        Reply::Client(c) => c.client_id,
        other => panic!("{other:?}"),
    }
}

fn alice() -> Username {
    Username::parse("Alice").unwrap()
}

fn start_session(ledger: &mut Ledger, client: &ClientId, session: Digest, now: i64) {
    let session = SessionStarted {
        session_digest: session,
        username: alice(),
        auth_time: now,
        expires_at: now + 60_000,
    };
    let command = Command::Authz(AuthzCommand::StartSession { client_id: client.clone(), session });
    ledger.execute(envelope(command)).unwrap().unwrap();
}

fn issue_code(ledger: &mut Ledger, client: &ClientId, code: Digest, remember: bool, now: i64) {
    let scopes = ScopeSet::parse("openid profile").unwrap();
    let issued = CodeIssued {
        code_digest: code,
        client_id: client.clone(),
        username: alice(),
        scopes: scopes.clone(),
        redirect_uri: Some(CALLBACK.into()),
        challenge: None,
        nonce: Some("n1".into()),
        auth_time: now,
        issued_at: now,
        expires_at: now + 300_000,
    };
    let consent = ConsentGiven { username: alice(), client_id: client.clone(), scopes, remember };
    let command =
        Command::Authz(AuthzCommand::IssueCode { code: Box::new(issued), consent: Some(Box::new(consent)) });
    ledger.execute(envelope(command)).unwrap().unwrap();
}

fn redeem(client: &ClientId, code: Digest) -> Command {
    Command::Authz(AuthzCommand::Redeem {
        client: client.clone(),
        code_digest: code,
        redirect_uri: Some(CALLBACK.into()),
        code_verifier: None,
    })
}

pub(super) fn codes_sessions_and_consents_are_written_read_and_refolded(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let mut ledger = s.ledger();
    let client = code_client(&mut ledger);
    let record = lookup::client(ledger.store(), &client).unwrap().unwrap();
    assert_eq!(
        record.oauth.redirect_uris,
        vec![CALLBACK.to_owned()],
        "the client's oauth column round-trips"
    );
    let now = system_clock();
    let (session, code) = (Digest::of(b"session"), Digest::of(b"code"));
    start_session(&mut ledger, &client, session, now);
    issue_code(&mut ledger, &client, code, true, now);

    let reader = s.reader();
    let signed_in = authz::session(reader.as_ref(), &session, now).unwrap().unwrap();
    assert_eq!((signed_in.username, signed_in.auth_time), (alice(), now));
    assert!(authz::session(reader.as_ref(), &session, now + 60_000).unwrap().is_none(), "expired");
    let remembered = authz::remembered(reader.as_ref(), &Username::parse("alice").unwrap(), &client).unwrap();
    assert_eq!(remembered, Some(ScopeSet::parse("profile openid").unwrap()));
    let stored = authz::code(ledger.store(), &code).unwrap().unwrap();
    assert_eq!((stored.status, stored.issued.nonce.as_deref()), (CodeStatus::Active, Some("n1")));

    granted_redeemed(ledger.execute(envelope(redeem(&client, code))));
    let Some(CodeStatus::Redeemed { family_id }) =
        authz::code(ledger.store(), &code).unwrap().map(|c| c.status)
    else {
        panic!("the code is marked redeemed")
    };
    assert!(lookup::active_by_family(ledger.store(), family_id).unwrap().is_some());

    let before = authz::code(ledger.store(), &code).unwrap();
    drop(ledger);
    s.forget_views();
    let mut store = s.writer();
    fold::catch_up(store.as_mut()).unwrap();
    assert_eq!(authz::code(store.as_mut(), &code).unwrap(), before, "the code view refolds from the log");
    assert!(authz::session(s.reader().as_ref(), &session, now).unwrap().is_some());
    assert!(authz::remembered(s.reader().as_ref(), &alice(), &client).unwrap().is_some());
}

fn granted_redeemed(result: super::CommandResult) {
    match result.unwrap().unwrap() {
        Reply::Redeemed(r) => assert_eq!(r.nonce.as_deref(), Some("n1")),
        other => panic!("{other:?}"),
    }
}

pub(super) fn a_replayed_code_revokes_its_token_and_logout_denial_and_deletion_clear_the_views(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let mut ledger = s.ledger();
    let client = code_client(&mut ledger);
    let now = system_clock();
    let (session, code) = (Digest::of(b"session-2"), Digest::of(b"code-2"));
    start_session(&mut ledger, &client, session, now);
    issue_code(&mut ledger, &client, code, true, now);
    granted_redeemed(ledger.execute(envelope(redeem(&client, code))));
    let replay = ledger.execute(envelope(redeem(&client, code))).unwrap();
    assert!(matches!(replay, Err(Refusal::Domain(_))), "{replay:?}");
    assert!(lookup::active_of_client(ledger.store(), &client).unwrap().is_empty(), "the replay revoked it");

    let end = Command::Authz(AuthzCommand::EndSession { session_digest: session });
    ledger.execute(envelope(end)).unwrap().unwrap();
    assert!(authz::session(s.reader().as_ref(), &session, now).unwrap().is_none());

    let deny = ConsentWithdrawn { username: alice(), client_id: client.clone() };
    ledger.execute(envelope(Command::Authz(AuthzCommand::Deny(deny)))).unwrap().unwrap();
    assert!(authz::remembered(s.reader().as_ref(), &alice(), &client).unwrap().is_none());

    issue_code(&mut ledger, &client, Digest::of(b"code-3"), true, now);
    assert!(authz::remembered(s.reader().as_ref(), &alice(), &client).unwrap().is_some());
    ledger.execute(envelope(Command::DeleteClient { client_id: client.clone() })).unwrap().unwrap();
    assert!(authz::remembered(s.reader().as_ref(), &alice(), &client).unwrap().is_none());
    assert!(authz::code(ledger.store(), &Digest::of(b"code-3")).unwrap().is_none());
}
