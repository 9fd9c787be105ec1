//! Probes attached to the server for the measured window only.

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::child::interrupt_and_wait;
use crate::load::Probe;

/// Counts the server's `fdatasync`/`fsync` calls with `perf stat` on the syscall tracepoints:
/// with WAL and `synchronous = FULL`, SQLite syncs the WAL once per commit, so this is the
/// commit rate (plus a few syncs per WAL checkpoint).
#[derive(Default)]
pub struct Syncs {
    child: Option<(Child, Instant)>,
}

const EVENTS: [&str; 2] = ["syscalls:sys_enter_fdatasync", "syscalls:sys_enter_fsync"];

impl Probe for Syncs {
    fn start(&mut self, pid: u32) {
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", &EVENTS.join(","), "-p"])
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        match child {
            Ok(c) => self.child = Some((c, Instant::now())),
            Err(e) => eprintln!("--syncs: cannot run perf: {e}"),
        }
    }

    fn stop(&mut self) -> Option<String> {
        let (mut child, started) = self.child.take()?;
        let seconds = started.elapsed().as_secs_f64();
        let output = interrupt_and_wait(&mut child)?;
        let text = String::from_utf8_lossy(&output.stderr);
        let count = |event: &str| -> Option<u64> {
            text.lines()
                .find(|l| l.contains(event))
                .and_then(|l| l.split(',').next())
                .and_then(|n| n.trim().parse().ok())
        };
        let (Some(fdatasync), Some(fsync)) = (count(EVENTS[0]), count(EVENTS[1])) else {
            return Some(format!("syncs: perf stat said: {}", text.trim()));
        };
        Some(format!(
            "syncs {} in {seconds:.2} s: {:.0}/s (fdatasync {fdatasync}, fsync {fsync})",
            fdatasync + fsync,
            (fdatasync + fsync) as f64 / seconds
        ))
    }
}

/// The number of syncs a `Syncs` report states, to turn into events per commit.
pub fn syncs_in(report: &str) -> Option<u64> {
    report.strip_prefix("syncs ")?.split(' ').next()?.parse().ok()
}

/// Zeroes callgrind's counters at the window's start and dumps them at its end, so the dump
/// holds exactly the measured requests (the server must run under `valgrind --tool=callgrind`).
#[derive(Default)]
pub struct Callgrind {
    pid: Option<u32>,
}

fn callgrind_control(flag: &str, pid: u32) -> bool {
    Command::new("callgrind_control")
        .args([flag, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Probe for Callgrind {
    fn start(&mut self, pid: u32) {
        if callgrind_control("-z", pid) {
            self.pid = Some(pid);
        } else {
            eprintln!("--callgrind: callgrind_control -z {pid} failed");
        }
    }

    fn stop(&mut self) -> Option<String> {
        let pid = self.pid.take()?;
        let dumped = callgrind_control("-d", pid);
        Some(format!(
            "callgrind: counters zeroed at the window's start, dumped at its end: {}",
            if dumped { "ok" } else { "FAILED" }
        ))
    }
}

/// `perf record` (cpu-clock samples, call graphs by frame pointers where there are any) of the
/// server for the window.
pub struct PerfRecord {
    pub output: std::path::PathBuf,
    child: Option<Child>,
}

impl PerfRecord {
    pub fn new(output: std::path::PathBuf) -> Self {
        Self { output, child: None }
    }
}

impl Probe for PerfRecord {
    fn start(&mut self, pid: u32) {
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "1999", "-g", "-o"])
            .arg(&self.output)
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        match child {
            Ok(c) => self.child = Some(c),
            Err(e) => eprintln!("--perf-record: cannot run perf: {e}"),
        }
    }

    fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let output = interrupt_and_wait(&mut child)?;
        Some(format!(
            "perf record → {} ({})",
            self.output.display(),
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default().trim()
        ))
    }
}
