//! One load worker: its own client and three keys, a random mix of requests, and an exact model
//! of what its acknowledged responses imply. A request whose response never came (the server
//! was killed) makes the tokens it could have changed uncertain until the restart settles them.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::helpers::{Client, ADMIN_USER};

/// The worker's keys: two client_credentials scope sets (the first narrows to the second) and
/// the super admin's password grant.
const KEYS: [&str; 3] = ["a b", "a", "w"];
const PASSWORD_KEY: usize = 2;
/// A rotated refresh token is replayed only once the server's clock is surely past its rotation,
/// so that a zero grace period makes the replay revoke the family without doubt.
const REPLAY_AFTER: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Active,
    Inactive,
    /// Changed or not by a request whose answer was lost in a crash.
    Either,
}

/// A token pair that a 200 response handed to this worker.
#[derive(Debug, Clone)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
    pub key: usize,
    /// The refresh family, when the worker knows every member of it.
    family: Option<usize>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Issue(usize),
    Refresh { key: usize, narrow: bool },
    Replay(usize),
    Revoke { key: usize, with_refresh: bool },
    RevokeOld(usize),
}

pub struct Worker {
    pub client: Client,
    renewal: bool,
    pub pairs: Vec<Pair>,
    current: [Option<usize>; KEYS.len()],
    /// Rotated refresh tokens of fully known families: (token, family, when rotated).
    rotated: Vec<(String, usize, Instant)>,
    families: usize,
    /// Families that may have a member this worker never saw (a lost refresh).
    tainted: Vec<usize>,
    /// Keys where a lost refresh may have left a token this worker never saw.
    tainted_keys: Vec<usize>,
    pub acknowledged: usize,
    /// Answered requests by kind: issue, refresh, narrowing refresh, replay, revocation.
    pub answered: [usize; 5],
    lost: Option<Op>,
    rng: StdRng,
}

/// The pieces of a 200 token response.
fn pair_of(body: &Value) -> (String, String) {
    let text = |name: &str| body[name].as_str().unwrap_or_else(|| panic!("no {name} in {body}")).to_string();
    (text("access_token"), text("refresh_token"))
}

impl Worker {
    pub fn new(client: Client, renewal: bool, rng: StdRng) -> Self {
        Self {
            client,
            renewal,
            pairs: Vec::new(),
            current: [None; KEYS.len()],
            rotated: Vec::new(),
            families: 0,
            tainted: Vec::new(),
            tainted_keys: Vec::new(),
            acknowledged: 0,
            answered: [0; 5],
            lost: None,
            rng,
        }
    }

    /// Sends requests until one gets no answer (the server is gone).
    pub async fn run(mut self, http: reqwest::Client, base: String) -> Self {
        loop {
            let op = self.choose();
            let form = self.form(op);
            let path = if matches!(op, Op::Revoke { .. } | Op::RevokeOld(_)) {
                "/oauth2/revoke"
            } else {
                "/oauth2/token"
            };
            let sent = http
                .post(format!("{base}{path}"))
                .basic_auth(&self.client.id, Some(&self.client.secret))
                .form(&form)
                .send()
                .await;
            let answer = match sent {
                Ok(response) => {
                    let status = response.status();
                    response.text().await.map(|text| (status, text))
                }
                Err(e) => Err(e),
            };
            let Ok((status, text)) = answer else {
                self.lost = Some(op);
                return self;
            };
            self.acknowledge(op, status, &text);
            self.acknowledged += 1;
            self.answered[match op {
                Op::Issue(_) => 0,
                Op::Refresh { narrow: false, .. } => 1,
                Op::Refresh { narrow: true, .. } => 2,
                Op::Replay(_) => 3,
                Op::Revoke { .. } | Op::RevokeOld(_) => 4,
            }] += 1;
        }
    }

    fn choose(&mut self) -> Op {
        let key = self.rng.gen_range(0..KEYS.len());
        let live = self.current[key].is_some();
        let replayable: Vec<usize> = (0..self.rotated.len())
            .filter(|i| {
                let (_, family, at) = &self.rotated[*i];
                at.elapsed() > REPLAY_AFTER && !self.tainted.contains(family)
            })
            .collect();
        match self.rng.gen_range(0..100) {
            0..=39 => Op::Issue(key),
            40..=64 if live => Op::Refresh { key, narrow: key == 0 && self.rng.gen_bool(0.3) },
            65..=74 if !replayable.is_empty() => {
                Op::Replay(replayable[self.rng.gen_range(0..replayable.len())])
            }
            75..=94 if live => Op::Revoke { key, with_refresh: self.rng.gen_bool(0.5) },
            95..=99 if !self.pairs.is_empty() => Op::RevokeOld(self.rng.gen_range(0..self.pairs.len())),
            _ => Op::Issue(key),
        }
    }

    fn form(&self, op: Op) -> Vec<(&'static str, String)> {
        let own = |key: usize| &self.pairs[self.current[key].expect("a live pair")];
        match op {
            Op::Issue(PASSWORD_KEY) => vec![
                ("grant_type", "password".into()),
                ("username", ADMIN_USER.into()),
                ("password", "admin".into()),
                ("scope", KEYS[PASSWORD_KEY].into()),
            ],
            Op::Issue(key) => vec![("grant_type", "client_credentials".into()), ("scope", KEYS[key].into())],
            Op::Refresh { key, narrow } => {
                let mut form =
                    vec![("grant_type", "refresh_token".into()), ("refresh_token", own(key).refresh.clone())];
                if narrow {
                    form.push(("scope", KEYS[1].into()));
                }
                form
            }
            Op::Replay(i) => {
                vec![("grant_type", "refresh_token".into()), ("refresh_token", self.rotated[i].0.clone())]
            }
            Op::Revoke { key, with_refresh: true } => vec![("token", own(key).refresh.clone())],
            Op::Revoke { key, with_refresh: false } => vec![("token", own(key).access.clone())],
            Op::RevokeOld(i) => vec![("token", self.pairs[i].access.clone())],
        }
    }

    fn knows(&self, access: &str) -> bool {
        self.pairs.iter().any(|p| p.access == access)
    }

    fn set(&mut self, index: Option<usize>, expect: Expect) {
        if let Some(i) = index {
            self.pairs[i].expect = expect;
        }
    }

    fn add(&mut self, key: usize, body: &Value, family: Option<usize>) -> usize {
        let (access, refresh) = pair_of(body);
        assert!(!self.knows(&access), "a new token response handed out a known token: {body}");
        self.pairs.push(Pair { access, refresh, key, family, expect: Expect::Active });
        self.current[key] = Some(self.pairs.len() - 1);
        self.pairs.len() - 1
    }

    fn new_family(&mut self) -> usize {
        self.families += 1;
        self.families
    }

    /// What a received answer implies.
    fn acknowledge(&mut self, op: Op, status: StatusCode, text: &str) {
        let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let expected = if matches!(op, Op::Replay(_)) { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        assert_eq!(status, expected, "{op:?} answered {status}: {text}");
        match op {
            Op::Issue(key) => self.issued(key, &body),
            Op::Refresh { key, narrow } => {
                let source = self.current[key].expect("a live pair");
                let target = if narrow { 1 } else { key };
                self.set(Some(source), Expect::Inactive);
                if target != key {
                    self.set(self.current[target], Expect::Inactive);
                    self.current[key] = None;
                }
                let family = self.pairs[source].family;
                let new = self.add(target, &body, family);
                assert_ne!(self.pairs[new].refresh, self.pairs[source].refresh, "the refresh token rotates");
                if let Some(f) = family {
                    self.rotated.push((self.pairs[source].refresh.clone(), f, Instant::now()));
                }
            }
            Op::Replay(i) => {
                assert_eq!(body["error"], "invalid_grant", "{text}");
                // A zero grace period: the replay revokes whatever of the family is active.
                let family = self.rotated[i].1;
                self.end_family(family, Expect::Inactive);
            }
            Op::Revoke { key, .. } => {
                self.set(self.current[key], Expect::Inactive);
                self.current[key] = None;
            }
            Op::RevokeOld(i) => self.settle(i, false),
        }
    }

    fn issued(&mut self, key: usize, body: &Value) {
        let current = self.current[key];
        match current {
            Some(i) if !self.renewal => {
                let (access, refresh) = pair_of(body);
                let pair = &self.pairs[i];
                assert_eq!(
                    (&access, &refresh),
                    (&pair.access, &pair.refresh),
                    "renewal off hands back the same pair"
                );
            }
            _ => {
                self.set(current, Expect::Inactive);
                // With renewal off, a token left by a lost refresh comes back here: its family
                // is then not one this worker knows all of.
                let lost_refresh = !self.renewal && self.tainted_keys.contains(&key);
                self.tainted_keys.retain(|k| *k != key);
                let family = if lost_refresh { None } else { Some(self.new_family()) };
                self.add(key, body, family);
            }
        }
    }

    fn end_family(&mut self, family: usize, expect: Expect) {
        for i in 0..self.pairs.len() {
            if self.pairs[i].family == Some(family) && self.pairs[i].expect == Expect::Active {
                match expect {
                    Expect::Inactive => self.settle(i, false),
                    _ => self.pairs[i].expect = expect,
                }
            }
        }
    }

    /// The tokens that the lost request could have changed become uncertain.
    pub fn mark_lost_request(&mut self) {
        let Some(op) = self.lost.take() else { return };
        match op {
            Op::Issue(key) if self.renewal => self.set(self.current[key], Expect::Either),
            Op::Issue(_) => {}
            Op::RevokeOld(i) if self.pairs[i].expect == Expect::Active => self.set(Some(i), Expect::Either),
            Op::RevokeOld(_) => {}
            Op::Refresh { key, narrow } => {
                let source = self.current[key];
                let target = if narrow { 1 } else { key };
                if let Some(f) = source.and_then(|i| self.pairs[i].family) {
                    self.tainted.push(f);
                }
                self.tainted_keys.push(target);
                self.set(source, Expect::Either);
                self.set(self.current[target], Expect::Either);
            }
            Op::Replay(i) => {
                let family = self.rotated[i].1;
                self.end_family(family, Expect::Either);
            }
            Op::Revoke { key, .. } => self.set(self.current[key], Expect::Either),
        }
    }

    /// After the restart: an uncertain token is whatever the server now says it is.
    pub fn settle(&mut self, index: usize, active: bool) {
        self.pairs[index].expect = if active { Expect::Active } else { Expect::Inactive };
        let key = self.pairs[index].key;
        if !active && self.current[key] == Some(index) {
            self.current[key] = None;
        }
    }
}
