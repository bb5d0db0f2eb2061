//! Off-host backups through restic. A backup set — the verified dumps of one
//! `masctl backup` run, the media store, every secret and the config as written —
//! is pushed to each repository as one snapshot tagged with what a restore must
//! check first; a snapshot is fetched back whole before anything is replaced.
//! Every restic run is a job (a transient unit) in the restic image.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::{JobContext, JobSpec};
use crate::docker::OneShot;
use crate::generation::layout::Layout;
use crate::generation::manifest::{BackupPlan, RepoPlan};
use crate::offsite::{LOCAL_REPO_IN_CONTAINER, RepoUrl};
use crate::spec::Bind;

/// Where a backup set lies in a snapshot (and under a fetch's target).
pub const SET_ROOT: &str = "/masctl";
const TAG: &str = "masctl";
/// restic's exit codes (0.17 and later) for these two.
const NO_REPOSITORY: i32 = 10;
const WRONG_PASSWORD: i32 = 12;

/// What a snapshot says about its set: a restore checks it against the images
/// before it fetches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTags {
    /// The backup set's id (`20261207T100000Z-scheduled`).
    pub set: String,
    pub generation: u32,
    pub synapse_schema: Option<u32>,
    pub synapse_compat: Option<u32>,
    /// The newest MAS migration applied.
    pub mas_migration: Option<i64>,
}

impl SetTags {
    fn to_tags(&self) -> Vec<String> {
        let mut t = vec![TAG.to_string(), format!("set={}", self.set), format!("generation={}", self.generation)];
        t.extend(self.synapse_schema.map(|v| format!("synapse-schema={v}")));
        t.extend(self.synapse_compat.map(|v| format!("synapse-compat={v}")));
        t.extend(self.mas_migration.map(|v| format!("mas-migration={v}")));
        t
    }

    /// None for a snapshot masctl did not make.
    fn from_tags(tags: &[String]) -> Option<SetTags> {
        if !tags.iter().any(|t| t == TAG) {
            return None;
        }
        let get = |k: &str| tags.iter().find_map(|t| t.strip_prefix(k)?.strip_prefix('='));
        Some(SetTags {
            set: get("set")?.to_string(),
            generation: get("generation")?.parse().ok()?,
            synapse_schema: get("synapse-schema").and_then(|v| v.parse().ok()),
            synapse_compat: get("synapse-compat").and_then(|v| v.parse().ok()),
            mas_migration: get("mas-migration").and_then(|v| v.parse().ok()),
        })
    }
}

/// One snapshot of a repository, as `masctl backups --remote` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub id: String,
    pub time: String,
    #[serde(flatten)]
    pub tags: SetTags,
}

/// restic's own JSON of a snapshot (the fields masctl reads).
#[derive(Deserialize)]
struct ResticSnapshot {
    id: String,
    time: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// masctl's snapshots in restic's `snapshots --json` output, oldest first.
pub fn parse_snapshots(json: &str) -> Result<Vec<Snapshot>> {
    let all: Vec<ResticSnapshot> = serde_json::from_str(json).context("reading restic's snapshot list")?;
    let mut out: Vec<Snapshot> = all
        .into_iter()
        .filter_map(|s| Some(Snapshot { tags: SetTags::from_tags(&s.tags)?, id: s.id, time: s.time }))
        .collect();
    out.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(out)
}

/// The snapshot named by `wanted` (an id or a prefix of one, or a set id), else the newest.
pub fn pick<'a>(snapshots: &'a [Snapshot], wanted: Option<&str>, repo: &str) -> Result<&'a Snapshot> {
    match wanted {
        None => snapshots.last().with_context(|| format!("the repository {repo} has no masctl snapshot")),
        Some(w) => {
            let found: Vec<&Snapshot> = snapshots.iter().filter(|s| s.id.starts_with(w) || s.tags.set == w).collect();
            match found.as_slice() {
                [one] => Ok(one),
                [] => bail!("no snapshot {w:?} in {repo} (see `masctl backups --remote`)"),
                _ => bail!("{w:?} names {} snapshots in {repo}: give more of its id", found.len()),
            }
        }
    }
}

/// restic's summary of one `backup --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    pub repository: String,
    pub snapshot: String,
    pub set: String,
    /// Bytes restic added to the repository (after deduplication and compression).
    pub added_bytes: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub total_bytes: u64,
}

#[derive(Deserialize)]
struct Summary {
    message_type: String,
    #[serde(default)]
    snapshot_id: String,
    #[serde(default)]
    data_added: u64,
    #[serde(default)]
    files_new: u64,
    #[serde(default)]
    files_changed: u64,
    #[serde(default)]
    files_unmodified: u64,
    #[serde(default)]
    total_bytes_processed: u64,
}

/// The summary line of `restic backup --json`.
fn parse_summary(out: &str, repository: &str, set: &str) -> Result<Pushed> {
    let s = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Summary>(l).ok())
        .find(|s| s.message_type == "summary")
        .context("restic printed no backup summary")?;
    Ok(Pushed {
        repository: repository.to_string(),
        snapshot: s.snapshot_id,
        set: set.to_string(),
        added_bytes: s.data_added,
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        total_bytes: s.total_bytes_processed,
    })
}

/// The shell function every script starts with: open the repository, creating it
/// only when there is none (`init`), and say plainly why it cannot be opened.
fn open_script(name: &str, create: bool) -> String {
    let missing = if create {
        "r init > /dev/null && echo \"masctl: created the restic repository $NAME\"".to_string()
    } else {
        format!("echo \"masctl: there is no restic repository at $NAME\" >&2; exit {NO_REPOSITORY}")
    };
    format!(
        "NAME='{name}'\n\
out=$(r cat config 2>&1 >/dev/null); rc=$?\n\
case $rc in\n\
0) ;;\n\
{NO_REPOSITORY}) {missing} ;;\n\
{WRONG_PASSWORD}) echo \"masctl: wrong password for the restic repository $NAME\" >&2; exit {WRONG_PASSWORD} ;;\n\
*) echo \"$out\" >&2; echo \"masctl: cannot open the restic repository $NAME (restic exit $rc)\" >&2; exit $rc ;;\n\
esac\n\
set -e\n"
    )
}

/// A restic job against `repo` running `script` (which calls restic as `r`) once
/// the repository is open (`create`: made when there is none); `binds` add what
/// it reads or writes.
fn restic_job(
    layout: &Layout,
    plan: &BackupPlan,
    repo: &RepoPlan,
    create: bool,
    script: &str,
    binds: Vec<Bind>,
) -> Result<JobSpec> {
    let cache = layout.cache().join("restic");
    std::fs::create_dir_all(cache.join("tmp"))?;
    let mut all = vec![Bind::rw(&cache, "/cache"), Bind::secret(layout.secret(&repo.password_secret), "repository")];
    let env = vec![
        format!("RESTIC_REPOSITORY={}", repo.url.for_restic()),
        "RESTIC_PASSWORD_FILE=/run/secrets/repository".to_string(),
        "RESTIC_CACHE_DIR=/cache".to_string(),
        "TMPDIR=/cache/tmp".to_string(),
    ];
    let network = match &repo.url {
        RepoUrl::Local(dir) => {
            all.push(Bind::rw(dir, LOCAL_REPO_IN_CONTAINER));
            None
        }
        RepoUrl::Sftp(_) | RepoUrl::Rest(_) => Some("bridge".to_string()),
    };
    let restic = match (&repo.ssh_key_secret, &repo.known_hosts_secret) {
        (Some(key), Some(hosts)) => {
            all.push(Bind::secret(layout.secret(key), "ssh-key"));
            all.push(Bind::secret(layout.secret(hosts), "known-hosts"));
            "r() { restic -o sftp.args='-i /run/secrets/ssh-key -o UserKnownHostsFile=/run/secrets/known-hosts \
-o StrictHostKeyChecking=yes -o BatchMode=yes' \"$@\"; }\n"
        }
        _ => "r() { restic \"$@\"; }\n",
    };
    all.extend(binds);
    let script = format!("{restic}{}{script}", open_script(&repo.name, create));
    let job = OneShot {
        image: plan.image.clone(),
        user: "0:0".into(),
        entrypoint: Some(vec!["sh".into(), "-c".into(), script]),
        cmd: vec![],
        binds: all,
        network,
        env,
    };
    Ok(JobSpec::new("restic", job))
}

/// A directory under the state root a job writes its results into (the state
/// root has the same path for masctl and the engine).
fn out_dir(layout: &Layout) -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix(".restic-").tempdir_in(layout.root())?)
}

/// Runs a restic job for `what` ("pushing to R"); a failure says why: no
/// repository, a wrong password, or the line of restic's output naming the error.
async fn run_restic(ctx: &JobContext<'_>, what: &str, repo: &RepoPlan, spec: JobSpec) -> Result<()> {
    let (code, captured) = ctx.run(&format!("masctl: {what}"), spec).await?;
    let name = &repo.name;
    match code {
        0 => Ok(()),
        NO_REPOSITORY => bail!("{what}: there is no restic repository at {name}"),
        WRONG_PASSWORD => bail!("{what}: the password does not open the restic repository {name}"),
        c => Err(super::failed(what, c, &captured)),
    }
}

/// Pushes the set (`dumps`, with the media store, secrets and config) to `repo`,
/// creating the repository the first time, then applies the retention policy.
pub async fn push(
    ctx: &JobContext<'_>,
    plan: &BackupPlan,
    repo: &RepoPlan,
    dumps: &[PathBuf],
    tags: &SetTags,
) -> Result<Pushed> {
    let layout = ctx.layout;
    let out = out_dir(layout)?;
    let mut binds = vec![
        Bind::rw(out.path(), "/out"),
        Bind::ro(layout.secrets(), format!("{SET_ROOT}/secrets")),
        Bind::ro(&plan.config_file, format!("{SET_ROOT}/config/masctl.toml")),
    ];
    let media = layout.data("synapse").join("media");
    if media.is_dir() {
        binds.push(Bind::ro(&media, format!("{SET_ROOT}/media")));
    }
    for d in dumps {
        let name = d.file_name().context("a dump file name")?.to_string_lossy().into_owned();
        binds.push(Bind::ro(d, format!("{SET_ROOT}/dumps/{name}")));
    }
    let tag_args: String = tags.to_tags().iter().map(|t| format!(" --tag '{t}'")).collect();
    let k = plan.keep;
    let script = format!(
        "r backup --host masctl --json --quiet{tag_args} {SET_ROOT} > /out/summary.json\n\
r forget --host masctl --tag {TAG} --keep-daily {} --keep-weekly {} --keep-monthly {} --prune --quiet\n\
echo \"masctl: pushed set {} to {}\"\n",
        k.daily, k.weekly, k.monthly, tags.set, repo.name
    );
    let mut spec = restic_job(layout, plan, repo, true, &script, binds)?;
    spec.cap_add = vec!["DAC_READ_SEARCH".into()];
    run_restic(ctx, &format!("pushing to {}", repo.name), repo, spec).await?;
    let text = std::fs::read_to_string(out.path().join("summary.json")).unwrap_or_default();
    parse_summary(&text, &repo.name, &tags.set)
}

/// masctl's snapshots in `repo`, oldest first.
pub async fn snapshots(ctx: &JobContext<'_>, plan: &BackupPlan, repo: &RepoPlan) -> Result<Vec<Snapshot>> {
    let out = out_dir(ctx.layout)?;
    let script = format!("r snapshots --json --tag {TAG} > /out/snapshots.json\n");
    let spec = restic_job(ctx.layout, plan, repo, false, &script, vec![Bind::rw(out.path(), "/out")])?;
    run_restic(ctx, &format!("listing {}", repo.name), repo, spec).await?;
    parse_snapshots(&std::fs::read_to_string(out.path().join("snapshots.json"))?)
}

/// Opens `repo` and reads its index: what `doctor` asks of every repository.
pub async fn check_open(ctx: &JobContext<'_>, plan: &BackupPlan, repo: &RepoPlan) -> Result<()> {
    let spec = restic_job(ctx.layout, plan, repo, false, "r snapshots --quiet > /dev/null\n", vec![])?;
    run_restic(ctx, &format!("opening {}", repo.name), repo, spec).await
}

/// Fetches `snapshot` whole into `target` (made fresh), every file checked
/// against the repository after it is written; returns the set's directory.
pub async fn fetch(
    ctx: &JobContext<'_>,
    plan: &BackupPlan,
    repo: &RepoPlan,
    snapshot: &Snapshot,
    target: &Path,
) -> Result<PathBuf> {
    if target.exists() {
        std::fs::remove_dir_all(target).with_context(|| format!("removing {}", target.display()))?;
    }
    std::fs::create_dir_all(target)?;
    std::fs::set_permissions(target, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let script = format!("r restore {} --target /restore --verify\n", snapshot.id);
    let mut spec = restic_job(ctx.layout, plan, repo, false, &script, vec![Bind::rw(target, "/restore")])?;
    spec.cap_add = ["CHOWN", "DAC_OVERRIDE", "FOWNER"].map(String::from).to_vec();
    run_restic(ctx, &format!("fetching {} from {}", snapshot.id, repo.name), repo, spec).await?;
    Ok(target.join(SET_ROOT.trim_start_matches('/')))
}

/// The repository `--from` names: its URL as written, or its place (1, 2, …).
pub fn find_repo<'a>(plan: &'a BackupPlan, from: &str) -> Result<&'a RepoPlan> {
    let by_place = from.parse::<usize>().ok().and_then(|i| plan.repositories.get(i.checked_sub(1)?));
    by_place.or_else(|| plan.repositories.iter().find(|r| r.name == from)).with_context(|| {
        let names: Vec<&str> = plan.repositories.iter().map(|r| r.name.as_str()).collect();
        format!("{from:?} is not a [[backup.repository]] of the current generation ({})", names.join(", "))
    })
}

/// The last successful push to each repository, kept beside the backups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPushes {
    /// repository → (unix seconds, snapshot id).
    pub repositories: std::collections::BTreeMap<String, LastPush>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPush {
    pub at: u64,
    pub snapshot: String,
    pub set: String,
}

fn last_path(layout: &Layout) -> PathBuf {
    layout.backups().join("offsite.json")
}

pub fn read_last(layout: &Layout) -> LastPushes {
    std::fs::read(last_path(layout)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

pub fn record(layout: &Layout, p: &Pushed) -> Result<()> {
    let mut last = read_last(layout);
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    last.repositories.insert(p.repository.clone(), LastPush { at, snapshot: p.snapshot.clone(), set: p.set.clone() });
    crate::fsutil::write_atomic(&last_path(layout), &serde_json::to_vec_pretty(&last)?, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> SetTags {
        SetTags {
            set: "20261207T100000Z-scheduled".into(),
            generation: 3,
            synapse_schema: Some(92),
            synapse_compat: Some(88),
            mas_migration: Some(20250101000000),
        }
    }

    #[test]
    fn tags_round_trip_and_foreign_snapshots_are_skipped() {
        let t = tags();
        assert_eq!(SetTags::from_tags(&t.to_tags()), Some(t.clone()));
        let bare = SetTags { synapse_schema: None, synapse_compat: None, mas_migration: None, ..t };
        assert_eq!(SetTags::from_tags(&bare.to_tags()), Some(bare));
        assert_eq!(SetTags::from_tags(&["set=x".into(), "generation=1".into()]), None, "no masctl tag");
        assert_eq!(SetTags::from_tags(&["masctl".into(), "generation=1".into()]), None, "no set");
    }

    #[test]
    fn snapshots_parse_sort_and_pick() {
        let json = r#"[
 {"id":"bbbb2222","time":"2026-12-07T10:00:00Z","tags":["masctl","set=s2","generation=4"],"paths":["/masctl"]},
 {"id":"aaaa1111","time":"2026-12-06T10:00:00Z","tags":["masctl","set=s1","generation=3","synapse-schema=92"]},
 {"id":"cccc3333","time":"2026-12-08T10:00:00Z","tags":["someone-else"]},
 {"id":"abcd4444","time":"2026-12-05T10:00:00Z"}
]"#;
        let s = parse_snapshots(json).unwrap();
        assert_eq!(s.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["aaaa1111", "bbbb2222"]);
        assert_eq!(s[0].tags.synapse_schema, Some(92));
        let cases: [(Option<&str>, Result<&str, &str>); 5] = [
            (None, Ok("bbbb2222")),
            (Some("aaaa"), Ok("aaaa1111")),
            (Some("s2"), Ok("bbbb2222")),
            (Some("cccc"), Err("no snapshot")),
            (Some(""), Err("2 snapshots")),
        ];
        for (wanted, want) in cases {
            match (pick(&s, wanted, "/r"), want) {
                (Ok(got), Ok(id)) => assert_eq!(got.id, id),
                (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{wanted:?}: {e}"),
                (got, want) => panic!("{wanted:?}: {:?} vs {want:?}", got.map(|g| &g.id)),
            }
        }
        assert!(pick(&[], None, "/r").unwrap_err().to_string().contains("no masctl snapshot"));
    }

    #[test]
    fn summary_is_found_among_other_lines() {
        let out = "{\"message_type\":\"status\",\"percent_done\":0.5}\n\
{\"message_type\":\"summary\",\"files_new\":3,\"files_changed\":0,\"files_unmodified\":7,\"data_added\":1234,\
\"total_bytes_processed\":99,\"snapshot_id\":\"f00d\"}\n";
        let p = parse_summary(out, "/r", "s").unwrap();
        assert_eq!((p.snapshot.as_str(), p.added_bytes, p.files_new, p.files_unmodified), ("f00d", 1234, 3, 7));
        assert!(parse_summary("nothing\n", "/r", "s").is_err());
    }

    #[test]
    fn open_script_creates_only_when_asked() {
        let strict = open_script("/r", false);
        assert!(!strict.contains("r init") && strict.contains("exit 10"), "{strict}");
        assert!(open_script("/r", true).contains("r init"));
        assert!(strict.contains("12) echo \"masctl: wrong password"), "{strict}");
    }
}
