//! Users in MAS, through its admin API with masctl's own client: create (with a
//! password, admin flag and emails), list, lock, unlock, deactivate, reactivate,
//! set a password or the admin flag. Everything travels in HTTP bodies from this
//! process: no password reaches a command line, an environment, a file or the
//! journal.

use anyhow::{Context as _, Result, bail};

use super::api::{Admin, ApiError, User, UserAction, UserEmail, find_email};
use crate::docker::Engine;
use crate::eval::mas::{ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, INTERNAL_PORT};
use crate::generation::generations::Generations;
use crate::generation::layout::Layout;
use crate::service::Service;
use crate::spec::read_spec;

/// Where MAS's internal listener answers, and the secret of masctl's client.
struct Endpoint {
    base: String,
    secret: String,
}

async fn endpoint(layout: &Layout) -> Result<Endpoint> {
    let current =
        Generations::new(layout).current()?.context("nothing has been switched to yet: run `masctl switch`")?;
    let manifest = current.manifest()?;
    if !manifest.mas.enabled {
        bail!(
            "generation {} does not run MAS: users are managed by Synapse (`masctl register-user` still works)",
            current.number
        );
    }
    let spec = read_spec(manifest.services.get(&Service::Mas).context("the generation lists no MAS service")?)?;
    let engine = Engine::connect().await?;
    let ip = engine
        .container_ip(&spec.container, &spec.network)
        .await?
        .with_context(|| format!("{} is not running: `masctl status` says why", spec.container))?;
    let secret = std::fs::read_to_string(layout.secret(ADMIN_CLIENT_SECRET))
        .context("reading masctl's MAS client secret (run `masctl switch` to create it)")?;
    Ok(Endpoint { base: format!("http://{ip}:{INTERNAL_PORT}"), secret: secret.trim().to_string() })
}

/// Runs `f` with an admin session, off the async runtime (the HTTP client blocks).
pub async fn with_admin<T: Send + 'static>(
    layout: &Layout,
    f: impl FnOnce(&Admin) -> Result<T> + Send + 'static,
) -> Result<T> {
    let ep = endpoint(layout).await?;
    tokio::task::spawn_blocking(move || {
        let admin = Admin::connect(&ep.base, ADMIN_CLIENT_ID, &ep.secret)?;
        f(&admin)
    })
    .await
    .context("the admin API call did not finish")?
}

fn find(admin: &Admin, username: &str) -> Result<User> {
    admin.user_by_username(username)?.with_context(|| format!("MAS has no user {username:?}"))
}

/// What `register` should create.
pub struct Registration {
    pub username: String,
    pub password: String,
    pub admin: bool,
    pub emails: Vec<String>,
}

/// How far a registration got when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Creating,
    /// The user exists already (a later step failed).
    Created,
}

/// Why a registration stopped, in words a person can act on.
fn explain(e: anyhow::Error, username: &str, stage: Stage) -> anyhow::Error {
    let titles = e.downcast_ref::<ApiError>().map(|a| a.titles.join(": ")).unwrap_or_default();
    let said = |needle: &str| titles.contains(needle);
    if stage == Stage::Created {
        let why = if said("too weak") { "MAS refused the password as too weak".to_string() } else { format!("{e:#}") };
        return anyhow::anyhow!(
            "{why}; {username} was created but has no password yet: set one with `masctl user set-password {username}`"
        );
    }
    if said("already exists") {
        anyhow::anyhow!("{username} already exists in MAS; nothing was changed")
    } else if said("reserved") || said("not available") {
        anyhow::anyhow!("Synapse refused the name {username:?} (taken or reserved); nothing was changed")
    } else if said("not valid") {
        anyhow::anyhow!("MAS refused the name {username:?} ({titles}); nothing was changed")
    } else {
        e
    }
}

/// Creates the user, then sets its password, admin flag and emails.
pub async fn register(layout: &Layout, r: Registration) -> Result<User> {
    with_admin(layout, move |admin| {
        if admin.user_by_username(&r.username)?.is_some() {
            bail!("{} already exists in MAS; nothing was changed", r.username);
        }
        let user = admin.add_user(&r.username).map_err(|e| explain(e, &r.username, Stage::Creating))?;
        admin.set_password(&user.id, &r.password).map_err(|e| explain(e, &r.username, Stage::Created))?;
        let mut user = user;
        if r.admin {
            user = admin.set_admin(&user.id, true).map_err(|e| explain(e, &r.username, Stage::Created))?;
        }
        for email in &r.emails {
            admin.add_email(&user.id, email).with_context(|| format!("adding {email} to {}", r.username))?;
        }
        Ok(user)
    })
    .await
}

pub async fn list(layout: &Layout) -> Result<Vec<User>> {
    with_admin(layout, |admin| admin.list_users()).await
}

pub async fn act(layout: &Layout, username: String, action: UserAction) -> Result<User> {
    with_admin(layout, move |admin| {
        let u = find(admin, &username)?;
        admin.user_action(&u.id, action)
    })
    .await
}

pub async fn set_admin(layout: &Layout, username: String, admin_flag: bool) -> Result<User> {
    with_admin(layout, move |admin| {
        let u = find(admin, &username)?;
        admin.set_admin(&u.id, admin_flag)
    })
    .await
}

pub async fn set_password(layout: &Layout, username: String, password: String) -> Result<User> {
    with_admin(layout, move |admin| {
        let u = find(admin, &username)?;
        admin.set_password(&u.id, &password).map_err(|e| {
            let weak = e.downcast_ref::<ApiError>().is_some_and(|a| a.titles.iter().any(|t| t.contains("too weak")));
            if weak { anyhow::anyhow!("MAS refused the password as too weak; nothing was changed") } else { e }
        })?;
        Ok(u)
    })
    .await
}

/// What `add_email` did: the address is the user's, verified, either way.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmailAdded {
    pub user: User,
    pub email: UserEmail,
    /// False when the user had the address already (nothing was changed).
    pub added: bool,
}

/// Why MAS refused an address, in words a person can act on.
fn explain_email(e: anyhow::Error, username: &str, address: &str) -> anyhow::Error {
    let Some(a) = e.downcast_ref::<ApiError>() else { return e };
    match a.status {
        409 => anyhow::anyhow!("{address} is already the address of another MAS user; nothing was changed"),
        400 => anyhow::anyhow!("MAS refused {address:?} for {username} ({}); nothing was changed", a.titles.join(": ")),
        _ => e,
    }
}

/// Gives `username` the verified address `address` through the admin API (for
/// when MAS's mail cannot reach them); an address the user has already is left as it is.
pub async fn add_email(layout: &Layout, username: String, address: String) -> Result<EmailAdded> {
    with_admin(layout, move |admin| {
        let user = find(admin, &username)?;
        let emails = admin.user_emails(&user.id)?;
        if let Some(e) = find_email(&emails, &address) {
            return Ok(EmailAdded { user, email: e.clone(), added: false });
        }
        let email = admin.add_email(&user.id, &address).map_err(|e| explain_email(e, &username, &address))?;
        Ok(EmailAdded { user, email, added: true })
    })
    .await
}
