//! Given the state of a key, when a command arrives, then these events and this answer.

use super::*;
use crate::domain::types::Username;

const HOUR: Millis = 3_600_000;

fn policy() -> Policy {
    Policy {
        renew_access_token_per_request: false,
        renew_refresh_token: true,
        extend_refresh_token_expiry_on_renewal: true,
        revoke_family_on_refresh_token_reuse: true,
        refresh_token_reuse_grace_ms: 10_000,
        user_access_token_ms: HOUR,
        app_access_token_ms: HOUR,
        refresh_token_ms: 24 * HOUR,
        client_credentials_refresh_tokens: false,
    }
}

/// Mints token number `n`, whatever the draft says.
struct Fixed(u8);

impl Mint for Fixed {
    fn mint(&mut self, _draft: &Draft<'_>) -> Result<FreshToken, MintError> {
        let n = self.0;
        Ok(FreshToken {
            token_id: Uuid::from_u128(n as u128),
            access_digest: Digest([n; 32]),
            sealed_access: Some(format!("sealed-at-{n}")),
            refresh: Some(FreshRefresh { digest: Digest([n + 100; 32]), sealed: format!("sealed-rt-{n}") }),
        })
    }
}

fn user_request(scopes: &str) -> IssueRequest {
    let key = TokenKey {
        client: ClientId::parse("client-1").unwrap(),
        subject: Subject::User(Username::parse("admin").unwrap()),
        scopes: ScopeSet::parse(scopes).unwrap(),
    };
    IssueRequest::new(key, GrantType::Password, true, Renewal::Off)
}

/// Applies a decision's TokenIssued to the key state, as the projection would.
fn issued(decision: &Decision) -> ActiveToken {
    match &decision.outcome {
        Ok(Outcome::Issued(token)) => {
            ActiveToken { stream: decision.events.last().unwrap().stream.clone(), token: token.clone() }
        }
        other => panic!("expected a new token, got {other:?}"),
    }
}

fn types(decision: &Decision) -> Vec<String> {
    decision
        .events
        .iter()
        .map(|p| match &p.event {
            Event::TokenRevoked(r) => format!("TokenRevoked({})", r.reason.as_str()),
            e => e.event_type().to_owned(),
        })
        .collect()
}

#[test]
fn a_key_without_a_token_gets_a_new_access_and_refresh_token() {
    let d = decide_issue(None, &user_request("openid"), &mut Fixed(1), &policy(), 0).unwrap();
    assert_eq!(types(&d), ["TokenIssued"]);
    let t = issued(&d);
    assert_eq!(t.token.expires_at, HOUR);
    assert_eq!(t.token.refresh.as_ref().unwrap().expires_at, 24 * HOUR);
    assert_eq!(t.token.family_id, t.token.token_id);
}

#[test]
fn renewal_off_hands_back_the_same_token_with_the_seconds_left() {
    let first = issued(&decide_issue(None, &user_request("openid"), &mut Fixed(1), &policy(), 0).unwrap());
    let d = decide_issue(Some(&first), &user_request("openid"), &mut Fixed(2), &policy(), 1_500).unwrap();
    assert_eq!(types(&d), ["TokenReturned"]);
    assert_eq!(d.outcome, Ok(Outcome::Returned { token: first.token, expires_in: 3598 }));
}

#[test]
fn renewal_revokes_the_previous_token_before_issuing() {
    let p = policy();
    let req = IssueRequest { renewal: Renewal::ByConfig, ..user_request("openid") };
    let first = issued(&decide_issue(None, &req, &mut Fixed(1), &p, 0).unwrap());
    let d = decide_issue(Some(&first), &req, &mut Fixed(2), &p, 10).unwrap();
    assert_eq!(types(&d), ["TokenRevoked(renewal)", "TokenIssued"]);
    let second = issued(&d);
    assert_ne!(second.token.access_digest, first.token.access_digest);
    assert_ne!(second.token.refresh.unwrap().digest, first.token.refresh.unwrap().digest);
}

#[test]
fn a_token_with_one_second_or_less_left_is_not_handed_back() {
    let first = issued(&decide_issue(None, &user_request(""), &mut Fixed(1), &policy(), 0).unwrap());
    let d = decide_issue(Some(&first), &user_request(""), &mut Fixed(2), &policy(), HOUR - 1000).unwrap();
    assert_eq!(types(&d), ["TokenRevoked(expiry_replacement)", "TokenIssued"]);
}

/// WSO2 product-is IDENTITY-6777: AT 60 s, RT 150 s.
#[test]
fn identity_6777_timeline_reuses_the_refresh_token_only_while_it_outlives_a_new_access_token() {
    let p = Policy { user_access_token_ms: 60_000, refresh_token_ms: 150_000, ..policy() };
    let req = user_request("RO");
    let t0 = issued(&decide_issue(None, &req, &mut Fixed(1), &p, 0).unwrap());
    let same = decide_issue(Some(&t0), &req, &mut Fixed(2), &p, 30_000).unwrap();
    assert!(matches!(same.outcome, Ok(Outcome::Returned { .. })));

    let t61 = issued(&decide_issue(Some(&t0), &req, &mut Fixed(3), &p, 61_000).unwrap());
    assert_ne!(t61.token.access_digest, t0.token.access_digest);
    assert_eq!(t61.token.refresh, t0.token.refresh, "RT0 has 89 s left > 60 s: reused");
    assert_eq!(t61.token.family_id, t0.token.family_id);

    let t122 = issued(&decide_issue(Some(&t61), &req, &mut Fixed(4), &p, 122_000).unwrap());
    assert_ne!(t122.token.refresh, t0.token.refresh, "RT0 has 28 s left < 60 s: renewed");
    assert_eq!(t122.token.refresh.as_ref().unwrap().expires_at, 272_000);

    let t153 = decide_issue(Some(&t122), &req, &mut Fixed(5), &p, 153_000).unwrap();
    assert!(matches!(t153.outcome, Ok(Outcome::Returned { ref token, .. }) if *token == t122.token));
}

#[test]
fn client_credentials_gets_no_refresh_token_unless_allowed() {
    let mut req = user_request("CC");
    req.key.subject = Subject::Application;
    req.grant_type = GrantType::ClientCredentials;
    assert!(issued(&decide_issue(None, &req, &mut Fixed(1), &policy(), 0).unwrap()).token.refresh.is_none());
    let p = Policy { client_credentials_refresh_tokens: true, ..policy() };
    assert!(issued(&decide_issue(None, &req, &mut Fixed(1), &p, 0).unwrap()).token.refresh.is_some());
}

#[test]
fn refresh_issues_a_new_pair_in_the_same_family_and_makes_the_old_one_inactive() {
    let t0 = issued(&decide_issue(None, &user_request("a b"), &mut Fixed(1), &policy(), 0).unwrap());
    let lookup = RefreshLookup::Active(t0.clone());
    let d =
        decide_refresh(&lookup, None, &t0.token.client_id, None, &mut Fixed(2), &policy(), 5_000).unwrap();
    assert_eq!(types(&d), ["TokenRevoked(refresh)", "TokenIssued"]);
    let t1 = issued(&d);
    assert_eq!(t1.stream, t0.stream);
    assert_eq!(t1.token.family_id, t0.token.family_id);
    assert_eq!(t1.token.expires_at, 5_000 + HOUR);
    assert_eq!(t1.token.refresh.unwrap().issued_at, 5_000);
}

#[test]
fn refresh_may_narrow_the_scope_but_never_widen_it() {
    let t0 = issued(&decide_issue(None, &user_request("a b"), &mut Fixed(1), &policy(), 0).unwrap());
    let lookup = RefreshLookup::Active(t0.clone());
    let client = t0.token.client_id.clone();
    let wide = ScopeSet::parse("a b c").unwrap();
    let d = decide_refresh(&lookup, None, &client, Some(&wide), &mut Fixed(2), &policy(), 1).unwrap();
    assert_eq!(d.outcome, Err(DomainError::InvalidScope));
    assert!(d.events.is_empty());
    let narrow = ScopeSet::parse("a").unwrap();
    let d = decide_refresh(&lookup, None, &client, Some(&narrow), &mut Fixed(2), &policy(), 1).unwrap();
    let t1 = issued(&d);
    assert_eq!(t1.token.scopes, narrow);
    assert_ne!(t1.stream, t0.stream, "a narrower scope set is another key");
}

#[test]
fn refresh_without_renewal_keeps_the_refresh_token_and_its_expiry() {
    let p = Policy { renew_refresh_token: false, ..policy() };
    let t0 = issued(&decide_issue(None, &user_request(""), &mut Fixed(1), &p, 0).unwrap());
    let lookup = RefreshLookup::Active(t0.clone());
    let d = decide_refresh(&lookup, None, &t0.token.client_id, None, &mut Fixed(2), &p, 9).unwrap();
    assert_eq!(issued(&d).token.refresh, t0.token.refresh);
}

#[test]
fn refresh_renewal_without_extension_keeps_the_old_expiry_with_a_new_value() {
    let p = Policy { extend_refresh_token_expiry_on_renewal: false, ..policy() };
    let t0 = issued(&decide_issue(None, &user_request(""), &mut Fixed(1), &p, 0).unwrap());
    let lookup = RefreshLookup::Active(t0.clone());
    let d = decide_refresh(&lookup, None, &t0.token.client_id, None, &mut Fixed(2), &p, 9).unwrap();
    let (old, new) = (t0.token.refresh.unwrap(), issued(&d).token.refresh.unwrap());
    assert_ne!(old.digest, new.digest);
    assert_eq!((old.issued_at, old.expires_at), (new.issued_at, new.expires_at));
}

fn rotated(rotated_at: Millis, family_active: Option<ActiveToken>) -> RefreshLookup {
    RefreshLookup::Rotated {
        stream: "grant-x".into(),
        refresh_digest: Digest([7; 32]),
        family_id: Uuid::from_u128(1),
        client_id: ClientId::parse("client-1").unwrap(),
        rotated_at,
        family_active,
    }
}

#[test]
fn a_replayed_refresh_token_within_the_grace_period_is_refused_and_recorded_only() {
    let t1 = issued(&decide_issue(None, &user_request(""), &mut Fixed(1), &policy(), 0).unwrap());
    let client = t1.token.client_id.clone();
    let d =
        decide_refresh(&rotated(0, Some(t1)), None, &client, None, &mut Fixed(2), &policy(), 10_000).unwrap();
    assert_eq!(types(&d), ["RefreshTokenReplayed"]);
    assert!(matches!(d.outcome, Err(DomainError::InvalidGrant(_))));
}

#[test]
fn a_replayed_refresh_token_after_the_grace_period_revokes_its_family() {
    let t1 = issued(&decide_issue(None, &user_request(""), &mut Fixed(1), &policy(), 0).unwrap());
    let client = t1.token.client_id.clone();
    let d =
        decide_refresh(&rotated(0, Some(t1)), None, &client, None, &mut Fixed(2), &policy(), 10_001).unwrap();
    assert_eq!(types(&d), ["RefreshTokenReplayed", "TokenRevoked(refresh_token_reuse)"]);
    assert!(matches!(d.outcome, Err(DomainError::InvalidGrant(_))));
}

#[test]
fn another_clients_refresh_token_is_an_invalid_grant() {
    let t0 = issued(&decide_issue(None, &user_request(""), &mut Fixed(1), &policy(), 0).unwrap());
    let other = ClientId::parse("client-2").unwrap();
    let d =
        decide_refresh(&RefreshLookup::Active(t0), None, &other, None, &mut Fixed(2), &policy(), 1).unwrap();
    assert!(d.events.is_empty());
    assert!(matches!(d.outcome, Err(DomainError::InvalidGrant(_))));
}

#[test]
fn revocation_of_another_clients_token_is_refused_and_changes_nothing() {
    let t0 = issued(&decide_issue(None, &user_request(""), &mut Fixed(1), &policy(), 0).unwrap());
    let other = ClientId::parse("client-2").unwrap();
    let d = decide_revoke(Some(&t0), &other);
    assert_eq!(d.outcome, Err(DomainError::TokenOfAnotherClient));
    assert!(d.events.is_empty());
    let own = decide_revoke(Some(&t0), &t0.token.client_id);
    assert_eq!(types(&own), ["TokenRevoked(revocation_request)"]);
    assert_eq!(decide_revoke(None, &other).outcome, Ok(Outcome::Done));
}

#[test]
fn code_beats_config_when_a_generator_chooses() {
    assert_eq!(Renewal::resolve(false, None), Renewal::Off);
    assert_eq!(Renewal::resolve(true, None), Renewal::ByConfig);
    assert_eq!(Renewal::resolve(true, Some(false)), Renewal::Off);
    assert_eq!(Renewal::resolve(false, Some(true)), Renewal::ByGenerator);
    assert_eq!(Renewal::resolve(true, Some(true)), Renewal::ByConfig);
}

#[test]
fn generator_renewal_revokes_but_carries_a_long_lived_refresh_token_over() {
    let req = IssueRequest { renewal: Renewal::ByGenerator, ..user_request("a") };
    let first = issued(&decide_issue(None, &req, &mut Fixed(1), &policy(), 0).unwrap());
    let d = decide_issue(Some(&first), &req, &mut Fixed(2), &policy(), 10).unwrap();
    assert_eq!(types(&d), ["TokenRevoked(renewal)", "TokenIssued"]);
    let second = issued(&d);
    assert_ne!(second.token.access_digest, first.token.access_digest);
    assert_eq!(second.token.refresh, first.token.refresh, "product-is #10684");
    assert_eq!(second.token.family_id, first.token.family_id);
}

#[test]
fn a_token_whose_value_was_not_kept_is_replaced_rather_than_handed_back() {
    let mut first = issued(&decide_issue(None, &user_request("a"), &mut Fixed(1), &policy(), 0).unwrap());
    first.token.sealed_access = None;
    let d = decide_issue(Some(&first), &user_request("a"), &mut Fixed(2), &policy(), 10).unwrap();
    assert_eq!(types(&d), ["TokenRevoked(renewal)", "TokenIssued"]);
}
