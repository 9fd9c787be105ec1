//! Authorization codes: issue, redeem, replay. Pure rules: the store says what it knows of a
//! code, the caller gives `now`, and these functions say which events follow.
//!
//! Choices where the specifications leave room: a failed exchange burns the code (WSO2,
//! "stop repetitive usage of same authorization code in erroneous token requests"); a replay by
//! the code's own client revokes the token issued from it before any other check (WSO2 and
//! fosite; OAuth 2.1 would check the verifier first), while a replay by another client is only
//! refused, so no client can revoke another's tokens by replaying a leaked code.

use super::authz_events::{CodeIssued, CodeRedeemed, CodeRejected, CodeReplayed};
use super::events::{Event, Millis, Pending, RevokeReason, TokenIssued};
use super::grant::{revoke, ActiveToken, DomainError, USABLE_MARGIN_MS};
use super::pkce::check_verifier;
use super::types::{ClientId, Digest, Subject, TokenKey};

/// What became of a code so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeStatus {
    Active,
    /// Exchanged for a token of this refresh family.
    Redeemed {
        family_id: uuid::Uuid,
    },
    /// A failed exchange burned it.
    Burned,
}

/// A code as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub issued: CodeIssued,
    pub status: CodeStatus,
}

/// A token request with `grant_type=authorization_code`, its client already authenticated.
#[derive(Debug, Clone, Copy)]
pub struct Redemption<'a> {
    pub client: &'a ClientId,
    pub code_digest: Digest,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

/// What a redemption leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemCheck {
    /// The code is good: issue on this key (through `decide_issue`), then `redeemed`.
    Proceed(TokenKey),
    /// Refused with `invalid_grant`; the events (burn, replay, revocation) are still recorded.
    Refused { events: Vec<Pending>, error: DomainError },
}

const INVALID: &str = "the authorization code is invalid, expired or already used";

/// The stream of a code's events.
pub fn code_stream(digest: &Digest) -> String {
    format!("code-{}", digest.to_hex())
}

/// Checks a redemption. `family_active` is the active token of the family the code was
/// redeemed into, if it was.
pub fn check_redeem(
    code: Option<&CodeRecord>,
    family_active: Option<&ActiveToken>,
    req: &Redemption<'_>,
    now: Millis,
) -> RedeemCheck {
    let refuse = |events| RedeemCheck::Refused { events, error: DomainError::InvalidGrant(INVALID) };
    let Some(code) = code else {
        return refuse(vec![]);
    };
    let stream = code_stream(&req.code_digest);
    let own_client = code.issued.client_id == *req.client;
    match code.status {
        CodeStatus::Redeemed { .. } | CodeStatus::Burned if !own_client => return refuse(vec![]),
        CodeStatus::Redeemed { .. } | CodeStatus::Burned => {
            let revoked = family_active.map(|t| revoke(t, RevokeReason::CodeReplay));
            let record = CodeReplayed {
                code_digest: req.code_digest,
                revoked_token_id: family_active.map(|t| t.token.token_id),
            };
            let mut events = vec![Pending { stream, event: Event::CodeReplayed(record) }];
            events.extend(revoked);
            return refuse(events);
        }
        CodeStatus::Active => {}
    }
    let burn = |reason: &str| {
        let event = Event::CodeRejected(CodeRejected { code_digest: req.code_digest, reason: reason.into() });
        refuse(vec![Pending { stream: stream.clone(), event }])
    };
    if !own_client {
        return burn("presented by another client");
    }
    if code.issued.expires_at - now < USABLE_MARGIN_MS {
        return burn("expired");
    }
    if let Some(bound) = &code.issued.redirect_uri {
        if req.redirect_uri != Some(bound.as_str()) {
            return burn("redirect_uri differs from the authorization request's");
        }
    }
    if let Err(e) = check_verifier(code.issued.challenge.as_ref(), req.code_verifier) {
        return burn(&e.to_string());
    }
    RedeemCheck::Proceed(TokenKey {
        client: code.issued.client_id.clone(),
        subject: Subject::User(code.issued.username.clone()),
        scopes: code.issued.scopes.clone(),
    })
}

/// The event that marks the code used, once the exchange handed out `token`.
pub fn redeemed(code_digest: Digest, token: &TokenIssued) -> Pending {
    let event = CodeRedeemed { code_digest, token_id: token.token_id, family_id: token.family_id };
    Pending { stream: code_stream(&code_digest), event: Event::CodeRedeemed(event) }
}

#[cfg(test)]
#[path = "code_tests.rs"]
mod tests;
