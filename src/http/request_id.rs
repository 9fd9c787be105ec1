//! The request id: the caller's `X-Request-ID` when it is sane, a new UUID otherwise. It is
//! answered in the response header, logged, and stored in the event log's request metadata,
//! so one id follows a request from a proxy's log to the ledger's events.

/// The longest caller-supplied id kept (a UUID is 36; W3C trace ids are 32 hex digits).
pub const MAX_LEN: usize = 64;

/// The caller's id when it is 1 to [`MAX_LEN`] characters of `A-Z a-z 0-9 - _ . : /` (no
/// spaces, quotes or control characters: it lands in logs and in the log's request metadata);
/// `None` otherwise.
pub fn accept(header: Option<&[u8]>) -> Option<String> {
    let value = header?;
    let sane = (1..=MAX_LEN).contains(&value.len())
        && value.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(b));
    // Only ASCII bytes passed the check, so the conversion cannot fail.
    sane.then(|| String::from_utf8_lossy(value).into_owned())
}

/// The caller's sane id, or a new random one (a version 4 UUID from the thread's generator:
/// no system call per request, unlike `Uuid::new_v4`).
pub fn of(header: Option<&[u8]>) -> String {
    accept(header).unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_caller_id_is_kept() {
        assert_eq!(accept(Some(b"req-42_a.b:c/d")), Some("req-42_a.b:c/d".to_owned()));
        assert_eq!(accept(Some(&[b'a'; MAX_LEN])).map(|s| s.len()), Some(MAX_LEN));
    }

    #[test]
    fn an_insane_caller_id_is_replaced_by_a_new_one() {
        for bad in [&b""[..], b"has space", b"quote\"", b"new\nline", b"\xff\xfe", &[b'a'; MAX_LEN + 1]] {
            assert_eq!(accept(Some(bad)), None, "{bad:?}");
            assert_ne!(of(Some(bad)).as_bytes(), bad);
        }
        assert_eq!(of(None).len(), 36, "a UUID");
    }
}
