//! `masctl registration-token create|list|revoke`: through MAS's admin API when
//! Synapse hands logins to MAS, else through Synapse's admin API as masctl-admin.
//! Requests and answers are the pure builders of [`crate::registration_tokens`].

use anyhow::{Context as _, Result, bail};

use crate::generation::generations::Generations;
use crate::generation::layout::Layout;
use crate::mas_admin::users::with_admin;
use crate::registration_tokens::{NewToken, Token, mas, synapse};

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Whether the current generation's logins are MAS's.
fn delegating(layout: &Layout) -> Result<bool> {
    let current =
        Generations::new(layout).current()?.context("nothing has been switched to yet: run `masctl switch`")?;
    Ok(current.manifest()?.mas.delegating)
}

pub async fn create(layout: &Layout, t: NewToken) -> Result<Token> {
    if delegating(layout)? {
        let req = mas::create(&t)?;
        return with_admin(layout, move |a| mas::parse(&a.send(&req)?["data"])).await;
    }
    let mut s = crate::synapse_admin::connect(layout).await?;
    tokio::task::spawn_blocking(move || synapse::parse(&s.send(&synapse::create(&t))?, now_ms()))
        .await
        .context("the admin API call did not finish")?
}

pub async fn list(layout: &Layout) -> Result<Vec<Token>> {
    if delegating(layout)? {
        return with_admin(layout, |a| {
            let mut all: Vec<Token> = Vec::new();
            loop {
                let page = mas::parse_list(&a.send(&mas::list(all.last().map(|t| t.id.as_str())))?)?;
                let done = page.len() < 100;
                all.extend(page);
                if done {
                    return Ok(all);
                }
            }
        })
        .await;
    }
    let mut s = crate::synapse_admin::connect(layout).await?;
    tokio::task::spawn_blocking(move || synapse::parse_list(&s.send(&synapse::list())?, now_ms()))
        .await
        .context("the admin API call did not finish")?
}

/// Revokes the token `token` (its text, or MAS's id). MAS keeps it, marked
/// revoked; Synapse has no such state and deletes it.
pub async fn revoke(layout: &Layout, token: String) -> Result<Token> {
    let all = list(layout).await?;
    let Some(found) = all.into_iter().find(|t| t.token == token || t.id == token) else {
        bail!("there is no registration token {token:?} (`masctl registration-token list` shows them)");
    };
    if found.revoked {
        bail!("registration token {token:?} is already revoked");
    }
    if delegating(layout)? {
        let req = mas::revoke(&found.id);
        return with_admin(layout, move |a| mas::parse(&a.send(&req)?["data"])).await;
    }
    let mut s = crate::synapse_admin::connect(layout).await?;
    let id = found.id.clone();
    tokio::task::spawn_blocking(move || s.send(&synapse::revoke(&id)))
        .await
        .context("the admin API call did not finish")??;
    Ok(Token { revoked: true, valid: false, ..found })
}
