//! `masctl doctor`: units, containers and routes as masctl sees them, plus
//! `mas-cli doctor`'s own verdict.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::{JobContext, JobSpec};
use crate::docker::Engine;
use crate::layout::Layout;
use crate::service::Service;
use crate::spec::read_spec;
use crate::systemd::ActiveState;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// The mark mas-cli prints for it (and doctor prints in its text output).
    pub fn mark(self) -> &'static str {
        match self {
            Level::Ok => "✅",
            Level::Warning => "⚠️",
            Level::Error => "❌",
        }
    }
}

impl PartialEq<&str> for Level {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One line of a doctor report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    pub message: String,
}

/// `mas-cli doctor` always exits 0: its verdict is in the ✅/⚠️/❌ lines.
pub fn parse_doctor(output: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for line in output.lines() {
        for level in [Level::Error, Level::Warning, Level::Ok] {
            let mark = level.mark();
            if let Some(i) = line.find(mark) {
                out.push(Finding { level, message: line[i + mark.len()..].trim().to_string() });
                break;
            }
        }
    }
    out
}

/// Every finding, in the order checked.
pub async fn run(layout: &Layout) -> Result<Vec<Finding>> {
    let ctx = JobContext::load(layout).await?;
    let engine = Engine::connect().await?;
    let mut findings = Vec::new();
    let mut note = |level: Level, message: String| findings.push(Finding { level, message });
    for (unit, spec_path) in ctx.manifest.units() {
        let unit = unit.unit_name();
        let st = ctx.systemd.unit_state(&unit).await?;
        if st.active_state == ActiveState::Active {
            note(Level::Ok, format!("{unit} is active"));
        } else {
            note(Level::Error, format!("{unit} is {} ({})", st.active_state, st.sub_state));
        }
        let spec = read_spec(spec_path)?;
        match crate::health::service_state(&engine, &spec).await? {
            Some(c) if c.serves(&spec) => {
                note(Level::Ok, format!("{} runs the generation's image, healthy", spec.container))
            }
            Some(c) if c.running && c.image != spec.image => {
                note(Level::Error, format!("{} runs {}, not {}", spec.container, c.image, spec.image))
            }
            Some(c) if c.running => note(Level::Error, format!("{} is {}", spec.container, c.health)),
            _ => note(Level::Error, format!("{} is not running", spec.container)),
        }
    }
    // Routes through the proxy, as clients see them.
    if let Some(proxy) = ctx.manifest.services.get(&Service::Proxy) {
        let spec = read_spec(proxy)?;
        let prefix = ctx.manifest.mas.path_prefix.clone();
        match engine.container_ip(&spec.container, &spec.network).await? {
            Some(ip) => {
                let mut routes = vec![
                    ("Synapse", "/_matrix/client/versions".to_string()),
                    ("the well-known document", "/.well-known/matrix/client".to_string()),
                ];
                if ctx.mas_enabled() {
                    routes.push(("MAS", format!("{prefix}/.well-known/openid-configuration")));
                }
                for (what, path) in routes {
                    let ok = crate::docker::http_ok(format!("http://{ip}:8080{path}"), Duration::from_secs(5)).await;
                    if ok {
                        note(Level::Ok, format!("{what} answers through the proxy ({path})"));
                    } else {
                        note(Level::Error, format!("{what} does not answer through the proxy ({path})"));
                    }
                }
            }
            None => note(Level::Error, "the proxy has no address".into()),
        }
    }
    if ctx.mas_enabled() {
        let mas = ctx.mas_spec()?;
        let job = JobSpec::new("doctor", ctx.mas_job(&mas, &["doctor".to_string()]));
        let (_, out) = ctx.run("masctl doctor", job).await?;
        findings.extend(
            parse_doctor(&out).into_iter().map(|f| Finding { message: format!("mas-cli: {}", f.message), ..f }),
        );
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctor_lines_table() {
        let out = "2026-08-04T10:00:00Z  INFO mas_cli::commands::doctor:31 💡 Running diagnostics\n\
2026-08-04T10:00:00Z  INFO mas_cli::commands::doctor:90 ✅ Homeserver is reachable at \"http://s:8008/_matrix/client/versions\"\n\
2026-08-04T10:00:00Z  WARN mas_cli::commands::doctor:40 ⚠️ The issuer in the config is not an HTTPS URL.\n\
2026-08-04T10:00:00Z ERROR mas_cli::commands::doctor:120 ❌Can't reach the homeserver at \"x\", got 502.\n\
extra line without a mark\n";
        let f = parse_doctor(out);
        let levels: Vec<_> = f.iter().map(|f| f.level).collect();
        assert_eq!(levels, ["ok", "warning", "error"]);
        assert!(f[2].message.starts_with("Can't reach"));
    }
}
