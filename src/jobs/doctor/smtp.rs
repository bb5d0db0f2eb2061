//! Whether MAS's SMTP server answers as `[mas.email]` says: EHLO, STARTTLS when
//! the mode is `starttls` (MAS requires it then), the TLS chain against the roots
//! MAS trusts, and AUTH with MAS's copy of the password. The conversation runs in
//! a job on the stack's network with MAS's mounts and environment (Synapse's image,
//! for its Python: MAS's own image has no SMTP client to run); its output lines are
//! read here, purely.

use serde_json::Value;

use super::finding::{Finding, Level};
use crate::secrets::MAS_SMTP_PASSWORD;
use crate::spec::SECRETS_IN;

/// `[mas.email] mode`, with lettre's default port for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    StartTls,
    Tls,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "plain" => Some(Mode::Plain),
            "starttls" => Some(Mode::StartTls),
            "tls" => Some(Mode::Tls),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::StartTls => "starttls",
            Mode::Tls => "tls",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Mode::Plain => 25,
            Mode::StartTls => 587,
            Mode::Tls => 465,
        }
    }
}

/// The server MAS sends mail through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub mode: Mode,
    pub username: Option<String>,
}

impl Target {
    /// From the generation's evaluated config; None unless the transport is smtp.
    pub fn from_config(config: &Value) -> Option<Target> {
        let e = &config["mas"]["email"];
        if e["transport"] != "smtp" {
            return None;
        }
        // masctl renders `starttls` when no mode is given.
        let mode = Mode::parse(e["mode"].as_str().unwrap_or("starttls"))?;
        let port = e["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(mode.default_port());
        let username = e["username"].as_str().map(String::from);
        Some(Target { host: e["hostname"].as_str()?.to_string(), port, mode, username })
    }

    fn at(&self) -> String {
        format!("{}:{} ({})", self.host, self.port, self.mode.as_str())
    }

    /// The probe's arguments (nothing secret: the password is read from its file).
    pub fn args(&self) -> Vec<String> {
        vec![
            self.host.clone(),
            self.port.to_string(),
            self.mode.as_str().to_string(),
            self.username.clone().unwrap_or_else(|| "-".into()),
            format!("{SECRETS_IN}/{MAS_SMTP_PASSWORD}"),
        ]
    }
}

pub const MARK: &str = "masctl-smtp: ";

/// The probe: one `masctl-smtp: <stage> ok|fail <detail>` line per stage reached
/// (connect, starttls, tls, auth). The password never leaves the container.
pub const PROBE: &str = r#"
import os, smtplib, ssl, sys
host, port, mode, user, pw_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def say(stage, ok, detail=""):
    print("masctl-smtp: %s %s %s" % (stage, "ok" if ok else "fail", " ".join(str(detail).split())), flush=True)
ctx = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
try:
    if mode == "tls":
        c = smtplib.SMTP_SSL(host, port, timeout=15, context=ctx)
    else:
        c = smtplib.SMTP(host, port, timeout=15)
    c.ehlo()
except ssl.SSLError as e:
    say("tls", False, e)
    sys.exit(0)
except (OSError, smtplib.SMTPException) as e:
    say("connect", False, e)
    sys.exit(0)
say("connect", True)
if mode == "tls":
    say("tls", True)
if mode == "starttls":
    if not c.has_extn("starttls"):
        say("starttls", False, "not offered")
        sys.exit(0)
    try:
        c.starttls(context=ctx)
        c.ehlo()
    except ssl.SSLError as e:
        say("tls", False, e)
        sys.exit(0)
    except (OSError, smtplib.SMTPException) as e:
        say("starttls", False, e)
        sys.exit(0)
    say("starttls", True)
if user != "-":
    pw = open(pw_file, encoding="utf-8").read().strip()
    try:
        c.login(user, pw)
        say("auth", True)
    except smtplib.SMTPAuthenticationError as e:
        say("auth", False, "%d %s" % (e.smtp_code, e.smtp_error.decode("utf-8", "replace")))
    except smtplib.SMTPNotSupportedError:
        say("auth", False, "AUTH not offered")
    except (OSError, smtplib.SMTPException) as e:
        say("auth", False, e)
try:
    c.quit()
except Exception:
    pass
"#;

/// One stage's line: (stage, ok, detail).
fn stages(out: &str) -> Vec<(&str, bool, &str)> {
    out.lines()
        .filter_map(|l| l.split_once(MARK).map(|(_, rest)| rest))
        .filter_map(|rest| {
            let mut it = rest.splitn(3, ' ');
            let (stage, verdict) = (it.next()?, it.next()?);
            Some((stage, verdict == "ok", it.next().unwrap_or("").trim()))
        })
        .collect()
}

/// What to fix when `stage` failed with `detail`.
fn failure(t: &Target, stage: &str, detail: &str) -> String {
    let at = t.at();
    match stage {
        "connect" => format!(
            "SMTP server {at} is unreachable from MAS's network ({detail}): check [mas.email] hostname and port"
        ),
        "starttls" if detail == "not offered" => format!(
            "SMTP server {at} does not offer STARTTLS, which mode = \"starttls\" requires: \
enable it on the server, or set mode = \"tls\" (implicit TLS) or \"plain\""
        ),
        "tls" => format!(
            "SMTP server {at}: TLS failed ({detail}): its certificate must chain to the roots MAS trusts \
([edge] trust, else the system's) and name {}",
            t.host
        ),
        "auth" => format!(
            "SMTP server {at} refused to authenticate {} ({detail}): fix the password in [mas.email] password_file \
(or the username), then `masctl switch`",
            t.username.as_deref().unwrap_or("")
        ),
        _ => format!("SMTP server {at}: {stage} failed ({detail})"),
    }
}

/// The findings for the probe's output.
pub fn findings(t: &Target, out: &str) -> Vec<Finding> {
    let seen = stages(out);
    if let Some((stage, _, detail)) = seen.iter().find(|(_, ok, _)| !ok) {
        return vec![Finding { level: Level::Error, message: failure(t, stage, detail) }];
    }
    let wanted: &[&str] = match (t.mode, t.username.is_some()) {
        (Mode::Plain, false) => &["connect"],
        (Mode::Plain, true) => &["connect", "auth"],
        (Mode::StartTls, false) => &["connect", "starttls"],
        (Mode::StartTls, true) => &["connect", "starttls", "auth"],
        (Mode::Tls, false) => &["connect", "tls"],
        (Mode::Tls, true) => &["connect", "tls", "auth"],
    };
    if let Some(missing) = wanted.iter().find(|w| !seen.iter().any(|(s, _, _)| s == *w)) {
        return vec![Finding {
            level: Level::Error,
            message: format!("SMTP server {}: the check stopped before {missing} (see the output above)", t.at()),
        }];
    }
    let how = match (t.mode, &t.username) {
        (Mode::Plain, None) => "answers (no TLS, no login)".to_string(),
        (Mode::Plain, Some(u)) => format!("answers and accepts {u}'s password (no TLS)"),
        (m, None) => {
            format!("answers over {} with a trusted certificate", if m == Mode::Tls { "TLS" } else { "STARTTLS" })
        }
        (m, Some(u)) => format!(
            "answers over {} with a trusted certificate and accepts {u}'s password",
            if m == Mode::Tls { "TLS" } else { "STARTTLS" }
        ),
    };
    vec![Finding { level: Level::Ok, message: format!("SMTP server {} {how}", t.at()) }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(mode: Mode, user: bool) -> Target {
        Target { host: "smtp".into(), port: 587, mode, username: user.then(|| "mas".into()) }
    }

    #[test]
    fn target_from_config_table() {
        let email = |e: Value| json!({"mas": {"email": e}});
        // (config, target)
        let cases = [
            (email(json!({"transport": "none"})), None),
            (
                email(json!({"transport": "smtp", "hostname": "m.e.com"})),
                Some(Target { host: "m.e.com".into(), port: 587, mode: Mode::StartTls, username: None }),
            ),
            (
                email(json!({"transport": "smtp", "hostname": "m", "mode": "tls", "username": "u"})),
                Some(Target { host: "m".into(), port: 465, mode: Mode::Tls, username: Some("u".into()) }),
            ),
            (
                email(json!({"transport": "smtp", "hostname": "m", "mode": "plain", "port": 2525})),
                Some(Target { host: "m".into(), port: 2525, mode: Mode::Plain, username: None }),
            ),
            (email(json!({"transport": "smtp", "hostname": "m", "mode": "pigeon"})), None),
        ];
        for (config, want) in cases {
            assert_eq!(Target::from_config(&config), want, "{config}");
        }
        assert_eq!(
            target(Mode::StartTls, false).args(),
            ["smtp", "587", "starttls", "-", "/run/secrets/mas-smtp-password"]
        );
    }

    #[test]
    fn findings_table() {
        let ok = "masctl-smtp: connect ok \nmasctl-smtp: starttls ok \nmasctl-smtp: auth ok \n";
        // (mode, with a username, probe output, level, words of the message)
        let cases: [(Mode, bool, &str, Level, &[&str]); 9] = [
            (Mode::StartTls, true, ok, Level::Ok, &["smtp:587 (starttls)", "STARTTLS", "accepts mas's password"]),
            (Mode::Tls, false, "masctl-smtp: connect ok \nmasctl-smtp: tls ok \n", Level::Ok, &["over TLS"]),
            (Mode::Plain, false, "masctl-smtp: connect ok \n", Level::Ok, &["no TLS"]),
            (
                Mode::StartTls,
                true,
                "masctl-smtp: connect fail [Errno 111] Connection refused\n",
                Level::Error,
                &["unreachable", "Connection refused", "hostname and port"],
            ),
            (
                Mode::StartTls,
                true,
                "masctl-smtp: connect ok \nmasctl-smtp: starttls fail not offered\n",
                Level::Error,
                &["does not offer STARTTLS", "mode = \"tls\""],
            ),
            (
                Mode::StartTls,
                true,
                "masctl-smtp: connect ok \nmasctl-smtp: starttls ok \nmasctl-smtp: auth fail 535 5.7.8 Authentication credentials invalid\n",
                Level::Error,
                &["refused to authenticate mas", "535 5.7.8", "password_file"],
            ),
            (
                Mode::Tls,
                false,
                "masctl-smtp: tls fail [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed\n",
                Level::Error,
                &["TLS failed", "CERTIFICATE_VERIFY_FAILED", "[edge] trust"],
            ),
            (
                Mode::StartTls,
                true,
                "masctl-smtp: connect ok \nmasctl-smtp: starttls ok \n",
                Level::Error,
                &["before auth"],
            ),
            (Mode::Plain, false, "docker: no such image\n", Level::Error, &["before connect"]),
        ];
        for (mode, user, out, level, words) in cases {
            let f = findings(&target(mode, user), out);
            assert_eq!(f.len(), 1, "{out}");
            assert_eq!(f[0].level, level, "{out}: {}", f[0].message);
            for w in words {
                assert!(f[0].message.contains(w), "{w:?} in {}", f[0].message);
            }
        }
    }
}
