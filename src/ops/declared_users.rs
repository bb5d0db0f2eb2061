//! The edge of `[[users]]`: asks the server which declared users exist (MAS's
//! admin API when Synapse hands logins to MAS, else Synapse's as masctl-admin),
//! plans with [`crate::declared_users::plan`] and creates what is missing.
//! Passwords are read from their files only to go into an HTTP body.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};

use crate::config::{Config, read_password};
use crate::declared_users::{Declared, Existing, Step, plan};
use crate::generation::layout::Layout;
use crate::mas_admin::api::Admin;

/// A declared user as the config gives it (owned: it crosses into a blocking task).
#[derive(Debug, Clone)]
pub struct Input {
    pub localpart: String,
    pub admin: bool,
    pub password_file: Option<PathBuf>,
    pub emails: Vec<String>,
}

pub fn inputs(c: &Config) -> Vec<Input> {
    c.users
        .iter()
        .map(|u| Input {
            localpart: u.localpart.get_ref().clone(),
            admin: u.admin,
            password_file: u.password_file.as_ref().map(|f| PathBuf::from(f.get_ref())),
            emails: u.emails.iter().map(|e| e.get_ref().clone()).collect(),
        })
        .collect()
}

/// What the two admin APIs offer for declared users.
trait Server {
    fn user(&mut self, localpart: &str) -> Result<Option<Existing>>;
    fn create(&mut self, u: &Input, password: Option<&str>) -> Result<()>;
    fn set_password(&mut self, localpart: &str, password: &str) -> Result<()>;
}

impl Server for crate::synapse_admin::Session {
    fn user(&mut self, localpart: &str) -> Result<Option<Existing>> {
        crate::synapse_admin::Session::user(self, localpart)
    }
    fn create(&mut self, u: &Input, password: Option<&str>) -> Result<()> {
        self.create_user(&u.localpart, password, u.admin, &u.emails)
    }
    fn set_password(&mut self, localpart: &str, password: &str) -> Result<()> {
        crate::synapse_admin::Session::set_password(self, localpart, password)
    }
}

struct Mas<'a>(&'a Admin);

impl Server for Mas<'_> {
    fn user(&mut self, localpart: &str) -> Result<Option<Existing>> {
        Ok(self.0.user_by_username(localpart)?.map(|u| Existing { admin: u.admin }))
    }
    fn create(&mut self, u: &Input, password: Option<&str>) -> Result<()> {
        let user = self.0.add_user(&u.localpart)?;
        if let Some(pw) = password {
            self.0.set_password(&user.id, pw)?;
        }
        if u.admin {
            self.0.set_admin(&user.id, true)?;
        }
        for e in &u.emails {
            self.0.add_email(&user.id, e).with_context(|| format!("adding {e} to {}", u.localpart))?;
        }
        Ok(())
    }
    fn set_password(&mut self, localpart: &str, password: &str) -> Result<()> {
        let u = self.0.user_by_username(localpart)?.with_context(|| format!("MAS has no user {localpart:?}"))?;
        self.0.set_password(&u.id, password)
    }
}

fn password(file: &Path) -> Result<String> {
    read_password(file).map_err(|why| anyhow!("users.password_file {} {why}", file.display()))
}

/// Plans (and with `apply`, carries out) the steps for `users` on `server`.
fn run(server: &mut dyn Server, users: &[Input], reset: bool, apply: bool) -> Result<Vec<Step>> {
    let mut found = Vec::new();
    for u in users {
        let existing = server.user(&u.localpart).with_context(|| format!("looking up user {}", u.localpart))?;
        let d = Declared { localpart: u.localpart.clone(), admin: u.admin, has_password: u.password_file.is_some() };
        found.push((d, existing));
    }
    let steps = plan(&found, reset);
    if !apply {
        return Ok(steps);
    }
    for step in &steps {
        let by = |lp: &str| users.iter().find(|u| u.localpart == lp).expect("planned from users");
        match step {
            Step::Create(lp) => {
                let u = by(lp);
                let pw = u.password_file.as_deref().map(password).transpose()?;
                server.create(u, pw.as_deref()).with_context(|| format!("creating user {lp}"))?;
            }
            Step::SetPassword(lp) => {
                let file = by(lp).password_file.as_deref().expect("planned only with a file");
                server.set_password(lp, &password(file)?).with_context(|| format!("setting the password of {lp}"))?;
            }
            Step::Drift { .. } => {}
        }
    }
    Ok(steps)
}

/// The steps for the current generation's server; with `apply`, done.
pub async fn ensure(
    layout: &Layout,
    users: Vec<Input>,
    delegating: bool,
    reset: bool,
    apply: bool,
) -> Result<Vec<Step>> {
    if users.is_empty() {
        return Ok(vec![]);
    }
    if delegating {
        return crate::mas_admin::users::with_admin(layout, move |a| run(&mut Mas(a), &users, reset, apply)).await;
    }
    let mut s = crate::synapse_admin::connect(layout).await?;
    tokio::task::spawn_blocking(move || run(&mut s, &users, reset, apply))
        .await
        .context("the admin API call did not finish")?
}

/// `switch --dry-run` without MAS: who exists, read from Synapse's database. Read
/// only — the admin API needs masctl-admin, which a dry run must not create.
/// Localparts and the server name are checked by the config (no quote reaches SQL).
pub async fn preview_from_synapse_db(
    engine: &crate::docker::Engine,
    postgres: &str,
    server_name: &str,
    users: &[Input],
    reset: bool,
) -> Result<Vec<Step>> {
    let ids: Vec<String> = users.iter().map(|u| format!("'@{}:{server_name}'", u.localpart)).collect();
    let ask = |db: &'static str, sql: String| async move {
        match engine.psql(postgres, db, &sql).await? {
            (0, out) => Ok(out.trim().to_string()),
            (code, _) => Err(anyhow!("reading Synapse's users failed (psql exit {code})")),
        }
    };
    // A Synapse that never started has no database, or no users table, yet.
    let has_db = ask("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'synapse'".into()).await? != "0";
    let has_table = has_db && ask("synapse", "SELECT to_regclass('public.users') IS NOT NULL".into()).await? == "t";
    let out = if has_table {
        let sql = format!(
            "SELECT coalesce(string_agg(name || ' ' || admin, ','), '') FROM users WHERE name IN ({})",
            ids.join(",")
        );
        ask("synapse", sql).await?
    } else {
        String::new()
    };
    let existing = |lp: &str| {
        let id = format!("@{lp}:{server_name}");
        out.trim()
            .split(',')
            .filter_map(|r| r.split_once(' '))
            .find(|(n, _)| *n == id)
            .map(|(_, a)| Existing { admin: a == "1" })
    };
    let found: Vec<_> = users
        .iter()
        .map(|u| {
            let d =
                Declared { localpart: u.localpart.clone(), admin: u.admin, has_password: u.password_file.is_some() };
            (d, existing(&u.localpart))
        })
        .collect();
    Ok(plan(&found, reset))
}
