//! HTTP/1.1 on the wire, by hand: a request written into one buffer and an answer framed by its
//! `Content-Length`. This is all the load generator needs from a client (the server always
//! answers with a length, never chunked), and it costs a fraction of a general client's CPU,
//! which matters on a machine where the generator and the server share two cores.

use axum::http::StatusCode;

use crate::load::Planned;

/// The request bytes of a planned form POST.
pub fn request(host: &str, planned: &Planned) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + planned.body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(planned.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nAuthorization: ");
    out.extend_from_slice(planned.auth.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ");
    out.extend_from_slice(planned.body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&planned.body);
    out
}

/// An answer's framing, once its head is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: StatusCode,
    /// Bytes of the status line and headers, the blank line included.
    pub head_len: usize,
    pub body_len: usize,
}

/// Why an answer cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unframed {
    /// The head is not complete yet: read more.
    Incomplete,
    /// Not an HTTP/1.1 answer with a status and a `Content-Length`.
    Malformed,
}

/// Frames the answer at the start of `buf`.
pub fn head(buf: &[u8]) -> Result<Head, Unframed> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(Unframed::Incomplete);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| Unframed::Malformed)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(Unframed::Malformed)?;
    let code = status_line.strip_prefix("HTTP/1.1 ").and_then(|s| s.get(..3)).ok_or(Unframed::Malformed)?;
    let status =
        code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()).ok_or(Unframed::Malformed)?;
    let body_len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or(Unframed::Malformed)?;
    Ok(Head { status, head_len: end + 4, body_len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use bytes::Bytes;

    use crate::load::Kind;

    #[test]
    fn a_request_carries_its_length_and_body() {
        let planned = Planned {
            kind: Kind::Token,
            path: "/oauth2/token",
            auth: HeaderValue::from_static("Basic YTpi"),
            body: Bytes::from_static(b"grant_type=client_credentials"),
        };
        let text = String::from_utf8(request("127.0.0.1:9", &planned)).unwrap();
        assert!(text.starts_with("POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        assert!(text.contains("\r\nAuthorization: Basic YTpi\r\n"));
        assert!(text.ends_with("Content-Length: 29\r\n\r\ngrant_type=client_credentials"));
    }

    #[test]
    fn an_answer_is_framed_by_its_content_length() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"active\":false}";
        let h = head(answer).unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(&answer[h.head_len..h.head_len + h.body_len], b"{\"active\":false}");
    }

    #[test]
    fn a_partial_head_asks_for_more_and_a_lengthless_one_is_refused() {
        assert_eq!(head(b"HTTP/1.1 200 OK\r\ncontent-le"), Err(Unframed::Incomplete));
        assert_eq!(head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"), Err(Unframed::Malformed));
        assert_eq!(head(b"SSH-2.0\r\n\r\n"), Err(Unframed::Malformed));
    }
}
