//! `masctl user …`: MAS's users through its admin API.

use anyhow::Result;

use crate::cli::UserCommand;
use crate::context::Context;
use crate::jobs::register_user::{localpart, read_password};
use crate::mas_admin::users;
use crate::mas_admin::{User, UserAction};
use crate::ui;

fn state(u: &User) -> &'static str {
    match (&u.deactivated_at, &u.locked_at) {
        (Some(_), _) => "deactivated",
        (None, Some(_)) => "locked",
        (None, None) => "active",
    }
}

fn print_user(u: &User, what: &str) {
    ui::step(format!("{}: {what} ({}{})", u.username, state(u), if u.admin { ", admin" } else { "" }));
}

pub async fn run(ctx: &Context, cmd: UserCommand, json: bool) -> Result<()> {
    let layout = &ctx.layout;
    let name = |n: &str| localpart(n).to_string();
    let (user, what) = match cmd {
        UserCommand::List => {
            let all = users::list(layout).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for u in &all {
                    println!("{:<24} {:<12} {}", u.username, state(u), if u.admin { "admin" } else { "" });
                }
            }
            return Ok(());
        }
        UserCommand::Lock { name: n } => (users::act(layout, name(&n), UserAction::Lock).await?, "locked"),
        UserCommand::Unlock { name: n } => (users::act(layout, name(&n), UserAction::Unlock).await?, "unlocked"),
        UserCommand::Deactivate { name: n } => {
            (users::act(layout, name(&n), UserAction::Deactivate).await?, "deactivated")
        }
        UserCommand::Reactivate { name: n } => {
            (users::act(layout, name(&n), UserAction::Reactivate).await?, "reactivated")
        }
        UserCommand::SetPassword { name: n, password_file } => {
            let pw = read_password(password_file.as_deref())?;
            (users::set_password(layout, name(&n), pw).await?, "password set")
        }
        UserCommand::AddEmail { name: n, email } | UserCommand::VerifyEmail { name: n, email } => {
            return print_email(users::add_email(layout, name(&n), email).await?, json);
        }
        UserCommand::SetAdmin { name: n, revoke } => {
            let what = if revoke { "may no longer request admin" } else { "may request admin" };
            (users::set_admin(layout, name(&n), !revoke).await?, what)
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&user)?);
    } else {
        print_user(&user, what);
    }
    Ok(())
}

fn print_email(r: users::EmailAdded, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if r.added {
        ui::step(format!("{}: {} added, verified", r.user.username, r.email.email));
    } else {
        ui::step(format!("{}: already has {} (verified); nothing was changed", r.user.username, r.email.email));
    }
    Ok(())
}
