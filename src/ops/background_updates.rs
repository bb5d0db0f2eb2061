//! Synapse's rule for upgrades: the old version's background updates must be done
//! before a newer Synapse starts, because the newer schema's migrations build on
//! what they write. A switch that changes Synapse's image while some are pending
//! waits for them, with progress, and refuses when they outlast its `--timeout`
//! (their count and names in the message) unless `--force`.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::docker::{Engine, ExecOutput};
use crate::generation::generations::Generation;
use crate::generation::manifest::Manifest;
use crate::service::Service;
use crate::spec::read_spec;
use crate::ui;

/// Reads the pending updates inside the running Synapse container, with the
/// database settings and passfile Synapse itself uses, so a bundled and an external
/// Postgres are asked alike and no password passes a command line.
const PENDING_SCRIPT: &str = "import yaml, psycopg2
a = yaml.safe_load(open('/etc/synapse/homeserver.yaml'))['database']['args']
c = psycopg2.connect(**{k: v for k, v in a.items() if not k.startswith('cp_')})
cur = c.cursor()
cur.execute('SELECT update_name FROM background_updates ORDER BY ordering, update_name')
print('\\n'.join(r[0] for r in cur.fetchall()))";

/// How often the pending updates are read while waiting.
const POLL: Duration = Duration::from_secs(2);

/// What to do about the updates still pending.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    Wait,
    Refuse(String),
}

/// The decision, from what is pending and whether the wait has run out.
pub fn verdict(pending: &[String], out_of_time: bool, force: bool) -> Verdict {
    match (pending.is_empty(), out_of_time, force) {
        (true, _, _) => Verdict::Proceed,
        (false, _, true) => Verdict::Proceed,
        (false, false, false) => Verdict::Wait,
        (false, true, false) => Verdict::Refuse(refusal(pending)),
    }
}

fn refusal(pending: &[String]) -> String {
    let shown: Vec<&str> = pending.iter().take(3).map(String::as_str).collect();
    let more = if pending.len() > 3 { ", …" } else { "" };
    format!(
        "Synapse still has {} background update(s) pending ({}{more}); a newer Synapse must not start before \
they finish. Wait and switch again, raise --timeout, or pass --force",
        pending.len(),
        shown.join(", ")
    )
}

/// Waits, before a switch that changes Synapse's image, until the running Synapse
/// has no background update pending; refuses after `timeout` unless `force`.
pub async fn before_switch(
    engine: &Engine,
    from: Option<&Generation>,
    to: &Manifest,
    timeout: Duration,
    force: bool,
) -> Result<()> {
    let Some(from) = from.map(|g| g.manifest()).transpose()? else { return Ok(()) };
    if !super::switch_backups::image_changes(&from, to).contains(&Service::Synapse) {
        return Ok(());
    }
    let Some(spec) = from.services.get(&Service::Synapse) else { return Ok(()) };
    let container = read_spec(spec)?.container;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut shown = None;
    loop {
        let Some(pending) = pending(engine, &container).await else {
            ui::warn("could not read Synapse's background updates (is it running?); switching without waiting");
            return Ok(());
        };
        match verdict(&pending, tokio::time::Instant::now() >= deadline, force) {
            Verdict::Proceed if !pending.is_empty() => {
                ui::warn(format!("{} — switching anyway because of --force", refusal(&pending)));
                return Ok(());
            }
            Verdict::Proceed => return Ok(()),
            Verdict::Refuse(why) => bail!("{why}"),
            Verdict::Wait => {}
        }
        if shown != Some(pending.len()) {
            ui::step(format!("waiting for Synapse's background updates: {} pending ({})", pending.len(), pending[0]));
            shown = Some(pending.len());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The names of the pending updates; `None` when they cannot be read.
async fn pending(engine: &Engine, container: &str) -> Option<Vec<String>> {
    let cmd = ["python3", "-c", PENDING_SCRIPT].map(String::from);
    match engine.exec_in(container, &cmd, &[], ExecOutput::Capture).await {
        Ok((0, out)) => Some(out.lines().filter(|l| !l.is_empty()).map(String::from).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let none: Vec<String> = vec![];
        let some: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        for (pending, out_of_time, force, want) in [
            (&none, false, false, "proceed"),
            (&none, true, false, "proceed"),
            (&some, false, false, "wait"),
            (&some, true, true, "proceed"),
            (&some, false, true, "proceed"),
            (&some, true, false, "refuse"),
        ] {
            let got = match verdict(pending, out_of_time, force) {
                Verdict::Proceed => "proceed",
                Verdict::Wait => "wait",
                Verdict::Refuse(_) => "refuse",
            };
            assert_eq!(got, want, "{pending:?} {out_of_time} {force}");
        }
    }

    #[test]
    fn refusal_names_count_and_first_updates() {
        let some: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let Verdict::Refuse(why) = verdict(&some, true, false) else { panic!() };
        assert!(why.contains("4 background update(s) pending (a, b, c, …)") && why.contains("--force"), "{why}");
    }
}
