//! `masctl registration-token create|list|revoke`.

use anyhow::Result;

use crate::cli::{Expiry, RegistrationTokenCommand};
use crate::context::Context;
use crate::ops::registration_tokens as ops;
use crate::registration_tokens::{NewToken, Token};

fn when(ms: Option<i64>) -> String {
    match ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok()) {
        Some(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => "never".into(),
    }
}

fn line(t: &Token) -> String {
    let uses = t.uses_allowed.map_or("unlimited".to_string(), |n| n.to_string());
    let state = if t.revoked {
        "revoked"
    } else if t.valid {
        "valid"
    } else {
        "used up or expired"
    };
    format!("{:<28} used {}/{uses:<10} expires {:<21} {state}", t.token, t.times_used, when(t.expires_at_ms))
}

fn print(t: &Token, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(t)?);
    } else {
        println!("{}", line(t));
    }
    Ok(())
}

pub async fn run(ctx: &Context, cmd: RegistrationTokenCommand) -> Result<()> {
    let layout = &ctx.layout;
    match cmd {
        RegistrationTokenCommand::Create { token, uses, expires, json } => {
            let expires_at_ms = expires.map(|e| match e {
                Expiry::At(ms) => ms,
                Expiry::In(d) => jiff::Timestamp::now().as_millisecond() + d.as_millis() as i64,
            });
            print(&ops::create(layout, NewToken { token, uses, expires_at_ms }).await?, json)
        }
        RegistrationTokenCommand::List { json } => {
            let all = ops::list(layout).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                all.iter().for_each(|t| println!("{}", line(t)));
            }
            Ok(())
        }
        RegistrationTokenCommand::Revoke { token, json } => print(&ops::revoke(layout, token).await?, json),
    }
}
