//! `[postgres.external]` password files: checked when the config is loaded, before
//! anything on the host changes, and read (by the same rules) when a switch derives
//! the services' own copies from them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Result;

use super::{Config, at};

/// The password a file holds (one line; a trailing newline is not part of it), or
/// what is wrong with the file. Never says what the file holds.
pub fn read_password(file: &Path) -> std::result::Result<String, String> {
    private_file(file)?;
    let data = std::fs::read(file).map_err(|e| format!("cannot be read ({e})"))?;
    let text = String::from_utf8(data).map_err(|_| "is not UTF-8 text".to_string())?;
    let pw = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if pw.is_empty() {
        return Err("is empty".into());
    }
    if pw.chars().any(|c| c.is_control()) {
        return Err("holds more than one line or a control character".into());
    }
    Ok(pw.to_string())
}

/// Every external database's password file can be read and is private; errors
/// point at its `password_file`.
pub fn check(c: &Config, path: &Path, text: &str) -> Result<()> {
    let Some(ext) = c.postgres_external() else { return Ok(()) };
    let dbs = [Some(("synapse", &ext.synapse)), ext.mas.as_ref().map(|m| ("mas", m))];
    for (name, db) in dbs.into_iter().flatten() {
        let f = &db.get_ref().password_file;
        if let Err(why) = read_password(Path::new(f.get_ref())) {
            let msg = format!("postgres.external.{name}.password_file {} {why}", f.get_ref());
            return Err(at(path, text, f.span(), msg));
        }
    }
    Ok(())
}

/// Every `[[users]]` password file can be read and is private; errors point at
/// its `password_file`. The password itself is read again when a user is created.
pub fn check_users(c: &Config, path: &Path, text: &str) -> Result<()> {
    for u in &c.users {
        let Some(f) = &u.password_file else { continue };
        if let Err(why) = read_password(Path::new(f.get_ref())) {
            return Err(at(path, text, f.span(), format!("users.password_file {} {why}", f.get_ref())));
        }
    }
    Ok(())
}

/// `[mas.email] password_file` can be read and is private (only with MAS on and
/// SMTP chosen: otherwise masctl does not hand it to MAS).
pub fn check_smtp(c: &Config, path: &Path, text: &str) -> Result<()> {
    let e = &c.mas.email;
    if !*c.mas.enabled.get_ref() || e.transport.get_ref() != "smtp" {
        return Ok(());
    }
    let Some(f) = &e.password_file else { return Ok(()) };
    read_password(Path::new(f.get_ref()))
        .map(|_| ())
        .map_err(|why| at(path, text, f.span(), format!("mas.email.password_file {} {why}", f.get_ref())))
}

/// Every OAuth client secret file — MAS's upstream providers (with MAS on) and
/// Synapse's own OIDC providers — can be read and is private.
pub fn check_client_secrets(c: &Config, path: &Path, text: &str) -> Result<()> {
    let mas = c.mas.upstream_oauth2.providers.iter().filter(|_| *c.mas.enabled.get_ref());
    let mas = mas.filter_map(|p| p.client_secret_file.as_ref().map(|f| ("mas.upstream_oauth2.providers", f)));
    let synapse = c.synapse.oidc_providers.iter().map(|p| ("synapse.oidc_providers", &p.client_secret_file));
    for (what, f) in mas.chain(synapse) {
        if let Err(why) = read_password(Path::new(f.get_ref())) {
            return Err(at(path, text, f.span(), format!("{what}.client_secret_file {} {why}", f.get_ref())));
        }
    }
    Ok(())
}

/// Every `[[backup.repository]]` password file (and an sftp repository's key and
/// known_hosts files) can be read and is private.
pub fn check_backup(c: &Config, path: &Path, text: &str) -> Result<()> {
    let Some(b) = &c.backup else { return Ok(()) };
    for r in &b.repositories {
        let files = [("password_file", Some(&r.password_file)), ("ssh_key_file", r.ssh_key_file.as_ref())];
        for (field, f) in files.into_iter().filter_map(|(n, f)| Some((n, f?))) {
            read_secret_file(Path::new(f.get_ref()), field == "ssh_key_file")
                .map_err(|why| at(path, text, f.span(), format!("backup.repository.{field} {} {why}", f.get_ref())))?;
        }
        if let Some(f) = &r.known_hosts_file
            && let Err(e) = std::fs::metadata(f.get_ref())
        {
            return Err(at(path, text, f.span(), format!("backup.repository.known_hosts_file {}: {e}", f.get_ref())));
        }
    }
    Ok(())
}

/// A one-line password, or (`multi_line`) a key file: private, non-empty.
fn read_secret_file(file: &Path, multi_line: bool) -> std::result::Result<(), String> {
    if !multi_line {
        return read_password(file).map(|_| ());
    }
    if private_file(file)?.len() == 0 {
        return Err("is empty".into());
    }
    Ok(())
}

/// A regular file no one but its owner may read; its metadata.
fn private_file(file: &Path) -> std::result::Result<std::fs::Metadata, String> {
    let meta = std::fs::metadata(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        _ => format!("cannot be read ({e})"),
    })?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("is readable by others (mode {mode:04o}); make it 0600"));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_table() {
        let d = tempfile::tempdir().unwrap();
        // (content, mode, Ok(password) or a word of the refusal)
        let cases: [(&[u8], u32, std::result::Result<&str, &str>); 7] = [
            (b"s3cret\n", 0o600, Ok("s3cret")),
            (b"s3cret", 0o400, Ok("s3cret")),
            (b"s3:cr\\et\r\n", 0o600, Ok("s3:cr\\et")),
            (b"s3cret\n", 0o640, Err("mode 0640")),
            (b"\n", 0o600, Err("empty")),
            (b"one\ntwo\n", 0o600, Err("more than one line")),
            (b"\xff\n", 0o600, Err("UTF-8")),
        ];
        for (i, (content, mode, want)) in cases.into_iter().enumerate() {
            let f = d.path().join(format!("pw{i}"));
            std::fs::write(&f, content).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            match (read_password(&f), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w),
                (Err(got), Err(w)) => assert!(got.contains(w), "{i}: {got}"),
                (got, w) => panic!("{i}: {got:?}, wanted {w:?}"),
            }
        }
        assert_eq!(read_password(&d.path().join("missing")), Err("does not exist".into()));
        assert_eq!(read_password(d.path()), Err("is not a regular file".into()));
    }
}
