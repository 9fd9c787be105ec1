//! Progress of a long fold: an indicatif bar when stderr is a terminal, a plain line every tenth
//! of the way otherwise (logs and CI keep a readable record), or nothing at all (benchmarks).

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};

/// Below this many events a fold takes well under a second: plain lines would be noise.
const PLAIN_LINES_FROM: u64 = 10_000;

/// Counts folded events against a known total.
pub struct Progress {
    kind: Kind,
    label: &'static str,
    total: u64,
    done: u64,
    next_line: u64,
}

enum Kind {
    Bar(ProgressBar),
    Lines,
    Hidden,
}

impl Progress {
    /// A bar on a terminal, plain lines on stderr otherwise.
    pub fn on_stderr(label: &'static str, total: u64) -> Self {
        let kind = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events, {per_sec}, {eta} left")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label);
            Kind::Bar(bar)
        } else {
            Kind::Lines
        };
        Self::with(kind, label, total)
    }

    /// Shows nothing.
    pub fn hidden() -> Self {
        Self::with(Kind::Hidden, "", 0)
    }

    fn with(kind: Kind, label: &'static str, total: u64) -> Self {
        Self { kind, label, total, done: 0, next_line: total.div_ceil(10).max(1) }
    }

    /// The total, once known.
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
        self.next_line = total.div_ceil(10).max(1);
        if let Kind::Bar(bar) = &self.kind {
            bar.set_length(total);
        }
    }

    /// One more event folded.
    pub fn inc(&mut self) {
        self.done += 1;
        match &self.kind {
            Kind::Bar(bar) => bar.inc(1),
            Kind::Lines if self.done >= self.next_line && self.total >= PLAIN_LINES_FROM => {
                eprintln!("{}: {} of {} events folded", self.label, self.done, self.total);
                self.next_line += self.total.div_ceil(10).max(1);
            }
            Kind::Lines | Kind::Hidden => {}
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Kind::Bar(bar) = &self.kind {
            bar.finish_and_clear();
        }
    }
}
