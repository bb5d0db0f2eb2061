//! Progress of long data work (dumps, loads): bytes done, rate and ETA. Three
//! shapes of the same figures: a bar on a terminal, one line per stage otherwise,
//! JSON event lines with `--json` (for scripts: the command's result stays on
//! stdout, events go to stderr).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;

static JSON_EVENTS: AtomicBool = AtomicBool::new(false);

/// Progress goes out as JSON events from now on (commands run with `--json`).
pub fn json_events() {
    JSON_EVENTS.store(true, Ordering::Relaxed);
}

/// How progress is shown, decided once per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bar,
    Lines,
    Json,
    Quiet,
}

fn mode() -> Mode {
    if JSON_EVENTS.load(Ordering::Relaxed) {
        Mode::Json
    } else if crate::ui::is_quiet() {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        Mode::Bar
    } else {
        Mode::Lines
    }
}

/// What an event line says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Start,
    Progress,
    Finish,
}

/// One event line: a stage starting, moving on, or finished.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event<'a> {
    pub event: EventKind,
    pub stage: &'a str,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    pub bytes_per_sec: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<u64>,
    pub elapsed_secs: f64,
}

/// Rate so far and time left at that rate; no ETA without a total, before any
/// progress, or once the estimate is passed (the total was a guess).
pub fn rate_eta(done: u64, total: Option<u64>, elapsed: Duration) -> (u64, Option<u64>) {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { (done as f64 / secs) as u64 } else { 0 };
    let eta = match total {
        Some(t) if rate > 0 && t >= done => Some((t - done).div_ceil(rate)),
        _ => None,
    };
    (rate, eta)
}

/// The line a finished stage leaves when there is no terminal.
pub fn summary(stage: &str, done: u64, elapsed: Duration) -> String {
    let (rate, _) = rate_eta(done, None, elapsed);
    format!(
        "{stage}: {} in {:.1} s ({}/s)",
        crate::ui::human_bytes(done),
        elapsed.as_secs_f64(),
        crate::ui::human_bytes(rate)
    )
}

/// A stage's meter. `total` is an estimate where the real size is unknown until
/// the end (a dump's size from the last dump of the same database).
pub struct Meter {
    stage: String,
    total: Option<u64>,
    started: Instant,
    mode: Mode,
    bar: Option<ProgressBar>,
    last_event: Option<Instant>,
}

/// JSON events at most this often (a bar redraws itself as often as it likes).
const EVENT_EVERY: Duration = Duration::from_secs(1);

impl Meter {
    pub fn start(stage: &str, total: Option<u64>) -> Meter {
        let mode = mode();
        let bar = (mode == Mode::Bar).then(|| match total {
            Some(t) => crate::ui::bytes_bar(t, stage),
            None => crate::ui::spinner(stage),
        });
        let m = Meter { stage: stage.to_string(), total, started: Instant::now(), mode, bar, last_event: None };
        m.emit(EventKind::Start, 0);
        m
    }

    pub fn update(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            if self.total.is_some_and(|t| done > t) {
                bar.set_length(done);
            }
            bar.set_position(done);
        }
        if self.mode == Mode::Json && self.last_event.is_none_or(|t| t.elapsed() >= EVENT_EVERY) {
            self.last_event = Some(Instant::now());
            self.emit(EventKind::Progress, done);
        }
    }

    /// The stage is over at `done` bytes (its real size).
    pub fn finish(self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        match self.mode {
            Mode::Json => self.emit(EventKind::Finish, done),
            Mode::Bar | Mode::Lines => eprintln!("{}", summary(&self.stage, done, self.started.elapsed())),
            Mode::Quiet => {}
        }
    }

    fn emit(&self, event: EventKind, done: u64) {
        if self.mode != Mode::Json {
            return;
        }
        let elapsed = self.started.elapsed();
        let (bytes_per_sec, eta_secs) = rate_eta(done, self.total, elapsed);
        let e = Event {
            event,
            stage: &self.stage,
            bytes: done,
            total: self.total,
            bytes_per_sec,
            eta_secs: if event == EventKind::Progress { eta_secs } else { None },
            elapsed_secs: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        };
        if let Ok(line) = serde_json::to_string(&e) {
            eprintln!("{line}");
        }
    }
}

/// Runs `work` while a meter samples `sample()` (bytes done so far) every half
/// second; the stage finishes at the last sample taken after `work` ends.
pub async fn watch<T>(
    stage: &str,
    total: Option<u64>,
    sample: impl Fn() -> u64,
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut meter = Meter::start(stage, total);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tokio::pin!(work);
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            _ = tick.tick() => meter.update(sample()),
        }
    };
    meter.finish(sample());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_table() {
        let s = Duration::from_secs;
        for (done, total, elapsed, want) in [
            (0, Some(100), s(0), (0, None)),
            (50, Some(100), s(5), (10, Some(5))),
            (50, Some(101), s(5), (10, Some(6))),
            (100, Some(100), s(10), (10, Some(0))),
            // Past a guessed total: no ETA rather than a wrong one.
            (150, Some(100), s(10), (15, None)),
            (40, None, s(4), (10, None)),
            (0, Some(100), s(3), (0, None)),
        ] {
            assert_eq!(rate_eta(done, total, elapsed), want, "{done} {total:?} {elapsed:?}");
        }
    }

    #[test]
    fn summary_line() {
        assert_eq!(
            summary("dump synapse", 2_000_000, Duration::from_secs(4)),
            "dump synapse: 2.0 MB in 4.0 s (500.0 kB/s)"
        );
    }

    #[test]
    fn events_serialize_without_unknowns() {
        let e = Event {
            event: EventKind::Finish,
            stage: "dump mas",
            bytes: 7,
            total: None,
            bytes_per_sec: 7,
            eta_secs: None,
            elapsed_secs: 1.0,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"finish","stage":"dump mas","bytes":7,"bytes_per_sec":7,"elapsed_secs":1.0}"#
        );
    }
}
