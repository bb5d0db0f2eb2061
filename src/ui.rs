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

pub fn is_quiet() -> bool {
    level() < 0
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

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset (no-color.org).
pub fn color_enabled() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Colour for a plan or diff line, chosen by what it says.
fn line_style(line: &str) -> anstyle::Style {
    use anstyle::{AnsiColor, Style};
    let t = line.trim_start().trim_start_matches("would ");
    let color = if t.starts_with("stop") || t.contains(" removed") || t.starts_with("NOT") {
        Some(AnsiColor::Red)
    } else if t.starts_with("restart") || t.contains(" changed") || t.starts_with("image ") || t.starts_with("config ")
    {
        Some(AnsiColor::Yellow)
    } else if t.starts_with("start") || t.contains(" added") || t.starts_with("running as") {
        Some(AnsiColor::Green)
    } else {
        None
    };
    match color {
        Some(c) => Style::new().fg_color(Some(c.into())),
        None if t.starts_with("left alone") || t.starts_with("leave alone") => Style::new().dimmed(),
        None => Style::new(),
    }
}

/// A plan or diff line, coloured when stdout is a terminal.
pub fn paint_line(line: &str) -> String {
    if !color_enabled() {
        return line.to_string();
    }
    let style = line_style(line);
    format!("{}{line}{}", style.render(), style.render_reset())
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

/// The first `n` characters of a hex id or hash, as people quote them (a
/// restic snapshot's 8, a generation hash's 12).
pub fn abbrev(id: &str, n: usize) -> &str {
    id.get(..n).unwrap_or(id)
}

/// An age the way people read it: its largest unit only (`45 s`, `3 min`, `5 h`, `2 d`).
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn abbrev_table() {
        for (id, n, want) in [("0123456789abcdef", 8, "01234567"), ("abc", 8, "abc"), ("", 12, "")] {
            assert_eq!(super::abbrev(id, n), want);
        }
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        for (secs, want) in [(0, "0 s"), (59, "59 s"), (60, "1 min"), (7200, "2 h"), (86_400 * 3 + 5, "3 d")] {
            assert_eq!(super::human_duration(Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn line_styles() {
        use anstyle::{AnsiColor, Style};
        let red = Style::new().fg_color(Some(AnsiColor::Red.into()));
        let yellow = Style::new().fg_color(Some(AnsiColor::Yellow.into()));
        let green = Style::new().fg_color(Some(AnsiColor::Green.into()));
        for (line, want) in [
            ("would stop the following units: a", red),
            ("restart the following units: a", yellow),
            ("start the following units: a", green),
            ("  unit removed: x", red),
            ("  config synapse.log_level: 1 -> 2", yellow),
            ("left alone: a", Style::new().dimmed()),
        ] {
            assert_eq!(super::line_style(line), want, "{line}");
        }
    }

    #[test]
    fn human_bytes_table() {
        for (n, want) in [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (148_300_000, "148.3 MB")] {
            assert_eq!(super::human_bytes(n), want);
        }
    }
}
