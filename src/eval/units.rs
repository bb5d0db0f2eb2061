//! systemd units from the templates in `units/`.

use super::Inputs;
use crate::service::{Service, Unit};
use crate::spec::ServiceSpec;
use crate::unit_name::UnitName;

const SERVICE_TEMPLATE: &str = include_str!("../../units/masctl-service.service");
const TARGET_TEMPLATE: &str = include_str!("../../units/masctl.target");
const BACKUP_SERVICE_TEMPLATE: &str = include_str!("../../units/masctl-scheduled-backup.service");
const BACKUP_TIMER_TEMPLATE: &str = include_str!("../../units/masctl-scheduled-backup.timer");

/// How long a unit may take to start and become healthy: the unit files' own
/// `TimeoutStartSec=` (what a boot uses) and the default `--timeout` of a switch,
/// which sets its units' start timeout to its own value (see `activate`).
pub const START_TIMEOUT_SECS: u64 = 900;

/// One word of an `ExecStart=` line: as is when it is plainly safe (what validation
/// lets through), else double-quoted with systemd's escapes, so whitespace, quotes,
/// `%` specifiers, `$` variables and newlines stay inside the one argument.
fn exec_arg(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+@:=,".contains(c)) {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Template text without its leading comment block.
fn body(template: &str) -> String {
    template.lines().skip_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n") + "\n"
}

/// What a process needs running first: a service's needs; with workers, Synapse's
/// processes also need Redis, and a worker needs the main process (which migrates
/// the database before it reports ready).
fn needs(unit: Unit, workers_on: bool) -> Vec<Service> {
    let mut out = match unit.worker {
        None => unit.service.needs().to_vec(),
        Some(_) => vec![Service::Synapse],
    };
    if workers_on && unit.service == Service::Synapse {
        out.push(Service::Redis);
    }
    out
}

/// `(spec, unit, spec entry path)` → unit files, and the target that wants them all.
pub fn render(inp: &Inputs, specs: &[(ServiceSpec, Unit, String)]) -> Vec<(UnitName, String)> {
    let mut out = Vec::new();
    let workers_on = inp.config.workers_on();
    for (spec, unit, spec_path) in specs {
        // An external Postgres has no unit to want.
        let deps: String = needs(*unit, workers_on)
            .iter()
            .filter(|d| **d != Service::Postgres || inp.config.runs(**d))
            .map(|d| format!("Wants={u}\nAfter={u}\n", u = d.unit_name()))
            .collect();
        let text = body(SERVICE_TEMPLATE)
            .replace("@SERVICE@", &unit.name())
            .replace("@DESCRIPTION@", &unit.description())
            .replace("@DEPENDENCIES@\n", &deps)
            .replace("@MASCTL@", &exec_arg(inp.masctl))
            .replace("@ROOT@", &exec_arg(&inp.layout.root().display().to_string()))
            .replace("@SPEC@", &exec_arg(spec_path))
            .replace("@START_TIMEOUT@", &START_TIMEOUT_SECS.to_string())
            .replace("@STOP_TIMEOUT@", &(spec.stop_timeout_secs + 15).to_string());
        out.push((unit.unit_name(), text));
    }
    let mut wants: Vec<UnitName> = specs.iter().map(|(_, u, _)| u.unit_name()).collect();
    if let Some(b) = &inp.config.backup {
        let (service, timer) = UnitName::scheduled("backup");
        let fill = |t: &str| {
            body(t)
                .replace("@MASCTL@", &exec_arg(inp.masctl))
                .replace("@ROOT@", &exec_arg(&inp.layout.root().display().to_string()))
                .replace("@SCHEDULE@", b.schedule.on_calendar())
        };
        out.push((service, fill(BACKUP_SERVICE_TEMPLATE)));
        out.push((timer.clone(), fill(BACKUP_TIMER_TEMPLATE)));
        wants.push(timer);
    }
    out.push((UnitName::target(), body(TARGET_TEMPLATE).replace("@WANTS@", &wants.join(" "))));
    out
}

#[cfg(test)]
mod tests {
    use super::exec_arg;

    #[test]
    fn exec_args_stay_one_word() {
        for (arg, want) in [
            ("/var/lib/masctl", "/var/lib/masctl"),
            ("/a b", "\"/a b\""),
            ("/a\nExecStartPre=/bin/x", "\"/a\\x0aExecStartPre=/bin/x\""),
            ("/a\"b\\c", "\"/a\\\"b\\\\c\""),
            ("/a%h$HOME", "\"/a%%h$$HOME\""),
            ("", "\"\""),
        ] {
            assert_eq!(exec_arg(arg), want, "{arg:?}");
            assert!(!exec_arg(arg).contains('\n'));
        }
    }
}
