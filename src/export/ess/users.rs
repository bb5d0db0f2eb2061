//! `[[users]]`: the chart has no list of accounts to keep. The declared users are
//! rows of the databases the export carries, so they exist in the cluster; what
//! does not carry over is masctl creating missing ones at each switch.

use std::fmt::Write as _;

use super::input::{Input, PostgresTarget};
use super::report::{Finding, Reason};

/// One finding per declared user, by localpart.
pub fn findings(input: &Input) -> Vec<Finding> {
    let held = held_in(input);
    input
        .declared_users
        .iter()
        .map(|u| {
            let why = format!(
                "the chart has no declared users; @{}:{} exists already ({held}), but nothing creates it again if \
                 it is removed: RUNBOOK.md \"Declared users\" says how to make accounts in the cluster",
                u.localpart,
                input.server_name()
            );
            Finding::new(format!("[[users]] localpart = \"{}\"", u.localpart), Reason::NoChartEquivalent(why))
        })
        .collect()
}

fn held_in(input: &Input) -> &'static str {
    match (&input.postgres, input.mas_config.is_some()) {
        (PostgresTarget::Bundled, true) => "in the dumps of Synapse's and MAS's databases",
        (PostgresTarget::Bundled, false) => "in the dump of Synapse's database",
        (PostgresTarget::External { .. }, _) => "in the external database the chart reuses",
    }
}

/// The RUNBOOK section for them; empty when masctl.toml declares none.
pub fn runbook(input: &Input) -> String {
    if input.declared_users.is_empty() {
        return String::new();
    }
    let (ns, rel) = (&input.namespace, &input.release);
    let mut out = format!(
        "## After the move: declared users\n\nmasctl.toml declares these users (`[[users]]`); they exist \
         already, {} (passwords{} included), so step 3 carried them:\n\n",
        held_in(input),
        if input.mas_config.is_some() { ", emails and admin flags" } else { " and admin flags" },
    );
    for u in &input.declared_users {
        let admin = if u.admin { " (admin)" } else { "" };
        let _ = writeln!(out, "- @{}:{}{admin}", u.localpart, input.server_name());
    }
    out.push_str(
        "\nThe chart has no such list: nothing re-creates one that is deleted. Make a new account in the \
         cluster (it asks for the password; `--admin` for an admin):\n\n```sh\n",
    );
    if input.mas_config.is_some() {
        let _ = writeln!(
            out,
            "kubectl -n {ns} exec -it deploy/{rel}-matrix-authentication-service -- \
             mas-cli manage register-user [--admin] [--email ADDRESS] LOCALPART"
        );
    } else {
        let _ = writeln!(
            out,
            "kubectl -n {ns} exec -it {rel}-synapse-main-0 -c synapse -- \
             register_new_matrix_user -c /conf/homeserver.yaml [--admin] -u LOCALPART http://localhost:8008"
        );
    }
    out.push_str("```\n\n");
    out
}
