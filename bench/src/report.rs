//! The figures of a scenario, printed as a block per scenario and as one summary table, with
//! each figure checked against the target.

use std::fmt::Write as _;

use crate::load::{Kind, KindStats, Outcome};
use crate::probes::syncs_in;
use crate::procfs::Memory;

/// One scenario's headline figures.
#[derive(Debug, Clone)]
pub struct Figures {
    pub name: &'static str,
    pub throughput: f64,
    /// Throughput over the bare axum baseline's, measured in the same run.
    pub ratio: Option<f64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub server_us: Option<f64>,
    pub server_cores: Option<f64>,
    pub own_us: Option<f64>,
    pub events_per_request: Option<f64>,
    pub events_per_commit: Option<f64>,
    /// The writer's mean batch size in the window (commands per commit).
    pub batch_mean: Option<f64>,
    pub memory: Option<Memory>,
    /// Cores that other processes kept busy during the window (noise).
    pub others_cores: Option<f64>,
}

fn ms(h: &KindStats, q: f64) -> f64 {
    h.latency_us.value_at_quantile(q) as f64 / 1000.0
}

impl Figures {
    pub fn new(name: &'static str, o: &Outcome, baseline: Option<f64>, memory: Option<Memory>) -> Self {
        let total = o.total();
        let secs = o.window.as_secs_f64();
        let answered = total.answered().max(1) as f64;
        let throughput = total.answered() as f64 / secs;
        let errors = total.statuses.values().sum::<u64>()
            + total.unexpected.values().sum::<u64>()
            + o.transport_errors
            + o.timeouts;
        let events = o.events();
        let syncs = o.probes.iter().find_map(|p| syncs_in(p));
        Self {
            name,
            throughput,
            ratio: baseline.map(|b| throughput / b),
            p50_ms: ms(&total, 0.5),
            p90_ms: ms(&total, 0.9),
            p99_ms: ms(&total, 0.99),
            max_ms: total.latency_us.max() as f64 / 1000.0,
            errors,
            server_us: o.server_cpu().map(|c| c * 1e6 / answered),
            server_cores: o.server_cpu().map(|c| c / secs),
            own_us: o.own_cpu().map(|c| c * 1e6 / answered),
            events_per_request: events.map(|e| e / answered),
            events_per_commit: events.zip(syncs.filter(|s| *s > 0)).map(|(e, s)| e / s as f64),
            batch_mean: o.batches().and_then(|b| b.1),
            memory,
            others_cores: o.others_cpu().map(|c| c / secs),
        }
    }
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The block printed after each scenario.
pub fn print(f: &Figures, o: &Outcome, baseline: Option<f64>) {
    let mut s = String::new();
    let ratio = match (f.ratio, baseline) {
        (Some(r), Some(b)) => format!(" = {r:.3} × bare axum ({} req/s)", thousands(b)),
        _ => String::new(),
    };
    let _ = writeln!(s, "  throughput     {} req/s{ratio}", thousands(f.throughput));
    let _ = writeln!(
        s,
        "  latency        p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · max {:.2} ms",
        f.p50_ms, f.p90_ms, f.p99_ms, f.max_ms
    );
    let total = o.total();
    let mut errors: Vec<String> = total.statuses.iter().map(|(s, n)| format!("HTTP {s} ×{n}")).collect();
    errors.extend(total.unexpected.iter().map(|(w, n)| format!("{w} ×{n}")));
    if o.transport_errors > 0 {
        errors.push(format!("transport ×{}", o.transport_errors));
    }
    if o.timeouts > 0 {
        errors.push(format!("timeouts ×{}", o.timeouts));
    }
    let errors = if errors.is_empty() { "none".to_owned() } else { errors.join(", ") };
    let _ = writeln!(s, "  answers        {} ok · errors: {errors}", thousands(total.ok as f64));
    if o.exhausted > 0 {
        let _ = writeln!(s, "  note           {} connections ran out of work", o.exhausted);
    }
    if o.kinds.keys().filter(|k| **k != Kind::Setup).count() > 1 {
        for (kind, k) in o.kinds.iter().filter(|(k, _)| **k != Kind::Setup) {
            let _ = writeln!(
                s,
                "  {:<14} {:.1}% · {} req/s · p50 {:.2} ms · p99 {:.2} ms",
                kind.label(),
                100.0 * k.answered() as f64 / total.answered().max(1) as f64,
                thousands(k.answered() as f64 / o.window.as_secs_f64()),
                ms(k, 0.5),
                ms(k, 0.99)
            );
        }
    }
    if let (Some(us), Some(cores)) = (f.server_us, f.server_cores) {
        let _ = writeln!(s, "  server CPU     {us:.1} µs/request · {cores:.2} cores busy");
    }
    if let (Some(us), Some(cpu)) = (f.own_us, o.own_cpu()) {
        let cores = cpu / o.window.as_secs_f64();
        let _ = writeln!(s, "  generator CPU  {us:.1} µs/request · {cores:.2} cores busy");
    }
    let threads = o.threads_cpu();
    if !threads.is_empty() {
        let secs = o.window.as_secs_f64();
        let shown: Vec<String> = threads
            .iter()
            .filter(|(_, (_, cpu))| *cpu > 0.0)
            .map(|(name, (n, cpu))| format!("{name} ×{n} {:.2} cores", cpu / secs))
            .collect();
        let _ = writeln!(s, "  server threads {}", shown.join(" · "));
    }
    if let Some(others) = f.others_cores {
        let _ = writeln!(s, "  other processes {others:.2} cores busy (noise)");
    }
    if let (Some(per), Some(total)) = (f.events_per_request, o.events()) {
        let per_commit =
            f.events_per_commit.map(|e| format!(" · {e:.1} events per sync")).unwrap_or_default();
        let _ = writeln!(
            s,
            "  log            {per:.2} events/request (+{} events){per_commit}",
            thousands(total)
        );
    }
    if let Some((buckets, Some(mean))) = o.batches() {
        let total = buckets.iter().map(|b| b.1).sum::<u64>().max(1) as f64;
        let shown: Vec<String> = buckets
            .iter()
            .filter(|b| b.1 > 0)
            .map(|(le, n)| format!("≤{} {:.0}%", le.trim_end_matches(".0"), *n as f64 * 100.0 / total))
            .collect();
        let _ = writeln!(
            s,
            "  writer batches {} commits, mean {mean:.1} commands · {}",
            thousands(total),
            shown.join(" · ")
        );
    }
    if let Some((syscalls, storage)) = o.written() {
        let n = total.answered().max(1) as f64;
        let _ = writeln!(
            s,
            "  server writes  {:.1} KB/request through write syscalls (WAL and log) · {:.1} KB/request to storage",
            syscalls / n / 1e3,
            storage / n / 1e3
        );
    }
    for p in &o.probes {
        let _ = writeln!(s, "  probe          {p}");
    }
    if let Some(m) = f.memory {
        let _ = writeln!(s, "  server memory  RSS {} (peak {})", mb(m.rss), mb(m.peak));
    }
    print!("{s}");
}

/// The target for a scenario, and whether `f` meets it.
pub fn verdict(f: &Figures) -> Option<String> {
    let (met, target) = match f.name {
        "cc-new" => (f.throughput >= 15_000.0 && f.p99_ms <= 10.0, "≥ 15,000/s, p99 ≤ 10 ms"),
        "cc-renew" => (f.throughput >= 10_000.0 && f.p99_ms <= 10.0, "≥ 10,000/s, p99 ≤ 10 ms"),
        "cc-same" => (f.throughput >= 20_000.0, "≥ 20,000/s"),
        "introspect" => (
            f.throughput >= 80_000.0 && f.ratio.is_some_and(|r| r >= 0.65) && f.p50_ms < 1.0,
            "≥ 80,000/s, ≥ 0.65 × bare, p50 < 1 ms",
        ),
        "mixed" => (f.throughput >= 40_000.0, "≥ 40,000/s"),
        _ => return None,
    };
    Some(format!("{} ({target})", if met { "met" } else { "NOT met" }))
}

/// The summary table (Markdown), one row per scenario.
pub fn summary(all: &[Figures]) -> String {
    let mut s = String::from(
        "| scenario | req/s | × bare | p50 ms | p90 ms | p99 ms | max ms | errors | server µs/req | server cores | generator µs/req | events/req | events/sync | noise cores | target |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let opt = |v: Option<f64>, digits: usize| v.map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"));
    for f in all {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.name,
            thousands(f.throughput),
            opt(f.ratio, 3),
            f.p50_ms,
            f.p90_ms,
            f.p99_ms,
            f.max_ms,
            f.errors,
            opt(f.server_us, 1),
            opt(f.server_cores, 2),
            opt(f.own_us, 1),
            opt(f.events_per_request, 2),
            opt(f.events_per_commit, 1),
            opt(f.others_cores, 2),
            verdict(f).unwrap_or_else(|| "–".into()),
        );
    }
    s
}
