//! HTTP as the tests' clients speak it: one agent, the Matrix password login, and
//! bearer-authenticated JSON calls. A fresh agent per call, so no pooled connection
//! outlives a restart the test causes.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use ureq::Agent;

/// An agent with the tests' usual whole-request timeout (10 s).
pub fn agent() -> Agent {
    agent_with_timeout(Duration::from_secs(10))
}

/// An agent for readiness polls: a hung request must not eat a wait's budget (5 s).
pub fn probe_agent() -> Agent {
    agent_with_timeout(Duration::from_secs(5))
}

pub fn agent_with_timeout(limit: Duration) -> Agent {
    Agent::config_builder().timeout_global(Some(limit)).build().into()
}

/// The status of an answer, error statuses included; `Err` only when none came.
pub fn status(res: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<u16, ureq::Error> {
    match res {
        Ok(r) => Ok(r.status().as_u16()),
        Err(ureq::Error::StatusCode(c)) => Ok(c),
        Err(e) => Err(e),
    }
}

/// `GET url`'s status with `agent`.
pub fn get_status(agent: &Agent, url: &str) -> Result<u16, ureq::Error> {
    status(agent.get(url).call())
}

/// The body of a Matrix `m.login.password` login.
pub fn login_body(user: &str, password: &str) -> Value {
    json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password})
}

/// A password login at `base` (Synapse's, or MAS's compatibility API): the status and,
/// on success, the answer's JSON (`Null` otherwise); `Err` when no answer came.
pub fn try_login(base: &str, user: &str, password: &str) -> Result<(u16, Value), ureq::Error> {
    match agent().post(&format!("{base}/_matrix/client/v3/login")).send_json(login_body(user, password)) {
        Ok(mut r) => Ok((r.status().as_u16(), r.body_mut().read_json()?)),
        Err(ureq::Error::StatusCode(c)) => Ok((c, Value::Null)),
        Err(e) => Err(e),
    }
}

/// `try_login`, failing the test when no answer came.
pub fn login(base: &str, user: &str, password: &str) -> (u16, Value) {
    try_login(base, user, password).unwrap_or_else(|e| panic!("login of {user} at {base}: {e}"))
}

/// The access token of a password login; `None` on any refusal or failure (for waits).
pub fn access_token(base: &str, user: &str, password: &str) -> Option<String> {
    let (_, v) = try_login(base, user, password).ok()?;
    v["access_token"].as_str().map(String::from)
}

/// `GET url` as JSON, with a bearer token if given; fails the test otherwise.
pub fn get_json(url: &str, token: Option<&str>) -> Value {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &bearer(t));
    }
    req.call().unwrap_or_else(|e| panic!("GET {url}: {e}")).body_mut().read_json().unwrap()
}

/// `s` percent-encoded for one path segment (a room id's `!` and `:`).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A logged-in Matrix client at `base`; every call fails the test unless it succeeds.
pub struct Client {
    pub base: String,
    pub token: String,
    agent: Agent,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Client {
        Client { base: base.to_string(), token: token.to_string(), agent: agent() }
    }

    /// Logs `user` in at `base`, failing the test if that is refused.
    pub fn login(base: &str, user: &str, password: &str) -> Client {
        let (status, v) = login(base, user, password);
        let token = v["access_token"].as_str().unwrap_or_else(|| panic!("login of {user}: {status} {v}"));
        Client::new(base, token)
    }

    /// The same client with another whole-request timeout.
    pub fn with_timeout(self, limit: Duration) -> Client {
        Client { agent: agent_with_timeout(limit), ..self }
    }

    pub fn get(&self, path: &str) -> Value {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Value {
        self.call("POST", path, Some(body))
    }

    pub fn put(&self, path: &str, body: &Value) -> Value {
        self.call("PUT", path, Some(body))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let auth = bearer(&self.token);
        let res = match (method, body) {
            ("GET", None) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => self.agent.put(&url).header("Authorization", &auth).send_json(b),
            ("POST", Some(b)) => self.agent.post(&url).header("Authorization", &auth).send_json(b),
            _ => unreachable!("{method} with body {body:?}"),
        };
        let mut res = res.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        res.body_mut().read_json().unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Uploads `data` as a media file; its media ID.
    pub fn upload(&self, filename: &str, content_type: &str, data: &[u8]) -> String {
        let url = format!("{}/_matrix/media/v3/upload?filename={filename}", self.base);
        let mut r = self
            .agent
            .post(&url)
            .header("Authorization", &bearer(&self.token))
            .header("Content-Type", content_type)
            .send(data)
            .unwrap_or_else(|e| panic!("upload {filename}: {e}"));
        let uri = r.body_mut().read_json::<Value>().unwrap()["content_uri"].as_str().unwrap().to_string();
        uri.rsplit('/').next().unwrap().to_string()
    }

    /// The bytes of the media file `media_id` of `server`.
    pub fn download(&self, server: &str, media_id: &str) -> Vec<u8> {
        let url = format!("{}/_matrix/client/v1/media/download/{server}/{media_id}", self.base);
        let mut r = self
            .agent
            .get(&url)
            .header("Authorization", &bearer(&self.token))
            .call()
            .unwrap_or_else(|e| panic!("download {media_id}: {e}"));
        r.body_mut().read_to_vec().unwrap()
    }
}
