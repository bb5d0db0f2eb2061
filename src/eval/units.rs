//! systemd units from the templates in `units/`.

use std::collections::BTreeMap;

use super::Inputs;
use crate::service::Service;
use crate::spec::ServiceSpec;

const SERVICE_TEMPLATE: &str = include_str!("../../units/masctl-service.service");
const TARGET_TEMPLATE: &str = include_str!("../../units/masctl.target");
pub const TARGET: &str = "masctl.target";

/// Template text without its leading comment block.
fn body(template: &str) -> String {
    template.lines().skip_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n") + "\n"
}

pub fn render(
    inp: &Inputs,
    specs: &[(ServiceSpec, Service)],
    spec_paths: &BTreeMap<Service, String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (spec, service) in specs {
        let deps: String =
            service.needs().iter().map(|d| format!("Wants={u}\nAfter={u}\n", u = d.unit_name())).collect();
        let text = body(SERVICE_TEMPLATE)
            .replace("@SERVICE@", service.name())
            .replace("@DESCRIPTION@", service.description())
            .replace("@DEPENDENCIES@\n", &deps)
            .replace("@MASCTL@", inp.masctl)
            .replace("@ROOT@", &inp.layout.root().display().to_string())
            .replace("@SPEC@", &spec_paths[service])
            .replace("@STOP_TIMEOUT@", &(spec.stop_timeout_secs + 15).to_string());
        out.push((service.unit_name(), text));
    }
    let wants: Vec<String> = specs.iter().map(|(_, s)| s.unit_name()).collect();
    out.push((TARGET.to_string(), body(TARGET_TEMPLATE).replace("@WANTS@", &wants.join(" "))));
    out
}
