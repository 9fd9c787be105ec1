//! Given a code's state, when a token request presents it, then these events and this answer.

use uuid::Uuid;

use super::*;
use crate::domain::pkce::{Challenge, PkceMethod};
use crate::domain::types::{ScopeSet, Username};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CB: &str = "https://app.example/cb";

fn client() -> ClientId {
    ClientId::parse("client-1").unwrap()
}

fn code(status: CodeStatus) -> CodeRecord {
    CodeRecord {
        issued: CodeIssued {
            code_digest: Digest([7; 32]),
            client_id: client(),
            username: Username::parse("alice").unwrap(),
            scopes: ScopeSet::parse("openid").unwrap(),
            redirect_uri: Some(CB.into()),
            challenge: Some(Challenge { challenge: CHALLENGE.into(), method: PkceMethod::S256 }),
            nonce: None,
            auth_time: 0,
            issued_at: 0,
            expires_at: 300_000,
        },
        status,
    }
}

fn request(c: &ClientId) -> Redemption<'_> {
    Redemption {
        client: c,
        code_digest: Digest([7; 32]),
        redirect_uri: Some(CB),
        code_verifier: Some(VERIFIER),
    }
}

fn active_token() -> ActiveToken {
    let id = Uuid::from_u128(9);
    ActiveToken {
        stream: "grant-x".into(),
        token: TokenIssued {
            token_id: id,
            family_id: id,
            client_id: client(),
            username: Some(Username::parse("alice").unwrap()),
            scopes: ScopeSet::parse("openid").unwrap(),
            grant_type: crate::domain::types::GrantType::AuthorizationCode,
            access_digest: Digest([1; 32]),
            issued_at: 0,
            expires_at: 3_600_000,
            sealed_access: None,
            refresh: None,
        },
    }
}

fn event_names(check: &RedeemCheck) -> Vec<String> {
    match check {
        RedeemCheck::Proceed(_) => vec!["proceed".into()],
        RedeemCheck::Refused { events, .. } => events
            .iter()
            .map(|p| match &p.event {
                Event::TokenRevoked(r) => format!("TokenRevoked({})", r.reason.as_str()),
                Event::CodeRejected(r) => format!("CodeRejected({})", r.reason),
                e => e.event_type().to_owned(),
            })
            .collect(),
    }
}

#[test]
fn an_active_code_with_the_right_verifier_proceeds_to_the_users_key() {
    let c = client();
    match check_redeem(Some(&code(CodeStatus::Active)), None, &request(&c), 1_000) {
        RedeemCheck::Proceed(key) => {
            assert_eq!(key.subject, Subject::User(Username::parse("alice").unwrap()));
            assert_eq!(key.scopes.to_string(), "openid");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_used_code_presented_again_revokes_the_token_issued_from_it() {
    let c = client();
    let used = code(CodeStatus::Redeemed { family_id: Uuid::from_u128(9) });
    let check = check_redeem(Some(&used), Some(&active_token()), &request(&c), 1_000);
    assert_eq!(event_names(&check), ["CodeReplayed", "TokenRevoked(code_replay)"]);
}

#[test]
fn a_replay_by_another_client_is_refused_without_revoking_anything() {
    let other = ClientId::parse("client-2").unwrap();
    let used = code(CodeStatus::Redeemed { family_id: Uuid::from_u128(9) });
    let check = check_redeem(Some(&used), Some(&active_token()), &request(&other), 1_000);
    assert_eq!(check, RedeemCheck::Refused { events: vec![], error: DomainError::InvalidGrant(INVALID) });
}

#[test]
fn a_wrong_verifier_burns_the_code() {
    let c = client();
    let bad = format!("{}A", &VERIFIER[..42]);
    let req = Redemption { code_verifier: Some(&bad), ..request(&c) };
    let check = check_redeem(Some(&code(CodeStatus::Active)), None, &req, 1_000);
    assert_eq!(event_names(&check), ["CodeRejected(code_verifier does not match the code_challenge)"]);
}

#[test]
fn a_different_redirect_uri_or_a_missing_one_burns_the_code() {
    let c = client();
    for redirect in [Some("https://app.example/other"), None] {
        let req = Redemption { redirect_uri: redirect, ..request(&c) };
        let check = check_redeem(Some(&code(CodeStatus::Active)), None, &req, 1_000);
        assert!(event_names(&check)[0].starts_with("CodeRejected(redirect_uri"), "{check:?}");
    }
}

#[test]
fn an_expired_code_is_burned_and_one_with_less_than_a_second_left_counts_as_expired() {
    let c = client();
    let check = check_redeem(Some(&code(CodeStatus::Active)), None, &request(&c), 299_500);
    assert_eq!(event_names(&check), ["CodeRejected(expired)"]);
}

#[test]
fn a_verifier_for_a_code_issued_without_a_challenge_burns_it() {
    let c = client();
    let mut plain = code(CodeStatus::Active);
    plain.issued.challenge = None;
    let check = check_redeem(Some(&plain), None, &request(&c), 1_000);
    assert!(event_names(&check)[0].contains("without a code_challenge"), "{check:?}");
}

#[test]
fn a_burned_code_presented_again_is_a_replay_with_nothing_to_revoke() {
    let c = client();
    let check = check_redeem(Some(&code(CodeStatus::Burned)), None, &request(&c), 1_000);
    assert_eq!(event_names(&check), ["CodeReplayed"]);
}

#[test]
fn an_unknown_code_is_refused_without_events() {
    let c = client();
    assert_eq!(event_names(&check_redeem(None, None, &request(&c), 0)), Vec::<String>::new());
}
