//! Shared pieces of the fuzz targets in `tests/parsers.rs`: encoders that print what the parsers
//! read (for round trips), valid sample payloads of every event type, byte-level mutations of
//! them (so that random inputs land near valid ones), and exported logs built from fuzzed
//! fields with a correct hash chain (so that the audit CLI's checks past the chain are reached).
#![forbid(unsafe_code)]

use std::collections::HashMap;

use ledger_replay::export::ExportedEvent;
use token_ledger::domain::events::{
    ClientDeleted, ClientRegistered, Event, RefreshPart, RefreshTokenReplayed, RevokeReason, TokenIssued,
    TokenReturned, TokenRevoked, UserAdded, UserPasswordChanged, SCHEMA_VERSION,
};
use token_ledger::domain::types::{ClientId, Digest, GrantType, ScopeSet, Subject, TokenKey, Username};
use token_ledger::store::log::{chain_hash, RequestMeta, StoredEvent, GENESIS};
use uuid::Uuid;

/// `application/x-www-form-urlencoded` with every byte but ASCII letters and digits escaped.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A form body of these pairs, in order.
pub fn form_body(pairs: &[(String, String)]) -> String {
    let encoded: Vec<String> =
        pairs.iter().map(|(n, v)| format!("{}={}", form_encode(n), form_encode(v))).collect();
    encoded.join("&")
}

/// One edit of a byte string: replace, insert or delete one byte at a position.
#[derive(Debug, Clone, Copy, bolero::generator::TypeGenerator)]
pub enum Edit {
    Replace(u16, u8),
    Insert(u16, u8),
    Delete(u16),
}

/// `template` with the edits applied in order; positions wrap around the current length.
pub fn mutate(template: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = template.to_vec();
    for edit in edits {
        let at = |pos: u16, len: usize| usize::from(pos) % len.max(1);
        match *edit {
            Edit::Replace(pos, byte) if !out.is_empty() => {
                let i = at(pos, out.len());
                out[i] = byte;
            }
            Edit::Insert(pos, byte) => {
                let i = at(pos, out.len() + 1);
                out.insert(i, byte);
            }
            Edit::Delete(pos) if !out.is_empty() => {
                let i = at(pos, out.len());
                out.remove(i);
            }
            _ => {}
        }
    }
    out
}

fn client() -> ClientId {
    ClientId::parse("5f0c0a7e").expect("a valid client id")
}

/// One valid event of every type, in an order that a real log could have.
pub fn sample_events() -> Vec<Event> {
    let digest = Digest::of(b"sample");
    let token_id = Uuid::from_u128(7);
    let issued = TokenIssued {
        token_id,
        family_id: token_id,
        client_id: client(),
        username: Some(Username::parse("Admin").expect("a valid username")),
        scopes: ScopeSet::parse("openid read").expect("valid scopes"),
        grant_type: GrantType::Password,
        access_digest: digest,
        issued_at: 1_700_000_000_000,
        expires_at: 1_700_003_600_000,
        sealed_access: Some("c2VhbGVk".into()),
        refresh: Some(RefreshPart {
            digest: Digest::of(b"refresh"),
            issued_at: 1_700_000_000_000,
            expires_at: 1_700_086_400_000,
            sealed: "c2VhbGVkLXJ0".into(),
        }),
    };
    vec![
        Event::ClientRegistered(ClientRegistered {
            client_id: client(),
            client_name: "demo-app".into(),
            secret_digest: digest,
            grant_types: GrantType::ALL.to_vec(),
            access_token_type: Some("jwt".into()),
            oauth: Default::default(),
        }),
        Event::UserAdded(UserAdded {
            username: "Admin".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        }),
        Event::UserPasswordChanged(UserPasswordChanged {
            username: "admin".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI".into(),
        }),
        Event::TokenIssued(issued),
        Event::TokenReturned(TokenReturned { token_id, expires_in: 3598 }),
        Event::RefreshTokenReplayed(RefreshTokenReplayed {
            family_id: token_id,
            refresh_digest: Digest::of(b"refresh"),
            within_grace_period: false,
        }),
        Event::TokenRevoked(TokenRevoked { token_id, reason: RevokeReason::RefreshTokenReuse }),
        Event::ClientDeleted(ClientDeleted { client_id: client() }),
    ]
}

/// How a fuzzed event's position (or stream version) follows the one before it.
#[derive(Debug, Clone, Copy, bolero::generator::TypeGenerator)]
pub enum Step {
    Next,
    Same,
    Back,
    Max,
    Min,
    Jump(i64),
}

impl Step {
    fn after(self, previous: Option<i64>) -> i64 {
        match (previous, self) {
            (_, Step::Max) => i64::MAX,
            (_, Step::Min) => i64::MIN,
            (_, Step::Jump(p)) => p,
            (None, _) => 1,
            (Some(p), Step::Next) => p.wrapping_add(1),
            (Some(p), Step::Same) => p,
            (Some(p), Step::Back) => p.wrapping_sub(1),
        }
    }
}

/// The stream an event belongs on, as the server writes it.
pub fn proper_stream(event: &Event) -> String {
    match event {
        Event::ClientRegistered(e) => format!("client-{}", e.client_id),
        Event::ClientDeleted(e) => format!("client-{}", e.client_id),
        Event::UserAdded(e) => format!("user-{}", e.username.to_lowercase()),
        Event::UserPasswordChanged(e) => format!("user-{}", e.username.to_lowercase()),
        _ => {
            let key = TokenKey {
                client: client(),
                subject: Subject::User(Username::parse("Admin").expect("a valid username")),
                scopes: ScopeSet::parse("openid read").expect("valid scopes"),
            };
            key.stream()
        }
    }
}

/// The fuzzed fields of one exported event; everything else is derived so that the hash chain
/// holds unless `break_chain` says otherwise.
#[derive(Debug, Clone, bolero::generator::TypeGenerator)]
pub struct LineSpec {
    pub position: Step,
    /// `None`: the stream the event belongs on; else one of a few others.
    pub stream: Option<u8>,
    pub version: Step,
    /// Which sample event, its payload mutated by `edits`.
    pub sample: u8,
    #[generator(bolero::generator::produce::<Vec<Edit>>().with().len(0usize..4))]
    pub edits: Vec<Edit>,
    pub schema_version: u32,
    pub recorded_at: Option<String>,
    pub peer: Option<String>,
    pub break_chain: bool,
}

/// A JSON Lines export of events built from `specs`, chained with the real `chain_hash`.
pub fn exported_log(specs: &[LineSpec]) -> String {
    let samples = sample_events();
    let mut previous: Option<(i64, Vec<u8>)> = None;
    let mut versions: HashMap<String, i64> = HashMap::new();
    let mut lines = Vec::with_capacity(specs.len());
    for spec in specs {
        let position = spec.position.after(previous.as_ref().map(|(p, _)| *p));
        let sample = &samples[usize::from(spec.sample) % samples.len()];
        let stream = match spec.stream {
            None => proper_stream(sample),
            Some(n) => format!("stream-{}", n % 4),
        };
        let version = spec.version.after(versions.get(&stream).copied());
        versions.insert(stream.clone(), version);
        let payload = mutate(sample.payload().as_bytes(), &spec.edits);
        let prev_hash = previous.as_ref().map_or(GENESIS.to_vec(), |(_, h)| h.clone());
        let mut event = StoredEvent {
            position,
            event_id: Uuid::from_u128(position as u128).to_string(),
            stream,
            version,
            event_type: sample.event_type().to_owned(),
            schema_version: if spec.schema_version % 4 == 0 { spec.schema_version } else { SCHEMA_VERSION },
            payload: String::from_utf8_lossy(&payload).into_owned(),
            recorded_at: spec.recorded_at.clone().unwrap_or_else(|| "2026-01-01T00:00:00.000Z".into()),
            meta: RequestMeta { peer: spec.peer.clone(), ..RequestMeta::default() },
            prev_hash,
            hash: Vec::new(),
        };
        event.hash = chain_hash(&event.prev_hash, &event).to_vec();
        if spec.break_chain {
            event.hash[0] ^= 1;
        }
        previous = Some((event.position, event.hash.clone()));
        let line = serde_json::to_string(&ExportedEvent::from(&event));
        lines.push(line.expect("an exported event always serialises"));
    }
    lines.join("\n")
}
