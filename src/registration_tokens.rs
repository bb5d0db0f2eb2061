//! Registration tokens as `masctl registration-token create|list|revoke` needs
//! them, as pure request builders and response parsers for both APIs: MAS's admin
//! API (`/api/admin/v1/user-registration-tokens`, MAS ≥ 0.17) when MAS handles
//! logins, Synapse's admin API (`/_synapse/admin/v1/registration_tokens`) when it
//! does not (Synapse does not serve that API under MAS).

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// What `create` asks for. `None` = unlimited uses / never expires / generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewToken {
    pub token: Option<String>,
    pub uses: Option<u32>,
    /// Milliseconds since the epoch (Synapse's unit; MAS gets RFC 3339).
    pub expires_at_ms: Option<i64>,
}

/// A token as either API reports it (printed by `list`, as MAS's own admin
/// API shows tokens to whoever may manage them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    /// MAS's ULID; Synapse names tokens by themselves.
    pub id: String,
    pub token: String,
    pub uses_allowed: Option<u32>,
    pub times_used: u32,
    pub expires_at_ms: Option<i64>,
    pub revoked: bool,
    pub valid: bool,
}

/// An HTTP request, relative to the API's base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

fn rfc3339(ms: i64) -> Result<String> {
    let ts = jiff::Timestamp::from_millisecond(ms).context("expiry out of range")?;
    Ok(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn millis(v: &Value) -> Result<Option<i64>> {
    match v.as_str() {
        None => Ok(None),
        Some(s) => Ok(Some(s.parse::<jiff::Timestamp>().context("a bad timestamp")?.as_millisecond())),
    }
}

pub mod mas {
    use super::*;

    const BASE: &str = "/api/admin/v1/user-registration-tokens";

    pub fn create(t: &NewToken) -> Result<Request> {
        let mut body = json!({});
        if let Some(tok) = &t.token {
            body["token"] = json!(tok);
        }
        if let Some(n) = t.uses {
            body["usage_limit"] = json!(n);
        }
        if let Some(ms) = t.expires_at_ms {
            body["expires_at"] = json!(rfc3339(ms)?);
        }
        Ok(Request { method: "POST", path: BASE.into(), body: Some(body) })
    }

    /// One page; `after` is the last ULID of the previous page.
    pub fn list(after: Option<&str>) -> Request {
        let mut path = format!("{BASE}?page[first]=100");
        if let Some(a) = after {
            path.push_str(&format!("&page[after]={a}"));
        }
        Request { method: "GET", path, body: None }
    }

    pub fn revoke(id: &str) -> Request {
        Request { method: "POST", path: format!("{BASE}/{id}/revoke"), body: None }
    }

    /// `{"type": "user-registration_token", "id", "attributes": {…}}` → [`Token`].
    pub fn parse(resource: &Value) -> Result<Token> {
        let a = &resource["attributes"];
        Ok(Token {
            id: resource["id"].as_str().context("a token without an id")?.into(),
            token: a["token"].as_str().context("a token without its token")?.into(),
            uses_allowed: a["usage_limit"].as_u64().map(|n| n as u32),
            times_used: a["times_used"].as_u64().unwrap_or(0) as u32,
            expires_at_ms: millis(&a["expires_at"])?,
            revoked: !a["revoked_at"].is_null(),
            valid: a["valid"].as_bool().unwrap_or(false),
        })
    }

    pub fn parse_list(body: &Value) -> Result<Vec<Token>> {
        body["data"].as_array().context("no data in MAS's answer")?.iter().map(parse).collect()
    }
}

pub mod synapse {
    use super::*;

    const BASE: &str = "/_synapse/admin/v1/registration_tokens";

    pub fn create(t: &NewToken) -> Request {
        let mut body = json!({});
        if let Some(tok) = &t.token {
            body["token"] = json!(tok);
        }
        body["uses_allowed"] = json!(t.uses);
        body["expiry_time"] = json!(t.expires_at_ms);
        Request { method: "POST", path: format!("{BASE}/new"), body: Some(body) }
    }

    pub fn list() -> Request {
        Request { method: "GET", path: BASE.into(), body: None }
    }

    /// Synapse has no revoked state: revoking deletes the token.
    pub fn revoke(token: &str) -> Request {
        Request { method: "DELETE", path: format!("{BASE}/{token}"), body: None }
    }

    /// `{token, uses_allowed, pending, completed, expiry_time}` → [`Token`];
    /// `now_ms` decides validity as Synapse does (pending uses count).
    pub fn parse(v: &Value, now_ms: i64) -> Result<Token> {
        let token: String = v["token"].as_str().context("a token without its token")?.into();
        let uses_allowed = v["uses_allowed"].as_u64().map(|n| n as u32);
        let used = (v["pending"].as_u64().unwrap_or(0) + v["completed"].as_u64().unwrap_or(0)) as u32;
        let expires_at_ms = v["expiry_time"].as_i64();
        let valid = uses_allowed.is_none_or(|n| used < n) && expires_at_ms.is_none_or(|e| now_ms < e);
        Ok(Token { id: token.clone(), token, uses_allowed, times_used: used, expires_at_ms, revoked: false, valid })
    }

    pub fn parse_list(body: &Value, now_ms: i64) -> Result<Vec<Token>> {
        let items = body["registration_tokens"].as_array().context("no registration_tokens in Synapse's answer")?;
        items.iter().map(|v| parse(v, now_ms)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mas_create_table() {
        let cases = [
            (NewToken::default(), json!({})),
            (NewToken { uses: Some(3), ..Default::default() }, json!({"usage_limit": 3})),
            (
                NewToken { token: Some("abc".into()), expires_at_ms: Some(1_700_000_000_000), uses: None },
                json!({"token": "abc", "expires_at": "2023-11-14T22:13:20Z"}),
            ),
        ];
        for (t, want) in cases {
            let r = mas::create(&t).unwrap();
            assert_eq!((r.method, r.path.as_str()), ("POST", "/api/admin/v1/user-registration-tokens"));
            assert_eq!(r.body, Some(want));
        }
        assert_eq!(mas::revoke("01J").path, "/api/admin/v1/user-registration-tokens/01J/revoke");
        assert!(mas::list(Some("01J")).path.ends_with("page[first]=100&page[after]=01J"));
    }

    #[test]
    fn mas_resource_parses() {
        // MAS v1.22.0's own snapshot (user_registration_tokens/list.rs).
        let v = json!({"type": "user-registration_token", "id": "01FSHN9AG064K8BYZXSY5G511Z",
            "attributes": {"token": "token_expired", "valid": false, "usage_limit": 5, "times_used": 0,
                "created_at": "2022-01-16T14:40:00Z", "last_used_at": null,
                "expires_at": "2022-01-15T14:40:00Z", "revoked_at": null}});
        let t = mas::parse(&v).unwrap();
        assert_eq!((t.uses_allowed, t.valid, t.revoked), (Some(5), false, false));
        assert_eq!(t.expires_at_ms, Some(1_642_257_600_000));
        assert!(mas::parse_list(&json!({"data": [v]})).unwrap().len() == 1);
        assert!(mas::parse(&json!({"attributes": {}})).is_err());
    }

    #[test]
    fn synapse_table() {
        let r = synapse::create(&NewToken { uses: Some(1), ..Default::default() });
        assert_eq!(r.path, "/_synapse/admin/v1/registration_tokens/new");
        assert_eq!(r.body, Some(json!({"uses_allowed": 1, "expiry_time": null})));
        assert_eq!(synapse::revoke("abc").method, "DELETE");
        let now = 1_000;
        let cases = [
            (json!({"token": "a", "uses_allowed": null, "pending": 0, "completed": 9, "expiry_time": null}), true),
            (json!({"token": "b", "uses_allowed": 1, "pending": 1, "completed": 0, "expiry_time": null}), false),
            (json!({"token": "c", "uses_allowed": 2, "pending": 0, "completed": 1, "expiry_time": 999}), false),
            (json!({"token": "d", "uses_allowed": 2, "pending": 0, "completed": 1, "expiry_time": 1001}), true),
        ];
        for (v, valid) in cases {
            assert_eq!(synapse::parse(&v, now).unwrap().valid, valid, "{v}");
        }
        assert!(synapse::parse_list(&json!({}), now).is_err());
    }
}
