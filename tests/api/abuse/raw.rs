//! HTTP/1.1 by hand over a `TcpStream`, for requests no well-behaved client would send: broken
//! bytes, lying lengths, and senders too slow for any timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// How long a well-formed refusal may take to arrive.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// How an exchange ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server answered with this status.
    Status(u16),
    /// The server closed (or reset) the connection without an answer.
    Closed,
    /// Nothing happened before the deadline: the connection is still held open.
    StillOpen,
}

impl Ending {
    /// A clean refusal: a 4xx, or the connection closed.
    pub fn is_clean_refusal(self) -> bool {
        match self {
            Ending::Status(code) => (400..500).contains(&code),
            Ending::Closed => true,
            Ending::StillOpen => false,
        }
    }
}

/// `host:port` of a base URL such as `http://127.0.0.1:PORT`.
pub fn authority(base_url: &str) -> String {
    base_url.split("://").nth(1).unwrap_or(base_url).trim_end_matches('/').to_string()
}

pub async fn connect(authority: &str) -> TcpStream {
    TcpStream::connect(authority).await.expect("connect to the server")
}

/// A POST to `path` with these extra header lines and this body, with a correct length.
pub fn post(path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for line in headers {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends `request` whole (a write the server cut short is fine) and reads the answer.
pub async fn exchange(authority: &str, request: &[u8]) -> Ending {
    let mut stream = connect(authority).await;
    let _ = stream.write_all(request).await;
    read_ending(&mut stream, Instant::now() + ANSWER_WITHIN).await
}

/// Reads until a status line, the end of the connection, or the deadline.
pub async fn read_ending(stream: &mut TcpStream, deadline: Instant) -> Ending {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(code) = status_of(&received) {
            return Ending::Status(code);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return Ending::StillOpen,
            Ok(Ok(0)) | Ok(Err(_)) => return status_of(&received).map_or(Ending::Closed, Ending::Status),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// The status code of `HTTP/1.1 NNN ...` once the whole status line has arrived.
fn status_of(received: &[u8]) -> Option<u16> {
    let line_end = received.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&received[..line_end]).ok()?;
    line.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|c| c.parse().ok())
}

/// Sends `bytes` one at a time, `every` apart, until they run out, the server ends the
/// exchange, or `limit` passes. Returns how it ended and when.
pub async fn trickle(
    stream: &mut TcpStream,
    bytes: &[u8],
    every: Duration,
    limit: Duration,
) -> (Ending, Duration) {
    let started = Instant::now();
    let deadline = started + limit;
    for byte in bytes.iter().cycle() {
        if stream.write_all(&[*byte]).await.is_err() {
            return (Ending::Closed, started.elapsed());
        }
        let pause = (Instant::now() + every).min(deadline);
        let ending = read_ending(stream, pause).await;
        if ending != Ending::StillOpen || Instant::now() >= deadline {
            return (ending, started.elapsed());
        }
    }
    unreachable!("a cycled iterator never runs out")
}

/// Opens `count` connections that send nothing, or only the start of a request line.
pub async fn idle_connections(authority: &str, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = timeout(ANSWER_WITHIN, connect(authority)).await.expect("connect in time");
        if i % 2 == 1 {
            stream.write_all(b"POST /oauth2/token HTTP/1.1\r\n").await.expect("write a request line");
        }
        streams.push(stream);
    }
    streams
}
