//! The pure core: every token rule lives here. Given the state of a key (its active token, if
//! any), a command and `now`, it returns the events to append and the answer. No I/O, no clock,
//! no randomness: time and token values come from the caller.

use uuid::Uuid;

use super::events::{
    Event, ExpiredPruned, Millis, Pending, RefreshPart, RefreshTokenReplayed, RevokeReason, TokenIssued,
    TokenReturned, TokenRevoked,
};
use super::types::{ClientId, Digest, GrantType, ScopeSet, Subject, TokenKey};

/// A token must have more than this left to be handed back again (WSO2 `isExistingTokenValid`).
pub const USABLE_MARGIN_MS: Millis = 1000;

/// The token rules from `deployment.toml`, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub renew_access_token_per_request: bool,
    pub renew_refresh_token: bool,
    pub extend_refresh_token_expiry_on_renewal: bool,
    pub revoke_family_on_refresh_token_reuse: bool,
    pub refresh_token_reuse_grace_ms: Millis,
    pub user_access_token_ms: Millis,
    pub app_access_token_ms: Millis,
    pub refresh_token_ms: Millis,
    pub client_credentials_refresh_tokens: bool,
}

impl Policy {
    /// Token cleanup's cutoffs at `now` for rows that expired more than `keep` ago. A rotated
    /// refresh token expired at most `refresh_token_ms` after its rotation, so rotated rows
    /// older than that extra margin can no longer be presented as anything but expired.
    pub fn cleanup_cutoffs(&self, now: Millis, keep: Millis) -> ExpiredPruned {
        let expired_before = now.saturating_sub(keep);
        ExpiredPruned { expired_before, rotated_before: expired_before.saturating_sub(self.refresh_token_ms) }
    }
}

/// The active token of a key, as the active-token view holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    pub stream: String,
    pub token: TokenIssued,
}

impl ActiveToken {
    /// The key this token is active for.
    pub fn key(&self) -> TokenKey {
        let subject = match &self.token.username {
            Some(name) => Subject::User(name.clone()),
            None => Subject::Application,
        };
        TokenKey { client: self.token.client_id.clone(), subject, scopes: self.token.scopes.clone() }
    }

    fn access_left(&self, now: Millis) -> Millis {
        self.token.expires_at - now
    }

    fn refresh_left(&self, now: Millis) -> Option<Millis> {
        self.token.refresh.as_ref().map(|r| r.expires_at - now)
    }
}

/// Freshly generated token material, made by the caller (random values, sealed).
#[derive(Debug, Clone)]
pub struct FreshToken {
    /// Also the JWT `jti` when the access token is a JWT.
    pub token_id: Uuid,
    pub access_digest: Digest,
    /// The access token value sealed for handing back; `None` when it will never be handed back
    /// (renewal per request), so a JWT never rests in the log even encrypted.
    pub sealed_access: Option<String>,
    /// Present when the draft asked for a new refresh token.
    pub refresh: Option<FreshRefresh>,
}

/// A new refresh token: its digest and its sealed value.
#[derive(Debug, Clone)]
pub struct FreshRefresh {
    pub digest: Digest,
    pub sealed: String,
}

/// What a new access token will say; the caller's `Mint` turns it into values.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    pub client_id: &'a ClientId,
    pub subject: &'a Subject,
    pub scopes: &'a ScopeSet,
    pub issued_at: Millis,
    pub expires_at: Millis,
    /// Whether a new refresh token is needed too (not for client_credentials, nor when the old
    /// one is carried over or kept).
    pub with_refresh: bool,
}

/// A token value could not be made (e.g. a signing key is unusable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot make a token value: {0}")]
pub struct MintError(pub String);

/// Makes token values for drafts: the seam where opaque or JWT generators plug in.
pub trait Mint {
    fn mint(&mut self, draft: &Draft<'_>) -> Result<FreshToken, MintError>;
}

/// How a request treats the key's active token (WSO2 `accessTokenRenewedPerRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Hand the active token back while it is usable.
    Off,
    /// `renew_access_token_per_request = true`: revoke it, and issue a new refresh token too.
    ByConfig,
    /// The token generator renews per request (JWT): revoke it, but carry the refresh token over
    /// while it outlives a new access token (WSO2 product-is #10684).
    ByGenerator,
}

impl Renewal {
    /// Code beats config: a generator's `Some(_)` wins over the flag; the flag itself, when on,
    /// still renews refresh tokens.
    pub fn resolve(config_flag: bool, generator: Option<bool>) -> Self {
        match (generator, config_flag) {
            (Some(false), _) => Self::Off,
            (Some(true), false) => Self::ByGenerator,
            (_, true) => Self::ByConfig,
            (None, false) => Self::Off,
        }
    }
}

/// A request for a token on a key (password or client_credentials grant).
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub key: TokenKey,
    /// `key.stream()`, computed once (a SHA-256 and its hex) for the lookup and the events.
    pub stream: String,
    pub grant_type: GrantType,
    /// The client may use the refresh_token grant.
    pub client_allows_refresh: bool,
    pub renewal: Renewal,
}

impl IssueRequest {
    pub fn new(key: TokenKey, grant_type: GrantType, client_allows_refresh: bool, renewal: Renewal) -> Self {
        Self { stream: key.stream(), key, grant_type, client_allows_refresh, renewal }
    }
}

/// What the caller gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new token pair; `expires_in` is its full lifetime.
    Issued(TokenIssued),
    /// The key's active token again; `expires_in` is the whole seconds it has left.
    Returned { token: TokenIssued, expires_in: i64 },
    /// Nothing to hand out (revocation, deletion).
    Done,
}

/// A refusal by the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("the requested scope exceeds the scope originally granted")]
    InvalidScope,
    #[error("the token belongs to another client")]
    TokenOfAnotherClient,
}

/// The events to append and the answer. Events are appended even when the answer is an error
/// (a replayed refresh token is refused and recorded, and may revoke its family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub events: Vec<Pending>,
    pub outcome: Result<Outcome, DomainError>,
}

pub(crate) fn revoke(token: &ActiveToken, reason: RevokeReason) -> Pending {
    Pending {
        stream: token.stream.clone(),
        event: Event::TokenRevoked(TokenRevoked { token_id: token.token.token_id, reason }),
    }
}

fn fresh_refresh(
    fresh: &FreshToken,
    issued_at: Millis,
    expires_at: Millis,
) -> Result<RefreshPart, MintError> {
    let new = fresh.refresh.as_ref().ok_or_else(|| MintError("no refresh token was minted".into()))?;
    Ok(RefreshPart { digest: new.digest, issued_at, expires_at, sealed: new.sealed.clone() })
}

/// Password and client_credentials grants: WSO2 `AbstractAuthorizationGrantHandler#issue`.
pub fn decide_issue(
    current: Option<&ActiveToken>,
    req: &IssueRequest,
    mint: &mut dyn Mint,
    policy: &Policy,
    now: Millis,
) -> Result<Decision, MintError> {
    let app = req.key.subject == Subject::Application;
    let lifetime = if app { policy.app_access_token_ms } else { policy.user_access_token_ms };
    let gives_refresh = req.client_allows_refresh && (!app || policy.client_credentials_refresh_tokens);
    let mut events = Vec::new();
    let mut carried = None;

    if let Some(current) = current {
        let reason = match req.renewal {
            // Renewal comes before any expiry check: even a time-expired token ends up revoked.
            Renewal::ByConfig => RevokeReason::Renewal,
            Renewal::ByGenerator => {
                carried = carry_refresh(current, gives_refresh, lifetime, now);
                RevokeReason::Renewal
            }
            Renewal::Off if usable(current, now) => match current.token.sealed_access {
                Some(_) => return Ok(returned(current, now)),
                // Issued while renewing per request: its value was never kept, so it cannot be
                // handed back; it is replaced as renewal would.
                None => RevokeReason::Renewal,
            },
            Renewal::Off => {
                // IDENTITY-6777: keep the old refresh token while it outlives a new access token.
                carried = carry_refresh(current, gives_refresh, lifetime, now);
                RevokeReason::ExpiryReplacement
            }
        };
        events.push(revoke(current, reason));
    }

    let draft = Draft {
        client_id: &req.key.client,
        subject: &req.key.subject,
        scopes: &req.key.scopes,
        issued_at: now,
        expires_at: now + lifetime,
        with_refresh: gives_refresh && carried.is_none(),
    };
    let fresh = mint.mint(&draft)?;
    let (family_id, refresh) = match carried {
        Some((family, part)) => (family, Some(part)),
        None if gives_refresh => {
            (fresh.token_id, Some(fresh_refresh(&fresh, now, now + policy.refresh_token_ms)?))
        }
        None => (fresh.token_id, None),
    };
    let issued = TokenIssued {
        token_id: fresh.token_id,
        family_id,
        client_id: req.key.client.clone(),
        username: match &req.key.subject {
            Subject::User(u) => Some(u.clone()),
            Subject::Application => None,
        },
        scopes: req.key.scopes.clone(),
        grant_type: req.grant_type,
        access_digest: fresh.access_digest,
        issued_at: now,
        expires_at: now + lifetime,
        sealed_access: fresh.sealed_access.clone(),
        refresh,
    };
    events.push(Pending { stream: req.stream.clone(), event: Event::TokenIssued(issued.clone()) });
    Ok(Decision { events, outcome: Ok(Outcome::Issued(issued)) })
}

/// More than a second left on the access token and, where there is one, the refresh token.
fn usable(current: &ActiveToken, now: Millis) -> bool {
    current.access_left(now) > USABLE_MARGIN_MS
        && current.refresh_left(now).is_none_or(|left| left > USABLE_MARGIN_MS)
}

fn returned(current: &ActiveToken, now: Millis) -> Decision {
    let expires_in = current.access_left(now) / 1000;
    let event = TokenReturned { token_id: current.token.token_id, expires_in };
    Decision {
        events: vec![Pending { stream: current.stream.clone(), event: Event::TokenReturned(event) }],
        outcome: Ok(Outcome::Returned { token: current.token.clone(), expires_in }),
    }
}

/// The old refresh token (and its family) when it outlives a new access token of `lifetime`.
fn carry_refresh(
    current: &ActiveToken,
    gives_refresh: bool,
    lifetime: Millis,
    now: Millis,
) -> Option<(Uuid, RefreshPart)> {
    let old = current.token.refresh.as_ref()?;
    (gives_refresh && old.expires_at - now > lifetime).then(|| (current.token.family_id, old.clone()))
}

/// What the store found for a presented refresh token.
#[derive(Debug, Clone)]
pub enum RefreshLookup {
    /// It belongs to an active token.
    Active(ActiveToken),
    /// It was rotated away by a refresh at `rotated_at`; `family_active` is the family's current
    /// active token, if any.
    Rotated {
        stream: String,
        refresh_digest: Digest,
        family_id: Uuid,
        client_id: ClientId,
        rotated_at: Millis,
        family_active: Option<ActiveToken>,
    },
    /// Never issued, revoked, or of a deleted client.
    Unknown,
}

/// The scopes a refresh asks for: the original ones, or a subset of them (RFC 6749 section 6).
pub fn refreshed_scopes(source: &ActiveToken, requested: Option<&ScopeSet>) -> Result<ScopeSet, DomainError> {
    match requested {
        None => Ok(source.token.scopes.clone()),
        Some(scopes) if scopes.is_subset(&source.token.scopes) => Ok(scopes.clone()),
        Some(_) => Err(DomainError::InvalidScope),
    }
}

const UNKNOWN_REFRESH: &str = "the refresh token is invalid, revoked or expired";

/// The refresh_token grant: WSO2 `RefreshGrantHandler`, plus RFC 9700 reuse detection.
/// `target` is the active token of the key the new token lands on when the scope was narrowed.
pub fn decide_refresh(
    lookup: &RefreshLookup,
    target: Option<&ActiveToken>,
    client: &ClientId,
    requested: Option<&ScopeSet>,
    mint: &mut dyn Mint,
    policy: &Policy,
    now: Millis,
) -> Result<Decision, MintError> {
    let refuse = |events, error| Ok(Decision { events, outcome: Err(error) });
    let source = match lookup {
        RefreshLookup::Unknown => return refuse(vec![], DomainError::InvalidGrant(UNKNOWN_REFRESH)),
        RefreshLookup::Rotated { client_id, .. } if client_id != client => {
            return refuse(vec![], DomainError::InvalidGrant(UNKNOWN_REFRESH));
        }
        RefreshLookup::Rotated { stream, refresh_digest, family_id, rotated_at, family_active, .. } => {
            let replay = Replay { stream, refresh_digest: *refresh_digest, family_id: *family_id };
            return Ok(replayed(replay, *rotated_at, family_active.as_ref(), policy, now));
        }
        RefreshLookup::Active(source) => source,
    };
    if &source.token.client_id != client {
        return refuse(vec![], DomainError::InvalidGrant(UNKNOWN_REFRESH));
    }
    let Some(old_refresh) = source.token.refresh.clone() else {
        return refuse(vec![], DomainError::InvalidGrant(UNKNOWN_REFRESH));
    };
    if old_refresh.expires_at - now < USABLE_MARGIN_MS {
        return refuse(vec![], DomainError::InvalidGrant("the refresh token has expired"));
    }
    let scopes = match refreshed_scopes(source, requested) {
        Ok(scopes) => scopes,
        Err(e) => return refuse(vec![], e),
    };
    let key = TokenKey { scopes, ..source.key() };
    // The new access token lives as long as the one being refreshed (WSO2 section 2.3).
    let expires_at = now + (source.token.expires_at - source.token.issued_at);
    let draft = Draft {
        client_id: &key.client,
        subject: &key.subject,
        scopes: &key.scopes,
        issued_at: now,
        expires_at,
        with_refresh: policy.renew_refresh_token,
    };
    let fresh = mint.mint(&draft)?;
    let mut events = vec![revoke(source, RevokeReason::Refresh)];
    if let Some(target) = target.filter(|t| t.stream != source.stream) {
        // Replaced on its own key, not rotated: its refresh token is simply dead, not a replay.
        events.push(revoke(target, RevokeReason::Renewal));
    }
    let refresh = match (policy.renew_refresh_token, policy.extend_refresh_token_expiry_on_renewal) {
        (true, true) => fresh_refresh(&fresh, now, now + policy.refresh_token_ms)?,
        (true, false) => fresh_refresh(&fresh, old_refresh.issued_at, old_refresh.expires_at)?,
        (false, _) => old_refresh,
    };
    let issued = TokenIssued {
        token_id: fresh.token_id,
        family_id: source.token.family_id,
        client_id: source.token.client_id.clone(),
        username: source.token.username.clone(),
        scopes: key.scopes.clone(),
        grant_type: GrantType::RefreshToken,
        access_digest: fresh.access_digest,
        issued_at: now,
        expires_at,
        sealed_access: fresh.sealed_access.clone(),
        refresh: Some(refresh),
    };
    events.push(Pending { stream: key.stream(), event: Event::TokenIssued(issued.clone()) });
    Ok(Decision { events, outcome: Ok(Outcome::Issued(issued)) })
}

struct Replay<'a> {
    stream: &'a str,
    refresh_digest: Digest,
    family_id: Uuid,
}

fn replayed(
    replay: Replay<'_>,
    rotated_at: Millis,
    family_active: Option<&ActiveToken>,
    policy: &Policy,
    now: Millis,
) -> Decision {
    let within_grace_period = now - rotated_at <= policy.refresh_token_reuse_grace_ms;
    let record = RefreshTokenReplayed {
        family_id: replay.family_id,
        refresh_digest: replay.refresh_digest,
        within_grace_period,
    };
    let mut events =
        vec![Pending { stream: replay.stream.to_owned(), event: Event::RefreshTokenReplayed(record) }];
    if !within_grace_period && policy.revoke_family_on_refresh_token_reuse {
        events.extend(family_active.map(|t| revoke(t, RevokeReason::RefreshTokenReuse)));
    }
    Decision { events, outcome: Err(DomainError::InvalidGrant("the refresh token was already used")) }
}

/// RFC 7009 revocation of an access or refresh token by its client. Unknown tokens are not an
/// error (section 2.2); another client's token is refused and left alone.
pub fn decide_revoke(found: Option<&ActiveToken>, caller: &ClientId) -> Decision {
    match found {
        None => Decision { events: vec![], outcome: Ok(Outcome::Done) },
        Some(t) if &t.token.client_id != caller => {
            Decision { events: vec![], outcome: Err(DomainError::TokenOfAnotherClient) }
        }
        Some(t) => {
            Decision { events: vec![revoke(t, RevokeReason::RevocationRequest)], outcome: Ok(Outcome::Done) }
        }
    }
}

/// Deleting a client revokes each of its active tokens, by events, before the deletion itself.
pub fn revoke_all_of_client(active: &[ActiveToken]) -> Vec<Pending> {
    active.iter().map(|t| revoke(t, RevokeReason::ClientDeleted)).collect()
}

#[cfg(test)]
#[path = "grant_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "grant_props.rs"]
pub(crate) mod props;
