//! The pure part of a switch: which units to stop, restart, start or leave alone,
//! from the old and new generations' unit hashes (and what a killed switch left).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::unit_name::{UnitKind, UnitName};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Units the new generation no longer has.
    pub stop: Vec<UnitName>,
    /// Changed units: stopped before the flip, started after it.
    pub restart: Vec<UnitName>,
    /// New units.
    pub start: Vec<UnitName>,
    pub unchanged: Vec<UnitName>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.stop.is_empty() && self.restart.is_empty() && self.start.is_empty()
    }

    /// Units to start once the new generation is current.
    pub fn to_start(&self) -> Vec<UnitName> {
        self.restart.iter().chain(&self.start).cloned().collect()
    }

    /// Lines in the style of switch-to-configuration (`would restart …` with dry_run).
    pub fn describe(&self, dry_run: bool) -> Vec<String> {
        let verb = |v: &str| if dry_run { format!("would {v}") } else { v.to_string() };
        let mut out = Vec::new();
        for (what, list) in [("stop", &self.stop), ("restart", &self.restart), ("start", &self.start)] {
            if !list.is_empty() {
                out.push(format!("{} the following units: {}", verb(what), list.join(", ")));
            }
        }
        if !self.unchanged.is_empty() {
            out.push(format!(
                "{}: {}",
                if dry_run { "would leave alone" } else { "left alone" },
                self.unchanged.join(", ")
            ));
        }
        out
    }
}

/// `old`/`new`: unit file name → content hash; targets are handled by the caller.
/// `pending`: units an interrupted switch had still to (re)start. A scheduled unit
/// is stopped when it goes, but only its timer ever starts it: a switch that
/// started it would run a backup.
pub fn plan(old: &BTreeMap<UnitName, String>, new: &BTreeMap<UnitName, String>, pending: &BTreeSet<UnitName>) -> Plan {
    let mut p = Plan::default();
    for (unit, _) in old.iter().filter(|(u, _)| !u.is_target()) {
        if !new.contains_key(unit) {
            p.stop.push(unit.clone());
        }
    }
    let started = |u: &UnitName| matches!(u.kind(), UnitKind::Service | UnitKind::Timer);
    for (unit, hash) in new.iter().filter(|(u, _)| started(u)) {
        match old.get(unit) {
            None => p.start.push(unit.clone()),
            Some(h) if h != hash || pending.contains(unit) => p.restart.push(unit.clone()),
            Some(_) => p.unchanged.push(unit.clone()),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<UnitName, String> {
        pairs.iter().map(|(a, b)| (UnitName::from(*a), b.to_string())).collect()
    }

    #[test]
    fn plan_table() {
        let none = BTreeSet::new();
        let pg_syn = m(&[("pg.service", "1"), ("syn.service", "1"), ("masctl.target", "t")]);
        type Case = (BTreeMap<UnitName, String>, BTreeMap<UnitName, String>, BTreeSet<UnitName>, Plan);
        let cases: Vec<Case> = vec![
            (
                BTreeMap::new(),
                pg_syn.clone(),
                none.clone(),
                Plan { start: vec!["pg.service".into(), "syn.service".into()], ..Default::default() },
            ),
            (
                pg_syn.clone(),
                pg_syn.clone(),
                none.clone(),
                Plan { unchanged: vec!["pg.service".into(), "syn.service".into()], ..Default::default() },
            ),
            (
                pg_syn.clone(),
                m(&[("pg.service", "1"), ("syn.service", "2"), ("masctl.target", "t2")]),
                none.clone(),
                Plan {
                    restart: vec!["syn.service".into()],
                    unchanged: vec!["pg.service".into()],
                    ..Default::default()
                },
            ),
            (
                pg_syn.clone(),
                m(&[("pg.service", "1"), ("mas.service", "1")]),
                none.clone(),
                Plan {
                    stop: vec!["syn.service".into()],
                    start: vec!["mas.service".into()],
                    unchanged: vec!["pg.service".into()],
                    ..Default::default()
                },
            ),
            // A killed switch had flipped already: the pending unit restarts anyway.
            (
                pg_syn.clone(),
                pg_syn.clone(),
                [UnitName::from("syn.service")].into(),
                Plan {
                    restart: vec!["syn.service".into()],
                    unchanged: vec!["pg.service".into()],
                    ..Default::default()
                },
            ),
            // [backup] added: its timer starts, its service waits for the timer.
            (
                pg_syn.clone(),
                m(&[
                    ("pg.service", "1"),
                    ("syn.service", "1"),
                    ("masctl-scheduled-backup.service", "b"),
                    ("masctl-scheduled-backup.timer", "t"),
                ]),
                none.clone(),
                Plan {
                    start: vec!["masctl-scheduled-backup.timer".into()],
                    unchanged: vec!["pg.service".into(), "syn.service".into()],
                    ..Default::default()
                },
            ),
            // ... and removed again: both stop (and their files go).
            (
                m(&[
                    ("pg.service", "1"),
                    ("masctl-scheduled-backup.service", "b"),
                    ("masctl-scheduled-backup.timer", "t"),
                ]),
                m(&[("pg.service", "1")]),
                none.clone(),
                Plan {
                    stop: vec!["masctl-scheduled-backup.service".into(), "masctl-scheduled-backup.timer".into()],
                    unchanged: vec!["pg.service".into()],
                    ..Default::default()
                },
            ),
        ];
        for (old, new, pending, want) in cases {
            assert_eq!(plan(&old, &new, &pending), want, "{old:?} -> {new:?}");
        }
    }

    #[test]
    fn describe_reads_like_switch_to_configuration() {
        let p = Plan { restart: vec!["a.service".into()], unchanged: vec!["b.service".into()], ..Default::default() };
        assert_eq!(p.describe(true), ["would restart the following units: a.service", "would leave alone: b.service"]);
        assert_eq!(p.describe(false)[0], "restart the following units: a.service");
    }
}
