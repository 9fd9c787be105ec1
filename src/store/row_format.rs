//! Row format 2 of the event log (issue 11): the same field values as format 1, held in fewer
//! bytes. `chain_hash` hashes the field *values* (strings), so storage may hold them in any form
//! that reads back as exactly the same strings; every compact form here is checked at write
//! time by decoding it and comparing with the original, and the original text is stored when
//! they differ, so exactness never depends on an encoder staying canonical.
//!
//! The text codec turns a string into bytes where runs that the ledger writes in a wasteful
//! alphabet become raw bytes: canonical lowercase UUIDs (36 characters -> 17 bytes), lowercase
//! hex runs (digests and client ids: 2 characters -> 1 byte), standard padded base64 (sealed
//! token values: 4 characters -> 3 bytes), decimal integers (milliseconds: 13 digits -> 7
//! bytes) and the JSON keys of the event payloads (a built-in dictionary, one byte pair each).
//! Everything else is copied; the bytes 0x00-0x07 that the codec uses as tags are escaped.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use uuid::Uuid;

/// The row format of rows written before issue 11: every field as text, `prev_hash` stored.
pub const FORMAT_TEXT: i64 = 1;
/// The compact row format this build writes.
pub const FORMAT_COMPACT: i64 = 2;

const TAG_UUID: u8 = 1;
const TAG_HEX: u8 = 2;
const TAG_BASE64: u8 = 3;
const TAG_WORD: u8 = 4;
const TAG_INT: u8 = 5;
const TAG_ESCAPE: u8 = 6;
/// The text's previous UUID again (a first issue's `family_id` is its `token_id`).
const TAG_SAME_UUID: u8 = 7;
/// The bytes below this are tags; a literal one is escaped.
const FIRST_LITERAL: u8 = 8;

/// Fragments of the payloads' JSON, replaced by `TAG_WORD` and their index. The index is the
/// stored form: entries are only ever appended, never reordered or changed.
const WORDS: [&str; 36] = [
    "{\"token_id\":\"",
    "\",\"family_id\":\"",
    "\",\"client_id\":\"",
    "\",\"username\":\"",
    "\",\"scopes\":\"",
    "\",\"grant_type\":\"",
    "\",\"access_digest\":\"",
    "\",\"issued_at\":",
    ",\"expires_at\":",
    ",\"sealed_access\":\"",
    ",\"refresh\":{\"digest\":\"",
    ",\"sealed\":\"",
    "\"}}",
    "\",\"reason\":\"",
    "revocation_request",
    "renewal",
    "refresh_token",
    "client_credentials",
    "password",
    "authorization_code",
    "{\"family_id\":\"",
    "\",\"refresh_digest\":\"",
    "\",\"within_grace_period\":",
    "{\"client_id\":\"",
    "\",\"client_name\":\"",
    "\",\"secret_digest\":\"",
    "\",\"grant_types\":[",
    "{\"username\":\"",
    "\",\"password_hash\":\"$argon2id$v=19$m=19456,t=2,p=1$",
    "\",\"expires_in\":",
    "expiry_replacement",
    "openid",
    "\"issued_at\":",
    "\"expires_at\":",
    "refresh_token_reuse",
    "client_deleted",
];

/// The bytes a word of `WORDS` starts with: only there is the dictionary searched.
const WORD_STARTS: [bool; 256] = {
    let mut starts = [false; 256];
    let mut i = 0;
    while i < WORDS.len() {
        starts[WORDS[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    starts
};

/// Event type names stored as their index in format-2 rows (append-only, like `WORDS`).
const EVENT_TYPES: [&str; 20] = [
    "ClientRegistered",
    "ClientDeleted",
    "UserAdded",
    "UserPasswordChanged",
    "TokenIssued",
    "TokenReturned",
    "TokenRevoked",
    "RefreshTokenReplayed",
    "AuthenticationFailed",
    "CodeIssued",
    "CodeRedeemed",
    "CodeRejected",
    "CodeReplayed",
    "LoginSucceeded",
    "LoginFailed",
    "SessionStarted",
    "SessionEnded",
    "ConsentGiven",
    "ConsentWithdrawn",
    "ExpiredPruned",
];

/// The stored number of an event type, when it has one.
pub fn event_type_code(name: &str) -> Option<i64> {
    EVENT_TYPES.iter().position(|t| *t == name).map(|i| i as i64)
}

/// The event type a stored number stands for.
pub fn event_type_name(code: i64) -> Option<&'static str> {
    usize::try_from(code).ok().and_then(|i| EVENT_TYPES.get(i)).copied()
}

/// The compact form of `text`, when it is shorter and decodes back to exactly `text`.
pub fn encode_text(text: &str) -> Option<Vec<u8>> {
    let encoded = encode(text.as_bytes());
    let mut back = String::new();
    (encoded.len() < text.len() && decode_into(&encoded, &mut back).is_ok() && back == text)
        .then_some(encoded)
}

/// A stored compact form that is not one the codec wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a compact field does not decode: {0}")]
pub struct BadEncoding(&'static str);

/// Decodes a compact form into `into` (cleared first; its capacity is kept).
pub fn decode_into(bytes: &[u8], into: &mut String) -> Result<(), BadEncoding> {
    let mut out = std::mem::take(into).into_bytes();
    out.clear();
    let mut last_uuid: Option<[u8; 16]> = None;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b >= FIRST_LITERAL {
            out.push(b);
            continue;
        }
        let rest = &bytes[i..];
        i += match b {
            TAG_UUID => {
                let raw: [u8; 16] =
                    rest.get(..16).and_then(|r| r.try_into().ok()).ok_or(BadEncoding("uuid"))?;
                push_uuid(&mut out, raw);
                last_uuid = Some(raw);
                16
            }
            TAG_SAME_UUID => {
                push_uuid(&mut out, last_uuid.ok_or(BadEncoding("no earlier uuid"))?);
                0
            }
            TAG_HEX | TAG_BASE64 => {
                let n = *rest.first().ok_or(BadEncoding("length"))? as usize;
                let raw = rest.get(1..1 + n).ok_or(BadEncoding("raw bytes"))?;
                if b == TAG_HEX {
                    let start = out.len();
                    out.resize(start + 2 * n, 0);
                    hex::encode_to_slice(raw, &mut out[start..]).map_err(|_| BadEncoding("hex"))?;
                } else {
                    let start = out.len();
                    out.resize(start + base64::encoded_len(n, true).ok_or(BadEncoding("base64"))?, 0);
                    BASE64.encode_slice(raw, &mut out[start..]).map_err(|_| BadEncoding("base64"))?;
                }
                1 + n
            }
            TAG_WORD => {
                let index = *rest.first().ok_or(BadEncoding("word"))? as usize;
                out.extend_from_slice(WORDS.get(index).ok_or(BadEncoding("word index"))?.as_bytes());
                1
            }
            TAG_INT => {
                let (value, used) = read_varint(rest).ok_or(BadEncoding("integer"))?;
                out.extend_from_slice(value.to_string().as_bytes());
                used
            }
            TAG_ESCAPE => {
                out.push(*rest.first().ok_or(BadEncoding("escape"))?);
                1
            }
            _ => return Err(BadEncoding("unknown tag")),
        };
    }
    *into = String::from_utf8(out).map_err(|_| BadEncoding("not UTF-8"))?;
    Ok(())
}

fn push_uuid(out: &mut Vec<u8>, raw: [u8; 16]) {
    let mut buf = Uuid::encode_buffer();
    out.extend_from_slice(Uuid::from_bytes(raw).hyphenated().encode_lower(&mut buf).as_bytes());
}

fn encode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut last_uuid = None;
    let mut i = 0;
    while i < text.len() {
        i += encode_one(text, i, &mut out, &mut last_uuid);
    }
    out
}

/// Encodes the token at `i`; how many input bytes it took.
fn encode_one(text: &[u8], i: usize, out: &mut Vec<u8>, last_uuid: &mut Option<[u8; 16]>) -> usize {
    let rest = &text[i..];
    if let Some(raw) = uuid_at(rest) {
        if *last_uuid == Some(raw) {
            out.push(TAG_SAME_UUID);
        } else {
            out.push(TAG_UUID);
            out.extend_from_slice(&raw);
            *last_uuid = Some(raw);
        }
        return 36;
    }
    if i == 0 || !is_base64(text[i - 1]) {
        if let Some(used) = base64_at(rest, out) {
            return used;
        }
    }
    let hex_run = rest.iter().take(510).take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')).count() & !1;
    if hex_run >= 16 {
        out.push(TAG_HEX);
        out.push((hex_run / 2) as u8);
        let start = out.len();
        out.resize(start + hex_run / 2, 0);
        // The run is lowercase hex by construction.
        let _ = hex::decode_to_slice(&rest[..hex_run], &mut out[start..]);
        return hex_run;
    }
    if let Some(used) = integer_at(text, i, out) {
        return used;
    }
    if WORD_STARTS[usize::from(rest[0])] {
        let longest = WORDS
            .iter()
            .enumerate()
            .filter(|(_, w)| rest.starts_with(w.as_bytes()))
            .max_by_key(|(_, w)| w.len());
        if let Some((index, word)) = longest {
            out.push(TAG_WORD);
            out.push(index as u8);
            return word.len();
        }
    }
    if rest[0] < FIRST_LITERAL {
        out.push(TAG_ESCAPE);
    }
    out.push(rest[0]);
    1
}

fn uuid_at(rest: &[u8]) -> Option<[u8; 16]> {
    let candidate = rest.get(..36)?;
    let lower = candidate.iter().enumerate().all(|(k, b)| match k {
        8 | 13 | 18 | 23 => *b == b'-',
        _ => matches!(b, b'0'..=b'9' | b'a'..=b'f'),
    });
    lower.then(|| Uuid::try_parse_ascii(candidate).ok()).flatten().map(|u| *u.as_bytes())
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// A padded standard base64 run of at least 24 characters that is not plain lowercase hex and
/// re-encodes to itself.
fn base64_at(rest: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let body = rest.iter().take_while(|b| is_base64(**b)).count();
    let pad = rest[body..].iter().take(2).take_while(|b| **b == b'=').count();
    let run = &rest[..body + pad];
    if run.len() < 24 || !run.len().is_multiple_of(4) || run.len() > 340 {
        return None;
    }
    if run.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let raw = BASE64.decode(run).ok()?;
    if raw.len() > 255 || BASE64.encode(&raw).as_bytes() != run {
        return None;
    }
    out.push(TAG_BASE64);
    out.push(raw.len() as u8);
    out.extend_from_slice(&raw);
    Some(run.len())
}

/// A decimal integer of 4 to 19 digits without a leading zero, starting a digit run.
fn integer_at(text: &[u8], i: usize, out: &mut Vec<u8>) -> Option<usize> {
    if !matches!(text[i], b'1'..=b'9') || (i > 0 && text[i - 1].is_ascii_digit()) {
        return None;
    }
    let digits = text[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if !(4..=19).contains(&digits) {
        return None;
    }
    let value: u64 = std::str::from_utf8(&text[i..i + digits]).ok()?.parse().ok()?;
    out.push(TAG_INT);
    let mut v = value;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    Some(digits)
}

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (k, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f).checked_shl(7 * k as u32)?;
        if b & 0x80 == 0 {
            return Some((value, k + 1));
        }
    }
    None
}

#[cfg(test)]
#[path = "row_format_tests.rs"]
mod tests;
