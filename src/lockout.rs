//! Brute-force protection: exponential back-off per (client, user, peer address) for the
//! password grant and per (client, peer address) for client authentication.
//!
//! Policy: five failures in a row are free; each further failure locks the key for
//! 2^(n-5) seconds (n = failures in a row), at most five minutes. A success resets the key, and
//! a key whose last failure is older than fifteen minutes starts again from zero. Because the key
//! includes the peer address and, for passwords, the client, an attacker elsewhere cannot lock a
//! victim out: the victim's own address and client have their own counters, and every lock ends
//! by itself after at most five minutes. Failures are recorded as events by the caller; attempts
//! refused while locked are only counted here, so an attacker cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::domain::events::Millis;

/// Failures in a row before the first lock.
pub const FREE_FAILURES: u32 = 5;
/// The longest single lock.
pub const MAX_LOCK_MS: Millis = 5 * 60 * 1000;
/// A key whose last failure is older than this is forgotten.
pub const FORGET_AFTER_MS: Millis = 15 * 60 * 1000;
/// Most keys remembered; past it the oldest-failing half is dropped.
const MAX_KEYS: usize = 100_000;

/// What is being guarded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKey {
    Password { client: String, username: String, peer: IpAddr },
    ClientSecret { client: String, peer: IpAddr },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Millis,
    locked_until: Millis,
}

/// A failure as recorded: how many in a row, and until when the key is now locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub consecutive: u32,
    pub locked_until: Option<Millis>,
}

/// The lock for a number of failures in a row.
pub fn lock_ms(failures: u32) -> Millis {
    if failures <= FREE_FAILURES {
        return 0;
    }
    let exponent = (failures - FREE_FAILURES - 1).min(20);
    (1000_i64 << exponent).min(MAX_LOCK_MS)
}

#[derive(Default)]
pub struct Lockouts {
    keys: Mutex<HashMap<LockKey, Entry>>,
}

impl Lockouts {
    /// `Some(ms left)` while the key is locked.
    pub fn locked(&self, key: &LockKey, now: Millis) -> Option<Millis> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(key).map(|e| e.locked_until - now).filter(|left| *left > 0)
    }

    /// Counts a failure and returns the key's new state.
    pub fn fail(&self, key: LockKey, now: Millis) -> Failure {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, e| now - e.last_failure < FORGET_AFTER_MS / 2);
        }
        let entry = keys.entry(key).or_insert(Entry { failures: 0, last_failure: now, locked_until: 0 });
        if now - entry.last_failure > FORGET_AFTER_MS {
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.last_failure = now;
        let lock = lock_ms(entry.failures);
        entry.locked_until = now + lock;
        Failure { consecutive: entry.failures, locked_until: (lock > 0).then_some(entry.locked_until) }
    }

    /// How many keys are locked at `now` (a gauge for monitoring).
    pub fn locked_count(&self, now: Millis) -> usize {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.values().filter(|e| e.locked_until > now).count()
    }

    /// A success forgets the key's failures.
    pub fn succeed(&self, key: &LockKey) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LockKey {
        LockKey::ClientSecret { client: "c".into(), peer: [127, 0, 0, 1].into() }
    }

    #[test]
    fn five_failures_are_free_then_the_lock_doubles_up_to_five_minutes() {
        assert_eq!((1..=5).map(lock_ms).collect::<Vec<_>>(), [0, 0, 0, 0, 0]);
        assert_eq!(lock_ms(6), 1000);
        assert_eq!(lock_ms(7), 2000);
        assert_eq!(lock_ms(10), 16_000);
        assert_eq!(lock_ms(100), MAX_LOCK_MS);
    }

    #[test]
    fn a_lock_ends_by_itself_and_a_success_resets_the_count() {
        let l = Lockouts::default();
        for _ in 0..5 {
            assert_eq!(l.fail(key(), 0).locked_until, None);
        }
        assert_eq!(l.fail(key(), 0).locked_until, Some(1000));
        assert_eq!(l.locked(&key(), 500), Some(500));
        assert_eq!(l.locked(&key(), 1000), None);
        l.succeed(&key());
        assert_eq!(l.fail(key(), 2000).consecutive, 1);
    }

    #[test]
    fn another_peer_is_not_locked_out_by_an_attacker() {
        let l = Lockouts::default();
        for _ in 0..20 {
            l.fail(key(), 0);
        }
        let victim = LockKey::ClientSecret { client: "c".into(), peer: [10, 0, 0, 2].into() };
        assert_eq!(l.locked(&victim, 0), None);
        assert!(l.locked(&key(), 0).is_some_and(|left| left <= MAX_LOCK_MS));
    }

    #[test]
    fn old_failures_are_forgotten() {
        let l = Lockouts::default();
        for _ in 0..9 {
            l.fail(key(), 0);
        }
        assert_eq!(l.fail(key(), FORGET_AFTER_MS + 1).consecutive, 1);
    }
}
