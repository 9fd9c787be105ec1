//! What fuzzing found, kept as plain regression tests with the smallest input, and the known
//! verdicts on the JSON Lines corpus (a real export and hand-broken copies of it).

use std::path::Path;

use ledger_replay::source::{Location, Source};
use ledger_replay::verify::verify;
use token_ledger_fuzz::{exported_log, LineSpec, Step};

fn line(position: Step, version: Step, sample: u8) -> LineSpec {
    LineSpec {
        position,
        stream: None,
        version,
        sample,
        edits: Vec::new(),
        schema_version: 1,
        recorded_at: None,
        peer: None,
        break_chain: false,
    }
}

/// `verify` on a log written from `specs`: a verdict, whatever it says.
fn verdict_of(specs: &[LineSpec]) -> Result<ledger_replay::verify::Verdict, String> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("log.jsonl");
    std::fs::write(&path, exported_log(specs)).expect("write the log");
    let source = Source::open(&Location::Log(path)).expect("open the log");
    verify(&source).map_err(|e| e.to_string())
}

#[test]
fn a_log_built_from_the_samples_in_order_verifies_intact() {
    // ClientRegistered, UserAdded, UserPasswordChanged, TokenIssued, TokenReturned,
    // RefreshTokenReplayed, TokenRevoked, ClientDeleted: a history the server could write.
    let specs: Vec<LineSpec> = (0..8).map(|i| line(Step::Next, Step::Next, i)).collect();
    let verdict = verdict_of(&specs).expect("a verdict");
    assert!(verdict.intact, "{verdict:?}");
    assert_eq!(verdict.events, 8);
}

#[test]
fn verify_reports_a_position_after_the_largest_integer_instead_of_panicking() {
    let specs = [line(Step::Max, Step::Next, 0), line(Step::Jump(5), Step::Next, 1)];
    let verdict = std::panic::catch_unwind(|| verdict_of(&specs));
    let verdict = verdict.expect("verify panicked").expect("a verdict");
    assert!(!verdict.intact, "{verdict:?}");
}

#[test]
fn verify_reports_a_stream_version_after_the_largest_integer_instead_of_panicking() {
    // A partial export (it starts at position 5), so the first version of a stream is taken
    // as it is.
    let specs = [line(Step::Jump(5), Step::Max, 1), line(Step::Next, Step::Next, 2)];
    let verdict = std::panic::catch_unwind(|| verdict_of(&specs));
    let verdict = verdict.expect("verify panicked").expect("a verdict");
    assert!(!verdict.intact, "{verdict:?}");
}

#[test]
fn verify_does_not_pass_over_a_line_whose_position_is_not_positive() {
    let specs = [line(Step::Next, Step::Next, 0), line(Step::Jump(-7), Step::Next, 1)];
    let verdict = verdict_of(&specs).expect("a verdict");
    assert!(!verdict.intact, "a line at position -7 went unchecked: {verdict:?}");
}

/// `verify` on one file of the JSON Lines target's corpus.
fn verdict_on_corpus(name: &str) -> Result<ledger_replay::verify::Verdict, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__/jsonl_log_reader/corpus");
    let source = Source::open(&Location::Log(dir.join(name))).expect("open a corpus file");
    verify(&source).map_err(|e| e.to_string())
}

#[test]
fn a_real_export_verifies_intact_and_every_broken_copy_of_it_does_not() {
    for intact in ["real-export.jsonl", "crlf-and-blank-lines.jsonl"] {
        let verdict = verdict_on_corpus(intact).expect("a verdict");
        assert!(verdict.intact && verdict.events == 10, "{intact}: {verdict:?}");
    }
    for broken in
        ["tampered.jsonl", "reordered.jsonl", "truncated.jsonl", "unknown-field.jsonl", "not-json.jsonl"]
    {
        let verdict = verdict_on_corpus(broken);
        assert!(!verdict.as_ref().is_ok_and(|v| v.intact), "{broken}: {verdict:?}");
    }
}
