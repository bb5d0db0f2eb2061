//! The export's [`Input`] from the config: masctl's own renderers for
//! `homeserver.yaml` and MAS `config.yaml`, and the secrets as files under `secrets/`.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};

use crate::config::{Config, ExternalDatabase, TlsMode};
use crate::eval;
use crate::export::ess::input::{Appservice, Database, DbSchema, DeclaredUser, Input, Issuer, PostgresTarget, Tls};
use crate::generation::layout::Layout;

/// What the user chose on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: std::path::PathBuf,
    pub release: String,
    pub namespace: String,
    pub external_postgres: bool,
    pub cert_issuer: Option<String>,
    pub mas_host: Option<String>,
    /// A checkout of the chart whose values.schema.json the values must pass.
    pub chart: Option<std::path::PathBuf>,
}

/// `cluster:NAME` → a ClusterIssuer, `NAME` → an Issuer in the namespace.
pub fn issuer(s: &str) -> Issuer {
    match s.strip_prefix("cluster:") {
        Some(n) => Issuer::Cluster(n.to_string()),
        None => Issuer::Namespaced(s.to_string()),
    }
}

pub fn build(c: &Config, layout: &Layout, o: &Options, schema: Option<DbSchema>, synapse: &str) -> Result<Input> {
    let keys = |t: &toml::Table| t.keys().cloned().collect::<Vec<_>>();
    let mut secrets = read_secrets(layout)?;
    secrets.extend(user_files(c)?);
    let synapse_secret_files = if c.imported_password_config() {
        let name = crate::secrets::SYNAPSE_PASSWORD_CONFIG;
        secrets.get(name).map(|t| vec![(name.to_string(), t.clone())]).unwrap_or_default()
    } else {
        vec![]
    };
    let w = &c.synapse.workers;
    Ok(Input {
        release: o.release.clone(),
        namespace: o.namespace.clone(),
        homeserver: eval::synapse::homeserver(c)?,
        synapse_extra_keys: keys(c.synapse.extra.get_ref()),
        synapse_secret_files,
        mas_config: if c.mas_enabled() { Some(eval::mas::config(c)?) } else { None },
        mas_extra_keys: keys(c.mas.extra.get_ref()),
        mas_migration_in_progress: *c.mas.migration_in_progress.get_ref(),
        matrix_host: c.matrix_hostname(),
        mas_host: o.mas_host.clone(),
        tls: tls(c, o)?,
        workers: if c.workers_on() {
            crate::service::WorkerKind::ALL
                .iter()
                .map(|k| (k.name().to_string(), w.count(*k)))
                .filter(|(_, n)| *n > 0)
                .collect()
        } else {
            vec![]
        },
        worker_extra_kinds: w.extra.keys().map(|k| k.name().to_string()).collect(),
        log_level: c.synapse.log_level.get_ref().clone(),
        postgres: postgres(c, o)?,
        secrets,
        synapse_schema: schema,
        synapse_version: synapse.to_string(),
        appservices: appservices(c, layout)?,
        declared_users: c
            .users
            .iter()
            .map(|u| DeclaredUser {
                localpart: u.localpart.get_ref().clone(),
                admin: u.admin,
                emails: u.emails.iter().map(|e| e.get_ref().clone()).collect(),
            })
            .collect(),
    })
}

/// The registrations as Synapse loads them: the bridges' as read with the config
/// (the bytes a switch copies into `secrets/appservices/`), then the double
/// puppet's from there (a switch writes it).
fn appservices(c: &Config, layout: &Layout) -> Result<Vec<Appservice>> {
    let mut out: Vec<Appservice> = c
        .registrations
        .iter()
        .zip(&c.synapse.appservices)
        .map(|(l, a)| Appservice {
            id: l.id().to_string(),
            text: l.text.clone(),
            url: l.reg.url.clone(),
            network: a.network.as_ref().map(|n| n.get_ref().clone()),
            builtin: false,
        })
        .collect();
    if c.synapse.double_puppet.enabled {
        let dp = crate::appservice::double_puppet::FILE;
        let path = layout.secret(&format!("appservices/{dp}"));
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (run `masctl switch` once with [synapse.double_puppet])", path.display())
        })?;
        out.push(Appservice {
            id: crate::appservice::double_puppet::ID.to_string(),
            text,
            url: None,
            network: None,
            builtin: true,
        });
    }
    Ok(out)
}

fn tls(c: &Config, o: &Options) -> Result<Tls> {
    Ok(match c.tls() {
        TlsMode::Plain => Tls::Plain,
        TlsMode::Acme => Tls::Acme {
            issuer: o.cert_issuer.as_deref().map(issuer),
            email: c.edge.acme_email.as_ref().map(|e| e.get_ref().clone()),
            directory: c.edge.acme_directory.get_ref().clone(),
        },
        TlsMode::Files => {
            let read = |f: &Option<toml::Spanned<String>>, what: &str| -> Result<String> {
                let f = f.as_ref().with_context(|| format!("edge.tls = \"files\" needs edge.{what}"))?;
                std::fs::read_to_string(f.get_ref()).with_context(|| format!("edge.{what} {}", f.get_ref()))
            };
            Tls::Files { certificate: read(&c.edge.certificate, "certificate")?, key: read(&c.edge.key, "key")? }
        }
    })
}

fn postgres(c: &Config, o: &Options) -> Result<PostgresTarget> {
    if !o.external_postgres {
        if c.postgres_external().is_some() {
            bail!(
                "masctl.toml has [postgres.external]: export with --postgres external (the chart reuses that server)"
            );
        }
        return Ok(PostgresTarget::Bundled);
    }
    let Some(e) = c.postgres_external() else {
        bail!("{}", crate::export::ess::Refusal::NoExternalPostgres);
    };
    let db = |d: &ExternalDatabase| -> Result<Database> {
        let file = d.password_file.get_ref();
        let password = crate::config::read_password(std::path::Path::new(file))
            .map_err(|why| anyhow::anyhow!("postgres password file {file} {why}"))?;
        Ok(Database {
            host: e.host.get_ref().clone(),
            port: *e.port.get_ref(),
            database: d.database.get_ref().clone(),
            user: d.user.get_ref().clone(),
            password,
        })
    };
    Ok(PostgresTarget::External {
        synapse: db(e.synapse.get_ref())?,
        mas: e.mas.as_ref().map(|m| db(m.get_ref())).transpose()?,
    })
}

/// The credentials MAS reads from the user's own files, under the names its
/// config gives them in `/run/secrets/` (see `eval::mas::secret_binds`).
fn user_files(c: &Config) -> Result<BTreeMap<String, String>> {
    let mut files: Vec<(String, &str)> = Vec::new();
    if c.mas_enabled() {
        if c.mas.email.username.is_some()
            && let Some(f) = &c.mas.email.password_file
        {
            files.push(("mas-smtp-password".into(), f.get_ref()));
        }
        for (i, p) in c.mas.upstream_oauth2.providers.iter().enumerate() {
            if let Some(f) = &p.client_secret_file {
                files.push((format!("mas-provider-{i}"), f.get_ref()));
            }
        }
    }
    files
        .into_iter()
        .map(|(name, f)| Ok((name, std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?)))
        .collect()
}

/// Every file under `secrets/` by name (read as root: they are 0600).
fn read_secrets(layout: &Layout) -> Result<BTreeMap<String, String>> {
    let dir = layout.secrets();
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        if e.file_type()?.is_file()
            && let Ok(text) = std::fs::read_to_string(e.path())
        {
            out.insert(e.file_name().to_string_lossy().into_owned(), text);
        }
    }
    Ok(out)
}
