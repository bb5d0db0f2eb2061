//! `[[users]]` and `masctl registration-token` on one real stack without MAS
//! (Synapse's own logins): creation on switch, idempotence, drift reported and
//! not forced, tokens created, listed, used for a registration and revoked, a
//! clashing appservice refused, and no password or token leaking.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::stack::{Stack, text};
use common::{docker_ok, grep_tree, http};
use serde_json::{Value, json};

const ALICE_PW: &str = "alice-declared-password-5f2c9a";
const BOB_PW: &str = "bob-declared-password-81d0e3";

const BASE: &str = "[synapse]\nenable_registration = true\n[synapse.extra]\nregistration_requires_token = true\n";

fn users(bob_admin: bool) -> String {
    format!(
        "[[users]]\nlocalpart = \"alice\"\nadmin = true\npassword_file = \"/etc/masctl/alice.pw\"\n\
[[users]]\nlocalpart = \"bob\"\nadmin = {bob_admin}\npassword_file = \"/etc/masctl/bob.pw\"\n\
[[users]]\nlocalpart = \"bot\"\n"
    )
}

/// Puts back a config `masctl try --down` can load on the machine before the
/// stack is dropped (the password files are paths inside the host only), even
/// when the test fails. Declare it after the stack: it drops first.
struct RestoreConfig<'a>(&'a Stack, String);

impl Drop for RestoreConfig<'_> {
    fn drop(&mut self) {
        self.0.write_config(&self.1);
    }
}

fn write_private(s: &Stack, name: &str, content: &str, mode: u32) {
    let p = s.config_dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn both(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// The user as Synapse's admin API reports it (asked as alice, a declared admin).
fn synapse_user(s: &Stack, admin: &http::Client, lp: &str) -> Value {
    admin.get(&format!("/_synapse/admin/v2/users/@{lp}:{}", s.server_name))
}

#[test]
fn declared_users_and_registration_tokens_without_mas() {
    let s = Stack::new("users");
    s.write_config(BASE);
    let _restore = RestoreConfig(&s, BASE.to_string());
    s.up();
    s.wait_serving();
    write_private(&s, "alice.pw", &format!("{ALICE_PW}\n"), 0o600);
    write_private(&s, "bob.pw", BOB_PW, 0o600);

    // Bad input: located errors, nothing changes.
    let gens = s.generations().len();
    write_private(&s, "loose.pw", "x", 0o644);
    s.write_config(&format!("{BASE}[[users]]\nlocalpart = \"carol\"\npassword_file = \"/etc/masctl/loose.pw\"\n"));
    let out = s.masctl(&["switch"]);
    assert!(!out.status.success() && both(&out).contains("masctl.toml:12:17: users.password_file"), "{}", both(&out));
    assert!(both(&out).contains("mode 0644"), "{}", both(&out));
    let reg = "id: clash\nurl: null\nas_token: clash-as-token-0123456789\nhs_token: clash-hs-token-0123456789\n\
sender_localpart: alice\nnamespaces: {}\n";
    write_private(&s, "clash.yaml", reg, 0o600);
    s.write_config(&format!("{BASE}[[synapse.appservices]]\npath = \"/etc/masctl/clash.yaml\"\n{}", users(false)));
    let out = s.masctl(&["switch"]);
    assert!(!out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("/etc/masctl/clash.yaml:5:19: sender_localpart \"alice\" is a declared user"),
        "{}",
        both(&out)
    );
    assert_eq!(s.generations().len(), gens);

    // A dry run lists what it would create and creates nothing.
    s.write_config(&format!("{BASE}{}", users(false)));
    let plan = s.masctl_ok(&["switch", "--dry-run"]);
    for lp in ["alice", "bob", "bot"] {
        assert!(plan.contains(&format!("create user {lp}")), "{plan}");
    }
    assert_eq!(s.login_status("alice", ALICE_PW), 403);

    // The switch creates them: alice an admin, bob not, bot without a password.
    let out = s.masctl(&["switch"]);
    assert!(out.status.success(), "{}", both(&out));
    let alice = s.client("alice", ALICE_PW);
    assert_eq!(s.login_status("bob", BOB_PW), 200);
    assert_eq!(synapse_user(&s, &alice, "alice")["admin"], true);
    assert_eq!(synapse_user(&s, &alice, "bob")["admin"], false);
    let bot = synapse_user(&s, &alice, "bot");
    assert_eq!((bot["admin"].as_bool(), bot["deactivated"].as_bool()), (Some(false), Some(false)), "{bot}");

    // Idempotent: a second switch creates nothing.
    let again = both(&s.masctl(&["switch"]));
    assert!(!again.contains("create user"), "{again}");

    // Drift: bob declared an admin is reported, not forced.
    s.write_config(&format!("{BASE}{}", users(true)));
    let plan = s.masctl_ok(&["switch", "--dry-run"]);
    assert!(plan.contains("user bob exists and is not") && !plan.contains("create user"), "{plan}");
    let out = s.masctl(&["switch"]);
    assert!(out.status.success() && both(&out).contains("user bob exists and is not"), "{}", both(&out));
    assert_eq!(synapse_user(&s, &alice, "bob")["admin"], false);

    // Passwords are set again only when asked.
    write_private(&s, "bob.pw", "bob-new-password-77aa", 0o600);
    s.masctl_ok(&["switch"]);
    assert_eq!(s.login_status("bob", BOB_PW), 200);
    s.masctl_ok(&["switch", "--reset-declared-passwords"]);
    assert_eq!(s.login_status("bob", "bob-new-password-77aa"), 200);

    let tokens = registration_tokens(&s);
    secrets_do_not_leak(&s, &tokens);
}

/// `registration-token create|list|revoke` through Synapse's admin API, and a
/// registration with a token; returns the tokens seen.
fn registration_tokens(s: &Stack) -> Vec<String> {
    let created: Value =
        serde_json::from_str(&s.masctl_ok(&["registration-token", "create", "--uses", "1", "--json"])).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!((created["uses_allowed"].as_u64(), created["valid"].as_bool()), (Some(1), Some(true)), "{created}");
    let listed: Value = serde_json::from_str(&s.masctl_ok(&["registration-token", "list", "--json"])).unwrap();
    assert!(listed.as_array().unwrap().iter().any(|t| t["token"] == token.as_str()), "{listed}");

    // Registration needs a token; with this one it succeeds, once.
    assert_eq!(register(s, "carol", None), 401);
    assert_eq!(register(s, "carol", Some("not-a-token")), 401);
    assert_eq!(register(s, "carol", Some(&token)), 200);
    assert_eq!(s.login_status("carol", "carol-password-9x"), 200);
    assert_eq!(register(s, "dave", Some(&token)), 401);
    let listed: Value = serde_json::from_str(&s.masctl_ok(&["registration-token", "list", "--json"])).unwrap();
    let t = listed.as_array().unwrap().iter().find(|t| t["token"] == token.as_str()).unwrap();
    assert_eq!((t["times_used"].as_u64(), t["valid"].as_bool()), (Some(1), Some(false)), "{t}");

    // Revoked: gone from the list, refused at registration.
    let other = s.masctl_ok(&["registration-token", "create", "--token", "team-2027", "--expires", "30d"]);
    assert!(other.contains("team-2027") && other.contains("valid"), "{other}");
    s.masctl_ok(&["registration-token", "revoke", "--token", "team-2027"]);
    let listed = s.masctl_ok(&["registration-token", "list"]);
    assert!(!listed.contains("team-2027"), "{listed}");
    assert_eq!(register(s, "erin", Some("team-2027")), 401);
    let out = s.masctl(&["registration-token", "revoke", "--token", "team-2027"]);
    assert!(!out.status.success() && both(&out).contains("no registration token"), "{}", both(&out));
    let out = s.masctl(&["registration-token", "create", "--expires", "soon"]);
    assert!(!out.status.success() && both(&out).contains("expected a duration"), "{}", both(&out));
    vec![token]
}

/// The status of a `/register` completing the token stage (`None`: no auth).
fn register(s: &Stack, user: &str, token: Option<&str>) -> u16 {
    let url = format!("{}/_matrix/client/v3/register", s.base_url());
    // A fresh agent per request: no pooled connection Synapse may have closed.
    let agent = || -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into()
    };
    let body = json!({"username": user, "password": "carol-password-9x", "inhibit_login": true});
    let mut resp = agent().post(&url).send_json(&body).unwrap();
    let first: Value = resp.body_mut().read_json().unwrap();
    let (Some(token), Some(session)) = (token, first["session"].as_str()) else { return resp.status().as_u16() };
    let mut with = body.clone();
    with["auth"] = json!({"type": "m.login.registration_token", "token": token, "session": session});
    let mut resp = agent().post(&url).send_json(&with).unwrap();
    let status = resp.status().as_u16();
    let answer: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
    // A completed token stage leaves the dummy stage: finish it.
    if status == 401
        && answer["completed"].as_array().is_some_and(|c| c.iter().any(|s| s == "m.login.registration_token"))
    {
        with["auth"] = json!({"type": "m.login.dummy", "session": session});
        return agent().post(&url).send_json(&with).unwrap().status().as_u16();
    }
    status
}

/// masctl-admin's password and token, the declared passwords and the registration
/// tokens: in 0600 files only, never in the store, units, command lines, the
/// journal or `docker inspect`.
fn secrets_do_not_leak(s: &Stack, tokens: &[String]) {
    let mut needles: Vec<String> = tokens.to_vec();
    needles.extend([ALICE_PW.to_string(), BOB_PW.to_string()]);
    for name in ["masctl-admin-password", "masctl-admin-token"] {
        let p = s.root.join("secrets").join(name);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
        needles.push(std::fs::read_to_string(&p).unwrap().trim().to_string());
    }
    let hits = grep_tree(&s.root.join("store"), &needles);
    assert!(hits.is_empty(), "in the store: {hits:?}");
    let units = s.unit_files();
    // The whole journal: Synapse's own log of a registration's credentials and of
    // a revocation's URL are kept out by masctl's log config.
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    // Every process's command line, the host's and its containers' included.
    let mut ps = String::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            ps.push_str(&String::from_utf8_lossy(&c));
        }
    }
    let inspect: String =
        ["postgres", "synapse"].iter().map(|svc| docker_ok(&["inspect", &s.container(svc)])).collect();
    for (i, n) in needles.iter().enumerate() {
        assert!(!units.contains(n.as_str()), "a secret in a unit file");
        // Which one, and the line's start (not the secret), to find the logger.
        let line = journal.lines().find(|l| l.contains(n.as_str())).map(|l| l.replace(n.as_str(), "<SECRET>"));
        assert!(
            line.is_none(),
            "secret #{i} (tokens, passwords, admin password, admin token) in the journal: {line:?}"
        );
        assert!(!ps.contains(n.as_str()), "a secret on a command line");
        assert!(!inspect.contains(n.as_str()), "a secret in docker inspect");
    }
}

/// The same with MAS handling logins (the stand-in, or `MASCTL_TEST_MAS_DIST`):
/// users through MAS's admin API, registration tokens too.
#[test]
fn declared_users_and_registration_tokens_with_mas() {
    let images = common::images_with_standin();
    let s = Stack::with_images("usersmas", images.path().to_path_buf());
    let mas = format!("{}[mas]\nenabled = true\n", common::mas_images());
    s.write_config(&mas);
    let _restore = RestoreConfig(&s, mas.clone());
    s.up();
    s.wait_serving();
    write_private(&s, "alice.pw", &format!("{ALICE_PW}\n"), 0o600);
    write_private(&s, "bob.pw", BOB_PW, 0o600);
    let with = |bob_admin: bool| {
        format!(
            "{mas}{}",
            users(bob_admin).replace(
                "[[users]]\nlocalpart = \"bot\"\n",
                "[[users]]\nlocalpart = \"bot\"\nemails = [\"bot@example.com\"]\n"
            )
        )
    };
    s.write_config(&with(false));
    let plan = s.masctl_ok(&["switch", "--dry-run"]);
    assert!(plan.contains("create user alice") && plan.contains("create user bot"), "{plan}");
    let out = s.masctl(&["switch"]);
    assert!(out.status.success(), "{}", both(&out));
    let list: Value = serde_json::from_str(&s.masctl_ok(&["user", "list", "--json"])).unwrap();
    let admin_of = |list: &Value, lp: &str| {
        list.as_array().unwrap().iter().find(|u| u["username"] == lp).map(|u| u["admin"].as_bool().unwrap())
    };
    assert_eq!(
        (admin_of(&list, "alice"), admin_of(&list, "bob"), admin_of(&list, "bot")),
        (Some(true), Some(false), Some(false)),
        "{list}"
    );
    assert_eq!(s.login_status("alice", ALICE_PW), 200);
    assert_eq!(s.sql("mas", "SELECT count(*) FROM user_emails WHERE email = 'bot@example.com'"), "1");

    let again = both(&s.masctl(&["switch"]));
    assert!(!again.contains("create user"), "{again}");
    s.write_config(&with(true));
    let out = s.masctl(&["switch"]);
    assert!(out.status.success() && both(&out).contains("user bob exists and is not"), "{}", both(&out));
    let list: Value = serde_json::from_str(&s.masctl_ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(admin_of(&list, "bob"), Some(false));

    // Registration tokens through MAS's admin API: revoked ones stay listed.
    let created: Value =
        serde_json::from_str(&s.masctl_ok(&["registration-token", "create", "--uses", "2", "--json"])).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!((created["uses_allowed"].as_u64(), created["valid"].as_bool()), (Some(2), Some(true)), "{created}");
    assert_eq!(s.sql("mas", &format!("SELECT usage_limit FROM user_registration_tokens WHERE token = '{token}'")), "2");
    let out = s.masctl(&["registration-token", "create", "--token", &token]);
    assert!(!out.status.success() && both(&out).contains("same token already exists"), "{}", both(&out));
    let revoked: Value =
        serde_json::from_str(&s.masctl_ok(&["registration-token", "revoke", "--token", &token, "--json"])).unwrap();
    assert_eq!((revoked["revoked"].as_bool(), revoked["valid"].as_bool()), (Some(true), Some(false)), "{revoked}");
    let listed: Value = serde_json::from_str(&s.masctl_ok(&["registration-token", "list", "--json"])).unwrap();
    let t = listed.as_array().unwrap().iter().find(|t| t["token"] == token.as_str()).unwrap();
    assert_eq!(t["revoked"], true, "{t}");
    let out = s.masctl(&["registration-token", "revoke", "--token", &token]);
    assert!(!out.status.success() && both(&out).contains("already revoked"), "{}", both(&out));
    secrets_do_not_leak_mas(&s, &[token]);
}

/// As [`secrets_do_not_leak`], for a MAS stack (no masctl-admin account there).
fn secrets_do_not_leak_mas(s: &Stack, tokens: &[String]) {
    assert!(!s.root.join("secrets/masctl-admin-password").exists(), "no Synapse admin account with MAS");
    let mut needles: Vec<String> = tokens.to_vec();
    needles.extend([ALICE_PW.to_string(), BOB_PW.to_string()]);
    assert!(grep_tree(&s.root.join("store"), &needles).is_empty());
    let journal = docker_ok(&["exec", &s.host(), "journalctl", "--no-pager", "-o", "cat"]);
    let inspect: String = ["synapse", "mas"].iter().map(|svc| docker_ok(&["inspect", &s.container(svc)])).collect();
    for n in &needles {
        assert!(!journal.contains(n.as_str()) && !inspect.contains(n.as_str()), "a secret leaked");
    }
}
