//! systemd units from the templates in `units/`.

use std::collections::BTreeMap;

use super::Inputs;
use crate::spec::ServiceSpec;

const SERVICE_TEMPLATE: &str = include_str!("../../units/masctl-service.service");
const TARGET_TEMPLATE: &str = include_str!("../../units/masctl.target");
pub const TARGET: &str = "masctl.target";

pub fn unit_name(service: &str) -> String {
    format!("masctl-{service}.service")
}

/// Which services a service needs running first. Ordering plus `Wants=`, not
/// `Requires=`: with `Requires=`, systemd restarts Synapse whenever Postgres
/// restarts, so a Postgres-only change would take the homeserver down; Synapse
/// reconnects to its database by itself.
fn needs(service: &str) -> &'static [&'static str] {
    match service {
        "synapse" | "mas" => &["postgres"],
        "proxy" => &["synapse", "mas"],
        _ => &[],
    }
}

/// Template text without its leading comment block.
fn body(template: &str) -> String {
    template.lines().skip_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n") + "\n"
}

pub fn render(
    inp: &Inputs,
    specs: &[(ServiceSpec, String)],
    spec_paths: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (spec, description) in specs {
        let deps: String =
            needs(&spec.service).iter().map(|d| format!("Wants={u}\nAfter={u}\n", u = unit_name(d))).collect();
        let text = body(SERVICE_TEMPLATE)
            .replace("@SERVICE@", &spec.service)
            .replace("@DESCRIPTION@", description)
            .replace("@DEPENDENCIES@\n", &deps)
            .replace("@MASCTL@", inp.masctl)
            .replace("@ROOT@", &inp.layout.root().display().to_string())
            .replace("@SPEC@", &spec_paths[&spec.service])
            .replace("@STOP_TIMEOUT@", &(spec.stop_timeout_secs + 15).to_string());
        out.push((unit_name(&spec.service), text));
    }
    let wants: Vec<String> = specs.iter().map(|(s, _)| unit_name(&s.service)).collect();
    out.push((TARGET.to_string(), body(TARGET_TEMPLATE).replace("@WANTS@", &wants.join(" "))));
    out
}
