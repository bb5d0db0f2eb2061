//! `masctl syn2mas | register-user | doctor | backup | backups | mas-cli`: the risky
//! one-off jobs of a MAS deployment, each as a transient systemd unit.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::activate::read_spec;
use crate::cli::{Command, Global, Syn2masCommand};
use crate::docker::Engine;
use crate::docker::OneShot;
use crate::eval::{self, Manifest, unit_name};
use crate::generations::{self, Generations};
use crate::jobs::{self, JobSpec, backup};
use crate::layout::Layout;
use crate::secrets::SYNAPSE_UID;
use crate::spec::ServiceSpec;
use crate::systemd::Systemd;
use crate::ui;

pub async fn run(g: &Global, cmd: Command) -> Result<()> {
    let layout = super::stack::layout_for(g)?;
    match cmd {
        Command::Backups { json } => backups(&layout, json),
        Command::Backup => {
            let _lock = generations::lock(&layout, "backup")?;
            let ctx = Ctx::load(&layout).await?;
            for f in backup::run(&layout, &ctx.systemd, &ctx.manifest, "manual").await? {
                println!("{}", f.display());
            }
            Ok(())
        }
        Command::Syn2mas(sub) => {
            let _lock = generations::lock(&layout, "syn2mas")?;
            syn2mas(&layout, sub).await
        }
        Command::RegisterUser { name, admin, emails, password_file } => {
            register_user(&layout, &name, admin, &emails, password_file.as_deref()).await
        }
        Command::Doctor { json } => doctor(&layout, json).await,
        Command::MasCli { args } => {
            let ctx = Ctx::load(&layout).await?;
            let mas = ctx.mas_spec()?;
            let (code, _) =
                jobs::run(&layout, &ctx.systemd, "masctl mas-cli", JobSpec::new("mas-cli", mas_job(&mas, &ctx, &args)))
                    .await?;
            if code != 0 {
                bail!("mas-cli {} exited with {code}", args.join(" "));
            }
            Ok(())
        }
        _ => unreachable!("dispatched in commands::run"),
    }
}

/// The current generation and the edges jobs need.
struct Ctx {
    manifest: Manifest,
    systemd: Systemd,
    number: u32,
}

impl Ctx {
    async fn load(layout: &Layout) -> Result<Ctx> {
        let current =
            Generations::new(layout).current()?.context("nothing has been switched to yet: run `masctl switch`")?;
        Ok(Ctx { manifest: current.manifest()?, systemd: Systemd::connect().await?, number: current.number })
    }

    fn spec(&self, service: &str) -> Result<ServiceSpec> {
        let path = self
            .manifest
            .services
            .get(service)
            .with_context(|| format!("generation {} runs no {service}", self.number))?;
        read_spec(path)
    }

    fn mas_spec(&self) -> Result<ServiceSpec> {
        if !self.mas_enabled() {
            bail!("generation {} does not run MAS: set [mas] enabled = true and `masctl switch`", self.number);
        }
        self.spec("mas")
    }

    fn mas_enabled(&self) -> bool {
        self.manifest.mas.enabled
    }

    fn migration_in_progress(&self) -> bool {
        self.manifest.mas.enabled && !self.manifest.mas.delegating
    }

    /// Waits (bounded) until the units are active; errors naming the first that is not.
    async fn require_active(&self, services: &[&str], limit: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        for s in services {
            let unit = unit_name(s);
            loop {
                let st = self.systemd.unit_state(&unit).await?;
                if st.active_state == "active" {
                    break;
                }
                if st.active_state != "activating" || tokio::time::Instant::now() > deadline {
                    bail!("{unit} is {} ({}): start it with `masctl switch` first", st.active_state, st.sub_state);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }
}

/// A job running mas-cli with MAS's own image, mounts and network.
fn mas_job(mas: &ServiceSpec, ctx: &Ctx, args: &[String]) -> OneShot {
    let mut cmd = eval::mas_cli(&[]);
    cmd.extend(args.iter().cloned());
    OneShot::like(mas, cmd, Some(ctx.manifest.instance.clone()))
}

fn backups(layout: &Layout, json: bool) -> Result<()> {
    let list = backup::list(&layout.backups())?;
    if json {
        let rows: Vec<_> = list.iter().map(|(n, s)| serde_json::json!({"file": n, "size": s})).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if list.is_empty() {
        println!("no backups in {}", layout.backups().display());
    } else {
        for (n, s) in list {
            println!("{:>10}  {n}", ui::human_bytes(s));
        }
    }
    Ok(())
}

/// Where the syn2mas job finds Synapse's database password (a pgpass file).
const SYN2MAS_PGPASS: &str = "/run/secrets/synapse-pgpass";

/// syn2mas connects to Synapse's database with `database.args.{host,port,user,
/// password,dbname}` only: it ignores Synapse's `passfile`. Its driver (sqlx) looks
/// a password up in a pgpass file once, at start-up, from `PGPASSFILE` and matches
/// the line against `PGUSER` — so the password reaches it through the environment
/// as a path, never as a value.
pub fn syn2mas_env() -> Vec<String> {
    vec![format!("PGPASSFILE={SYN2MAS_PGPASS}"), "PGUSER=synapse".to_string()]
}

/// Words for syn2mas's exit codes.
pub fn explain_syn2mas(code: i32) -> &'static str {
    match code {
        0 => "no problems found",
        10 => "syn2mas found errors that block the migration (listed above); fix them and run the check again",
        11 => "syn2mas found only warnings (listed above); review them — they do not block the migration",
        _ => "syn2mas failed (see its output above)",
    }
}

async fn syn2mas(layout: &Layout, sub: Syn2masCommand) -> Result<()> {
    let ctx = Ctx::load(layout).await?;
    if !ctx.mas_enabled() || !ctx.migration_in_progress() {
        bail!(
            "syn2mas needs the current generation ({}) to run MAS with migration_in_progress = true: set [mas] enabled = true \
and migration_in_progress = true, then `masctl switch`",
            ctx.number
        );
    }
    let mas = ctx.mas_spec()?;
    let mut job = mas_job(&mas, &ctx, &[]);
    job.binds.push(format!("{}:{SYN2MAS_PGPASS}:ro", layout.secret("mas-synapse-pgpass").display()));
    job.env.extend(syn2mas_env());
    let pre_mas = "/etc/mas/synapse-pre-mas.yaml".to_string();
    let args = |rest: &[&str]| -> Vec<String> {
        let mut v = vec!["syn2mas".to_string(), "--synapse-config".into(), pre_mas.clone()];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    };
    match sub {
        Syn2masCommand::Check => {
            job.cmd.extend(args(&["check"]));
            let (code, _) =
                jobs::run(layout, &ctx.systemd, "masctl syn2mas check", JobSpec::new("syn2mas-check", job)).await?;
            match code {
                0 => ui::step(explain_syn2mas(0)),
                11 => ui::warn(explain_syn2mas(11)),
                c => bail!("{} (exit {c})", explain_syn2mas(c)),
            }
            Ok(())
        }
        Syn2masCommand::Migrate { dry_run: true } => {
            job.cmd.extend(args(&["migrate", "--dry-run"]));
            let (code, _) = jobs::run(
                layout,
                &ctx.systemd,
                "masctl syn2mas migrate --dry-run",
                JobSpec::new("syn2mas-dry-run", job),
            )
            .await?;
            if code != 0 {
                bail!("the dry run failed: {} (exit {code})", explain_syn2mas(code));
            }
            ui::step("dry run complete: MAS imported Synapse's users and discarded them again; Synapse kept running");
            Ok(())
        }
        Syn2masCommand::Migrate { dry_run: false } => {
            ui::step("backing up the databases first");
            let files = backup::run(layout, &ctx.systemd, &ctx.manifest, "pre-syn2mas")
                .await
                .context("no backup, no migration")?;
            for f in &files {
                ui::step(format!("verified backup {}", f.display()));
            }
            let synapse = unit_name("synapse");
            ui::step(format!("stopping {synapse} and migrating"));
            job.cmd.extend(args(&["migrate"]));
            // The unit stops Synapse first and starts it again if the migration
            // fails, so a dropped session cannot leave Synapse down.
            let mut spec = JobSpec::new("syn2mas-migrate", job);
            spec.stop_before.push(synapse.clone());
            spec.start_on_failure.push(synapse.clone());
            let outcome = jobs::run(layout, &ctx.systemd, "masctl syn2mas migrate", spec).await;
            match outcome {
                Ok((0, _)) => {
                    ui::step("migration complete; Synapse stays stopped until MAS takes over logins.");
                    println!(
                        "next: set migration_in_progress = false under [mas] in your masctl.toml, then run `masctl switch`"
                    );
                    Ok(())
                }
                other => {
                    let state = ctx.systemd.unit_state(&synapse).await.map(|s| s.active_state).unwrap_or_default();
                    let restarted = state == "active" || state == "activating";
                    let why = match other {
                        Ok((code, _)) => format!("{} (exit {code})", explain_syn2mas(code)),
                        Err(e) => format!("{e:#}"),
                    };
                    bail!(
                        "syn2mas migrate failed: {why}; {synapse} {}; backups: {}",
                        if restarted { "is running again" } else { "did NOT start again — check `masctl status`" },
                        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                    )
                }
            }
        }
    }
}

/// The password: from a file, a hidden prompt on a terminal, or stdin.
fn read_password(file: Option<&std::path::Path>) -> Result<String> {
    use std::io::{IsTerminal, Read};
    let pw = match file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        None if std::io::stdin().is_terminal() => {
            let a = rpassword::prompt_password("Password: ")?;
            let b = rpassword::prompt_password("Again: ")?;
            if a != b {
                bail!("the passwords differ");
            }
            a
        }
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
    };
    let pw = pw.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        bail!("empty password");
    }
    Ok(pw)
}

/// `@alice:example.com` → `alice`.
pub fn localpart(name: &str) -> &str {
    let n = name.strip_prefix('@').unwrap_or(name);
    n.split(':').next().unwrap_or(n)
}

async fn register_user(
    layout: &Layout,
    name: &str,
    admin: bool,
    emails: &[String],
    password_file: Option<&std::path::Path>,
) -> Result<()> {
    let user = localpart(name);
    if user.is_empty() || !user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/".contains(c)) {
        bail!("{name:?} is not a valid user name (lower-case letters, digits and ._=-/)");
    }
    let ctx = Ctx::load(layout).await?;
    let delegating = ctx.manifest.mas.delegating;
    // Refuse before asking for a password when the services are down.
    let needed: &[&str] = if delegating { &["synapse", "mas"] } else { &["synapse"] };
    ctx.require_active(needed, Duration::from_secs(60)).await?;
    let password = read_password(password_file)?;
    let (code, out) = if delegating {
        let mas = ctx.mas_spec()?;
        let mut args: Vec<String> = ["manage", "register-user", "-y", user].iter().map(|s| s.to_string()).collect();
        // mas-cli takes the password only as an argument: it reaches that one
        // short-lived container's command line through a file the job deletes once
        // read; it is never in the job spec, the unit or masctl's own command line.
        args.extend(["-p".to_string(), jobs::SECRET_PLACEHOLDER.to_string()]);
        for e in emails {
            args.extend(["-e".to_string(), e.clone()]);
        }
        args.push(if admin { "-a".into() } else { "-A".into() });
        let mut spec = JobSpec::new("register-user", mas_job(&mas, &ctx, &args));
        spec.secret_file = Some(jobs::secret_file(layout, &password)?.display().to_string());
        jobs::run(layout, &ctx.systemd, "masctl register-user", spec).await?
    } else {
        if !emails.is_empty() {
            bail!("--email needs MAS; Synapse's shared-secret registration cannot set emails");
        }
        let syn = ctx.spec("synapse")?;
        let dir = tempfile::Builder::new().prefix(".register-").tempdir_in(layout.root())?;
        let pw_path = dir.path().join("password");
        crate::fsutil::write_atomic(&pw_path, password.as_bytes(), 0o600)?;
        std::os::unix::fs::chown(&pw_path, Some(SYNAPSE_UID), Some(SYNAPSE_UID))?;
        std::os::unix::fs::chown(dir.path(), Some(SYNAPSE_UID), Some(SYNAPSE_UID))?;
        let job = OneShot {
            image: syn.image.clone(),
            user: syn.user.clone(),
            entrypoint: Some(vec!["python3".into(), "-m".into(), "synapse._scripts.register_new_matrix_user".into()]),
            cmd: vec![
                "-c".into(),
                "/etc/synapse/homeserver.yaml".into(),
                "-u".into(),
                user.into(),
                "--password-file".into(),
                "/run/job/password".into(),
                if admin { "-a".into() } else { "--no-admin".into() },
                format!("http://{}:8008", syn.container),
            ],
            binds: syn.binds.iter().cloned().chain([format!("{}:/run/job:ro", dir.path().display())]).collect(),
            network: Some(ctx.manifest.instance.clone()),
            env: vec![],
        };
        jobs::run(layout, &ctx.systemd, "masctl register-user", JobSpec::new("register-user", job)).await?
    };
    if code == 0 {
        ui::step(format!("registered @{user}:{}", ctx.manifest.server_name));
        return Ok(());
    }
    if out.contains("User already exists") || out.contains("User ID already taken") {
        bail!("@{user}:{} already exists; nothing was changed", ctx.manifest.server_name);
    }
    if out.contains("too weak") {
        bail!("MAS refused the password as too weak; choose a longer one");
    }
    if out.contains("not available on homeserver") {
        bail!("Synapse refused the name {user:?} (taken, reserved, or Synapse is not reachable with MAS's secret)");
    }
    bail!("registering {user} failed (exit {code}); see the output above")
}

/// One line of a doctor report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub level: &'static str,
    pub message: String,
}

/// `mas-cli doctor` always exits 0: its verdict is in the ✅/⚠️/❌ lines.
pub fn parse_doctor(output: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for line in output.lines() {
        for (mark, level) in [("❌", "error"), ("⚠️", "warning"), ("✅", "ok")] {
            if let Some(i) = line.find(mark) {
                out.push(Finding { level, message: line[i + mark.len()..].trim().to_string() });
                break;
            }
        }
    }
    out
}

async fn doctor(layout: &Layout, json: bool) -> Result<()> {
    let ctx = Ctx::load(layout).await?;
    let engine = Engine::connect().await?;
    let mut findings = Vec::new();
    let mut note = |level: &'static str, message: String| findings.push(Finding { level, message });
    for (service, spec_path) in &ctx.manifest.services {
        let unit = unit_name(service);
        let st = ctx.systemd.unit_state(&unit).await?;
        if st.active_state == "active" {
            note("ok", format!("{unit} is active"));
        } else {
            note("error", format!("{unit} is {} ({})", st.active_state, st.sub_state));
        }
        let spec = read_spec(spec_path)?;
        match engine.container_state(&spec.container).await? {
            Some(c) if c.serves(&spec) => {
                note("ok", format!("{} runs the generation's image, healthy", spec.container))
            }
            Some(c) if c.running && c.image != spec.image => {
                note("error", format!("{} runs {}, not {}", spec.container, c.image, spec.image))
            }
            Some(c) if c.running => note("error", format!("{} is {}", spec.container, c.health)),
            _ => note("error", format!("{} is not running", spec.container)),
        }
    }
    // Routes through the proxy, as clients see them.
    if let Some(proxy) = ctx.manifest.services.get("proxy") {
        let spec = read_spec(proxy)?;
        let prefix = ctx.manifest.mas.path_prefix.clone();
        match engine.container_ip(&spec.container, &spec.network).await? {
            Some(ip) => {
                for (what, path) in [
                    ("Synapse", "/_matrix/client/versions".to_string()),
                    ("MAS", format!("{prefix}/.well-known/openid-configuration")),
                ] {
                    let ok = crate::docker::http_ok(format!("http://{ip}:8080{path}"), Duration::from_secs(5)).await;
                    if ok {
                        note("ok", format!("{what} answers through the proxy ({path})"));
                    } else {
                        note("error", format!("{what} does not answer through the proxy ({path})"));
                    }
                }
            }
            None => note("error", "the proxy has no address".into()),
        }
    }
    if ctx.mas_enabled() {
        let mas = ctx.mas_spec()?;
        let (_, out) = jobs::run(
            layout,
            &ctx.systemd,
            "masctl doctor",
            JobSpec::new("doctor", mas_job(&mas, &ctx, &["doctor".to_string()])),
        )
        .await?;
        findings.extend(
            parse_doctor(&out).into_iter().map(|f| Finding { message: format!("mas-cli: {}", f.message), ..f }),
        );
    }
    let errors = findings.iter().filter(|f| f.level == "error").count();
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let mark = match f.level {
                "ok" => "✅",
                "warning" => "⚠️ ",
                _ => "❌",
            };
            println!("{mark} {}", f.message);
        }
    }
    if errors > 0 {
        bail!("doctor found {errors} problem(s)");
    }
    Ok(())
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

    #[test]
    fn localpart_table() {
        for (i, want) in [("alice", "alice"), ("@alice:example.com", "alice"), ("@bob", "bob")] {
            assert_eq!(localpart(i), want);
        }
    }

    #[test]
    fn syn2mas_finds_synapses_password_through_the_environment() {
        // Synapse's config names only `passfile`, which syn2mas ignores: without
        // these the real mas-cli fails with "password authentication failed".
        let env = syn2mas_env();
        assert!(env.contains(&format!("PGPASSFILE={SYN2MAS_PGPASS}")), "{env:?}");
        assert!(env.contains(&"PGUSER=synapse".to_string()), "{env:?}");
        assert!(env.iter().all(|e| !e.starts_with("PGPASSWORD")), "a path, never the password itself");
    }

    #[test]
    fn syn2mas_codes_are_explained() {
        assert!(explain_syn2mas(10).contains("block"));
        assert!(explain_syn2mas(11).contains("warnings"));
        assert!(explain_syn2mas(1).contains("failed"));
    }
}
