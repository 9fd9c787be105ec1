//! `ledger-bench compare --before-bin OLD`: two server binaries on the same scenarios in ONE
//! run, interleaved: each round measures bare axum first, then every scenario on both binaries
//! (which binary goes first alternates by round), so the machine's noise falls on both alike.
//! The table keeps each cell's best round, with that round's ratio to bare axum.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::report::Figures;
use crate::scenarios::{Bench, Populations, Scenario};
use crate::BenchError;

/// The scenarios compared by default: every server row of issue 11's targets.
pub const DEFAULT: [Scenario; 6] = [
    Scenario::CcNew,
    Scenario::CcRenew,
    Scenario::CcSame,
    Scenario::Introspect,
    Scenario::IntrospectJwt,
    Scenario::Mixed,
];

/// One measurement of the comparison.
struct Cell {
    round: usize,
    binary: usize,
    figures: Figures,
}

/// Runs `rounds` interleaved rounds; `binaries` are (label, path), the first the "before".
pub fn run(
    bench: &mut Bench,
    binaries: &[(String, PathBuf)],
    scenarios: &[Scenario],
    rounds: usize,
) -> Result<(), BenchError> {
    bench.skip_h2 = true;
    // Each binary is measured on populations made through its own HTTP API: an older binary
    // refuses a database of a newer schema, and each side's rows are then its own format.
    bench.http_population = true;
    let mut populations: Vec<Populations> = binaries.iter().map(|_| Populations::default()).collect();
    let mut cells = Vec::new();
    for round in 1..=rounds {
        println!("\n######## round {round} of {rounds}");
        bench.baseline()?;
        for scenario in scenarios {
            for k in 0..binaries.len() {
                let b = (k + round - 1) % binaries.len();
                bench.server.binary = binaries[b].1.clone();
                println!("\n-- {} ({})", binaries[b].0, binaries[b].1.display());
                let before = bench.results.len();
                bench.swap_populations(&mut populations[b]);
                let ran = bench.run(*scenario);
                bench.swap_populations(&mut populations[b]);
                ran?;
                for figures in bench.results[before..].iter().cloned() {
                    cells.push(Cell { round, binary: b, figures });
                }
            }
        }
    }
    println!("\n{}", table(&cells, binaries, bench));
    Ok(())
}

fn table(cells: &[Cell], binaries: &[(String, PathBuf)], bench: &Bench) -> String {
    let mut s = String::from(
        "| scenario | binary | req/s, best (range) | × bare (that round) | × before | p50 ms | p99 ms | errors | server µs/req | generator µs/req | batch mean | noise cores |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let mut names: Vec<&'static str> = Vec::new();
    for c in cells {
        if !names.contains(&c.figures.name) {
            names.push(c.figures.name);
        }
    }
    let opt = |v: Option<f64>, digits: usize| v.map_or_else(|| "–".to_owned(), |x| format!("{x:.digits$}"));
    for name in names {
        let best = |b: usize| {
            cells
                .iter()
                .filter(|c| c.binary == b && c.figures.name == name)
                .max_by(|x, y| x.figures.throughput.total_cmp(&y.figures.throughput))
        };
        let before = best(0).map(|c| c.figures.throughput);
        for (b, (label, _)) in binaries.iter().enumerate() {
            let Some(cell) = best(b) else { continue };
            let all: Vec<f64> = cells
                .iter()
                .filter(|c| c.binary == b && c.figures.name == name)
                .map(|c| c.figures.throughput)
                .collect();
            let (lo, hi) = all.iter().fold((f64::MAX, 0.0f64), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
            let f = &cell.figures;
            let _ = writeln!(
                s,
                "| {name} | {label} | {:.0} ({:.0}–{:.0}, round {}) | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
                f.throughput,
                lo,
                hi,
                cell.round,
                opt(f.ratio, 3),
                opt(before.map(|t| f.throughput / t), 2),
                f.p50_ms,
                f.p99_ms,
                f.errors,
                opt(f.server_us, 1),
                opt(f.own_us, 1),
                opt(f.batch_mean, 1),
                opt(f.others_cores, 2),
            );
        }
    }
    let bare: Vec<String> = bench
        .results
        .iter()
        .filter(|f| f.name == "bare-axum")
        .map(|f| format!("{:.0} (generator {} µs/req)", f.throughput, opt(f.own_us, 1)))
        .collect();
    let _ = writeln!(s, "\nbare axum by round: {}", bare.join(" · "));
    s
}
