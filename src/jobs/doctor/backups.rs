//! `[backup]`'s findings: every repository opens with its password, and the last
//! push to it is not older than twice the schedule.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use super::{Finding, Level};
use crate::jobs::JobContext;
use crate::jobs::offsite::{self, LastPush};
use crate::offsite::Schedule;
use crate::systemd::ActiveState;
use crate::unit_name::UnitName;

pub async fn findings(ctx: &JobContext<'_>) -> Result<Vec<Finding>> {
    let Some(plan) = &ctx.manifest.backup else { return Ok(vec![]) };
    let mut out = Vec::new();
    let last = offsite::read_last(ctx.layout);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    for repo in &plan.repositories {
        out.push(match offsite::check_open(ctx, plan, repo).await {
            Ok(()) => Finding { level: Level::Ok, message: format!("backup repository {} opens", repo.name) },
            Err(e) => Finding { level: Level::Error, message: format!("backup repository: {e:#}") },
        });
        out.push(age(&repo.name, last.repositories.get(&repo.name), now, plan.schedule));
    }
    let (unit, _) = UnitName::scheduled("backup");
    if ctx.systemd.unit_state(&unit).await?.active_state == ActiveState::Failed {
        out.push(Finding {
            level: Level::Error,
            message: format!("the last scheduled backup failed: `journalctl -u {unit}` says why"),
        });
    }
    Ok(out)
}

/// How old the last push to `repo` is, against its schedule.
fn age(repo: &str, last: Option<&LastPush>, now: u64, schedule: Schedule) -> Finding {
    let limit = 2 * schedule.interval().as_secs();
    match last {
        None => Finding { level: Level::Warning, message: format!("no backup has been pushed to {repo} yet") },
        Some(l) => {
            let age = now.saturating_sub(l.at);
            let human = crate::ui::human_duration(Duration::from_secs(age));
            let (level, why) = match age > limit {
                true => (Level::Warning, format!(", more than twice the {} schedule", schedule.on_calendar())),
                false => (Level::Ok, String::new()),
            };
            Finding { level, message: format!("last backup to {repo} {human} ago (snapshot {}){why}", l.snapshot) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_table() {
        let at = |ago: u64| LastPush { at: 1_000_000 - ago, snapshot: "ab12".into(), set: "s".into() };
        let cases = [
            (None, Schedule::Daily, Level::Warning, "no backup has been pushed"),
            (Some(at(3600)), Schedule::Daily, Level::Ok, "ago (snapshot ab12)"),
            (Some(at(2 * 86_400 - 1)), Schedule::Daily, Level::Ok, "ago"),
            (Some(at(2 * 86_400 + 1)), Schedule::Daily, Level::Warning, "twice the daily schedule"),
            (Some(at(3 * 3600)), Schedule::Hourly, Level::Warning, "twice the hourly"),
            (Some(at(3 * 86_400)), Schedule::Weekly, Level::Ok, "ago"),
        ];
        for (last, schedule, level, frag) in cases {
            let f = age("/r", last.as_ref(), 1_000_000, schedule);
            assert_eq!(f.level, level, "{f:?}");
            assert!(f.message.contains(frag), "{f:?}");
        }
    }
}
