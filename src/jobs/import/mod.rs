//! `masctl import synapse`: an existing Synapse — its database (a pg_dump, or a
//! SQLite file ported with Synapse's own `synapse_port_db`), signing key, media
//! store and the settings of its `homeserver.yaml` — into the stack. Nothing of
//! the source is modified: everything is staged under the state root first.

pub mod dump;
pub mod settings;

use std::fs;
use std::io::{BufReader, BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::Value;

use self::dump::Kind;
use self::settings::{SecretValue, Settings};
use super::replaced;
use super::restore::{self, Load};
use super::{JobContext, JobSpec};
use crate::docker::{Engine, OneShot};
use crate::generation::generations;
use crate::generation::layout::Layout;
use crate::secrets::{self, MAS_PEPPER, MAS_SYNAPSE_PASSWORD_CONFIG, SYNAPSE_PASSWORD_CONFIG};
use crate::service::{Database, Service};
use crate::spec::Bind;
use crate::{timestamp, ui};

const SYNAPSE: Service = Service::Synapse;

/// Where the source's files are.
#[derive(Debug, Clone)]
pub struct Source {
    pub homeserver: PathBuf,
    pub database: PathBuf,
    pub signing_key: Option<PathBuf>,
    pub media: Option<PathBuf>,
    /// (path inside the source's Synapse container, path on this host)
    pub mounts: Vec<(String, PathBuf)>,
    /// The playbook's base directory (`--from-playbook`), where its bridges keep
    /// their registrations.
    pub playbook: Option<PathBuf>,
}

impl Source {
    /// The playbook's layout: `<dir>/synapse/config` is Synapse's `/data`,
    /// `<dir>/synapse/storage` its `/matrix-media-store-parent`.
    pub fn playbook(dir: &Path, database: PathBuf) -> Source {
        let config = dir.join("synapse/config");
        Source {
            homeserver: config.join("homeserver.yaml"),
            database,
            signing_key: None,
            media: None,
            mounts: vec![("/data".into(), config), ("/matrix-media-store-parent".into(), dir.join("synapse/storage"))],
            playbook: Some(dir.to_path_buf()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Import even though the stack's Synapse has users.
    pub replace: bool,
}

/// What `masctl import synapse --json` prints.
#[derive(Debug, Serialize)]
pub struct Imported {
    pub server_name: String,
    pub database: Kind,
    pub schema: String,
    pub users: u64,
    pub signing_key: String,
    pub secrets: Vec<String>,
    pub media_files: u64,
    pub media_bytes: u64,
    pub backup_before: Vec<PathBuf>,
    /// masctl.toml keys the import needs (TOML), empty when none.
    pub config_changes: String,
    #[serde(skip)]
    pub changes: Vec<(Vec<String>, Value)>,
    /// Earlier secrets and media kept aside.
    pub kept: Vec<PathBuf>,
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    let mut f = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    if f.metadata()?.is_dir() {
        bail!("{} is a directory, not a dump file", path.display());
    }
    let mut head = vec![0u8; 1024];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    head.truncate(n);
    Ok(head)
}

/// A private working directory under the state root (bind mounts name host paths).
fn workdir(under: &Path, uid: u32) -> Result<tempfile::TempDir> {
    fs::create_dir_all(under)?;
    let d = tempfile::Builder::new().prefix(".import-").tempdir_in(under)?;
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700))?;
    std::os::unix::fs::chown(d.path(), Some(uid), Some(uid))?;
    Ok(d)
}

/// `homeserver.yaml` as Synapse reads it (its own YAML loader, in the Synapse image),
/// as JSON. The copy and the result stay in a private directory under `secrets/`.
async fn read_homeserver(layout: &Layout, image: &str, path: &Path) -> Result<Value> {
    let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let dir = workdir(&layout.secrets(), SYNAPSE.uid())?;
    let copy = dir.path().join("homeserver.yaml");
    secrets::write_secret(&copy, &String::from_utf8_lossy(&text), SYNAPSE.uid())?;
    let job = OneShot {
        image: image.to_string(),
        user: SYNAPSE.user(),
        entrypoint: Some(vec![
            "python3".into(),
            "-c".into(),
            "import json, os, yaml\nv = yaml.safe_load(open('/w/homeserver.yaml'))\n\
fd = os.open('/w/hs.json', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\nos.write(fd, json.dumps(v).encode())\n"
                .into(),
        ]),
        cmd: vec![],
        binds: vec![Bind::rw(dir.path(), "/w")],
        network: None,
        env: vec![],
    };
    let code = Engine::connect().await?.run_once(&job, "read-homeserver").await?;
    let json = fs::read(dir.path().join("hs.json")).ok().filter(|_| code == 0);
    let Some(json) = json else {
        bail!("{} is not valid YAML (Synapse's YAML loader refused it; see above)", path.display());
    };
    let v: Value = serde_json::from_slice(&json)?;
    if !v.is_object() {
        bail!("{} is not a YAML mapping", path.display());
    }
    Ok(v)
}

/// Copies `from` to `to` (created 0600 for `uid`) with a progress bar.
fn copy_file(from: &Path, to: &Path, uid: u32, what: &str) -> Result<u64> {
    let mut src = fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let len = src.metadata()?.len();
    let bar = ui::bytes_bar(len, what);
    let dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0600()
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, &dst);
    let n = std::io::copy(&mut bar.wrap_read(&mut src), &mut w)?;
    std::io::Write::flush(&mut w)?;
    drop(w);
    dst.sync_all()?;
    bar.finish_and_clear();
    std::os::unix::fs::chown(to, Some(uid), Some(uid))?;
    Ok(n)
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}
impl Mode0600 for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// Copies a media store tree for Synapse (files 0640, directories 0750, owned by
/// it); returns (files, bytes).
fn copy_tree(from: &Path, to: &Path, uid: u32) -> Result<(u64, u64)> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o750))?;
    std::os::unix::fs::chown(to, Some(uid), Some(uid))?;
    let (mut files, mut bytes) = (0, 0);
    for e in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let e = e?;
        let ft = e.file_type()?;
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            let (f, b) = copy_tree(&e.path(), &dest, uid)?;
            files += f;
            bytes += b;
        } else if ft.is_file() {
            bytes += fs::copy(e.path(), &dest).with_context(|| format!("copying {}", e.path().display()))?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o640))?;
            std::os::unix::fs::chown(&dest, Some(uid), Some(uid))?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

/// Everything read from the source before anything on the host changes.
struct Gathered {
    kind: Kind,
    settings: Settings,
    signing_key: String,
    key_id: String,
    /// (secret name, content)
    secrets: Vec<(&'static str, String)>,
    /// Synapse's own OIDC client secrets: (file under secrets/, content).
    oidc_secrets: Vec<(String, String)>,
    media: PathBuf,
}

async fn gather(layout: &Layout, ctx: &JobContext<'_>, server_name: &str, src: &Source) -> Result<Gathered> {
    let head = read_head(&src.database)?;
    let kind = dump::detect(&head).map_err(|why| anyhow::anyhow!("{} {why}", src.database.display()))?;
    let config_dir = src.homeserver.parent().unwrap_or(Path::new("/")).to_path_buf();
    let hs = read_homeserver(layout, &ctx.manifest.images[&SYNAPSE], &src.homeserver).await?;
    let inside_dir = src
        .mounts
        .iter()
        .find(|(_, host)| *host == config_dir)
        .map_or(config_dir.display().to_string(), |(inside, _)| inside.clone());
    let mut s = settings::settings(&hs, server_name, &inside_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", src.homeserver.display()))?;
    let registrations = locate_registrations(&hs, src, &config_dir)?;
    if !registrations.is_empty() {
        s.config.push(settings::appservices_change(&registrations));
    }
    let resolve = |p: &str| settings::resolve(p, &src.mounts, &config_dir);
    let oidc = settings::oidc_providers(&hs).map_err(|e| anyhow::anyhow!("{}: {e}", src.homeserver.display()))?;
    let mut oidc_secrets = Vec::new();
    let mut oidc_files = Vec::new();
    for p in oidc {
        let value = match &p.secret {
            SecretValue::Inline(v) => v.clone(),
            SecretValue::File(f) => fs::read_to_string(resolve(f))
                .with_context(|| format!("cannot read oidc_providers {}'s client secret {f}", p.idp_id))?,
        };
        let name = format!("imported-oidc-{}", p.idp_id);
        oidc_files.push((p, layout.secret(&name)));
        oidc_secrets.push((name, value.trim().to_string()));
    }
    if !oidc_files.is_empty() {
        s.config.push(settings::oidc_change(&oidc_files));
    }
    let key_path = src.signing_key.clone().unwrap_or_else(|| resolve(&s.signing_key_path));
    let signing_key = fs::read_to_string(&key_path)
        .with_context(|| format!("cannot read the signing key {} (pass --signing-key FILE)", key_path.display()))?;
    let key_id =
        settings::check_signing_key(&signing_key).map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let mut found = Vec::new();
    for (name, v) in &s.secrets {
        let value = match v {
            SecretValue::Inline(v) => v.clone(),
            SecretValue::File(p) => {
                let p = resolve(p);
                fs::read_to_string(&p).with_context(|| format!("cannot read {name}'s file {}", p.display()))?
            }
        };
        found.push((*name, value.trim().to_string()));
    }
    if let Some(pwc) = &s.password_config {
        let pepper = pwc["pepper"].as_str().unwrap_or_default().to_string();
        found.push((SYNAPSE_PASSWORD_CONFIG, settings::password_config_file(pwc)));
        found.push((MAS_SYNAPSE_PASSWORD_CONFIG, settings::password_config_file(pwc)));
        // MAS reads the file as the pepper, byte for byte: no newline.
        found.push((MAS_PEPPER, pepper));
    }
    let media = src.media.clone().unwrap_or_else(|| resolve(&s.media_store_path));
    if !media.is_dir() {
        bail!("the media store {} is not a directory (pass --media DIR)", media.display());
    }
    Ok(Gathered { kind, settings: s, signing_key, key_id, secrets: found, oidc_secrets, media })
}

/// The appservice registrations the source's Synapse loads, on this host. They
/// stay where they are (the bridges keep using them); masctl.toml names them.
fn locate_registrations(hs: &Value, src: &Source, config_dir: &Path) -> Result<Vec<PathBuf>> {
    let listed = settings::registration_files(hs).map_err(|e| anyhow::anyhow!("{}: {e}", src.homeserver.display()))?;
    let mut found = Vec::new();
    for l in listed {
        let candidates = settings::registration_candidates(&l, &src.mounts, config_dir, src.playbook.as_deref());
        let Some(p) = candidates.iter().find(|p| p.is_file()) else {
            let tried = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
            bail!(
                "{}: app_service_config_files names {l}, which is not at {tried}; copy it there or list it under \
[[synapse.appservices]] yourself",
                src.homeserver.display()
            );
        };
        ui::step(format!("appservice registration {l}: {}", p.display()));
        found.push(p.clone());
    }
    Ok(found)
}

/// Who reads each imported secret.
fn owner(name: &str) -> u32 {
    if name.starts_with("imported-") {
        return 0;
    }
    if name.starts_with("mas-") { Service::Mas.uid() } else { SYNAPSE.uid() }
}

/// Stages the database and loads it into Synapse's scratch database.
async fn load_database(ctx: &JobContext<'_>, layout: &Layout, g: &Gathered, src: &Path) -> Result<()> {
    let staging = layout.root().join("import");
    match g.kind {
        Kind::Custom => {
            let dir = workdir(&staging, Service::Postgres.uid())?;
            copy_file(src, &dir.path().join("synapse.dump"), Service::Postgres.uid(), "staging the dump")?;
            restore::load(ctx, Database::Synapse, dir.path(), Load::Custom("/in/synapse.dump")).await
        }
        Kind::Plain => {
            let dir = workdir(&staging, Service::Postgres.uid())?;
            let out = dir.path().join("synapse.sql");
            let input = BufReader::with_capacity(1 << 20, fs::File::open(src)?);
            let skipped = dump::filter_plain(input, BufWriter::with_capacity(1 << 20, fs::File::create(&out)?))?;
            ui::detail(format!("left out {skipped} ownership, privilege and unknown-setting lines"));
            fs::write(dir.path().join("prelude.sql"), "SET ROLE synapse;\n")?;
            for f in ["synapse.sql", "prelude.sql"] {
                std::os::unix::fs::chown(dir.path().join(f), Some(Service::Postgres.uid()), None)?;
            }
            restore::load(
                ctx,
                Database::Synapse,
                dir.path(),
                Load::Plain { prelude: "/in/prelude.sql", dump: "/in/synapse.sql" },
            )
            .await
        }
        Kind::Sqlite => load_sqlite(ctx, layout, g, src, &staging).await,
    }
}

/// Ports a SQLite database into Synapse's scratch database with Synapse's own
/// synapse_port_db, run in the Synapse image.
async fn load_sqlite(ctx: &JobContext<'_>, layout: &Layout, g: &Gathered, src: &Path, staging: &Path) -> Result<()> {
    let dir = workdir(staging, SYNAPSE.uid())?;
    copy_file(src, &dir.path().join("homeserver.db"), SYNAPSE.uid(), "staging the SQLite database")?;
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", src.display()));
        if side.exists() {
            copy_file(&side, &dir.path().join(format!("homeserver.db{ext}")), SYNAPSE.uid(), "staging")?;
        }
    }
    secrets::write_secret(&dir.path().join("signing.key"), &g.signing_key, SYNAPSE.uid())?;
    let port = serde_json::json!({
        "server_name": g.settings.server_name, "report_stats": false,
        "signing_key_path": "/in/signing.key", "media_store_path": "/in/media",
        "database": {"name": "psycopg2", "args": {
            "host": Service::Postgres.container(&ctx.manifest.instance), "port": 5432, "user": Database::Synapse.name(),
            "dbname": restore::scratch(Database::Synapse), "passfile": "/run/secrets/synapse-pgpass",
            "cp_min": 1, "cp_max": 4}},
    });
    fs::write(dir.path().join("port.yaml"), port.to_string())?;
    std::os::unix::fs::chown(dir.path().join("port.yaml"), Some(SYNAPSE.uid()), None)?;
    restore::load(ctx, Database::Synapse, dir.path(), Load::Empty).await?;
    let synapse = ctx.spec(SYNAPSE)?;
    let job = OneShot {
        image: synapse.image.clone(),
        user: SYNAPSE.user(),
        entrypoint: Some(vec!["python3".into()]),
        cmd: [
            "-m",
            "synapse._scripts.synapse_port_db",
            "--sqlite-database",
            "/in/homeserver.db",
            "--postgres-config",
            "/in/port.yaml",
        ]
        .map(String::from)
        .to_vec(),
        binds: vec![Bind::rw(dir.path(), "/in"), layout.secret_bind("synapse-pgpass")],
        network: Some(ctx.manifest.instance.clone()),
        env: vec![],
    };
    let (code, captured) = ctx.run("masctl import: synapse_port_db", JobSpec::new("port-db", job)).await?;
    if code != 0 {
        let _ = restore::drop_scratch(ctx, Database::Synapse).await;
        let e = crate::jobs::failed("synapse_port_db", code, &captured);
        bail!("{e} — the live database is untouched");
    }
    Ok(())
}

async fn count_users(ctx: &JobContext<'_>, db: &str) -> Result<u64> {
    if restore::query(ctx, db, "SELECT to_regclass('public.users') IS NOT NULL").await? != "t" {
        return Ok(0);
    }
    let n = restore::query(ctx, db, "SELECT count(*) FROM users").await?;
    n.parse().with_context(|| format!("counting users: {n:?}"))
}

/// Refuses an import where it cannot work: logins already delegated to MAS, an
/// external Postgres, or Postgres not running.
async fn refuse_unready(ctx: &JobContext<'_>) -> Result<()> {
    if ctx.manifest.mas.delegating {
        bail!(
            "the current generation ({}) delegates logins to MAS: import into a stack before its MAS migration \
(migration_in_progress = true, or MAS off), then run `masctl syn2mas migrate`",
            ctx.number
        );
    }
    ctx.refuse_external_postgres(
        "masctl import synapse",
        "import into a stack with the bundled Postgres, or load the dump into the external server yourself",
    )?;
    ctx.require_active(&[Service::Postgres], Duration::from_secs(60)).await
}

/// Loads the database into the scratch database and checks its schema against the
/// image's; returns the schema and the number of users it holds.
async fn load_and_check(ctx: &JobContext<'_>, layout: &Layout, g: &Gathered, src: &Path) -> Result<(String, u64)> {
    ui::step(format!("loading the {:?} database into a scratch database", g.kind));
    load_database(ctx, layout, g, src).await?;
    let image_version = restore::image_synapse_schema(layout, &ctx.manifest.images[&SYNAPSE]).await?;
    let schema = match restore::check_scratch(ctx, Database::Synapse, Some(image_version)).await {
        Ok(s) => s,
        Err(e) => {
            let _ = restore::drop_scratch(ctx, Database::Synapse).await;
            return Err(e);
        }
    };
    let users = count_users(ctx, &restore::scratch(Database::Synapse)).await?;
    ui::step(format!("{schema}, {users} user(s)"));
    Ok((schema, users))
}

/// Imports; returns what it did. The caller applies the config changes (or prints them).
pub async fn run(layout: &Layout, server_name: &str, src: &Source, opts: Options) -> Result<Imported> {
    let _lock = generations::lock(layout, "import")?;
    let ctx = JobContext::load(layout).await?;
    refuse_unready(&ctx).await?;
    let g = gather(layout, &ctx, server_name, src).await?;
    ui::step(format!(
        "importing {} ({:?} database {}, signing key {}, media {})",
        g.settings.server_name,
        g.kind,
        src.database.display(),
        g.key_id,
        g.media.display()
    ));
    let existing = count_users(&ctx, Database::Synapse.name()).await?;
    if existing > 0 && !opts.replace {
        bail!(
            "this stack's Synapse already has {existing} user(s): importing would replace them; pass --replace to \
do so (the replaced database is kept until a verified backup of it exists)"
        );
    }

    replaced::settle(&ctx).await?;
    let (schema, users) = load_and_check(&ctx, layout, &g, &src.database).await?;

    // Media first into a new directory beside the live one, while Synapse runs.
    let stamp = timestamp::compact(SystemTime::now());
    let data = layout.data_dir(SYNAPSE);
    let incoming = data.join(format!("media.import-{stamp}"));
    ui::step(format!("copying media from {}", g.media.display()));
    let (media_files, media_bytes) = copy_tree(&g.media, &incoming, SYNAPSE.uid())?;

    let (_, replaced_db) = restore::swap_in(&ctx, &[Database::Synapse], "pre-import").await?;
    let mut kept = Vec::new();
    let live_media = data.join("media");
    if live_media.exists() {
        let aside = data.join(format!("media.pre-import-{stamp}"));
        fs::rename(&live_media, &aside)?;
        kept.push(aside);
    }
    fs::rename(&incoming, &live_media)?;
    let (written, aside) = install_secrets(layout, &g, &stamp)?;
    kept.push(aside);
    let before = replaced_db.back_up_later(&ctx).await?;

    Ok(Imported {
        server_name: g.settings.server_name.clone(),
        database: g.kind,
        schema,
        users,
        signing_key: g.key_id,
        secrets: written,
        media_files,
        media_bytes,
        backup_before: before,
        config_changes: settings::apply("", &g.settings.config)?,
        changes: g.settings.config.clone(),
        kept,
    })
}

/// Secrets: the earlier ones kept in a private directory (returned), the imported
/// ones in place; returns the names written too.
fn install_secrets(layout: &Layout, g: &Gathered, stamp: &str) -> Result<(Vec<String>, PathBuf)> {
    let aside = layout.secrets().join(format!("pre-import-{stamp}"));
    fs::create_dir_all(&aside)?;
    fs::set_permissions(&aside, fs::Permissions::from_mode(0o700))?;
    let mut written = vec!["synapse-signing.key".to_string()];
    let mut all: Vec<(&str, String)> = vec![("synapse-signing.key", g.signing_key.clone())];
    all.extend(g.secrets.iter().map(|(n, v)| (*n, v.clone())));
    // masctl's own inputs (root's, as a client_secret_file you write would be).
    all.extend(g.oidc_secrets.iter().map(|(n, v)| (n.as_str(), v.clone())));
    for (name, value) in &all {
        let path = layout.secret(name);
        if path.exists() {
            fs::rename(&path, aside.join(name))?;
        }
        secrets::write_secret(&path, value, owner(name))?;
        if *name != "synapse-signing.key" {
            written.push(name.to_string());
        }
    }
    crate::fsutil::fsync_dir(&layout.secrets())?;
    Ok((written, aside))
}

/// Starts the current generation after an import and waits for its health gate.
pub async fn start(layout: &Layout, timeout: Duration) -> Result<()> {
    let _lock = generations::lock(layout, "import")?;
    let ctx = JobContext::load(layout).await?;
    restore::start_current(&ctx, timeout).await
}

/// Writes the import's config changes into the config file (atomically), keeping
/// the rest of it as written.
pub fn write_config(path: &Path, changes: &[(Vec<String>, Value)]) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let new = settings::apply(&text, changes).with_context(|| format!("editing {}", path.display()))?;
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    crate::fsutil::write_atomic(path, new.as_bytes(), mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playbook_layout() {
        let s = Source::playbook(Path::new("/matrix"), PathBuf::from("/tmp/synapse.dump"));
        assert_eq!(s.homeserver, PathBuf::from("/matrix/synapse/config/homeserver.yaml"));
        let key = settings::resolve("/data/example.com.signing.key", &s.mounts, Path::new("/x"));
        assert_eq!(key, PathBuf::from("/matrix/synapse/config/example.com.signing.key"));
        let media = settings::resolve("/matrix-media-store-parent/media-store", &s.mounts, Path::new("/x"));
        assert_eq!(media, PathBuf::from("/matrix/synapse/storage/media-store"));
    }

    #[test]
    fn written_config_round_trips_the_printed_changes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("masctl.toml");
        fs::write(&p, "# mine\nserver_name = \"e.com\"\n").unwrap();
        let changes = [
            (vec!["synapse".into(), "imported_password_config".into()], Value::Bool(true)),
            (
                vec!["synapse".into(), "extra".into(), "password_config".into()],
                serde_json::json!({"policy": {"enabled": true}}),
            ),
        ];
        write_config(&p, &changes).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(t["synapse"]["imported_password_config"].as_bool(), Some(true));
        assert_eq!(t["synapse"]["extra"]["password_config"]["policy"]["enabled"].as_bool(), Some(true));
    }
}
