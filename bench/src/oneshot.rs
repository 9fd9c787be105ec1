//! One blocking HTTP/1.1 request on a fresh connection, for start-up timing (no runtime to
//! start, nothing between the clock and the socket).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::deployment::super_admin;
use crate::BenchError;

/// Introspects `token` as the super admin; `Ok(false)` while the server refuses or answers
/// anything but `active:true`.
pub fn introspect_active(addr: SocketAddr, token: &[u8]) -> Result<bool, BenchError> {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return Ok(false);
    };
    let io = |source| BenchError::io("start-up probe", source);
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(io)?;
    let auth = super_admin();
    let mut request = format!(
        "POST /oauth2/introspect HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\ntoken=",
        auth.to_str().unwrap_or_default(),
        token.len() + 6
    )
    .into_bytes();
    request.extend_from_slice(token);
    if stream.write_all(&request).is_err() {
        return Ok(false);
    }
    let mut answer = Vec::new();
    if stream.read_to_end(&mut answer).is_err() {
        return Ok(false);
    }
    let text = String::from_utf8_lossy(&answer);
    Ok(text.starts_with("HTTP/1.1 200") && text.contains("\"active\":true"))
}
