//! The domain's random histories (`domain/grant_props.rs`) appended to a fresh store of each
//! backend and folded from position 0 by the server's own projection (`fold::catch_up`), read
//! back through the server's own lookups: the result must be the model's views.

use proptest::prelude::*;

use super::{Kind, Store};
use crate::domain::grant::props::{policy, steps, Rotated, Views, World};
use crate::domain::types::Digest;
use crate::store::log::{append, RequestMeta};
use crate::store::{fold, lookup, StoreError};

fn refold_through_the_projection(store: &Store, world: &World) -> Result<Views, StoreError> {
    let mut writer = store.writer();
    for (events, now) in world.log.iter().filter(|(events, _)| !events.is_empty()) {
        let mut tail = writer.begin()?;
        for (stored, event) in
            append(writer.as_mut(), &mut tail, events.clone(), &RequestMeta::default(), *now)?
        {
            fold::apply(writer.as_mut(), &stored, &event)?;
        }
        writer.commit(Some(&tail))?;
    }
    // The views are thrown away and folded again from position 0.
    store.forget_views();
    assert_eq!(fold::catch_up(writer.as_mut())?, world.log.iter().map(|(e, _)| e.len() as u64).sum::<u64>());
    let mut out = Views::default();
    for row in store.reader().snapshot()?.1 {
        // The snapshot leaves sealed values out; the writer's lookup reads the whole row.
        let token = lookup::active_by_stream(writer.as_mut(), &row.stream)?.expect("the row just listed");
        if let Some(r) = &token.token.refresh {
            // Every live refresh digest is, by construction, not rotated.
            assert!(lookup::rotated(writer.as_mut(), &r.digest)?.is_none());
        }
        out.active.insert(token.stream.clone(), token);
    }
    for digest in world.views.rotated.keys().chain(world_digests(world).iter()) {
        if let Some(r) = lookup::rotated(writer.as_mut(), &Digest(*digest))? {
            let rotated = Rotated {
                stream: r.stream,
                family_id: r.family_id,
                client_id: r.client_id,
                rotated_at: r.rotated_at,
            };
            out.rotated.insert(*digest, rotated);
        }
    }
    Ok(out)
}

/// Every refresh digest the history ever issued: the candidates for the rotated view.
fn world_digests(world: &World) -> Vec<[u8; 32]> {
    use crate::domain::events::Event;
    world
        .log
        .iter()
        .flat_map(|(events, _)| events.iter())
        .filter_map(|p| match &p.event {
            Event::TokenIssued(t) => t.refresh.as_ref().map(|r| r.digest.0),
            _ => None,
        })
        .collect()
}

fn check(kind: Kind, cases: u32) {
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&(policy(), steps()), |(policy, steps)| {
        let Some(store) = Store::new(kind) else { return Ok(()) };
        let world = World::run(policy, &steps);
        let projected = refold_through_the_projection(&store, &world);
        prop_assert!(projected.is_ok(), "the projection refused the log: {projected:?}");
        prop_assert_eq!(&projected.unwrap(), &world.views);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn replaying_the_log_from_scratch_through_the_sqlite_projection_gives_the_incremental_state() {
    check(Kind::Sqlite, 128);
}

/// Fewer cases: each needs a database of its own.
#[test]
fn replaying_the_log_from_scratch_through_the_postgres_projection_gives_the_incremental_state() {
    check(Kind::Postgres, 16);
}
