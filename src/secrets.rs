//! Secrets: generated once from the OS random source into `secrets/` (0700), one
//! file each (0600, owned by the service that reads it). Only their paths travel:
//! never their contents into the store, a unit, an argv or a log.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;

use crate::generation::layout::Layout;
use crate::service::Service;

/// How a secret's content is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 32 random bytes as 64 hex digits.
    Token,
    /// A Synapse ed25519 signing key line: `ed25519 a_XXXX <unpadded base64 seed>`.
    SigningKey,
    /// A libpq password file line for `password_of`'s value.
    PgPass { host: &'static str, user: &'static str, password_of: &'static str },
    /// The same value as another secret, readable by another service.
    Copy { of: &'static str },
    /// An RSA private key (PEM), made by [`ensure_rsa_key`] in a one-shot container
    /// (the stack's Python has OpenSSL; masctl does not carry an RSA implementation).
    RsaKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    pub uid: u32,
    pub kind: Kind,
}

const POSTGRES_UID: u32 = Service::Postgres.uid();
const SYNAPSE_UID: u32 = Service::Synapse.uid();
const MAS_UID: u32 = Service::Mas.uid();

/// Every secret the stack uses. Derived ones come after what they derive from.
pub const SPECS: [Spec; 17] = [
    Spec { name: "postgres-superuser", uid: POSTGRES_UID, kind: Kind::Token },
    Spec { name: "postgres-synapse", uid: POSTGRES_UID, kind: Kind::Token },
    // For backups: pg_dump connects as the superuser over the network.
    Spec {
        name: "postgres-superuser-pgpass",
        uid: POSTGRES_UID,
        kind: Kind::PgPass { host: "*", user: "postgres", password_of: "postgres-superuser" },
    },
    Spec {
        name: "synapse-pgpass",
        uid: SYNAPSE_UID,
        kind: Kind::PgPass { host: "*", user: "synapse", password_of: "postgres-synapse" },
    },
    Spec { name: "synapse-macaroon", uid: SYNAPSE_UID, kind: Kind::Token },
    Spec { name: "synapse-form", uid: SYNAPSE_UID, kind: Kind::Token },
    Spec { name: "synapse-registration", uid: SYNAPSE_UID, kind: Kind::Token },
    Spec { name: "synapse-signing.key", uid: SYNAPSE_UID, kind: Kind::SigningKey },
    // Guards the main process's replication listener once workers run.
    Spec { name: "synapse-replication", uid: SYNAPSE_UID, kind: Kind::Token },
    Spec { name: "postgres-mas", uid: POSTGRES_UID, kind: Kind::Token },
    Spec { name: "mas-db-password", uid: MAS_UID, kind: Kind::Copy { of: "postgres-mas" } },
    Spec { name: "mas-encryption", uid: MAS_UID, kind: Kind::Token },
    Spec { name: "mas-synapse-secret", uid: MAS_UID, kind: Kind::Token },
    Spec { name: "synapse-mas-secret", uid: SYNAPSE_UID, kind: Kind::Copy { of: "mas-synapse-secret" } },
    // syn2mas runs as MAS's user and reads Synapse's database with Synapse's pgpass.
    Spec { name: "mas-synapse-pgpass", uid: MAS_UID, kind: Kind::Copy { of: "synapse-pgpass" } },
    Spec { name: "mas-signing-rsa.pem", uid: MAS_UID, kind: Kind::RsaKey },
    // masctl's own MAS client (the admin API); masctl reads it as root.
    Spec { name: "mas-admin-client", uid: MAS_UID, kind: Kind::Token },
];

/// Secrets an imported Synapse brings along (`masctl import synapse`), beyond the
/// ones in [`SPECS`] it replaces: its `password_config` with the pepper, for Synapse
/// (a second config file) and for syn2mas, and the bare pepper for MAS's scheme.
pub const SYNAPSE_PASSWORD_CONFIG: &str = "synapse-password-config.yaml";
pub const MAS_SYNAPSE_PASSWORD_CONFIG: &str = "mas-synapse-password-config.yaml";
pub const MAS_PEPPER: &str = "mas-pepper";
/// MAS's copy of `[mas.email] password_file` (the user's file is 0600 and theirs;
/// MAS reads as its own uid).
pub const MAS_SMTP_PASSWORD: &str = "mas-smtp-password";

/// Copies of an external Postgres's passwords (`[postgres.external]`), each owned
/// by the service that reads it: Synapse's pgpass, MAS's password, syn2mas's
/// pgpass for Synapse's database (run as MAS's user), and one pgpass with every
/// database for backups and doctor (run as Postgres's user, from its image).
pub const EXTERNAL_SYNAPSE_PGPASS: &str = "external-synapse-pgpass";
pub const EXTERNAL_MAS_DB_PASSWORD: &str = "external-mas-db-password";
pub const EXTERNAL_MAS_SYNAPSE_PGPASS: &str = "external-mas-synapse-pgpass";
pub const EXTERNAL_PGPASS: &str = "external-pgpass";

/// (the bundled server's secret as a service mounts it, its external counterpart)
pub const EXTERNAL_CLIENT_SECRETS: [(&str, &str); 2] =
    [("synapse-pgpass", EXTERNAL_SYNAPSE_PGPASS), ("mas-db-password", EXTERNAL_MAS_DB_PASSWORD)];

/// A libpq password file line for `user` on `database`, any host (`:` and `\`
/// escaped, as libpq reads them).
pub fn pgpass_line(database: &str, user: &str, password: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:{}:{}:{}\n", esc(database), esc(user), esc(password))
}

/// Writes the services' copies of an external Postgres's passwords, from the
/// files the config names, when they differ from what is there (a rotated
/// password reaches the services at the next switch). Returns the names written.
/// Copies stay when the config stops naming an external server: rolling back to
/// a generation that used it needs them.
pub fn ensure_external(layout: &Layout, c: &crate::config::Config) -> Result<Vec<&'static str>> {
    let Some(ext) = c.postgres_external() else { return Ok(Vec::new()) };
    let read = |db: &crate::config::ExternalDatabase| -> Result<(String, String, String)> {
        let f = db.password_file.get_ref();
        let pw = crate::config::read_password(Path::new(f))
            .map_err(|why| anyhow::anyhow!("postgres password file {f} {why}"))?;
        Ok((db.database.get_ref().clone(), db.user.get_ref().clone(), pw))
    };
    let (sdb, suser, spw) = read(ext.synapse.get_ref())?;
    let synapse_pgpass = pgpass_line(&sdb, &suser, &spw);
    let mut all = synapse_pgpass.clone();
    let mut files = vec![
        (EXTERNAL_SYNAPSE_PGPASS, synapse_pgpass.clone(), SYNAPSE_UID),
        (EXTERNAL_MAS_SYNAPSE_PGPASS, synapse_pgpass, MAS_UID),
    ];
    if let Some(m) = &ext.mas {
        let (mdb, muser, mpw) = read(m.get_ref())?;
        all.push_str(&pgpass_line(&mdb, &muser, &mpw));
        files.push((EXTERNAL_MAS_DB_PASSWORD, mpw, MAS_UID));
    }
    files.push((EXTERNAL_PGPASS, all, POSTGRES_UID));
    let dir = layout.secrets();
    let mut written = Vec::new();
    for (name, content, uid) in files {
        let path = layout.secret(name);
        if fs::read_to_string(&path).is_ok_and(|old| old == content) {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            std::os::unix::fs::chown(&path, Some(uid), Some(uid))?;
            continue;
        }
        write_secret(&path, &content, uid).with_context(|| format!("writing secret {name}"))?;
        written.push(name);
    }
    crate::fsutil::fsync_dir(&dir)?;
    Ok(written)
}

/// Writes MAS's copy of the SMTP password from `[mas.email] password_file` when it
/// differs (a changed password reaches MAS at the next switch). Returns whether
/// it was written.
pub fn ensure_smtp(layout: &Layout, c: &crate::config::Config) -> Result<bool> {
    let e = &c.mas.email;
    let Some(f) = e.password_file.as_ref().filter(|_| c.mas_enabled() && e.transport.get_ref() == "smtp") else {
        return Ok(false);
    };
    copy_secret(layout, "mas.email.password_file", f.get_ref(), MAS_SMTP_PASSWORD, MAS_UID)
}

/// The files of a backup repository masctl keeps a copy of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupFile {
    Password,
    SshKey,
    KnownHosts,
}

/// Prefix of every backup repository secret: a restore onto a new host keeps
/// that host's own (they are how it reaches its repositories).
pub const BACKUP_PREFIX: &str = "backup-";

/// The secret holding `file` of the repository at `url`: named by a hash of the
/// URL, so reordering repositories renames nothing.
pub fn backup_secret(url: &str, file: BackupFile) -> String {
    use sha2::Digest;
    let id = &hex::encode(sha2::Sha256::digest(url.as_bytes()))[..12];
    let what = match file {
        BackupFile::Password => "password",
        BackupFile::SshKey => "ssh-key",
        BackupFile::KnownHosts => "known-hosts",
    };
    format!("{BACKUP_PREFIX}{id}-{what}")
}

/// Copies every backup repository's password (and an sftp repository's key and
/// known_hosts) into masctl's secrets, root's own, 0600; the names that changed.
pub fn ensure_backup(layout: &Layout, c: &crate::config::Config) -> Result<Vec<String>> {
    let Some(b) = &c.backup else { return Ok(vec![]) };
    let mut changed = Vec::new();
    for r in &b.repositories {
        let url = r.url.get_ref();
        let name = backup_secret(url, BackupFile::Password);
        if copy_secret(layout, "backup.repository.password_file", r.password_file.get_ref(), &name, 0)? {
            changed.push(name);
        }
        let files = [(BackupFile::SshKey, &r.ssh_key_file), (BackupFile::KnownHosts, &r.known_hosts_file)];
        for (file, src) in files.into_iter().filter_map(|(f, s)| Some((f, s.as_ref()?))) {
            let name = backup_secret(url, file);
            let text = fs::read_to_string(src.get_ref()).with_context(|| format!("reading {}", src.get_ref()))?;
            if store_secret(layout, &name, &text, 0)? {
                changed.push(name);
            }
        }
    }
    Ok(changed)
}

/// Secrets that belong to one host's Postgres cluster (its roles' passwords and
/// the pgpass files derived from them) or to its own backup repositories: a
/// restore onto another host keeps that host's.
pub fn host_bound(name: &str) -> bool {
    name.starts_with("postgres-")
        || name.ends_with("-pgpass")
        || name == "mas-db-password"
        || name.starts_with(BACKUP_PREFIX)
        || name.starts_with("external-")
}

/// Where MAS reads upstream provider `i`'s client secret (under /run/secrets).
pub fn mas_provider_secret(i: usize) -> String {
    format!("mas-provider-{i}")
}

/// Where Synapse reads its own OIDC provider `i`'s client secret (under /run/secrets).
pub fn synapse_oidc_secret(i: usize) -> String {
    format!("synapse-oidc-{i}")
}

/// The OAuth client secrets the config names, copied into masctl's secrets for the
/// service that uses them (its own uid, 0600); the names of those that changed.
pub fn ensure_client_secrets(layout: &Layout, c: &crate::config::Config) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    if c.mas_enabled() {
        for (i, p) in c.mas.upstream_oauth2.providers.iter().enumerate() {
            let Some(f) = &p.client_secret_file else { continue };
            let name = mas_provider_secret(i);
            if copy_secret(layout, "mas.upstream_oauth2.providers.client_secret_file", f.get_ref(), &name, MAS_UID)? {
                changed.push(name);
            }
        }
    }
    for (i, p) in c.synapse.oidc_providers.iter().enumerate() {
        let name = synapse_oidc_secret(i);
        let f = p.client_secret_file.get_ref();
        if copy_secret(layout, "synapse.oidc_providers.client_secret_file", f, &name, SYNAPSE_UID)? {
            changed.push(name);
        }
    }
    Ok(changed)
}

/// A one-line secret the user keeps in `src` (checked when the config was loaded),
/// as masctl's `name` owned by `uid`; true when it was written anew.
fn copy_secret(layout: &Layout, what: &str, src: &str, name: &str, uid: u32) -> Result<bool> {
    let value = crate::config::read_password(Path::new(src)).map_err(|why| anyhow::anyhow!("{what} {src} {why}"))?;
    store_secret(layout, name, &value, uid)
}

/// Writes `value` as secret `name` (0600, owned by `uid`) unless it holds it
/// already; whether it changed.
fn store_secret(layout: &Layout, name: &str, value: &str, uid: u32) -> Result<bool> {
    let path = layout.secret(name);
    if fs::read_to_string(&path).is_ok_and(|old| old == value) {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(uid))?;
        return Ok(false);
    }
    write_secret(&path, value, uid).with_context(|| format!("writing secret {name}"))?;
    crate::fsutil::fsync_dir(&layout.secrets())?;
    Ok(true)
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("reading the OS random source: {e}"))?;
    Ok(b)
}

fn make(spec: &Spec, layout: &Layout) -> Result<String> {
    Ok(match spec.kind {
        Kind::Token => hex::encode(random_bytes::<32>()?),
        Kind::SigningKey => {
            let seed = random_bytes::<32>()?;
            let id: String = random_bytes::<4>()?.iter().map(|b| (b'a' + b % 26) as char).collect();
            format!("ed25519 a_{id} {}\n", base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed))
        }
        Kind::PgPass { host, user, password_of } => {
            let pw = fs::read_to_string(layout.secret(password_of))
                .with_context(|| format!("reading secret {password_of}"))?;
            format!("{host}:*:*:{user}:{}\n", pw.trim())
        }
        Kind::Copy { of } => fs::read_to_string(layout.secret(of)).with_context(|| format!("reading secret {of}"))?,
        Kind::RsaKey => unreachable!("made by ensure_rsa_key"),
    })
}

/// Writes (or replaces) one secret atomically: 0600, owned by `uid`.
pub fn write_secret(path: &Path, content: &str, uid: u32) -> Result<()> {
    let tmp = crate::fsutil::temp_sibling(path);
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    std::os::unix::fs::chown(&tmp, Some(uid), Some(uid)).with_context(|| format!("chown {}", tmp.display()))?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Creates missing secrets; existing ones are kept as they are (owner and mode fixed).
/// Returns the names created.
pub fn ensure(layout: &Layout) -> Result<Vec<&'static str>> {
    let dir = layout.secrets();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let mut created = Vec::new();
    for spec in SPECS.iter().filter(|s| s.kind != Kind::RsaKey) {
        let path = layout.secret(spec.name);
        if path.exists() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            std::os::unix::fs::chown(&path, Some(spec.uid), Some(spec.uid))?;
            continue;
        }
        write_secret(&path, &make(spec, layout)?, spec.uid)
            .with_context(|| format!("creating secret {}", spec.name))?;
        created.push(spec.name);
    }
    crate::fsutil::fsync_dir(&dir)?;
    Ok(created)
}

/// Python run in a one-shot container to make an RSA key with the OS RNG (OpenSSL).
const RSA_SCRIPT: &str = "import os\n\
from cryptography.hazmat.primitives.asymmetric import rsa\n\
from cryptography.hazmat.primitives import serialization\n\
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)\n\
pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())\n\
fd = os.open('/out/key.pem', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n\
os.write(fd, pem)\n\
os.close(fd)\n";

/// Makes the RSA signing key if it is missing, in a one-shot container from
/// `python_image` writing into a private directory; the key never leaves files.
pub async fn ensure_rsa_key(layout: &Layout, engine: &crate::docker::Engine, python_image: &str) -> Result<bool> {
    let spec = SPECS.iter().find(|s| s.kind == Kind::RsaKey).expect("listed");
    let dest = layout.secret(spec.name);
    if dest.exists() {
        return Ok(false);
    }
    let work = tempfile::Builder::new().prefix(".rsa-").tempdir_in(layout.secrets())?;
    std::os::unix::fs::chown(work.path(), Some(spec.uid), Some(spec.uid))?;
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o700))?;
    let job = crate::docker::OneShot {
        image: python_image.to_string(),
        user: format!("{0}:{0}", spec.uid),
        entrypoint: Some(vec!["python3".into(), "-c".into(), RSA_SCRIPT.into()]),
        cmd: vec![],
        binds: vec![crate::spec::Bind::rw(work.path(), "/out")],
        network: None,
        env: vec![],
    };
    let code = engine.run_once(&job, "keygen").await?;
    let made = work.path().join("key.pem");
    if code != 0 || !made.exists() {
        anyhow::bail!("making the MAS signing key failed (exit {code})");
    }
    fs::rename(&made, &dest)?;
    crate::fsutil::fsync_dir(&layout.secrets())?;
    Ok(true)
}

/// The double-puppet registration's tokens (`[synapse.double_puppet]`); bridges
/// get the as_token, as `as_token:<token>`, from `secrets/double-puppet-as-token`.
pub const DOUBLE_PUPPET_AS_TOKEN: &str = "double-puppet-as-token";
pub const DOUBLE_PUPPET_HS_TOKEN: &str = "double-puppet-hs-token";

/// Copies the registrations read with the config into `secrets/appservices/`
/// (0600, Synapse's), under names that change with their content, and writes the
/// double-puppet registration when it is on. Old copies stay: a rollback needs
/// them. Returns the files written.
pub fn ensure_appservices(layout: &Layout, c: &crate::config::Config) -> Result<Vec<String>> {
    let mut files: Vec<(String, String)> = c.registrations.iter().map(|l| (l.file_name(), l.text.clone())).collect();
    if c.synapse.double_puppet.enabled {
        files.push((crate::appservice::double_puppet::FILE.into(), double_puppet_registration(layout, c)?));
    }
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let dir = layout.secret("appservices");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(&name);
        if fs::read_to_string(&path).is_ok_and(|old| old == content) {
            continue;
        }
        write_secret(&path, &content, SYNAPSE_UID).with_context(|| format!("writing secrets/appservices/{name}"))?;
        written.push(name);
    }
    crate::fsutil::fsync_dir(&dir)?;
    Ok(written)
}

fn double_puppet_registration(layout: &Layout, c: &crate::config::Config) -> Result<String> {
    let token = |name: &str| -> Result<String> {
        let path = layout.secret(name);
        if !path.exists() {
            write_secret(&path, &hex::encode(random_bytes::<32>()?), SYNAPSE_UID)
                .with_context(|| format!("creating secret {name}"))?;
        }
        Ok(fs::read_to_string(&path).with_context(|| format!("reading secret {name}"))?.trim().to_string())
    };
    let (a, h) = (token(DOUBLE_PUPPET_AS_TOKEN)?, token(DOUBLE_PUPPET_HS_TOKEN)?);
    let reg = crate::appservice::double_puppet::registration(c.server_name.get_ref(), &a, &h);
    Ok(serde_json::to_string_pretty(&reg)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_escape_what_libpq_splits_on() {
        assert_eq!(pgpass_line("syn", "u", "a:b\\c"), "*:*:syn:u:a\\:b\\\\c\n");
    }

    #[test]
    fn external_passwords_are_copied_per_service_and_follow_rotation() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path().join("root"));
        fs::create_dir_all(layout.secrets()).unwrap();
        let pw = |name: &str, content: &str| {
            let f = d.path().join(name);
            fs::write(&f, content).unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
            f.display().to_string()
        };
        let (syn, mas) = (pw("syn", "s:1\n"), pw("mas", "m-1\n"));
        let text = format!(
            "server_name = \"e.com\"\n[mas]\nenabled = true\n[postgres.external]\nhost = \"db\"\n\
synapse = {{ database = \"sdb\", user = \"su\", password_file = \"{syn}\" }}\n\
mas = {{ database = \"mdb\", user = \"mu\", password_file = \"{mas}\" }}\n"
        );
        let c = crate::config::parse(Path::new("m.toml"), &text).unwrap();
        let written = ensure_external(&layout, &c).unwrap();
        assert_eq!(written.len(), 4, "{written:?}");
        let read = |n: &str| fs::read_to_string(layout.secret(n)).unwrap();
        // (secret, content, owner)
        for (name, content, uid) in [
            (EXTERNAL_SYNAPSE_PGPASS, "*:*:sdb:su:s\\:1\n", SYNAPSE_UID),
            (EXTERNAL_MAS_SYNAPSE_PGPASS, "*:*:sdb:su:s\\:1\n", MAS_UID),
            (EXTERNAL_MAS_DB_PASSWORD, "m-1", MAS_UID),
            (EXTERNAL_PGPASS, "*:*:sdb:su:s\\:1\n*:*:mdb:mu:m-1\n", POSTGRES_UID),
        ] {
            assert_eq!(read(name), content, "{name}");
            let meta = fs::metadata(layout.secret(name)).unwrap();
            assert_eq!((std::os::unix::fs::MetadataExt::uid(&meta), meta.permissions().mode() & 0o777), (uid, 0o600));
        }
        assert!(ensure_external(&layout, &c).unwrap().is_empty(), "unchanged passwords are not rewritten");
        pw("mas", "m-2\n");
        let rotated = ensure_external(&layout, &c).unwrap();
        assert_eq!(rotated, [EXTERNAL_MAS_DB_PASSWORD, EXTERNAL_PGPASS]);
        assert_eq!(read(EXTERNAL_MAS_DB_PASSWORD), "m-2");
    }

    #[test]
    fn ensure_creates_private_files_once() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        let first = ensure(&layout).unwrap();
        assert_eq!(first.len(), SPECS.len() - 1, "all but the RSA key");
        let copy = fs::read_to_string(layout.secret("synapse-mas-secret")).unwrap();
        assert_eq!(copy, fs::read_to_string(layout.secret("mas-synapse-secret")).unwrap());
        let meta = fs::metadata(layout.secret("synapse-mas-secret")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), SYNAPSE_UID);
        let token = fs::read_to_string(layout.secret("synapse-macaroon")).unwrap();
        assert_eq!(token.len(), 64);
        let meta = fs::metadata(layout.secret("synapse-macaroon")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(layout.secrets()).unwrap().permissions().mode() & 0o777, 0o700);
        let pw = fs::read_to_string(layout.secret("postgres-synapse")).unwrap();
        let pgpass = fs::read_to_string(layout.secret("synapse-pgpass")).unwrap();
        assert_eq!(pgpass, format!("*:*:*:synapse:{pw}\n"));
        let key = fs::read_to_string(layout.secret("synapse-signing.key")).unwrap();
        let parts: Vec<_> = key.split_whitespace().collect();
        assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("ed25519", 6, 43));
        // Second run keeps everything.
        assert!(ensure(&layout).unwrap().is_empty());
        assert_eq!(fs::read_to_string(layout.secret("synapse-macaroon")).unwrap(), token);
        // Two installs never share a secret.
        let other = tempfile::tempdir().unwrap();
        ensure(&Layout::new(other.path())).unwrap();
        assert_ne!(fs::read_to_string(Layout::new(other.path()).secret("synapse-macaroon")).unwrap(), token);
    }

    #[test]
    fn host_bound_secrets_stay_with_their_host() {
        let repo = backup_secret("/mnt/b", BackupFile::Password);
        assert!(repo.starts_with("backup-") && repo.ends_with("-password") && repo.len() == 28, "{repo}");
        assert_ne!(repo, backup_secret("/mnt/c", BackupFile::Password));
        for name in SPECS.iter().map(|s| s.name).chain([EXTERNAL_PGPASS, repo.as_str()]) {
            let identity = ["synapse-", "mas-"].iter().any(|p| name.starts_with(p))
                && !name.ends_with("-pgpass")
                && name != "mas-db-password";
            assert_eq!(host_bound(name), !identity, "{name}");
        }
    }
}
