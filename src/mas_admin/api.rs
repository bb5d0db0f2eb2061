//! MAS's admin API (`/api/admin/v1`), as masctl's own OAuth client uses it: a
//! client-credentials token with scope `urn:mas:admin`, then JSON over HTTP. Users
//! and their passwords travel in request bodies only — never a command line, an
//! environment or a file.
//!
//! The API is served on MAS's internal listener (the instance's Docker network),
//! never through the public proxy.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::admin_http::{agent, path_segment};

/// The scope MAS's policy grants only to clients listed in `admin_clients`.
pub const ADMIN_SCOPE: &str = "urn:mas:admin";

/// A user as the admin API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    /// Whether the user may request admin rights (`can_request_admin`).
    pub admin: bool,
    pub created_at: Option<String>,
    pub locked_at: Option<String>,
    pub deactivated_at: Option<String>,
}

/// Why a call failed, as MAS said it: its HTTP status and error titles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub titles: Vec<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.titles.is_empty() {
            write!(f, "MAS answered {}", self.status)
        } else {
            write!(f, "{} (MAS answered {})", self.titles.join(": "), self.status)
        }
    }
}

impl std::error::Error for ApiError {}

/// `{"errors": [{"title": …}, …]}` (the admin API) or `{"error": …,
/// "error_description": …}` (the OAuth token endpoint) → titles.
pub fn error_titles(body: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(body) else { return vec![] };
    if let Some(errors) = v["errors"].as_array() {
        return errors.iter().filter_map(|e| e["title"].as_str().map(String::from)).collect();
    }
    [v["error"].as_str(), v["error_description"].as_str()].into_iter().flatten().map(String::from).collect()
}

/// One user resource (`{"type": "user", "id": …, "attributes": {…}}`) → [`User`].
pub fn parse_user(resource: &Value) -> Result<User> {
    let a = &resource["attributes"];
    let text = |v: &Value| v.as_str().map(String::from);
    Ok(User {
        id: text(&resource["id"]).context("a user without an id")?,
        username: text(&a["username"]).context("a user without a username")?,
        admin: a["admin"].as_bool().unwrap_or(false),
        created_at: text(&a["created_at"]),
        locked_at: text(&a["locked_at"]),
        deactivated_at: text(&a["deactivated_at"]),
    })
}

/// One of a user's email addresses (`user-email` resource). The admin API adds
/// them verified; MAS keeps no unverified ones in this list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserEmail {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub created_at: Option<String>,
}

pub fn parse_user_email(resource: &Value) -> Result<UserEmail> {
    let a = &resource["attributes"];
    let text = |v: &Value| v.as_str().map(String::from);
    Ok(UserEmail {
        id: text(&resource["id"]).context("a user email without an id")?,
        user_id: text(&a["user_id"]).context("a user email without a user_id")?,
        email: text(&a["email"]).context("a user email without an address")?,
        created_at: text(&a["created_at"]),
    })
}

/// The entry of `emails` for `address`: MAS compares addresses without case.
pub fn find_email<'a>(emails: &'a [UserEmail], address: &str) -> Option<&'a UserEmail> {
    emails.iter().find(|e| e.email.eq_ignore_ascii_case(address))
}

/// `Basic base64(id:secret)`. MAS compares both parts byte for byte, without the
/// form-decoding RFC 6749 §2.3.1 describes: they go as they are (a ULID and hex).
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}")))
}

/// A URL path segment: a username may hold `/`, `=` or `+`.
/// An authenticated admin API session.
pub struct Admin {
    base: String,
    token: String,
    agent: ureq::Agent,
}

fn read(mut resp: ureq::http::Response<ureq::Body>) -> Result<(u16, String)> {
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().context("reading MAS's answer")?;
    Ok((status, body))
}

impl Admin {
    /// Gets a client-credentials token from `base` (e.g. `http://10.0.0.5:8081`).
    pub fn connect(base: &str, client_id: &str, client_secret: &str) -> Result<Admin> {
        let agent = agent();
        let base = base.trim_end_matches('/').to_string();
        let form = format!("grant_type=client_credentials&scope={}", path_segment(ADMIN_SCOPE));
        let resp = agent
            .post(&format!("{base}/oauth2/token"))
            .header("Authorization", &basic_auth(client_id, client_secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .send(form.as_bytes())
            .with_context(|| format!("reaching MAS's token endpoint at {base}"))?;
        let (status, body) = read(resp)?;
        if status != 200 {
            return Err(ApiError { status, titles: error_titles(&body) })
                .context("MAS refused masctl's admin client a token");
        }
        let v: Value = serde_json::from_str(&body).context("MAS's token answer is not JSON")?;
        let scope = v["scope"].as_str().unwrap_or_default();
        if !scope.split(' ').any(|s| s == ADMIN_SCOPE) {
            bail!("MAS granted masctl's admin client {scope:?}, not {ADMIN_SCOPE} (is it listed in admin_clients?)");
        }
        let token = v["access_token"].as_str().context("MAS's token answer has no access_token")?.to_string();
        Ok(Admin { base, token, agent })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        self.call_at(method, &format!("/api/admin/v1{path}"), body)
    }

    /// A request a pure builder made (its path from the server's root).
    pub fn send(&self, r: &crate::registration_tokens::Request) -> Result<Value> {
        Ok(self.call_at(r.method, &r.path, r.body.as_ref())?.1)
    }

    fn call_at(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (_, Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(b)?.as_slice()),
            (_, None) => self.agent.post(&url).header("Authorization", &auth).send_empty(),
        }
        .with_context(|| format!("calling MAS's admin API ({method} {path})"))?;
        let (status, text) = read(resp)?;
        if !(200..300).contains(&status) {
            return Err(ApiError { status, titles: error_titles(&text) }.into());
        }
        let v = if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text)? };
        Ok((status, v))
    }

    pub fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        match self.call("GET", &format!("/users/by-username/{}", path_segment(username)), None) {
            Ok((_, v)) => Ok(Some(parse_user(&v["data"])?)),
            Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.status == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn add_user(&self, username: &str) -> Result<User> {
        let (_, v) = self.call("POST", "/users", Some(&json!({"username": username})))?;
        parse_user(&v["data"])
    }

    pub fn set_password(&self, id: &str, password: &str) -> Result<()> {
        self.call("POST", &format!("/users/{id}/set-password"), Some(&json!({"password": password})))?;
        Ok(())
    }

    pub fn set_admin(&self, id: &str, admin: bool) -> Result<User> {
        let (_, v) = self.call("POST", &format!("/users/{id}/set-admin"), Some(&json!({"admin": admin})))?;
        parse_user(&v["data"])
    }

    pub fn add_email(&self, id: &str, email: &str) -> Result<UserEmail> {
        let (_, v) = self.call("POST", "/user-emails", Some(&json!({"user_id": id, "email": email})))?;
        parse_user_email(&v["data"])
    }

    /// The user's addresses (a user has a handful: one page of 100 is all of them).
    pub fn user_emails(&self, user_id: &str) -> Result<Vec<UserEmail>> {
        let path = format!("/user-emails?filter[user]={}&page[first]=100", path_segment(user_id));
        let (_, v) = self.call("GET", &path, None)?;
        v["data"].as_array().map_or(Ok(vec![]), |a| a.iter().map(parse_user_email).collect())
    }

    /// `lock`, `unlock`, `deactivate` or `reactivate`. Deactivating never asks
    /// Synapse to erase the user's data (MAS's default would).
    pub fn user_action(&self, id: &str, action: UserAction) -> Result<User> {
        let body = (action == UserAction::Deactivate).then(|| json!({"skip_erase": true}));
        let (_, v) = self.call("POST", &format!("/users/{id}/{}", action.path()), body.as_ref())?;
        parse_user(&v["data"])
    }

    /// Every user, page by page.
    pub fn list_users(&self) -> Result<Vec<User>> {
        let mut out: Vec<User> = Vec::new();
        loop {
            let mut path = "/users?page[first]=100".to_string();
            if let Some(last) = out.last() {
                path.push_str(&format!("&page[after]={}", last.id));
            }
            let (_, v) = self.call("GET", &path, None)?;
            let page: Vec<User> = v["data"].as_array().map_or(Ok(vec![]), |a| a.iter().map(parse_user).collect())?;
            let done = page.len() < 100;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }
}

/// The user state changes the admin API offers as plain POSTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    Lock,
    Unlock,
    Deactivate,
    Reactivate,
}

impl UserAction {
    pub fn path(self) -> &'static str {
        match self {
            UserAction::Lock => "lock",
            UserAction::Unlock => "unlock",
            UserAction::Deactivate => "deactivate",
            UserAction::Reactivate => "reactivate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_titles_table() {
        let cases = [
            (r#"{"errors":[{"title":"User already exists"}]}"#, vec!["User already exists"]),
            (
                r#"{"errors":[{"title":"Password is too weak"},{"title":"score 1"}]}"#,
                vec!["Password is too weak", "score 1"],
            ),
            (r#"{"error":"invalid_client","error_description":"bad secret"}"#, vec!["invalid_client", "bad secret"]),
            ("not json", vec![]),
            ("", vec![]),
        ];
        for (body, want) in cases {
            assert_eq!(error_titles(body), want, "{body}");
        }
    }

    #[test]
    fn user_email_resource_and_lookup() {
        let r = json!({"type": "user-email", "id": "01E", "attributes":
            {"user_id": "01U", "email": "Alice@Example.com", "created_at": "2026-01-01T00:00:00Z"}});
        let e = parse_user_email(&r).unwrap();
        assert_eq!((e.id.as_str(), e.user_id.as_str(), e.email.as_str()), ("01E", "01U", "Alice@Example.com"));
        assert!(parse_user_email(&json!({"id": "x", "attributes": {"user_id": "u"}})).is_err());
        let all = vec![e];
        // (address asked for, found)
        for (asked, found) in [("alice@example.com", true), ("ALICE@EXAMPLE.COM", true), ("bob@example.com", false)] {
            assert_eq!(find_email(&all, asked).is_some(), found, "{asked}");
        }
    }

    #[test]
    fn user_resource_parses() {
        let v = json!({"type": "user", "id": "01J0000000000000000000000A",
            "attributes": {"username": "alice", "admin": true, "created_at": "2026-01-01T00:00:00Z",
                           "locked_at": null, "deactivated_at": null, "legacy_guest": false}});
        let u = parse_user(&v).unwrap();
        assert_eq!((u.username.as_str(), u.admin, u.locked_at), ("alice", true, None));
        assert!(parse_user(&json!({"attributes": {}})).is_err());
    }

    #[test]
    fn basic_auth_sends_both_parts_as_they_are() {
        let h = basic_auth("01KMASCT1ADM1NC11ENT000000", "00ff");
        let raw = base64::engine::general_purpose::STANDARD.decode(h.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "01KMASCT1ADM1NC11ENT000000:00ff");
    }
}
