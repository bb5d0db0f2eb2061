//! `[[users]]`: accounts a switch creates when they are missing. Pure: what a
//! Matrix localpart may be, and the plan (declared against what the server has →
//! create, report drift, set a password when asked, or nothing). The edge that
//! asks the server and applies the plan is `ops::declared_users`.

/// masctl's own Synapse admin account (without MAS): it holds the access token
/// `registration-token` and the declared users use with Synapse's admin API.
pub const MASCTL_ADMIN: &str = "masctl-admin";

/// Why Synapse would refuse to register `lp` (its `check_username`), if it would.
pub fn localpart_problem(lp: &str, server_name: &str) -> Option<&'static str> {
    if lp.is_empty() {
        return Some("is empty");
    }
    if !lp.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/".contains(c)) {
        return Some("may hold only lower-case letters, digits and ._=-/");
    }
    if lp.starts_with('_') {
        return Some("may not begin with _ (Synapse reserves it)");
    }
    if lp.chars().all(|c| c.is_ascii_digit()) {
        return Some("may not be all digits (Synapse keeps those for guests)");
    }
    // `@` + localpart + `:` + server name: Synapse's limit is 255 bytes.
    if lp.len() + server_name.len() + 2 > 255 {
        return Some("makes a user ID longer than 255 characters");
    }
    None
}

/// A declared user, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub localpart: String,
    pub admin: bool,
    pub has_password: bool,
}

/// What the server has for a declared user: `None` when it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    pub admin: bool,
}

/// One thing a switch does (or reports) for a declared user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create(String),
    /// The user exists with another admin flag: reported, never changed.
    Drift {
        localpart: String,
        declared_admin: bool,
    },
    /// Asked for with `--reset-declared-passwords`.
    SetPassword(String),
}

impl Step {
    pub fn describe(&self) -> String {
        match self {
            Step::Create(lp) => format!("create user {lp}"),
            Step::Drift { localpart, declared_admin } => {
                let (want, has) = if *declared_admin { ("an admin", "is not") } else { ("not an admin", "is one") };
                format!("user {localpart} exists and {has}; masctl.toml declares {want} (not changed)")
            }
            Step::SetPassword(lp) => format!("set the password of user {lp} from its password_file"),
        }
    }
}

/// The steps for each declared user given what exists; nothing for a user that
/// exists as declared (no password reset asked for).
pub fn plan(users: &[(Declared, Option<Existing>)], reset_passwords: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    for (d, existing) in users {
        let Some(e) = existing else {
            steps.push(Step::Create(d.localpart.clone()));
            continue;
        };
        if e.admin != d.admin {
            steps.push(Step::Drift { localpart: d.localpart.clone(), declared_admin: d.admin });
        }
        if reset_passwords && d.has_password {
            steps.push(Step::SetPassword(d.localpart.clone()));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localpart_table() {
        let long = "a".repeat(250);
        let cases: [(&str, Option<&str>); 9] = [
            ("alice", None),
            ("bot.one_2=x-y/z", None),
            ("a1", None),
            ("", Some("empty")),
            ("Alice", Some("lower-case")),
            ("al ice", Some("lower-case")),
            ("_bridge", Some("begin with _")),
            ("1234", Some("all digits")),
            (&long, Some("255")),
        ];
        for (lp, want) in cases {
            match (localpart_problem(lp, "example.com"), want) {
                (None, None) => {}
                (Some(got), Some(w)) => assert!(got.contains(w), "{lp}: {got}"),
                (got, w) => panic!("{lp}: {got:?} vs {w:?}"),
            }
        }
    }

    fn d(lp: &str, admin: bool, has_password: bool) -> Declared {
        Declared { localpart: lp.into(), admin, has_password }
    }

    #[test]
    fn plan_table() {
        let e = |admin| Some(Existing { admin });
        let create = |lp: &str| Step::Create(lp.into());
        let drift = |lp: &str, a| Step::Drift { localpart: lp.into(), declared_admin: a };
        let pw = |lp: &str| Step::SetPassword(lp.into());
        type Case = (Vec<(Declared, Option<Existing>)>, bool, Vec<Step>);
        let cases: Vec<Case> = vec![
            (vec![], false, vec![]),
            (vec![(d("alice", true, true), None)], false, vec![create("alice")]),
            (vec![(d("bot", false, false), None)], true, vec![create("bot")]),
            // Idempotence: existing as declared → nothing.
            (vec![(d("alice", true, true), e(true))], false, vec![]),
            (vec![(d("alice", true, true), e(false))], false, vec![drift("alice", true)]),
            (vec![(d("bob", false, true), e(true))], false, vec![drift("bob", false)]),
            (vec![(d("alice", true, true), e(true))], true, vec![pw("alice")]),
            // A bot has no password to reset.
            (vec![(d("bot", false, false), e(false))], true, vec![]),
            (
                vec![(d("a", false, true), None), (d("b", true, true), e(false)), (d("c", false, true), e(false))],
                true,
                vec![create("a"), drift("b", true), pw("b"), pw("c")],
            ),
        ];
        for (users, reset, want) in cases {
            assert_eq!(plan(&users, reset), want, "{users:?} reset={reset}");
        }
    }

    #[test]
    fn drift_is_described_as_not_changed() {
        let s = Step::Drift { localpart: "alice".into(), declared_admin: true }.describe();
        assert!(s.contains("alice") && s.contains("not changed") && s.contains("an admin"), "{s}");
    }
}
