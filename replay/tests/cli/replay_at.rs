//! `replay --at / --position`: the active-token view as it stood at each instant of the scripted
//! history, folded in memory from the log.

use std::collections::BTreeMap;

use serde_json::Value;
use token_ledger::domain::types::Digest;
use token_ledger::store::log::format_time;

use crate::helpers::{history, ledger_replay, History};

/// Token name by access digest.
fn names(h: &History) -> BTreeMap<String, &'static str> {
    h.tokens.iter().map(|(name, t)| (Digest::of(t.access.as_bytes()).to_hex(), *name)).collect()
}

fn replay_at(at: i64) -> Value {
    let db = history().deployment.db_arg();
    ledger_replay(&["replay", "--db", &db, "--at", &format_time(at), "--json"]).expect(0).json()
}

fn rows(view: &Value) -> &Vec<Value> {
    view["tokens"].as_array().expect("a token list")
}

#[test]
fn replay_at_each_instant_of_the_history_shows_exactly_the_tokens_of_that_moment() {
    let h = history();
    let names = names(h);
    for (index, mark) in h.marks.iter().enumerate() {
        let view = replay_at(mark.at);
        let mut shown: Vec<&str> =
            rows(&view).iter().map(|row| names[row["access_digest"].as_str().unwrap()]).collect();
        shown.sort();
        assert_eq!(shown, mark.view, "mark {index}");
        for row in rows(&view) {
            let name = names[row["access_digest"].as_str().unwrap()];
            if let Some(live) = h.token(name).live_at(mark.at) {
                assert_eq!(row["active"], live, "{name} at mark {index}");
            }
        }
        let active = rows(&view).iter().filter(|r| r["active"] == true).count();
        assert_eq!(view["active"], active, "mark {index}");
    }
}

#[test]
fn a_token_past_its_expiry_at_the_instant_is_in_the_view_but_not_active() {
    let h = history();
    let mark = &h.marks[8];
    assert_eq!(mark.view, ["T4"], "the mark after T4 expired");
    let view = replay_at(mark.at);
    assert_eq!(rows(&view).len(), 1);
    assert_eq!(rows(&view)[0]["active"], false);
    assert_eq!(rows(&view)[0]["refresh_active"], true, "its refresh token lives a day");
    assert_eq!(view["active"], 0);
}

#[test]
fn replay_counts_the_active_tokens_of_each_client() {
    let h = history();
    let mark = &h.marks[10];
    assert_eq!(mark.view, ["T5", "T6"], "the mark with client B's token");
    let view = replay_at(mark.at);
    assert_eq!(view["by_client"][&h.client_b.id], 1, "{view}");
    assert_eq!(view["by_client"][&h.client_a.id], 1, "{view}");
}

#[test]
fn replay_at_a_position_is_the_view_after_that_event() {
    let h = history();
    let db = h.deployment.db_arg();
    let at_mark = replay_at(h.marks[6].at);
    let position = at_mark["position"].as_i64().unwrap().to_string();
    let view = ledger_replay(&["replay", "--db", &db, "--position", &position, "--json"]).expect(0).json();
    assert_eq!(view["position"], at_mark["position"]);
    let digests = |v: &Value| -> Vec<Value> { rows(v).iter().map(|r| r["access_digest"].clone()).collect() };
    assert_eq!(digests(&view), digests(&at_mark));
    let start = ledger_replay(&["replay", "--db", &db, "--position", "0", "--json"]).expect(0).json();
    assert_eq!(rows(&start).len(), 0);
}

#[test]
fn a_position_beyond_the_log_is_refused_with_the_logs_end() {
    let db = history().deployment.db_arg();
    let run = ledger_replay(&["replay", "--db", &db, "--position", "100000"]).expect(2);
    assert!(run.stderr.contains("position 100000 is not in the log"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1);
}

#[test]
fn before_the_first_event_the_view_is_empty() {
    let view = replay_at(history().marks[0].at - 60_000);
    assert_eq!(view["position"], 0);
    assert_eq!(rows(&view).len(), 0);
}
