//! The one switch that can lock every user out: handing logins from Synapse to MAS.
//! Once Synapse delegates, only MAS's users can log in; if `syn2mas migrate` never
//! completed, MAS has none of Synapse's. Pure: the caller finds out the facts.

use crate::generation::manifest::MasState;

/// What is known about the Synapse whose logins would move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// A `masctl syn2mas migrate` of this state root completed.
    pub migrated: bool,
    /// Users in Synapse's database; `None` when it could not be asked.
    pub synapse_users: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Logins stay where they are, or move with nobody to lose.
    Allow,
    /// Refused, with the reason and the next command to run.
    Refuse(String),
}

/// Whether going from `from` (the running generation, if any) to `to` moves logins
/// from Synapse to MAS — the only case [`check`] needs facts for.
pub fn hands_over(from: Option<&MasState>, to: &MasState) -> bool {
    to.delegating && !from.is_some_and(|f| f.delegating)
}

/// Whether going from `from` (the running generation, if any) to `to` may proceed.
pub fn check(from: Option<&MasState>, to: &MasState, facts: Facts) -> Verdict {
    if !hands_over(from, to) || facts.migrated || facts.synapse_users == Some(0) {
        return Verdict::Allow;
    }
    let who = match facts.synapse_users {
        Some(n) => format!("Synapse has {n} user{}", if n == 1 { "" } else { "s" }),
        None => "masctl cannot tell whether Synapse has users (its database does not answer)".to_string(),
    };
    let next = if from.is_some_and(|f| f.enabled) {
        "run `masctl syn2mas migrate` first".to_string()
    } else {
        "first set migration_in_progress = true under [mas] and `masctl switch`, then `masctl syn2mas migrate`"
            .to_string()
    };
    Verdict::Refuse(format!(
        "refusing to hand logins to MAS: {who} and no `masctl syn2mas migrate` has completed, so they could not \
log in; {next} (or --force to switch anyway)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mas(enabled: bool, delegating: bool) -> MasState {
        MasState { enabled, delegating, path_prefix: "/auth".into() }
    }

    #[test]
    fn handover_table() {
        let off = mas(false, false);
        let migrating = mas(true, false);
        let on = mas(true, true);
        let facts = |migrated, users| Facts { migrated, synapse_users: users };
        // (from, to, facts, refused?, words the refusal must hold)
        let cases: [(Option<&MasState>, &MasState, Facts, Option<&str>); 10] = [
            // The flag turned off without a migration: the lock-out the issue saw.
            (Some(&migrating), &on, facts(false, Some(3)), Some("run `masctl syn2mas migrate` first")),
            (Some(&migrating), &on, facts(true, Some(3)), None),
            // MAS enabled straight away on a Synapse with users.
            (Some(&off), &on, facts(false, Some(1)), Some("migration_in_progress = true")),
            (Some(&off), &on, facts(false, Some(0)), None),
            // A fresh host: nothing runs, nobody to lose.
            (None, &on, facts(false, Some(0)), None),
            // Unknown counts are refused, never guessed.
            (Some(&migrating), &on, facts(false, None), Some("cannot tell")),
            // Not a handover.
            (Some(&on), &on, facts(false, Some(5)), None),
            (Some(&off), &migrating, facts(false, Some(5)), None),
            (Some(&on), &off, facts(false, Some(5)), None),
            (Some(&migrating), &migrating, facts(false, Some(5)), None),
        ];
        for (from, to, f, want) in cases {
            match (check(from, to, f), want) {
                (Verdict::Allow, None) => {}
                (Verdict::Refuse(why), Some(words)) => {
                    assert!(why.contains(words) && why.contains("--force"), "{why}")
                }
                (got, want) => panic!("{from:?} -> {to:?} {f:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
