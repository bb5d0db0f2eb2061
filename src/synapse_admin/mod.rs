//! Synapse's admin API (`/_synapse/admin`) as masctl uses it while Synapse
//! handles logins itself (no MAS): registration tokens and declared users.
//!
//! The API needs an admin's access token: masctl keeps its own account,
//! `masctl-admin`, created once with Synapse's shared-secret registration (the
//! `register-user` job) and a random password from the OS. Its password and access
//! token are 0600 files in `secrets/`; the token is reused, and when Synapse says
//! 401 masctl logs in again with the password. Everything travels in HTTP bodies
//! from this process, never a command line or an environment.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::admin_http::{agent, path_segment};
use crate::declared_users::{Existing, MASCTL_ADMIN};
use crate::docker::Engine;
use crate::generation::layout::Layout;
use crate::jobs::JobContext;
use crate::registration_tokens::Request;
use crate::service::Service;

/// masctl-admin's password and access token, in `secrets/`.
pub const PASSWORD_SECRET: &str = "masctl-admin-password";
pub const TOKEN_SECRET: &str = "masctl-admin-token";
/// One device for every login, so re-logins do not pile devices up.
const DEVICE_ID: &str = "MASCTL_ADMIN";

/// Why a call failed, as Synapse said it (`{"errcode", "error"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub errcode: String,
    pub error: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Synapse answered {} {}: {}", self.status, self.errcode, self.error)
    }
}

impl std::error::Error for ApiError {}

/// A session with Synapse's admin API as masctl-admin. Blocking: run it off the
/// async runtime.
pub struct Session {
    base: String,
    server_name: String,
    password: String,
    token: Option<String>,
    token_file: PathBuf,
    agent: ureq::Agent,
}

/// `alice` → `@alice:example.com`, escaped for a URL path (`@` `:` `/` `=`).
fn user_path(localpart: &str, server_name: &str) -> String {
    path_segment(&format!("@{localpart}:{server_name}"))
}

impl Session {
    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let bytes = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let mut resp =
            self.agent.run(req.body(bytes)?).with_context(|| format!("calling Synapse's API ({method} {path})"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().context("reading Synapse's answer")?;
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// Logs masctl-admin in with its password and keeps the new token.
    fn login(&mut self) -> Result<()> {
        self.token = None;
        let body = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": MASCTL_ADMIN},
            "password": self.password, "device_id": DEVICE_ID, "initial_device_display_name": "masctl"});
        let (status, v) = self.raw("POST", "/_matrix/client/v3/login", Some(&body))?;
        if status != 200 {
            return Err(api_error(status, &v))
                .context(format!("logging in as {MASCTL_ADMIN} (its password is secrets/{PASSWORD_SECRET})"));
        }
        let token = v["access_token"].as_str().context("Synapse's login answer has no access_token")?.to_string();
        crate::secrets::write_secret(&self.token_file, &token, own_uid())?;
        self.token = Some(token);
        Ok(())
    }

    /// A call as masctl-admin; a 401 logs in again once. Non-2xx → [`ApiError`].
    pub fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        if self.token.is_none() {
            self.login()?;
        }
        let (mut status, mut v) = self.raw(method, path, body)?;
        if status == 401 {
            self.login()?;
            (status, v) = self.raw(method, path, body)?;
        }
        if !(200..300).contains(&status) {
            return Err(api_error(status, &v).into());
        }
        Ok(v)
    }

    pub fn send(&mut self, r: &Request) -> Result<Value> {
        self.call(r.method, &r.path, r.body.as_ref())
    }

    /// The user's admin flag, or `None` when Synapse has no such user.
    pub fn user(&mut self, localpart: &str) -> Result<Option<Existing>> {
        match self.call("GET", &format!("/_synapse/admin/v2/users/{}", user_path(localpart, &self.server_name)), None) {
            Ok(v) => Ok(Some(Existing { admin: v["admin"].as_bool().unwrap_or(false) })),
            Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.status == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a user (Synapse's `PUT /_synapse/admin/v2/users`); without a
    /// password, nobody can log in as it (a bot its appservice acts for).
    pub fn create_user(
        &mut self,
        localpart: &str,
        password: Option<&str>,
        admin: bool,
        emails: &[String],
    ) -> Result<()> {
        let mut body = json!({"admin": admin});
        if let Some(pw) = password {
            body["password"] = json!(pw);
        }
        if !emails.is_empty() {
            let threepids: Vec<Value> = emails.iter().map(|e| json!({"medium": "email", "address": e})).collect();
            body["threepids"] = json!(threepids);
        }
        self.call(
            "PUT",
            &format!("/_synapse/admin/v2/users/{}", user_path(localpart, &self.server_name)),
            Some(&body),
        )?;
        Ok(())
    }

    /// Sets a password, keeping the user's sessions.
    pub fn set_password(&mut self, localpart: &str, password: &str) -> Result<()> {
        let body = json!({"new_password": password, "logout_devices": false});
        let path = format!("/_synapse/admin/v1/reset_password/{}", user_path(localpart, &self.server_name));
        self.call("POST", &path, Some(&body))?;
        Ok(())
    }
}

/// masctl's own uid: only masctl reads these two secrets.
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

fn api_error(status: u16, v: &Value) -> ApiError {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    ApiError { status, errcode: text("errcode"), error: text("error") }
}

/// A session with the current generation's Synapse; creates masctl-admin the
/// first time. Refused when Synapse hands logins to MAS (its admin API then takes
/// MAS's tokens: use MAS's admin API).
pub async fn connect(layout: &Layout) -> Result<Session> {
    let ctx = JobContext::load(layout).await?;
    if ctx.manifest.mas.delegating {
        bail!("Synapse hands logins to MAS in generation {}: masctl uses MAS's admin API", ctx.number);
    }
    ctx.require_active(&[Service::Synapse], Duration::from_secs(60)).await?;
    let spec = ctx.spec(Service::Synapse)?;
    let ip = Engine::connect()
        .await?
        .container_ip(&spec.container, &spec.network)
        .await?
        .with_context(|| format!("{} is not running: `masctl status` says why", spec.container))?;
    let password = ensure_account(&ctx).await?;
    let token_file = layout.secret(TOKEN_SECRET);
    let token = std::fs::read_to_string(&token_file).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    Ok(Session {
        base: format!("http://{ip}:{}", crate::eval::synapse::ADMIN_PORT),
        server_name: ctx.manifest.server_name.clone(),
        password,
        token,
        token_file,
        agent: agent(),
    })
}

/// masctl-admin's password; registers the account (shared secret, admin) when
/// its password file does not exist yet.
async fn ensure_account(ctx: &JobContext<'_>) -> Result<String> {
    let file = ctx.layout.secret(PASSWORD_SECRET);
    if let Ok(pw) = std::fs::read_to_string(&file) {
        return Ok(pw.trim().to_string());
    }
    let password = hex::encode(crate::secrets::random_bytes::<32>()?);
    let (code, out) =
        crate::jobs::register_user::register_with_synapse(ctx, MASCTL_ADMIN, password.clone(), true, &[]).await?;
    if code != 0 {
        if out.contains("User ID already taken") || out.contains("User already exists") {
            bail!(
                "@{MASCTL_ADMIN}:{} exists but secrets/{PASSWORD_SECRET} does not: set its password with Synapse's admin API and write it there (0600)",
                ctx.manifest.server_name
            );
        }
        bail!("registering {MASCTL_ADMIN} with Synapse's shared secret failed (exit {code})");
    }
    // Written once the account exists: a failed registration leaves nothing behind.
    crate::secrets::write_secret(&file, &password, own_uid())?;
    Ok(password)
}
