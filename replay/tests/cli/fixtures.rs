//! The recorded logs under `replay/fixtures/`: each verifies and replays to exactly the view the
//! server had when it was recorded. They also guard the event format: a log written by an
//! earlier build must still decode and fold after the event types evolve.

use serde_json::{json, Value};

use crate::helpers::ledger_replay;
use crate::record::fixtures_dir;

const FIELDS: [&str; 9] = [
    "access_digest",
    "client_id",
    "username",
    "scopes",
    "grant_type",
    "issued_at",
    "expires_at",
    "refresh_digest",
    "refresh_expires_at",
];

fn fixtures() -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(fixtures_dir())
        .expect("replay/fixtures")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
        .map(|p| {
            let expected: Value =
                serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("JSON");
            let log = p.to_string_lossy().replace(".expected.json", ".jsonl");
            (log, expected)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn every_scenario_the_issue_names_has_a_recorded_log() {
    let names: Vec<String> =
        fixtures().iter().map(|(_, e)| e["scenario"].as_str().unwrap().to_owned()).collect();
    for scenario in
        ["client-deletion", "identity-6777", "refresh-reuse", "seed-renewal-off", "seed-renewal-on"]
    {
        assert!(names.iter().any(|n| n == scenario), "{scenario} missing: {names:?}");
    }
}

#[test]
fn every_recorded_log_verifies() {
    for (log, _) in fixtures() {
        let verdict = ledger_replay(&["verify", "--log", &log, "--json"]).expect(0).json();
        assert_eq!(verdict["partial"], false, "{log}");
    }
}

#[test]
fn every_recorded_log_replays_to_the_view_the_server_had() {
    for (log, expected) in fixtures() {
        let position = expected["position"].as_i64().unwrap().to_string();
        let view =
            ledger_replay(&["replay", "--log", &log, "--position", &position, "--json"]).expect(0).json();
        let mut tokens: Vec<Value> = view["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let kept: serde_json::Map<String, Value> =
                    FIELDS.iter().map(|f| (f.to_string(), t[*f].clone())).collect();
                Value::Object(kept)
            })
            .collect();
        tokens.sort_by(|a, b| a["access_digest"].as_str().cmp(&b["access_digest"].as_str()));
        assert_eq!(json!(tokens), expected["tokens"], "{log}");
    }
}
