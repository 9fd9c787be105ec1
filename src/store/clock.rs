//! Where the ledger and the archiver take "now" from: the wall clock in the server, a simulated
//! clock in the generator (`ledger-gen`), the benchmarks and tests, so that days of traffic are
//! written and archived in seconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::domain::events::Millis;

/// A source of the current time in milliseconds since the epoch.
pub type Clock = Arc<dyn Fn() -> Millis + Send + Sync>;

/// The wall clock.
pub fn wall_clock() -> Clock {
    Arc::new(super::ledger::system_clock)
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct SimulatedClock(Arc<AtomicI64>);

impl SimulatedClock {
    /// Starts at `start` (milliseconds since the epoch).
    pub fn starting_at(start: Millis) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }

    /// The simulated now.
    pub fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the time forward by `ms` (never backward: a log's times only grow).
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    /// The clock to hand to `Ledger::with_clock` or the archiver.
    pub fn clock(&self) -> Clock {
        let time = self.0.clone();
        Arc::new(move || time.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_clock_moves_only_forward_and_its_clones_share_the_time() {
        let sim = SimulatedClock::starting_at(1_000);
        let clock = sim.clock();
        sim.advance(86_400_000);
        sim.advance(-5);
        assert_eq!(clock(), 86_401_000);
        assert_eq!(sim.clone().now(), 86_401_000);
    }
}
