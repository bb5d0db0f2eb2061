//! How masctl talks to the person at the terminal: step lines and progress bars on
//! stderr (results go to stdout), quiet with `-q`, chattier with `-v`.

use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static LEVEL: OnceLock<i8> = OnceLock::new();

/// -1 quiet, 0 normal, 1+ verbose.
pub fn set_level(level: i8) {
    let _ = LEVEL.set(level);
}

fn level() -> i8 {
    *LEVEL.get().unwrap_or(&0)
}

/// A step worth telling about ("fetching 73 inputs").
pub fn step(msg: impl AsRef<str>) {
    if level() >= 0 {
        eprintln!("{}", msg.as_ref());
    }
}

/// Detail only shown with `-v`.
pub fn detail(msg: impl AsRef<str>) {
    if level() >= 1 {
        eprintln!("  {}", msg.as_ref());
    }
}

pub fn warn(msg: impl AsRef<str>) {
    eprintln!("warning: {}", msg.as_ref());
}

/// A byte-counting bar; drawn only on a terminal and never with `-q`.
pub fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    if level() < 0 {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A counting bar for discrete work (packages unpacked, layers written).
pub fn count_bar(total: u64, what: &str) -> ProgressBar {
    if level() < 0 {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {wide_msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A spinner for waits of unknown length.
pub fn spinner(what: &str) -> ProgressBar {
    if level() < 0 {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Byte counts the way people read them.
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[u]) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_table() {
        for (n, want) in [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (148_300_000, "148.3 MB")] {
            assert_eq!(super::human_bytes(n), want);
        }
    }
}
