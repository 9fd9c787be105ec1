//! The figures of `ledger-bench nodes`: a line per measurement as it ends, then one Markdown
//! table with each workload × target cell's best round, its spread over the rounds, and its
//! ratio to the reference target measured in the same run.

use std::fmt::Write as _;

use crate::load::{Kind, Outcome};
use crate::lock_hold::Hold;
use crate::nodes::{Target, Workload};
use crate::report::Figures;

/// One measurement.
pub struct Sample {
    pub round: usize,
    pub workload: Workload,
    pub target: usize,
    pub figures: Figures,
    /// Cores PostgreSQL's processes kept busy (`None` on SQLite).
    pub database_cores: Option<f64>,
    pub generator_cores: Option<f64>,
    /// The `log_head` lock over the window, all nodes together (PostgreSQL only).
    pub hold: Option<Hold>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"))
}

fn hold_text(hold: Option<Hold>) -> String {
    match hold {
        Some(h) => format!(
            "{:.0} µs mean, p99 ≤ {} µs, {:.0} batches/s",
            h.mean_us(),
            h.quantile_at_most_us(0.99),
            h.batches_per_s
        ),
        None => "–".to_owned(),
    }
}

/// The line printed when a measurement ends.
pub fn print_sample(s: &Sample, target: &Target, outcome: &Outcome) {
    let f = &s.figures;
    let mut errors: Vec<String> =
        outcome.total().statuses.iter().map(|(st, n)| format!("HTTP {st} ×{n}")).collect();
    errors.extend(outcome.total().unexpected.iter().map(|(w, n)| format!("{w} ×{n}")));
    if outcome.transport_errors + outcome.timeouts > 0 {
        errors.push(format!("transport/timeouts ×{}", outcome.transport_errors + outcome.timeouts));
    }
    println!(
        "round {} · {:<10} · {:<28} {:>8.0} req/s · p50 {:.2} ms · p99 {:.2} ms · server {} cores · PG {} · generator {} · noise {} · lock {} · errors: {}",
        s.round,
        s.workload.name(),
        target.label,
        f.throughput,
        f.p50_ms,
        f.p99_ms,
        opt(f.server_cores, 2),
        opt(s.database_cores, 2),
        opt(s.generator_cores, 2),
        opt(f.others_cores, 2),
        hold_text(s.hold),
        if errors.is_empty() { "none".to_owned() } else { errors.join(", ") }
    );
    let kinds: Vec<String> = outcome
        .kinds
        .iter()
        .filter(|(k, _)| **k != Kind::Setup)
        .map(|(k, st)| {
            let per_s = st.answered() as f64 / outcome.window.as_secs_f64();
            let p99 = st.latency_us.value_at_quantile(0.99) as f64 / 1000.0;
            format!("{} {per_s:.0}/s p99 {p99:.1} ms", k.label())
        })
        .collect();
    if kinds.len() > 1 {
        println!("        by kind: {}", kinds.join(" · "));
    }
}

/// The best round of a cell (highest throughput) and the lowest and highest throughputs.
fn best(samples: &[Sample], w: Workload, t: usize) -> Option<(&Sample, f64, f64)> {
    let cell: Vec<&Sample> = samples.iter().filter(|s| s.workload == w && s.target == t).collect();
    let top = cell.iter().copied().max_by(|a, b| a.figures.throughput.total_cmp(&b.figures.throughput))?;
    let low = cell.iter().map(|s| s.figures.throughput).fold(f64::INFINITY, f64::min);
    Some((top, low, top.figures.throughput))
}

/// The median over a cell's rounds of the CPU per request: the servers' and PostgreSQL's
/// together, in µs (steadier under noise than throughput).
fn cpu_per_request(samples: &[Sample], w: Workload, t: usize) -> Option<f64> {
    let mut all: Vec<f64> = samples
        .iter()
        .filter(|s| s.workload == w && s.target == t)
        .filter_map(|s| {
            let db = s.database_cores.unwrap_or(0.0) / s.figures.throughput.max(1e-9) * 1e6;
            Some(s.figures.server_us? + db)
        })
        .collect();
    all.sort_by(f64::total_cmp);
    all.get(all.len() / 2).copied()
}

/// The table: best of the rounds per cell; `reference` is the target the ratios divide by.
pub fn summary(samples: &[Sample], targets: &[Target], reference: usize) -> String {
    let rounds = samples.iter().map(|s| s.round).max().unwrap_or(0);
    let mut s = format!(
        "Best of {rounds} interleaved rounds per cell (range over the rounds in brackets); ratio to `{}` of the same run.\n\n\
         | workload | target | req/s, best (range) | × {} | p50 ms | p99 ms | errors | CPU µs/req, median | servers' cores | PostgreSQL cores | generator cores | noise cores | `log_head` hold | lock busy |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n",
        targets[reference].label, targets[reference].label
    );
    for w in Workload::ALL {
        let reference_best = best(samples, w, reference).map(|b| b.2);
        for (t, target) in targets.iter().enumerate() {
            let Some((top, low, high)) = best(samples, w, t) else { continue };
            let f = &top.figures;
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} ({:.0}–{:.0}) | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
                w.name(),
                target.label,
                high,
                low,
                high,
                opt(reference_best.map(|r| high / r), 2),
                f.p50_ms,
                f.p99_ms,
                f.errors,
                opt(cpu_per_request(samples, w, t), 0),
                opt(f.server_cores, 2),
                opt(top.database_cores, 2),
                opt(top.generator_cores, 2),
                opt(f.others_cores, 2),
                hold_text(top.hold),
                top.hold.map_or_else(|| "–".to_owned(), |h| format!("{:.0} %", h.busy * 100.0)),
            );
        }
    }
    s
}
