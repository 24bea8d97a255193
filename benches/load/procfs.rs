//! A server's memory, read from /proc while the load runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A `kB` field of /proc/PID/status (VmRSS, VmHWM).
pub fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reset VmHWM to the current RSS, so the next read is the peak from now on.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Samples a process's RSS every 10 ms until finished; the maximum seen.
pub struct RssSampler {
    max_kb: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let max_kb = Arc::new(AtomicUsize::new(0));
        let max = max_kb.clone();
        let task = tokio::spawn(async move {
            // Bounded: at most an hour of samples.
            for _ in 0..360_000 {
                if let Some(kb) = proc_kb(pid, "VmRSS") {
                    max.fetch_max(kb as usize, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { max_kb, task }
    }

    pub fn finish(self) -> u64 {
        self.task.abort();
        self.max_kb.load(Ordering::Relaxed) as u64
    }
}

/// User and system CPU time a process has used so far, in clock ticks (1/100 s
/// on Linux), from /proc/PID/stat.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
