//! Fuzz targets for every parser that reads hostile input. Under `cargo test` each runs its
//! corpus (`tests/__fuzz__/<target>/corpus`) and then random inputs for half a second
//! (`BOLERO_RANDOM_TEST_TIME_MS` changes that: `run.sh` does); under `cargo bolero test` the
//! same targets are fuzzed with coverage guidance. The invariant everywhere: no panic. Where
//! printing and parsing again must give the same value, that is checked too.

use std::ops::ControlFlow;
use std::time::Duration;

use base64::Engine as _;
use bolero::check;
use bolero::generator::produce;
use http::{header, HeaderMap, HeaderValue};
use ledger_replay::source::{Location, Source};
use ledger_replay::verify::verify;
use token_ledger::domain::events::{Event, SCHEMA_VERSION};
use token_ledger::domain::types::ScopeSet;
use token_ledger::http::auth::basic;
use token_ledger::http::form::{OAuthForm, MAX_PARAMS};
use token_ledger_fuzz::LineSpec;
use token_ledger_fuzz::{exported_log, form_body, form_encode, mutate, sample_events, Edit};

/// Random inputs per target under `cargo test`, unless the environment asks for longer.
const QUICK: Duration = Duration::from_millis(500);

#[test]
fn form_body_parser() {
    check!().with_test_time(QUICK).for_each(|body: &[u8]| {
        let _ = OAuthForm::parse(body);
    });
}

/// The characters that matter to form and Basic encodings, and a few multi-byte ones.
const TEXT_ALPHABET: [char; 16] =
    ['a', 'B', '2', '=', '&', '+', '%', ' ', ':', '\0', '\u{7f}', 'é', '€', '😀', 'F', '_'];

/// Text over `TEXT_ALPHABET`, so that random bytes make the characters encodings trip on.
fn text(bytes: &[u8]) -> String {
    bytes.iter().map(|b| TEXT_ALPHABET[usize::from(*b) % TEXT_ALPHABET.len()]).collect()
}

/// Printing pairs as a form body and parsing it gives every pair back, and the body is refused
/// exactly when a name repeats or there are too many pairs (RFC 6749 section 3.2).
#[test]
fn form_body_round_trip() {
    let raw_pairs = produce::<Vec<(Vec<u8>, Vec<u8>)>>().with().len(0usize..8);
    let fillers = produce::<u8>().with().bounds(0..=80);
    check!().with_test_time(QUICK).with_generator((raw_pairs, fillers)).for_each(|(raw_pairs, fillers)| {
        // Plain distinct pairs in front, up to past the parameter limit.
        let mut pairs: Vec<(String, String)> = (0..*fillers).map(|i| (format!("p{i}"), "1".into())).collect();
        pairs.extend(raw_pairs.iter().map(|(n, v)| (text(n), text(v))));
        let parsed = OAuthForm::parse(form_body(&pairs).as_bytes());
        let mut names: Vec<&String> = pairs.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        let acceptable = names.len() == pairs.len() && pairs.len() <= MAX_PARAMS;
        assert_eq!(parsed.is_ok(), acceptable, "{pairs:?}: {parsed:?}");
        if let Ok(form) = parsed {
            for (name, value) in &pairs {
                let expected = Some(value.as_str()).filter(|v| !v.is_empty());
                assert_eq!(form.get(name), expected, "{name:?} in {pairs:?}");
            }
        }
    });
}

#[test]
fn basic_header_parser() {
    check!().with_test_time(QUICK).for_each(|raw: &[u8]| {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(raw) {
            headers.insert(header::AUTHORIZATION, value);
            let _ = basic(&headers);
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        let value = HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is ASCII");
        headers.insert(header::AUTHORIZATION, value);
        let _ = basic(&headers);
    });
}

/// RFC 6749 section 2.3.1: id and secret are form-encoded, joined by a colon, base64-encoded;
/// the parser gives both back exactly, and refuses only an empty id.
#[test]
fn basic_header_round_trip() {
    check!().with_test_time(QUICK).with_type::<(Vec<u8>, Vec<u8>)>().for_each(|(id, secret)| {
        let (id, secret) = (text(id), text(secret));
        let joined = format!("{}:{}", form_encode(&id), form_encode(&secret));
        let encoded = base64::engine::general_purpose::STANDARD.encode(joined);
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Basic {encoded}")).expect("ASCII");
        headers.insert(header::AUTHORIZATION, value);
        match basic(&headers) {
            Ok(Some(p)) => assert_eq!((&p.id, &p.secret), (&id, &secret)),
            other => assert!(id.is_empty(), "{id:?}:{secret:?} gave {other:?}"),
        }
    });
}

/// The characters a scope may hold (RFC 6749 section 3.3), its separators, and a few that it may
/// not, so that random bytes make valid scope strings often.
const SCOPE_ALPHABET: &[u8] = b"abcAB019!#[]~_-.:/ \t\r\n\"\\\x00\x7f";

fn valid_scope_byte(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// A scope string is accepted exactly when it is short enough and every scope in it is made of
/// RFC 6749 characters; the accepted set prints in a form that parses to the same set and
/// prints the same again.
#[test]
fn scope_parser_round_trip() {
    check!().with_test_time(QUICK).for_each(|raw: &[u8]| {
        let mapped: String =
            raw.iter().map(|b| char::from(SCOPE_ALPHABET[usize::from(*b) % SCOPE_ALPHABET.len()])).collect();
        let arbitrary = String::from_utf8_lossy(raw).into_owned();
        for text in [mapped, arbitrary] {
            let parsed = ScopeSet::parse(&text);
            let separator = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
            let acceptable =
                text.len() <= ScopeSet::MAX_LEN && text.bytes().all(|b| separator(b) || valid_scope_byte(b));
            assert_eq!(parsed.is_ok(), acceptable, "{text:?}: {parsed:?}");
            if let Ok(set) = parsed {
                let printed = set.to_string();
                let again = ScopeSet::parse(&printed).expect("a printed scope set parses");
                assert_eq!(again, set, "{text:?} printed as {printed:?}");
                assert_eq!(again.to_string(), printed);
            }
        }
    });
}

/// Decoding never panics, whatever the type string, version and payload; a decoded event
/// stores and decodes again to itself.
#[test]
fn event_decoder_round_trip() {
    let samples = sample_events();
    check!().with_test_time(QUICK).with_type::<(u8, u32, Vec<Edit>, Vec<u8>)>().for_each(
        |(which, version, edits, raw)| {
            let sample = &samples[usize::from(*which) % samples.len()];
            let version = if version % 8 == 0 { *version } else { SCHEMA_VERSION };
            let mutated = mutate(sample.payload().as_bytes(), edits);
            let payloads = [String::from_utf8_lossy(&mutated), String::from_utf8_lossy(raw)];
            let type_names = [sample.event_type(), "TokenIssuedX", ""];
            for (payload, event_type) in payloads.iter().zip(type_names) {
                let Ok(event) = Event::decode(event_type, version, payload) else {
                    continue;
                };
                let again = Event::decode(event.event_type(), SCHEMA_VERSION, &event.payload());
                assert_eq!(again.ok().as_ref(), Some(&event), "{payload}");
            }
        },
    );
}

/// Reads a JSON Lines log file to the end, then verifies it: never a panic.
fn read_and_verify(path: &std::path::Path) {
    let source = Source::open(&Location::Log(path.to_path_buf())).expect("the file exists");
    let _ = source.walk(|event| {
        let _ = event.decode();
        Ok(ControlFlow::Continue(()))
    });
    let _ = verify(&source);
}

/// The JSON Lines reader of `ledger-replay` (an exported log) and `verify` on what it reads,
/// from raw bytes; the corpus holds real exports and broken ones.
#[test]
fn jsonl_log_reader() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("log.jsonl");
    check!().with_test_time(QUICK).for_each(|raw: &[u8]| {
        std::fs::write(&path, raw).expect("write the log");
        read_and_verify(&path);
    });
}

/// The same on logs built from fuzzed fields with a correct hash chain, so that the checks
/// past the chain (positions, versions, decoding, consistency) are reached.
#[test]
fn jsonl_log_of_chained_events() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("log.jsonl");
    let specs = produce::<Vec<LineSpec>>().with().len(1usize..8);
    check!().with_test_time(QUICK).with_generator(specs).for_each(|specs| {
        std::fs::write(&path, exported_log(specs)).expect("write the log");
        read_and_verify(&path);
    });
}
