//! Prometheus metrics (OpenMetrics text, prometheus-client). The hot path only touches atomics
//! and a short lock per request (a counter and a histogram of the matched route); what the log
//! already records (events by type, token outcomes, lockout evidence) is counted when Prometheus
//! scrapes, from the events appended since the last scrape, so it costs requests nothing and
//! can never disagree with the log. Labels hold only route templates, grant types, event types
//! and status codes: never a path, a client id, a user or a token.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::store::backend::ReadStore;
use crate::store::writer::WriterObserver;
use crate::store::StoreError;

/// The media type of the OpenMetrics text format that Prometheus negotiates.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    grant: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event_type: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs to ~3.3 s: introspection sits near the bottom, argon2id password checks near 100 ms.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Every metric of the service, registered once at start-up.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    outcomes: Family<OutcomeLabels, Counter>,
    events: Family<EventLabels, Counter>,
    batch_size: Histogram,
    commit_seconds: Histogram,
    queue_depth: Gauge,
    write_failures: Counter,
    active_tokens: Gauge,
    lockouts_active: Gauge,
    log_position: Gauge,
    /// The last log position counted into `events` and `outcomes`.
    cursor: Mutex<i64>,
    /// Whether the writer's last batch failed to commit (for `/health/ready`).
    last_batch_failed: AtomicI64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric; `log_head` is the log position at start-up (events before it
    /// are not counted: counters start at zero with the process, as Prometheus expects).
    pub fn new(log_head: i64) -> Self {
        let mut registry = Registry::with_prefix("ledger");
        let m = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            outcomes: Family::default(),
            events: Family::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            queue_depth: Gauge::default(),
            write_failures: Counter::default(),
            active_tokens: Gauge::default(),
            lockouts_active: Gauge::default(),
            log_position: Gauge::default(),
            cursor: Mutex::new(log_head),
            last_batch_failed: AtomicI64::new(0),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            m.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route template",
            m.latency.clone(),
        );
        r.register(
            "token_outcomes",
            "Token endpoint outcomes by grant: issued, returned, renewed, refreshed, replaced, revoked (from the log), refused (error answers)",
            m.outcomes.clone(),
        );
        r.register(
            "events_appended",
            "Events appended to the log since this server started (the CLI's included), by type",
            m.events.clone(),
        );
        r.register(
            "writer_batch_size",
            "Commands committed per writer transaction (group commit)",
            m.batch_size.clone(),
        );
        r.register(
            "writer_commit_seconds",
            "Time the writer took to run and commit one batch",
            m.commit_seconds.clone(),
        );
        r.register("writer_queue_depth", "Commands waiting for the writer", m.queue_depth.clone());
        r.register(
            "writer_failed_batches",
            "Batches the database refused to commit (disk full, read-only)",
            m.write_failures.clone(),
        );
        r.register("active_tokens", "Access tokens in the active-token view", m.active_tokens.clone());
        r.register(
            "lockouts_active",
            "Brute-force keys (client, user, address) locked right now",
            m.lockouts_active.clone(),
        );
        r.register("log_position", "The position of the last event counted", m.log_position.clone());
        m.log_position.set(log_head);
        Self { registry, ..m }
    }

    /// Counts an answered request under its route template (never the raw path).
    pub fn observe_request(&self, route: &str, method: &'static str, status: u16, elapsed: Duration) {
        let route = route.to_owned();
        self.latency.get_or_create(&RouteLabels { route: route.clone() }).observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
    }

    /// A token request answered with an error, by the grant it asked for.
    pub fn token_refused(&self, grant: &str) {
        let labels = OutcomeLabels { grant: grant_label(grant).to_owned(), outcome: "refused" };
        self.outcomes.get_or_create(&labels).inc();
    }

    /// Whether the writer's last batch failed to commit.
    pub fn last_batch_failed(&self) -> bool {
        self.last_batch_failed.load(Ordering::Relaxed) != 0
    }

    /// Counts the events appended since the last call, read through the storage seam in pages
    /// (every node counts the whole log, so any node's scrape shows the service's totals).
    /// At most `SCRAPE_EVENTS` per scrape: a scrape after a long pause catches up over several.
    pub fn count_new_events(&self, reads: &dyn ReadStore) -> Result<(), StoreError> {
        let mut cursor = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let mut counted = 0;
        while counted < SCRAPE_EVENTS {
            let page = reads.read_after(*cursor, SCRAPE_PAGE)?;
            let Some(last) = page.last().map(|e| e.position) else { break };
            counted += page.len();
            for event in &page {
                self.count_event(event);
            }
            *cursor = last;
        }
        self.log_position.set(*cursor);
        Ok(())
    }

    fn count_event(&self, event: &crate::store::records::StoredEvent) {
        let event_type = event.event_type.as_str();
        self.events.get_or_create(&EventLabels { event_type: event_type.to_owned() }).inc();
        let reason = if event_type == "TokenRevoked" {
            serde_json::from_str::<serde_json::Value>(&event.payload)
                .ok()
                .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
        } else {
            None
        };
        if let Some(outcome) = outcome_of(event_type, reason.as_deref()) {
            let grant = grant_label(event.meta.grant_type.as_deref().unwrap_or("none")).to_owned();
            self.outcomes.get_or_create(&OutcomeLabels { grant, outcome }).inc();
        }
    }

    /// Sets the gauges read at scrape time and renders everything.
    pub fn render(&self, active_tokens: usize, lockouts_active: usize) -> String {
        self.active_tokens.set(i64::try_from(active_tokens).unwrap_or(i64::MAX));
        self.lockouts_active.set(i64::try_from(lockouts_active).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Most events one scrape reads from the log, and how many per read.
const SCRAPE_EVENTS: usize = 200_000;
const SCRAPE_PAGE: usize = 5_000;

impl WriterObserver for Metrics {
    fn queued(&self) {
        self.queue_depth.inc();
    }

    fn dequeued(&self, count: usize) {
        self.queue_depth.dec_by(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn committed(&self, size: usize, took: Duration, ok: bool) {
        self.batch_size.observe(size as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        if !ok {
            self.write_failures.inc();
        }
        self.last_batch_failed.store(i64::from(!ok), Ordering::Relaxed);
    }
}

/// A known grant type, or `other`: a label value never comes from free text a client sent.
fn grant_label(grant: &str) -> &'static str {
    match grant {
        "password" => "password",
        "client_credentials" => "client_credentials",
        "refresh_token" => "refresh_token",
        "authorization_code" => "authorization_code",
        "none" => "none",
        _ => "other",
    }
}

/// What a token event means for the token endpoint's outcome counters.
fn outcome_of(event_type: &str, reason: Option<&str>) -> Option<&'static str> {
    Some(match (event_type, reason) {
        ("TokenIssued", _) => "issued",
        ("TokenReturned", _) => "returned",
        ("TokenRevoked", Some("renewal")) => "renewed",
        ("TokenRevoked", Some("refresh")) => "refreshed",
        ("TokenRevoked", Some("expiry_replacement")) => "replaced",
        ("TokenRevoked", _) => "revoked",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_never_carry_free_text() {
        assert_eq!(grant_label("password"), "password");
        assert_eq!(grant_label("secret-looking-value"), "other");
        let m = Metrics::new(0);
        m.token_refused("x\"} 1\nevil");
        m.observe_request("/oauth2/token", "POST", 400, Duration::from_millis(2));
        let text = m.render(3, 1);
        assert!(
            text.contains("ledger_token_outcomes_total{grant=\"other\",outcome=\"refused\"} 1"),
            "{text}"
        );
        assert!(!text.contains("evil"), "{text}");
        assert!(
            text.contains(
                "ledger_http_requests_total{route=\"/oauth2/token\",method=\"POST\",status=\"400\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("ledger_active_tokens 3"), "{text}");
    }

    #[test]
    fn token_events_map_to_outcomes() {
        assert_eq!(outcome_of("TokenIssued", None), Some("issued"));
        assert_eq!(outcome_of("TokenRevoked", Some("renewal")), Some("renewed"));
        assert_eq!(outcome_of("TokenRevoked", Some("revocation_request")), Some("revoked"));
        assert_eq!(outcome_of("ClientRegistered", None), None);
    }

    #[test]
    fn the_writer_hooks_move_the_queue_and_the_readiness_flag() {
        let m = Metrics::new(0);
        m.queued();
        m.queued();
        m.dequeued(2);
        m.committed(2, Duration::from_millis(1), false);
        assert!(m.last_batch_failed());
        m.committed(1, Duration::from_millis(1), true);
        assert!(!m.last_batch_failed());
        let text = m.render(0, 0);
        assert!(text.contains("ledger_writer_queue_depth 0"), "{text}");
        assert!(text.contains("ledger_writer_failed_batches_total 1"), "{text}");
    }
}
