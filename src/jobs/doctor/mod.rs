//! `masctl doctor`: units, containers and routes as masctl sees them, plus
//! `mas-cli doctor`'s own verdict.

mod backups;
mod client_fetch;
mod client_path;
mod finding;
mod providers;
mod smtp;

use std::time::Duration;

use anyhow::Result;

pub use finding::{Finding, Level};

use super::{JobContext, JobSpec};
use crate::docker::Engine;
use crate::generation::layout::Layout;
use crate::service::Service;
use crate::spec::read_spec;
use crate::systemd::ActiveState;

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
        match crate::supervision::health::service_state(&engine, &spec).await? {
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
    findings.extend(proxy_routes(&ctx, &engine).await?);
    findings.extend(client_path(&ctx, &engine).await?);
    findings.extend(database(&ctx).await?);
    findings.extend(smtp(&ctx).await?);
    findings.extend(upstream_providers(&ctx).await?);
    findings.extend(backups::findings(&ctx).await?);
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

/// Routes through the proxy, as clients see them.
async fn proxy_routes(ctx: &JobContext<'_>, engine: &Engine) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut note = |level: Level, message: String| findings.push(Finding { level, message });
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
    Ok(findings)
}

/// The client's path over the public hostname (see `client_path`).
async fn client_path(ctx: &JobContext<'_>, engine: &Engine) -> Result<Vec<Finding>> {
    let m = &ctx.manifest;
    let expect = client_path::Expect::from_generation(&m.server_name, &m.config, &m.mas);
    let edge = match m.services.get(&Service::Proxy) {
        Some(p) => {
            let spec = read_spec(p)?;
            engine.container_ip(&spec.container, &spec.network).await?.and_then(|ip| ip.parse().ok())
        }
        None => None,
    };
    tokio::task::spawn_blocking(move || client_fetch::walk(&expect, edge)).await?
}

/// MAS's SMTP server, from MAS's network with its mounts and environment (see `smtp`).
async fn smtp(ctx: &JobContext<'_>) -> Result<Vec<Finding>> {
    if !ctx.mas_enabled() {
        return Ok(vec![]);
    }
    let Some(target) = smtp::Target::from_config(&ctx.manifest.config) else { return Ok(vec![]) };
    let (Some(python), mas) = (ctx.manifest.images.get(&Service::Synapse), ctx.mas_spec()?) else { return Ok(vec![]) };
    let mut cmd = vec!["-c".to_string(), smtp::PROBE.to_string()];
    cmd.extend(target.args());
    let mut job = crate::docker::OneShot::like(&mas, cmd, Some(ctx.manifest.instance.clone()));
    job.image = python.clone();
    job.entrypoint = Some(vec!["python3".into()]);
    let (_, out) = ctx.run("masctl doctor: SMTP", JobSpec::new("doctor-smtp", job)).await?;
    Ok(smtp::findings(&target, &out))
}

/// MAS's upstream OAuth 2.0 providers, from MAS's network with its mounts and
/// environment (see `providers`).
async fn upstream_providers(ctx: &JobContext<'_>) -> Result<Vec<Finding>> {
    if !ctx.mas_enabled() {
        return Ok(vec![]);
    }
    let list = providers::from_config(&ctx.manifest.config);
    let (Some(python), false) = (ctx.manifest.images.get(&Service::Synapse), list.is_empty()) else {
        return Ok(vec![]);
    };
    let mut cmd = vec!["-c".to_string(), providers::PROBE.to_string()];
    cmd.extend(providers::args(&list));
    let mut job = crate::docker::OneShot::like(&ctx.mas_spec()?, cmd, Some(ctx.manifest.instance.clone()));
    job.image = python.clone();
    job.entrypoint = Some(vec!["python3".into()]);
    let (_, out) = ctx.run("masctl doctor: upstream providers", JobSpec::new("doctor-oidc", job)).await?;
    Ok(providers::findings(&list, &out))
}

/// The oldest Postgres the Synapse masctl builds runs on (its engine refuses older).
const SYNAPSE_MIN_POSTGRES: u32 = 14;

/// Synapse's database as Synapse checks it at start-up, and whether masctl's
/// pg_dump can back its server up: a job in masctl's Postgres image, as the
/// superuser on the bundled server or as Synapse's own role on an external one.
async fn database(ctx: &JobContext<'_>) -> Result<Vec<Finding>> {
    let Some(image) = ctx.manifest.images.get(&Service::Postgres) else { return Ok(vec![]) };
    let (host, port, user, db, pgpass) = match &ctx.manifest.external_postgres {
        Some(e) => {
            let Some(l) = e.databases.get(&crate::service::Database::Synapse) else { return Ok(vec![]) };
            (e.host.clone(), e.port, l.user.clone(), l.database.clone(), crate::secrets::EXTERNAL_PGPASS)
        }
        None => (
            Service::Postgres.container(&ctx.manifest.instance),
            5432,
            "postgres".into(),
            crate::service::Database::Synapse.name().into(),
            "postgres-superuser-pgpass",
        ),
    };
    let query = "SELECT current_setting('server_version_num'), pg_encoding_to_char(encoding), datcollate, datctype \
FROM pg_database WHERE datname = current_database()";
    let script = format!(
        "echo \"{TOOLS_MARK}$(pg_dump --version)\"\n\
r=$(psql -h {host} -p {port} -U {user} -d {db} -tA -F '|' -c \"{query}\") || exit 1\n\
echo \"{DB_MARK}$r\"\n"
    );
    let job = crate::docker::OneShot {
        image: image.clone(),
        user: Service::Postgres.user(),
        entrypoint: Some(vec!["sh".into(), "-c".into(), script]),
        cmd: vec![],
        binds: vec![crate::spec::Bind::secret(ctx.layout.secret(pgpass), "pgpass")],
        network: Some(ctx.manifest.instance.clone()),
        env: vec!["PGPASSFILE=/run/secrets/pgpass".into()],
    };
    let (_, out) = ctx.run("masctl doctor: database", JobSpec::new("doctor-db", job)).await?;
    Ok(database_findings(&out, &format!("{host}:{port}")))
}

const TOOLS_MARK: &str = "masctl-tools: ";
const DB_MARK: &str = "masctl-db: ";

/// The major version in `pg_dump (PostgreSQL) 15.10 (Debian …)`.
fn tools_major(line: &str) -> Option<u32> {
    let v = line.split("(PostgreSQL)").nth(1)?.split_whitespace().next()?;
    v.split('.').next()?.parse().ok()
}

/// Findings from the database job's output (`server` names the server in them).
pub fn database_findings(out: &str, server: &str) -> Vec<Finding> {
    let mut f = Vec::new();
    let mut note = |level: Level, message: String| f.push(Finding { level, message });
    let tools = out.lines().find_map(|l| l.strip_prefix(TOOLS_MARK)).and_then(tools_major);
    let row = out.lines().find_map(|l| l.strip_prefix(DB_MARK)).map(|r| r.split('|').collect::<Vec<_>>());
    let Some([version, encoding, collate, ctype]) = row.as_deref() else {
        note(Level::Error, format!("Synapse's database on {server} does not answer (see the output above)"));
        return f;
    };
    let Ok(num) = version.trim().parse::<u32>() else {
        note(Level::Error, format!("Postgres on {server} reports no version ({version:?})"));
        return f;
    };
    let major = num / 10_000;
    if major < SYNAPSE_MIN_POSTGRES {
        note(
            Level::Error,
            format!("Postgres {major} on {server} is older than Synapse needs ({SYNAPSE_MIN_POSTGRES})"),
        );
    } else {
        note(Level::Ok, format!("Postgres {major} on {server} is one Synapse supports"));
    }
    let wrong: Vec<String> =
        [("ENCODING", *encoding, "UTF8"), ("LC_COLLATE", *collate, "C"), ("LC_CTYPE", *ctype, "C")]
            .iter()
            .filter(|(_, got, want)| got.trim() != *want)
            .map(|(what, got, want)| format!("{what} is {:?}, not {want}", got.trim()))
            .collect();
    if wrong.is_empty() {
        note(Level::Ok, "Synapse's database is UTF8 with C collation and ctype, as Synapse requires".into());
    } else {
        note(
            Level::Error,
            format!(
                "Synapse's database: {}; Synapse refuses it — recreate it with ENCODING 'UTF8' LC_COLLATE 'C' \
LC_CTYPE 'C' TEMPLATE template0",
                wrong.join(", ")
            ),
        );
    }
    match tools {
        Some(t) if t < major => note(
            Level::Error,
            format!(
                "pg_dump in masctl's Postgres image is version {t}; it cannot back up a Postgres {major} server \
(images.postgres must be {major} or newer)"
            ),
        ),
        Some(_) => note(Level::Ok, "masctl's pg_dump can back this server up".into()),
        None => note(Level::Warning, "the version of masctl's pg_dump is unknown".into()),
    }
    f
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
    fn database_table() {
        let tools = "masctl-tools: pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)\n";
        // (job output, the levels found, a word of the first non-ok finding)
        let cases: [(String, Vec<Level>, &str); 6] = [
            (format!("{tools}masctl-db: 150010|UTF8|C|C\n"), vec![Level::Ok, Level::Ok, Level::Ok], ""),
            (format!("{tools}masctl-db: 130004|UTF8|C|C\n"), vec![Level::Error, Level::Ok, Level::Ok], "older"),
            (
                format!("{tools}masctl-db: 150010|UTF8|en_US.utf8|C\n"),
                vec![Level::Ok, Level::Error, Level::Ok],
                "LC_COLLATE is \"en_US.utf8\"",
            ),
            (format!("{tools}masctl-db: 150010|SQL_ASCII|C|C\n"), vec![Level::Ok, Level::Error, Level::Ok], "ENCODING"),
            (
                format!("{tools}masctl-db: 170002|UTF8|C|C\n"),
                vec![Level::Ok, Level::Ok, Level::Error],
                "cannot back up",
            ),
            (format!("{tools}psql: error: connection refused\n"), vec![Level::Error], "does not answer"),
        ];
        for (out, levels, word) in cases {
            let f = database_findings(&out, "db:5432");
            assert_eq!(f.iter().map(|f| f.level).collect::<Vec<_>>(), levels, "{out}");
            if let Some(bad) = f.iter().find(|f| f.level != Level::Ok) {
                assert!(bad.message.contains(word), "{}", bad.message);
            }
        }
    }
}
