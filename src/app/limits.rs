//! The limits every connection is served under, for HTTP/1.1 and HTTP/2 alike. curl and
//! browsers offer `h2` in the TLS handshake (ALPN) and the server accepts it, so HTTP/2 gets the
//! same protections as HTTP/1.1 plus the ones only a multiplexed protocol needs.

use std::time::Duration;

use hyper_util::rt::TokioTimer;

/// How long a client may take to send a request's headers (slow-header attacks); also how long
/// an idle kept-alive HTTP/1.1 connection stays open, and how long a new connection of either
/// version may take to deliver its first complete request (the HTTP/2 preface included).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams one HTTP/2 connection may have open at once (RFC 9113 section 5.1.2 advertises it in
/// SETTINGS): one client cannot make the server work on thousands of requests at a time.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Largest header list (RFC 9113 `SETTINGS_MAX_HEADER_LIST_SIZE`, decoded size) accepted in one
/// HTTP/2 request; also bounds CONTINUATION floods. OAuth requests need well under 1 KiB.
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// Most HTTP/1.1 header lines in one request.
pub const MAX_HEADERS: usize = 64;

/// The rapid-reset defence (CVE-2023-44487): streams the client opened and reset before the
/// server got to them. Past this many pending at once the connection is closed with GOAWAY
/// (ENHANCE_YOUR_CALM) instead of the server churning through streams that cost it work and
/// the client nothing.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// The same defence for streams the server itself had to reset because the client broke the
/// protocol on them (the "MadeYouReset" variant, CVE-2025-8671): past this many the connection
/// is closed.
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 64;

/// HTTP/2 PING interval and timeout: a connection whose peer stopped answering is closed.
pub const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Applies the limits of both protocols. The body timeout and the 64 KiB body limit are applied
/// where bodies are read (`http::form::read_body`), the same for both versions.
pub fn with_limits<A: axum_server::Address, Acc>(
    mut server: axum_server::Server<A, Acc>,
) -> axum_server::Server<A, Acc> {
    let builder = server.http_builder();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HEADER_READ_TIMEOUT);
    // hyper's header read timeout exists only for HTTP/1.1: for HTTP/2 (and for the protocol
    // detection before either) the first request must be complete within the same time.
    server.first_request_timeout(HEADER_READ_TIMEOUT)
}
