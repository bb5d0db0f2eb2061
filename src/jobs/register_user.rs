//! `masctl register-user`: through MAS's admin API once MAS handles logins, else
//! with Synapse's shared-secret registration (a job reading a 0600 file). The
//! password never reaches a job spec, a unit, the journal or any command line.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{JobContext, JobSpec};
use crate::docker::OneShot;
use crate::generation::layout::Layout;
use crate::service::Service;
use crate::spec::Bind;
use crate::ui;

/// The password: from a file, a hidden prompt on a terminal, or stdin.
pub fn read_password(file: Option<&Path>) -> Result<String> {
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

/// What to register.
pub struct NewUser<'a> {
    /// A localpart or full user ID.
    pub name: &'a str,
    pub admin: bool,
    pub emails: &'a [String],
    pub password_file: Option<&'a Path>,
}

pub async fn run(layout: &Layout, new: &NewUser<'_>) -> Result<()> {
    let NewUser { name, admin, emails, password_file } = *new;
    let user = localpart(name);
    if user.is_empty() || !user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/".contains(c)) {
        bail!("{name:?} is not a valid user name (lower-case letters, digits and ._=-/)");
    }
    let ctx = JobContext::load(layout).await?;
    let delegating = ctx.manifest.mas.delegating;
    // Refuse before asking for a password when the services are down.
    let needed: &[Service] = if delegating { &[Service::Synapse, Service::Mas] } else { &[Service::Synapse] };
    ctx.require_active(needed, Duration::from_secs(60)).await?;
    let password = read_password(password_file)?;
    let (code, out) = if delegating {
        // MAS's admin API, from this process: the password goes in an HTTP body.
        let registration = crate::mas_admin::users::Registration {
            username: user.to_string(),
            password,
            admin,
            emails: emails.to_vec(),
        };
        crate::mas_admin::users::register(layout, registration).await?;
        ui::step(format!("registered @{user}:{} in MAS", ctx.manifest.server_name));
        return Ok(());
    } else {
        register_with_synapse(&ctx, user, password, admin, emails).await?
    };
    if code == 0 {
        ui::step(format!("registered @{user}:{}", ctx.manifest.server_name));
        return Ok(());
    }
    if out.contains("User already exists") || out.contains("User ID already taken") {
        bail!("@{user}:{} already exists; nothing was changed", ctx.manifest.server_name);
    }
    Err(super::failed(&format!("registering {user}"), code, &out))
}

/// Synapse's shared-secret registration, in a one-off Synapse container; the
/// password reaches it in a file. Returns the job's exit code and output.
pub async fn register_with_synapse(
    ctx: &JobContext<'_>,
    user: &str,
    password: String,
    admin: bool,
    emails: &[String],
) -> Result<(i32, String)> {
    let layout = ctx.layout;
    if !emails.is_empty() {
        bail!("--email needs MAS; Synapse's shared-secret registration cannot set emails");
    }
    let syn = ctx.spec(Service::Synapse)?;
    let uid = Service::Synapse.uid();
    let dir = tempfile::Builder::new().prefix(".register-").tempdir_in(layout.root())?;
    let pw_path = dir.path().join("password");
    crate::fsutil::write_atomic(&pw_path, password.as_bytes(), 0o600)?;
    std::os::unix::fs::chown(&pw_path, Some(uid), Some(uid))?;
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid))?;
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
        binds: syn.binds.iter().cloned().chain([Bind::ro(dir.path(), "/run/job")]).collect(),
        network: Some(ctx.manifest.instance.clone()),
        env: vec![],
    };
    ctx.run("masctl register-user", JobSpec::new("register-user", job)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localpart_table() {
        for (i, want) in [("alice", "alice"), ("@alice:example.com", "alice"), ("@bob", "bob")] {
            assert_eq!(localpart(i), want);
        }
    }
}
