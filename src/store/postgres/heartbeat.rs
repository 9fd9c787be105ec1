//! Which nodes are serving one PostgreSQL database: each serving node upserts a row of
//! `node_heartbeats` every [`BEAT`], judged by the database's clock, and deletes it on a clean
//! shutdown. `ledger-replay rebuild` reads the fresh rows to refuse a swap under live nodes.
//! A plain table rather than advisory locks, which CockroachDB lacks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::Client;

use super::PgOptions;
use crate::store::records::BResult;

/// How often a serving node beats.
pub const BEAT: Duration = Duration::from_secs(1);
/// A node whose last beat is older than this is taken for dead (five missed beats).
pub const STALE_SECS: f64 = 5.0;

/// A serving node as its heartbeat row shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNode {
    pub node_id: String,
    pub host: String,
    pub pid: i64,
}

/// The beating thread of this process; dropping it stops the beat and deletes the row.
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts beating for this process under a new node id. A beat that fails (the database
    /// is down) is retried on the next tick over a new connection: it never stops the node.
    pub fn start(options: PgOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let node_id = uuid::Uuid::new_v4().to_string();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-heartbeat".into())
            .spawn(move || beat_until_stopped(&options, &node_id, &flag))
            .ok();
        Self { stop, thread }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn beat_until_stopped(options: &PgOptions, node_id: &str, stop: &AtomicBool) {
    let host = hostname();
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::Relaxed) {
        if client.as_ref().is_none_or(Client::is_closed) {
            client = options.connect().ok();
        }
        if let Some(c) = client.as_mut() {
            if let Err(e) = beat(c, node_id, &host) {
                tracing::debug!(error = %e, "heartbeat failed; retrying on the next beat");
                client = None;
            }
        }
        // Sleep in short steps so that a shutdown is not held up by a whole beat.
        for _ in 0..10 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(BEAT / 10);
        }
    }
    if let Some(c) = client.as_mut() {
        let _ = c.execute("DELETE FROM node_heartbeats WHERE node_id = $1", &[&node_id]);
    }
}

fn beat(c: &mut Client, node_id: &str, host: &str) -> Result<(), postgres::Error> {
    c.execute(
        "INSERT INTO node_heartbeats (node_id, host, pid) VALUES ($1, $2, $3)
         ON CONFLICT (node_id) DO UPDATE SET beat_at = now()",
        &[&node_id, &host, &i64::from(std::process::id())],
    )?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The nodes whose last beat is fresh, by the database's clock.
pub fn live_nodes(c: &mut Client) -> BResult<Vec<LiveNode>> {
    let rows = c.query(
        "SELECT node_id, host, pid FROM node_heartbeats
         WHERE beat_at > now() - make_interval(secs => $1) ORDER BY started_at",
        &[&STALE_SECS],
    )?;
    Ok(rows.iter().map(|r| LiveNode { node_id: r.get(0), host: r.get(1), pid: r.get(2) }).collect())
}
