//! Properties of the pure core over random histories: sequences of issues (each renewal mode),
//! refreshes (narrowed or not, of live, rotated, revoked and expired refresh tokens),
//! revocations and clock steps, on two clients and a few users and scope sets. The decisions'
//! events are folded into a model of the views exactly as the store's projection folds them,
//! and every property is checked on that model. The domain knows no storage: the check of the
//! model against the real projection on every backend is in the store's conformance suite
//! (`store/conformance/props.rs`), which reuses the histories generated here.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;

use super::*;
use crate::domain::types::Username;

/// Which half of a pair a presented value matched (as the store's lookups say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Access,
    Refresh,
}

const CLIENTS: [&str; 2] = ["client-1", "client-2"];
/// `Alice` and `alice` are one key: usernames compare case-insensitively.
const SUBJECTS: [Option<&str>; 4] = [None, Some("alice"), Some("Alice"), Some("bob")];
const SCOPES: [&str; 4] = ["", "a", "a b", "b"];

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Issue {
        client: usize,
        subject: usize,
        scopes: usize,
        renewal: Renewal,
    },
    Refresh {
        /// Present a rotated refresh token (a replay) rather than any one ever issued.
        rotated: bool,
        pick: Index,
        narrow: Option<usize>,
        by_other_client: bool,
        renewal: Renewal,
    },
    Revoke {
        pick: Index,
        refresh_half: bool,
        by_other_client: bool,
    },
    Tick(Millis),
}

/// The properties, each checked by its own test below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    OneActivePerKey,
    OneActivePerFamily,
    RevokeNamesAnActiveToken,
    RevokeDeactivates,
    HandedOutIsActive,
    DeadRefreshNeverIssues,
}

#[derive(Debug)]
struct Violation {
    property: Property,
    detail: String,
}

/// A refresh token rotated away, as `rotated_refresh_tokens` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotated {
    pub(crate) stream: String,
    pub(crate) family_id: Uuid,
    pub(crate) client_id: ClientId,
    pub(crate) rotated_at: Millis,
}

/// The views folded from the log: active tokens by stream, rotated refresh tokens by digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Views {
    pub(crate) active: BTreeMap<String, ActiveToken>,
    pub(crate) rotated: BTreeMap<[u8; 32], Rotated>,
}

impl Views {
    /// The projection's fold, with the invariants it relies on checked on the way.
    fn apply(&mut self, p: &Pending, now: Millis, broken: &mut Vec<Violation>) {
        let mut flag = |property, detail: String| broken.push(Violation { property, detail });
        match &p.event {
            Event::TokenIssued(t) => {
                let token = ActiveToken { stream: p.stream.clone(), token: t.clone() };
                if token.key().stream() != p.stream {
                    flag(Property::OneActivePerKey, format!("{t:?} issued off its key"));
                }
                if let Some(old) = self.active.get(&p.stream) {
                    let detail = format!("{:?} issued over active {:?}", t.token_id, old);
                    flag(Property::OneActivePerKey, detail);
                }
                if let Some(r) = &t.refresh {
                    self.rotated.remove(&r.digest.0);
                }
                self.active.insert(p.stream.clone(), token);
            }
            Event::TokenRevoked(e) => {
                let Some(old) = self.active.get(&p.stream).cloned() else {
                    flag(Property::RevokeNamesAnActiveToken, format!("{e:?}: none active"));
                    return;
                };
                if old.token.token_id != e.token_id {
                    let detail = format!("{e:?} but {:?} is active", old.token.token_id);
                    flag(Property::RevokeNamesAnActiveToken, detail);
                    return;
                }
                if let (RevokeReason::Refresh, Some(r)) = (e.reason, &old.token.refresh) {
                    let rotated = Rotated {
                        stream: old.stream.clone(),
                        family_id: old.token.family_id,
                        client_id: old.token.client_id.clone(),
                        rotated_at: now,
                    };
                    self.rotated.insert(r.digest.0, rotated);
                }
                self.active.remove(&p.stream);
            }
            _ => {}
        }
    }

    /// `views::active_by_digest`: the access digest first, then the refresh digest.
    fn by_digest(&self, d: &Digest) -> Option<(ActiveToken, Half)> {
        let all = || self.active.values();
        all().find(|t| t.token.access_digest == *d).map(|t| (t.clone(), Half::Access)).or_else(|| {
            all()
                .find(|t| t.token.refresh.as_ref().is_some_and(|r| r.digest == *d))
                .map(|t| (t.clone(), Half::Refresh))
        })
    }

    /// `store::ledger::refresh_lookup`.
    fn refresh_lookup(&self, d: &Digest) -> RefreshLookup {
        if let Some((token, Half::Refresh)) = self.by_digest(d) {
            return RefreshLookup::Active(token);
        }
        match self.rotated.get(&d.0) {
            None => RefreshLookup::Unknown,
            Some(r) => RefreshLookup::Rotated {
                stream: r.stream.clone(),
                refresh_digest: *d,
                family_id: r.family_id,
                client_id: r.client_id.clone(),
                rotated_at: r.rotated_at,
                family_active: self.active.values().find(|t| t.token.family_id == r.family_id).cloned(),
            },
        }
    }
}

/// Token values numbered in order; sealed only when they may be handed back, as `LedgerMint`.
struct Counter<'a> {
    minted: &'a mut u128,
    keep_access: bool,
}

impl Mint for Counter<'_> {
    fn mint(&mut self, _draft: &Draft<'_>) -> Result<FreshToken, MintError> {
        *self.minted += 1;
        let n = *self.minted;
        Ok(FreshToken {
            token_id: Uuid::from_u128(n),
            access_digest: Digest::of(format!("access-{n}").as_bytes()),
            sealed_access: self.keep_access.then(|| format!("sealed-access-{n}")),
            refresh: Some(FreshRefresh {
                digest: Digest::of(format!("refresh-{n}").as_bytes()),
                sealed: format!("sealed-refresh-{n}"),
            }),
        })
    }
}

/// How often each kind of outcome happened, to show that the generator reaches them.
#[derive(Debug, Default)]
struct Seen {
    issued: u32,
    returned: u32,
    refreshed: u32,
    narrowed: u32,
    replays_refused: u32,
    families_revoked: u32,
    revoked: u32,
    revokes_refused: u32,
}

/// A history being played: the model views, the log so far and what was handed out.
pub(crate) struct World {
    policy: Policy,
    now: Millis,
    minted: u128,
    pub(crate) views: Views,
    /// Each decision's events with the time it was taken.
    pub(crate) log: Vec<(Vec<Pending>, Millis)>,
    issued: Vec<TokenIssued>,
    broken: Vec<Violation>,
    seen: Seen,
}

fn client(i: usize) -> ClientId {
    ClientId::parse(CLIENTS[i % CLIENTS.len()]).expect("a valid client id")
}

fn other_client(id: &ClientId) -> ClientId {
    client(usize::from(id.as_str() == CLIENTS[0]))
}

fn scopes(i: usize) -> ScopeSet {
    ScopeSet::parse(SCOPES[i]).expect("valid scopes")
}

impl World {
    pub(crate) fn run(policy: Policy, steps: &[Step]) -> Self {
        let mut world = Self {
            policy,
            now: 1_700_000_000_000,
            minted: 0,
            views: Views::default(),
            log: Vec::new(),
            issued: Vec::new(),
            broken: Vec::new(),
            seen: Seen::default(),
        };
        for step in steps {
            world.step(step);
        }
        world
    }

    fn flag(&mut self, property: Property, detail: String) {
        self.broken.push(Violation { property, detail });
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Issue { client: c, subject, scopes: s, renewal } => {
                self.issue(client(*c), *subject, scopes(*s), *renewal)
            }
            Step::Refresh { rotated, pick, narrow, by_other_client, renewal } => {
                self.refresh(*rotated, pick, narrow.map(scopes), *by_other_client, *renewal)
            }
            Step::Revoke { pick, refresh_half, by_other_client } => {
                self.revoke(pick, *refresh_half, *by_other_client)
            }
            Step::Tick(ms) => self.now += ms,
        }
    }

    fn issue(&mut self, client: ClientId, subject: usize, scopes: ScopeSet, renewal: Renewal) {
        let subject = match SUBJECTS[subject] {
            Some(name) => Subject::User(Username::parse(name).expect("a valid username")),
            None => Subject::Application,
        };
        let grant_type = match subject {
            Subject::Application => GrantType::ClientCredentials,
            Subject::User(_) => GrantType::Password,
        };
        let key = TokenKey { client, subject, scopes };
        let req = IssueRequest::new(key, grant_type, true, renewal);
        let current = self.views.active.get(&req.stream).cloned();
        let mut mint = Counter { minted: &mut self.minted, keep_access: renewal == Renewal::Off };
        let d = decide_issue(current.as_ref(), &req, &mut mint, &self.policy, self.now)
            .expect("the counter never fails to mint");
        self.commit(&d);
        if let Ok(Outcome::Returned { token, expires_in }) = &d.outcome {
            self.seen.returned += 1;
            let left = token.expires_at - self.now;
            if left <= USABLE_MARGIN_MS || *expires_in != left / 1000 {
                let detail = format!("handed back with {left} ms left, expires_in {expires_in}");
                self.flag(Property::HandedOutIsActive, detail);
            }
        }
    }

    fn refresh(
        &mut self,
        rotated: bool,
        pick: &Index,
        requested: Option<ScopeSet>,
        by_other_client: bool,
        renewal: Renewal,
    ) {
        let digests: Vec<Digest> = if rotated {
            self.views.rotated.keys().map(|d| Digest(*d)).collect()
        } else {
            let parts = self.issued.iter().filter_map(|t| t.refresh.as_ref());
            parts.map(|r| r.digest).collect()
        };
        if digests.is_empty() {
            return;
        }
        let digest = digests[pick.index(digests.len())];
        let lookup = self.views.refresh_lookup(&digest);
        let (owner, live) = match &lookup {
            RefreshLookup::Active(t) => {
                let left = t.token.refresh.as_ref().map_or(0, |r| r.expires_at - self.now);
                (t.token.client_id.clone(), left >= USABLE_MARGIN_MS)
            }
            RefreshLookup::Rotated { client_id, .. } => (client_id.clone(), false),
            RefreshLookup::Unknown => (client(0), false),
        };
        let presenter = if by_other_client { other_client(&owner) } else { owner };
        let target = match &lookup {
            RefreshLookup::Active(source) => refreshed_scopes(source, requested.as_ref())
                .ok()
                .map(|s| TokenKey { scopes: s, ..source.key() }.stream())
                .and_then(|stream| self.views.active.get(&stream).cloned()),
            _ => None,
        };
        let mut mint = Counter { minted: &mut self.minted, keep_access: renewal == Renewal::Off };
        let (policy, now) = (&self.policy, self.now);
        let d =
            decide_refresh(&lookup, target.as_ref(), &presenter, requested.as_ref(), &mut mint, policy, now)
                .expect("the counter never fails to mint");
        let issues = d.events.iter().any(|p| matches!(p.event, Event::TokenIssued(_)));
        if !live && (issues || matches!(d.outcome, Ok(Outcome::Issued(_)))) {
            self.flag(Property::DeadRefreshNeverIssues, format!("{lookup:?} gave {d:?}"));
        }
        if matches!(lookup, RefreshLookup::Rotated { .. }) {
            self.seen.replays_refused += u32::from(d.outcome.is_err());
            let revokes = d.events.iter().any(|p| matches!(p.event, Event::TokenRevoked(_)));
            self.seen.families_revoked += u32::from(revokes);
        }
        if let (Ok(Outcome::Issued(_)), Some(_)) = (&d.outcome, &requested) {
            self.seen.narrowed += 1;
        }
        self.seen.refreshed += u32::from(d.outcome.is_ok());
        self.commit(&d);
    }

    fn revoke(&mut self, pick: &Index, refresh_half: bool, by_other_client: bool) {
        if self.issued.is_empty() {
            return;
        }
        let token = self.issued[pick.index(self.issued.len())].clone();
        let digest = match (&token.refresh, refresh_half) {
            (Some(r), true) => r.digest,
            _ => token.access_digest,
        };
        let found = self.views.by_digest(&digest).map(|(t, _)| t);
        let caller = if by_other_client { other_client(&token.client_id) } else { token.client_id.clone() };
        let d = decide_revoke(found.as_ref(), &caller);
        self.commit(&d);
        self.seen.revokes_refused += u32::from(d.outcome.is_err());
        if d.outcome.is_ok() && found.is_some() {
            self.seen.revoked += 1;
            if self.views.by_digest(&digest).is_some() {
                let detail = format!("{digest:?} is still active after its revocation");
                self.flag(Property::RevokeDeactivates, detail);
            }
        }
    }

    /// Folds the decision's events in and checks what was handed out against the views.
    fn commit(&mut self, d: &Decision) {
        let mut broken = Vec::new();
        for p in &d.events {
            self.views.apply(p, self.now, &mut broken);
        }
        self.broken.extend(broken);
        self.log.push((d.events.clone(), self.now));
        if let Ok(Outcome::Issued(t) | Outcome::Returned { token: t, .. }) = &d.outcome {
            if matches!(d.outcome, Ok(Outcome::Issued(_))) {
                self.seen.issued += 1;
                self.issued.push(t.clone());
            }
            let active = self.views.by_digest(&t.access_digest).map(|(a, _)| a.token);
            if active.as_ref() != Some(t) {
                let detail = format!("handed out {t:?}, the key's active token is {active:?}");
                self.flag(Property::HandedOutIsActive, detail);
            }
        }
        let mut families = BTreeMap::new();
        for t in self.views.active.values() {
            *families.entry(t.token.family_id).or_insert(0) += 1;
        }
        if let Some((family, n)) = families.into_iter().find(|(_, n)| *n > 1) {
            let detail = format!("family {family} has {n} active tokens");
            self.flag(Property::OneActivePerFamily, detail);
        }
    }

    /// The log folded again from nothing by the model.
    fn refold(&self) -> Views {
        let mut views = Views::default();
        for (events, now) in &self.log {
            for p in events {
                views.apply(p, *now, &mut Vec::new());
            }
        }
        views
    }
}

fn renewal() -> impl Strategy<Value = Renewal> {
    prop_oneof![
        3 => Just(Renewal::Off),
        1 => Just(Renewal::ByConfig),
        1 => Just(Renewal::ByGenerator),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let issue = (0..CLIENTS.len(), 0..SUBJECTS.len(), 0..SCOPES.len(), renewal())
        .prop_map(|(client, subject, scopes, renewal)| Step::Issue { client, subject, scopes, renewal });
    let narrow = prop::option::weighted(0.3, 0..SCOPES.len());
    let other = prop::bool::weighted(0.15);
    let refresh = (any::<bool>(), any::<Index>(), narrow, other, renewal()).prop_map(
        |(rotated, pick, narrow, by_other_client, renewal)| Step::Refresh {
            rotated,
            pick,
            narrow,
            by_other_client,
            renewal,
        },
    );
    let revoke = (any::<Index>(), any::<bool>(), prop::bool::weighted(0.2)).prop_map(
        |(pick, refresh_half, by_other_client)| Step::Revoke { pick, refresh_half, by_other_client },
    );
    let tick = prop_oneof![0..=1_500i64, 1_500..=90_000i64].prop_map(Step::Tick);
    prop_oneof![4 => issue, 3 => refresh, 2 => revoke, 3 => tick]
}

pub(crate) fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..80)
}

pub(crate) fn policy() -> impl Strategy<Value = Policy> {
    let flags = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    let grace = prop_oneof![Just(0), Just(5_000), Just(10_000)];
    let lifetimes = (2_000..60_000i64, 2_000..60_000i64, 3_000..200_000i64);
    (flags, grace, lifetimes).prop_map(|((renew, extend, family, cc), grace, (user, app, rt))| Policy {
        renew_access_token_per_request: false,
        renew_refresh_token: renew,
        extend_refresh_token_expiry_on_renewal: extend,
        revoke_family_on_refresh_token_reuse: family,
        refresh_token_reuse_grace_ms: grace,
        user_access_token_ms: user,
        app_access_token_ms: app,
        refresh_token_ms: rt,
        client_credentials_refresh_tokens: cc,
    })
}

/// Few enough cases to run in well under a second each; no regression files in the tree.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() }
}

fn holds(property: Property, policy: Policy, steps: &[Step]) -> Result<(), TestCaseError> {
    let world = World::run(policy, steps);
    let broken: Vec<&Violation> = world.broken.iter().filter(|v| v.property == property).collect();
    let details: Vec<&str> = broken.iter().map(|v| v.detail.as_str()).collect();
    prop_assert!(details.is_empty(), "{property:?} broken: {details:#?}");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_key_ever_has_two_active_tokens(policy in policy(), steps in steps()) {
        holds(Property::OneActivePerKey, policy, &steps)?;
    }

    #[test]
    fn no_refresh_family_ever_has_two_active_tokens(policy in policy(), steps in steps()) {
        holds(Property::OneActivePerFamily, policy, &steps)?;
    }

    #[test]
    fn every_revocation_names_the_active_token_of_its_key(policy in policy(), steps in steps()) {
        holds(Property::RevokeNamesAnActiveToken, policy, &steps)?;
    }

    #[test]
    fn a_token_revoked_by_its_client_is_inactive_at_once(policy in policy(), steps in steps()) {
        holds(Property::RevokeDeactivates, policy, &steps)?;
    }

    #[test]
    fn a_token_handed_out_is_its_keys_active_token_with_more_than_a_second_left(
        policy in policy(),
        steps in steps(),
    ) {
        holds(Property::HandedOutIsActive, policy, &steps)?;
    }

    #[test]
    fn a_revoked_rotated_or_expired_refresh_token_never_issues(
        policy in policy(),
        steps in steps(),
    ) {
        holds(Property::DeadRefreshNeverIssues, policy, &steps)?;
    }

    #[test]
    fn replaying_the_log_from_scratch_gives_the_incremental_state(
        policy in policy(),
        steps in steps(),
    ) {
        let world = World::run(policy, &steps);
        prop_assert_eq!(&world.refold(), &world.views);
    }
}

/// Without this, a generator that never reached a refresh or a replay would pass every property.
#[test]
fn the_generated_histories_reach_every_kind_of_outcome() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut total = Seen::default();
    for _ in 0..128 {
        let policy = policy().new_tree(&mut runner).unwrap().current();
        let steps = steps().new_tree(&mut runner).unwrap().current();
        let seen = World::run(policy, &steps).seen;
        total.issued += seen.issued;
        total.returned += seen.returned;
        total.refreshed += seen.refreshed;
        total.narrowed += seen.narrowed;
        total.replays_refused += seen.replays_refused;
        total.families_revoked += seen.families_revoked;
        total.revoked += seen.revoked;
        total.revokes_refused += seen.revokes_refused;
    }
    let counts = [
        total.issued,
        total.returned,
        total.refreshed,
        total.narrowed,
        total.replays_refused,
        total.families_revoked,
        total.revoked,
        total.revokes_refused,
    ];
    eprintln!("{total:?}");
    assert!(counts.iter().all(|n| *n > 0), "{total:?}");
}
