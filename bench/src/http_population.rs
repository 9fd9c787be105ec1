//! A population made through the server's own HTTP API: `client_credentials` requests for keys
//! `p0`, `p1`, … spread over the nodes, each answer's access token kept in order. Slower than
//! the in-process population (`populate.rs`), but it needs nothing from the library, so it works
//! the same for any server binary (an older one whose schema the library would not write) and
//! any backend (SQLite or PostgreSQL).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::{HeaderValue, Request};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

use crate::deployment::Credentials;
use crate::populate::TokenList;
use crate::workloads::json_field;
use crate::BenchError;

/// Connections the population is made over.
const CONNECTIONS: usize = 64;
/// A population request that takes longer than this fails the run.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Issues `count` tokens (scope `p<i>` for token `i`) through the servers at `addrs`.
pub fn populate(addrs: &[SocketAddr], client: &Credentials, count: usize) -> Result<TokenList, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchError::io("cannot start the population's runtime", source))?;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let auth = client.basic();
    let found: Vec<(usize, Vec<u8>)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|c| tokio::spawn(issue_some(addrs[c % addrs.len()], auth.clone(), next.clone(), count)))
            .collect();
        let mut all = Vec::with_capacity(count);
        for task in tasks {
            all.extend(task.await.map_err(|_| BenchError::Unexpected("a population task panicked"))??);
        }
        Ok::<_, BenchError>(all)
    })?;
    let mut ordered: Vec<Option<Vec<u8>>> = vec![None; count];
    for (i, token) in found {
        ordered[i] = Some(token);
    }
    let mut tokens = TokenList::default();
    for token in ordered {
        tokens.push(&token.ok_or(BenchError::Unexpected("a population token is missing"))?)?;
    }
    let took = started.elapsed().as_secs_f64();
    eprintln!("  populated {count} tokens over HTTP in {took:.1} s ({:.0} tokens/s)", count as f64 / took);
    Ok(tokens)
}

/// One connection's share: takes the next index until all are taken.
async fn issue_some(
    addr: SocketAddr,
    auth: HeaderValue,
    next: Arc<AtomicUsize>,
    count: usize,
) -> Result<Vec<(usize, Vec<u8>)>, BenchError> {
    let mut sender = crate::load::connect::<Full<Bytes>>(addr).await?;
    let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a header");
    let mut mine = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            return Ok(mine);
        }
        let request = Request::post("/oauth2/token")
            .header(HOST, host.clone())
            .header(AUTHORIZATION, auth.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(format!("grant_type=client_credentials&scope=p{i}"))))
            .expect("a valid request");
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            Ok::<_, hyper::Error>((status, response.into_body().collect().await?.to_bytes()))
        };
        let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| BenchError::Unexpected("a population request timed out"))?
            .map_err(BenchError::Http)?;
        match json_field(&body, "access_token") {
            Some(token) if status.is_success() => mine.push((i, token.to_vec())),
            _ => {
                return Err(BenchError::Refused(format!(
                    "population request {i}: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                )))
            }
        }
    }
}
