//! What `/proc` says about a process: its CPU time and its resident memory.

use std::sync::OnceLock;

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 on every Linux we meet).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User plus system CPU seconds of every thread of `pid` so far (`utime + stime`), or `None`
/// when the process is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds of each live thread of `pid`, by thread id, with the thread's name.
pub fn threads_cpu(pid: u32) -> Vec<(u32, String, f64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
            Some((tid, name, stat_cpu(&stat)?))
        })
        .collect()
}

fn stat_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Busy CPU seconds of the whole machine so far, all cores together (`/proc/stat`: user,
/// nice, system, irq, softirq and steal), to tell how much of it other processes took.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|n| n.parse().ok()).collect();
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum::<f64>();
    Some(busy / clock_ticks())
}

/// CPU seconds of `parent` and of each of its direct children (PostgreSQL's postmaster and its
/// backends), by process id. A backend that exits between two samples takes its CPU with it.
pub fn family_cpu(parent: u32) -> Vec<(u32, f64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // Field 4 (the parent's id) is the second after the parenthesised command name.
            let ppid: u32 = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()?;
            (pid == parent || ppid == parent).then_some((pid, stat_cpu(&stat)?))
        })
        .collect()
}

/// CPU seconds of this process.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id())
}

/// Bytes a process wrote so far: through write syscalls (`wchar`, log lines and WAL frames
/// alike) and to storage (`write_bytes`).
pub fn written_bytes(pid: u32) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |key: &str| -> Option<u64> {
        io.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse().ok())
    };
    Some((field("wchar:")?, field("write_bytes:")?))
}

/// Resident memory now and at its peak, in bytes (`VmRSS`, `VmHWM`).
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|k| k * 1024)
    };
    Some(Memory { rss: kib("VmRSS:")?, peak: kib("VmHWM:")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_resident_memory() {
        assert!(own_cpu_seconds().is_some());
        assert!(machine_busy_seconds().is_some());
        assert!(!threads_cpu(std::process::id()).is_empty());
        let family = family_cpu(std::process::id());
        assert!(family.iter().any(|(pid, _)| *pid == std::process::id()));
        let m = memory(std::process::id()).unwrap();
        assert!(m.rss > 0 && m.peak >= m.rss);
    }
}
