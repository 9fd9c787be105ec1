//! `audit`: each token's fate in one line, and the timelines of a token, a client and a user.

use serde_json::Value;
use token_ledger::domain::types::Digest;

use crate::helpers::binaries::ledger_replay_with;
use crate::helpers::{history, ledger_replay};

fn audit(args: &[&str]) -> Value {
    let db = history().deployment.db_arg();
    let mut all = vec!["audit", "--db", db.as_str(), "--json"];
    all.extend_from_slice(args);
    ledger_replay(&all).expect(0).json()
}

/// The fate line of the access token `name`.
fn access_fate(name: &str) -> String {
    let digest = Digest::of(history().token(name).access.as_bytes()).to_hex();
    let report = audit(&["--digest", &digest]);
    let fates = report["fates"].as_array().expect("fates");
    let access = fates.iter().find(|f| f["half"] == "access").expect("an access fate");
    access["fate"].as_str().unwrap().to_owned()
}

fn assert_fate(name: &str, starts: &str, ends: &str) {
    let fate = access_fate(name);
    assert!(
        fate.starts_with(starts) && fate.ends_with(ends),
        "{name}: {fate:?} should start with {starts:?} and end with {ends:?}"
    );
}

#[test]
fn audit_tells_each_tokens_fate_in_one_line() {
    let h = history();
    let request = |name: &str| format!("(request {})", h.token(name).request_id);
    assert_fate("T1", "inactive since ", &format!(": refreshed {}", request("T3")));
    assert_fate("T2", "revoked at ", &format!(" by revocation request (request {})", h.request("revoke T2")));
    assert_fate("T3", "revoked at ", &format!(" by refresh token reuse (request {})", h.request("reuse")));
    let t4 = access_fate("T4");
    assert!(t4.starts_with("expired at ") && t4.contains("; replaced at "), "{t4}");
    assert!(t4.ends_with(&request("T5")), "{t4}");
    assert_fate("T6", "revoked at ", &format!(" by client deletion (request {})", h.request("delete B")));
    assert_fate("T7", "revoked at ", &format!(" by renewal {}", request("T8")));
    assert_fate("T8", "active until ", "Z");
}

#[test]
fn a_refresh_tokens_fate_follows_it_to_the_last_token_that_carried_it() {
    let h = history();
    let carried = h.token("T4").refresh.as_deref().unwrap();
    let report = audit(&["--digest", &Digest::of(carried.as_bytes()).to_hex()]);
    let fates = report["fates"].as_array().unwrap();
    let refresh = fates.iter().find(|f| f["half"] == "refresh").expect("a refresh fate");
    assert!(refresh["fate"].as_str().unwrap().starts_with("usable until "), "{refresh}");
    let issued = report["entries"].as_array().unwrap().iter().filter(|e| e["event"] == "TokenIssued").count();
    assert_eq!(issued, 2, "issued with T4, carried over to T5: {report}");

    let rotated = h.token("T1").refresh.as_deref().unwrap();
    let report = audit(&["--digest", &Digest::of(rotated.as_bytes()).to_hex()]);
    let fate = report["fates"][0]["fate"].as_str().unwrap().to_owned();
    assert!(fate.starts_with("inactive since "), "{fate}");
    assert!(
        fate.ends_with(&format!(": rotated by a refresh (request {})", h.token("T3").request_id)),
        "{fate}"
    );
    let replayed = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "RefreshTokenReplayed" && e["request_id"] == h.request("reuse"));
    assert!(replayed, "the replay of the rotated token is on its timeline: {report}");
}

#[test]
fn a_token_value_is_looked_up_by_digest_and_never_printed() {
    let h = history();
    let db = h.deployment.db_arg();
    let value = &h.token("T2").access;
    let by_value = ledger_replay(&["audit", "--db", &db, "--token", value]).expect(0);
    let digest = Digest::of(value.as_bytes()).to_hex();
    let by_digest = ledger_replay(&["audit", "--db", &db, "--digest", &digest]).expect(0);
    let from_stdin = ledger_replay_with(&["audit", "--db", &db, "--token", "-"], Some(value), &[]).expect(0);
    assert!(!by_value.stdout.contains(value.as_str()));
    let body = |run: &crate::helpers::Run| run.stdout.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&by_value), body(&by_digest));
    assert_eq!(body(&from_stdin), body(&by_digest));
    assert!(by_value.stdout.contains("TokenRevoked (revocation_request)"), "{}", by_value.stdout);
}

#[test]
fn the_timeline_of_a_deleted_client_shows_its_whole_life() {
    let h = history();
    let report = audit(&["--client", &h.client_b.id]);
    let events: Vec<&str> =
        report["entries"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["ClientRegistered", "TokenIssued", "TokenRevoked (client_deleted)", "ClientDeleted"]);
    let issued = &report["entries"][1];
    assert_eq!(issued["grant_type"], "client_credentials");
    assert_eq!(issued["client"], h.client_b.id.as_str());
    assert_eq!(issued["request_id"], h.token("T6").request_id.as_str());
    assert!(issued["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")));
}

#[test]
fn a_user_is_audited_whatever_the_case_of_the_name() {
    let lower = audit(&["--user", "admin"]);
    let upper = audit(&["--user", "ADMIN"]);
    assert_eq!(lower["entries"], upper["entries"]);
    let first = &lower["entries"][0];
    assert_eq!(first["event"], "UserAdded");
    let user_tokens = lower["fates"].as_array().unwrap().len();
    assert_eq!(user_tokens, 4, "T1, T3 (by refresh), T4 and T5: {lower}");
}

#[test]
fn a_window_limits_the_timeline_and_tells_fates_as_they_stood_at_its_end() {
    let h = history();
    let to = token_ledger::store::log::format_time(h.marks[3].at);
    let digest = Digest::of(h.token("T1").access.as_bytes()).to_hex();
    let report = audit(&["--digest", &digest, "--to", &to]);
    let fate = report["fates"][0]["fate"].as_str().unwrap();
    assert!(fate.starts_with("active until "), "T1 was live at mark 3: {fate}");
    let events: Vec<&str> =
        report["entries"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["TokenIssued", "TokenReturned"]);
    let from = token_ledger::store::log::format_time(h.marks[2].at);
    let later = audit(&["--digest", &digest, "--from", &from]);
    let first = later["entries"][0]["event"].as_str().unwrap();
    assert_eq!(first, "TokenReturned", "the issue is before --from");
}

#[test]
fn a_token_value_that_begins_with_a_hyphen_is_a_value_in_both_flag_forms() {
    let db = history().deployment.db_arg();
    // One base64url token in 64 begins with `-`; such a value must never be read as a flag.
    let value = "-Xq3vN0a_dash-led-token-value-for-the-audit-cli";
    let digest = Digest::of(value.as_bytes()).to_hex();
    let separate = ledger_replay(&["audit", "--db", &db, "--token", value]).expect(0);
    let joined = ledger_replay(&["audit", "--db", &db, &format!("--token={value}")]).expect(0);
    let by_digest = ledger_replay(&["audit", "--db", &db, "--digest", &digest]).expect(0);
    let body = |run: &crate::helpers::Run| run.stdout.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert!(
        separate.stdout.contains(&digest[..16]),
        "the report names the value's digest: {}",
        separate.stdout
    );
    assert_eq!(body(&separate), body(&by_digest));
    assert_eq!(body(&joined), body(&by_digest));
    assert!(!separate.stdout.contains(value), "the value itself is never printed");
}
