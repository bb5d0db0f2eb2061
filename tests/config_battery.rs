//! A battery of broken configs, each refused by `masctl config check` with one
//! located line and the host left as it was; and the configs the project and its
//! tests write, each accepted. No Docker, no systemd.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Two lines every broken config but the first few starts with.
const H: &str = "server_name = \"example.com\"\nstate_root = \"@ROOT@\"\n";

const ULID: &str = "01JSHPZHAXC50QBKH67MH33TNF";

fn provider(extra: &str) -> String {
    format!(
        "{H}[[mas.upstream_oauth2.providers]]\nid = \"{ULID}\"\nissuer = \"https://dex.example.com/\"\n\
client_id = \"mas\"\n{extra}"
    )
}

fn synapse_oidc(idp_id: &str, issuer: &str) -> String {
    format!(
        "[[synapse.oidc_providers]]\nidp_id = \"{idp_id}\"\nissuer = \"{issuer}\"\nclient_id = \"synapse\"\n\
client_secret_file = \"/nonexistent/secret\"\n"
    )
}

/// `[backup]` with one repository: `url` (and more) given, its password file missing.
fn backup_repo(url: &str) -> String {
    format!("[backup]\n[[backup.repository]]\n{url}password_file = \"/nonexistent/pw\"\n")
}

/// (what, config with `@ROOT@` for the state root, `line:column` of the refusal).
fn broken() -> Vec<(&'static str, String, &'static str)> {
    let h = |body: &str| format!("{H}{body}");
    vec![
        // The ones from issue #12.
        (
            "state_root with a newline and a directive",
            "server_name = \"e.com\"\nstate_root = \"@ROOT@\\nExecStartPre=/bin/touch /tmp/x\"\n".into(),
            "2:14",
        ),
        ("state_root with a space", "server_name = \"e.com\"\nstate_root = \"@ROOT@/a b\"\n".into(), "2:14"),
        ("instance host", h("instance = \"host\"\n"), "3:12"),
        ("instance bridge", h("instance = \"bridge\"\n"), "3:12"),
        ("instance none", h("instance = \"none\"\n"), "3:12"),
        ("instance default", h("instance = \"default\"\n"), "3:12"),
        (
            "postgres setting with a newline",
            h("[postgres.settings]\nwork_mem = \"8MB\\nlisten_addresses='*'\"\n"),
            "4:12",
        ),
        ("control character in synapse.extra", h("[synapse.extra]\nmax_upload_size = \"50M\\u0007\"\n"), "4:19"),
        ("path_prefix with ;", h("[mas]\nenabled = true\npath_prefix = \"/auth;x\"\n"), "5:15"),
        ("path_prefix with a quote", h("[mas]\npath_prefix = \"/au\\\"th\"\n"), "4:15"),
        ("mas.extra.database", h("[mas]\nenabled = true\n[mas.extra]\ndatabase = { host = \"elsewhere\" }\n"), "6:1"),
        // state_root
        ("state_root relative", "server_name = \"e.com\"\nstate_root = \"var/lib/masctl\"\n".into(), "2:14"),
        ("state_root with ..", "server_name = \"e.com\"\nstate_root = \"@ROOT@/../x\"\n".into(), "2:14"),
        ("state_root with %", "server_name = \"e.com\"\nstate_root = \"@ROOT@/%h\"\n".into(), "2:14"),
        ("state_root with a quote", "server_name = \"e.com\"\nstate_root = \"@ROOT@/a\\\"b\"\n".into(), "2:14"),
        ("state_root with a backslash", "server_name = \"e.com\"\nstate_root = '@ROOT@\\x'\n".into(), "2:14"),
        ("state_root with a colon", "server_name = \"e.com\"\nstate_root = \"@ROOT@:/etc\"\n".into(), "2:14"),
        ("state_root with a tab", "server_name = \"e.com\"\nstate_root = \"@ROOT@\\tx\"\n".into(), "2:14"),
        // instance
        ("instance with capitals", h("instance = \"Big\"\n"), "3:12"),
        ("instance overlong", h(&format!("instance = \"{}\"\n", "a".repeat(41))), "3:12"),
        ("instance starting with a digit", h("instance = \"1abc\"\n"), "3:12"),
        ("instance with _", h("instance = \"a_b\"\n"), "3:12"),
        ("instance empty", h("instance = \"\"\n"), "3:12"),
        // names
        ("server_name with a quote", "server_name = \"e\\\".com\"\nstate_root = \"@ROOT@\"\n".into(), "1:15"),
        ("server_name with a space", "server_name = \"exa mple.com\"\nstate_root = \"@ROOT@\"\n".into(), "1:15"),
        ("server_name with a slash", "server_name = \"e.com/x\"\nstate_root = \"@ROOT@\"\n".into(), "1:15"),
        ("server_name with DEL", "server_name = \"e.com\\u007f\"\nstate_root = \"@ROOT@\"\n".into(), "1:15"),
        ("server_name with a bad port", "server_name = \"e.com:99999\"\nstate_root = \"@ROOT@\"\n".into(), "1:15"),
        ("hostnames.matrix with _", h("[hostnames]\nmatrix = \"m_x.example.com\"\n"), "4:10"),
        ("mas.hostname with {", h("[mas]\nhostname = \"a{b}.com\"\n"), "4:12"),
        // postgres
        ("postgres setting name with a space", h("[postgres.settings]\n\"work mem\" = \"8MB\"\n"), "4:1"),
        ("postgres setting name with =", h("[postgres.settings]\n\"a=b\" = \"1\"\n"), "4:1"),
        ("postgres port is masctl's", h("[postgres.settings]\nport = 5433\n"), "4:1"),
        ("postgres listen_addresses is masctl's", h("[postgres.settings]\nlisten_addresses = \"*\"\n"), "4:1"),
        ("postgres setting array", h("[postgres.settings]\nshared_buffers = [1]\n"), "4:18"),
        // synapse
        ("log_level unknown", h("[synapse]\nlog_level = \"LOUD\"\n"), "4:13"),
        ("log_level with a newline", h("[synapse]\nlog_level = \"INFO\\n\"\n"), "4:13"),
        ("synapse.extra.database", h("[synapse.extra]\ndatabase = \"x\"\n"), "4:1"),
        ("synapse.extra.listeners", h("[synapse.extra]\nmax_upload_size = \"1M\"\nlisteners = []\n"), "5:1"),
        ("control character in a synapse.extra key", h("[synapse.extra]\n\"a\\u001b[2J\" = 1\n"), "4:1"),
        (
            "control character deep in synapse.extra",
            h("[synapse.extra.rc_login.address]\nnote = [\"ok\", \"\\r\"]\n"),
            "4:15",
        ),
        // ports
        ("port out of range", h("[ports]\nsynapse = \"70000\"\n"), "4:11"),
        ("port zero", h("[ports]\nsynapse = \"127.0.0.1:0\"\n"), "4:11"),
        ("port on a host name", h("[ports]\nsynapse = \"localhost:8008\"\n"), "4:11"),
        ("port with a sign", h("[ports]\nsynapse = \"+8008\"\n"), "4:11"),
        // images
        ("image unpinned", h("[images]\nsynapse = \"ghcr.io/element-hq/synapse:v1\"\n"), "4:11"),
        ("image name with a space", h("[images]\npostgres = \"post gres\"\n"), "4:12"),
        // mas
        ("path_prefix with a trailing /", h("[mas]\npath_prefix = \"/auth/\"\n"), "4:15"),
        ("path_prefix with //", h("[mas]\npath_prefix = \"/a//b\"\n"), "4:15"),
        ("path_prefix shadowing Synapse", h("[mas]\npath_prefix = \"/_matrix\"\n"), "4:15"),
        ("path_prefix relative", h("[mas]\npath_prefix = \"auth\"\n"), "4:15"),
        ("mas.extra.http", h("[mas.extra.http]\npublic_base = \"https://x/\"\n"), "3:12"),
        ("mas.extra.account", h("[mas]\nextra.account = {}\n"), "4:7"),
        ("control character deep in mas.extra", h("[mas.extra.branding]\nservice_name = \"x\\u001b[31m\"\n"), "4:16"),
        ("smtp without a host", h("[mas.email]\ntransport = \"smtp\"\n"), "4:13"),
        ("email transport unknown", h("[mas.email]\ntransport = \"pigeon\"\n"), "4:13"),
        (
            "email mode unknown",
            h("[mas.email]\ntransport = \"smtp\"\nhostname = \"mail.e.com\"\nmode = \"ssl\"\n"),
            "6:8",
        ),
        ("email from not an address", h("[mas.email]\nfrom = \"root\"\n"), "4:8"),
        ("email from with a quote", h("[mas.email]\nfrom = \"\\\"A\\\"B\\\" <a@e.com>\"\n"), "4:8"),
        ("email hostname with a space", h("[mas.email]\ntransport = \"smtp\"\nhostname = \"mail server\"\n"), "5:12"),
        ("email port zero", h("[mas.email]\nport = 0\n"), "4:8"),
        ("email port too big", h("[mas.email]\nport = 70000\n"), "4:8"),
        ("smtp password file relative", h("[mas.email]\nusername = \"u\"\npassword_file = \"pw\"\n"), "5:17"),
        ("account setting name", h("[mas.account]\n\"Bad-Key\" = true\n"), "4:1"),
        // [backup]
        ("backup without a repository", h("[backup]\nschedule = \"daily\"\n"), "3:2"),
        ("backup schedule unknown", h("[backup]\nschedule = \"fortnightly\"\n"), "4:12"),
        ("backup repository relative", h(&backup_repo("url = \"backups\"\n")), "5:7"),
        ("backup repository s3", h(&backup_repo("url = \"s3:bucket/x\"\n")), "5:7"),
        ("backup rest with a password", h(&backup_repo("url = \"rest:https://u:pw@b.example/x\"\n")), "5:7"),
        ("backup sftp without a key", h(&backup_repo("url = \"sftp:u@b.example:/x\"\n")), "5:7"),
        ("backup key for a local repository", h(&backup_repo("url = \"/mnt/b\"\nssh_key_file = \"/k\"\n")), "6:16"),
        ("backup password file missing", h(&backup_repo("url = \"/mnt/b\"\n")), "6:17"),
        (
            "backup repository twice",
            h(&format!(
                "{}{}",
                backup_repo("url = \"/mnt/b\"\n"),
                backup_repo("url = \"/mnt/b\"\n").replace("[backup]\n", "")
            )),
            "8:7",
        ),
        // providers
        ("provider id not a ULID", provider("").replace("TNF", "TNI"), "4:6"),
        ("provider id twice", format!("{}{}", provider(""), provider("").replace(H, "")), "8:6"),
        ("client_secret_file relative", provider("client_secret_file = \"dex\"\n"), "7:22"),
        ("client_secret_file with :", provider("client_secret_file = \"/etc/dex:/x\"\n"), "7:22"),
        ("issuer not a URL", provider("").replace("https://dex.example.com/", "dex.example.com"), "5:10"),
        ("extra_ca missing", h("[edge]\nextra_ca = [\"/nonexistent/ca.pem\"]\n"), "4:13"),
        ("extra_ca with trust", h("[edge]\ntrust = \"/etc/r.pem\"\nextra_ca = [\"/etc/ca.pem\"]\n"), "5:13"),
        ("synapse oidc issuer not https", h(&synapse_oidc("idp", "http://idp.example.com/")), "5:10"),
        (
            "synapse oidc idp_id twice",
            h(&format!(
                "{}{}",
                synapse_oidc("idp", "https://a.example.com/"),
                synapse_oidc("idp", "https://b.example.com/")
            )),
            "9:10",
        ),
        ("synapse oidc secret missing", h(&synapse_oidc("idp", "https://idp.example.com/")), "7:22"),
        ("issuer not https", provider("").replace("https://dex", "http://dex"), "5:10"),
        (
            "claims action unknown",
            provider("[mas.upstream_oauth2.providers.claims_imports]\nlocalpart = { action = \"take\" }\n"),
            "8:24",
        ),
        ("issuer with a space", provider("").replace("dex.example.com/", "dex.example.com/a b"), "5:10"),
        ("client_id with a quote", provider("").replace("\"mas\"", "\"m'a\\\"s\""), "6:13"),
        ("synapse_idp_id not oidc-…", provider("synapse_idp_id = \"dex\"\n"), "7:18"),
        ("token endpoint auth method unknown", provider("token_endpoint_auth_method = \"magic\"\n"), "7:30"),
        ("scope with a double space", provider("scope = \"openid  email\"\n"), "7:9"),
        ("provider without an issuer", provider("").replace("issuer = \"https://dex.example.com/\"\n", ""), "3:1"),
        // shape
        ("unknown top-level key", h("bogus = 1\n"), "3:1"),
        ("unknown key in [synapse]", h("[synapse]\nloglevel = \"INFO\"\n"), "4:1"),
        ("server_name of the wrong type", "server_name = 5\nstate_root = \"@ROOT@\"\n".into(), "1:15"),
        ("mas.enabled of the wrong type", h("[mas]\nenabled = \"yes\"\n"), "4:11"),
        ("server_name missing", "state_root = \"@ROOT@\"\n".into(), "1:1"),
        ("not TOML", h("[synapse\n"), "3:9"),
        // recipe inputs (a local MAS build)
        ("mas-local without its input", h("[images]\nmas = \"mas-local\"\n[mas]\nenabled = true\n"), "4:7"),
        (
            "mas-dist that is not a MAS release",
            h("[images]\nmas = \"mas-local\"\n[images.inputs]\nmas-dist = \"/etc\"\n[mas]\nenabled = true\n"),
            "6:12",
        ),
        ("mas-dist relative", h("[images.inputs]\nmas-dist = \"dist\"\n"), "4:12"),
        ("input name with capitals", h("[images.inputs]\nMasDist = \"/opt/mas\"\n"), "4:1"),
        // the edge
        ("edge.tls unknown", h("[edge]\ntls = \"https\"\n"), "4:7"),
        ("edge acme without an email", h("[edge]\ntls = \"acme\"\n"), "4:7"),
        ("edge files without a key", h("[edge]\ntls = \"files\"\ncertificate = \"/etc/c.pem\"\n"), "4:7"),
        (
            "edge files whose certificate is missing",
            h("[edge]\ntls = \"files\"\ncertificate = \"@ROOT@/none.pem\"\nkey = \"@ROOT@/none.key\"\n"),
            "5:15",
        ),
        ("edge.acme_directory over http", h("[edge]\nacme_directory = \"http://ca.example.com/dir\"\n"), "4:18"),
        ("edge.acme_directory with a brace", h("[edge]\nacme_directory = \"https://ca/{x}\"\n"), "4:18"),
        ("edge.acme_email with a placeholder", h("[edge]\nacme_email = \"a{$HOME}@e.com\"\n"), "4:14"),
        ("edge.trust relative", h("[edge]\ntrust = \"roots.pem\"\n"), "4:9"),
        ("edge.https not IP:PORT", h("[edge]\nhttps = \"localhost:443\"\n"), "4:9"),
        ("edge.networks host", h("[edge]\nnetworks = [\"host\"]\n"), "4:13"),
        (
            "server_name with a port under TLS",
            "server_name = \"e.com:8448\"\nstate_root = \"@ROOT@\"\n[edge]\ntls = \"acme\"\nacme_email = \"a@e.com\"\n"
                .into(),
            "1:15",
        ),
        ("synapse.extra.federation_custom_ca_list", h("[synapse.extra]\nfederation_custom_ca_list = []\n"), "4:1"),
        // An external Postgres
        (
            "external without password_file",
            ext("", "synapse = { database = \"synapse\", user = \"synapse\" }\n"),
            "5:11",
        ),
        ("external with bundled settings", ext("[postgres.settings]\nwork_mem = \"8MB\"\n", SYN), "4:1"),
        ("external without MAS's database", ext("[mas]\nenabled = true\n", SYN), "5:1"),
        (
            "external MAS sharing Synapse's database",
            ext("", &format!("{SYN}mas = {{ database = \"synapse\", user = \"mas\", password_file = \"/pw\" }}\n")),
            "6:20",
        ),
        (
            "external user with a quote",
            ext("", "synapse = { database = \"synapse\", user = \"sy'n\", password_file = \"/pw\" }\n"),
            "5:42",
        ),
        (
            "external password_file relative",
            ext("", "synapse = { database = \"synapse\", user = \"synapse\", password_file = \"pw\" }\n"),
            "5:69",
        ),
        ("external host with a space", format!("{H}[postgres.external]\nhost = \"db host\"\n{SYN}"), "4:8"),
        ("external port 0", ext("", &format!("port = 0\n{SYN}")), "5:8"),
        ("external network is the instance's", ext("", &format!("network = \"masctl\"\n{SYN}")), "5:11"),
        ("external password_file missing", ext("", SYN), "5:69"),
        // workers
        ("workers preset unknown", h("[synapse.workers]\npreset = \"all\"\n"), "4:10"),
        ("workers kind unknown", h("[synapse.workers.counts]\nsynchrotrons = 2\n"), "4:1"),
        ("workers count negative", h("[synapse.workers.counts]\nsynchrotron = -2\n"), "4:15"),
        ("two background workers", h("[synapse.workers.counts]\nbackground = 2\n"), "4:14"),
        (
            "extra for a kind that does not run",
            h("[synapse.workers]\npreset = \"one-of-each\"\n[synapse.workers.extra.synchrotron]\nx = 1\n"),
            "5:24",
        ),
        (
            "extra naming the worker",
            h("[synapse.workers]\npreset = \"one-of-each\"\n[synapse.workers.extra.pusher]\nworker_name = \"x\"\n"),
            "5:24",
        ),
        (
            "synapse.extra.instance_map with workers",
            h("[synapse.workers]\npreset = \"one-of-each\"\n[synapse.extra]\ninstance_map = {}\n"),
            "6:1",
        ),
        (
            "instance too long for the workers' host names",
            h(&format!("instance = \"{}\"\n[synapse.workers]\npreset = \"specialised\"\n", "a".repeat(40))),
            "3:12",
        ),
    ]
}

/// Synapse's database on an external server, its password in a file that does not exist.
const SYN: &str = "synapse = { database = \"synapse\", user = \"synapse\", password_file = \"/nonexistent/pw\" }\n";

/// `before` (from line 3), then `[postgres.external]` with `host` and `body`.
fn ext(before: &str, body: &str) -> String {
    format!("{H}{before}[postgres.external]\nhost = \"db.example.com\"\n{body}")
}

fn masctl(images: &Path, config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masctl"))
        .args(["--images", images.to_str().unwrap(), "-c", config.to_str().unwrap(), "config", "check"])
        .env("NO_COLOR", "1")
        .env_remove("MASCTL_ROOT")
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file and directory under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.insert(p.clone(), None);
            out.extend(snapshot(&p));
        } else {
            out.insert(p.clone(), Some(std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn broken_configs_are_refused_with_a_location_and_the_host_unchanged() {
    let cases = broken();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let images = repo().join("images");
    let mut failures = Vec::new();
    for (i, (what, text, loc)) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let config = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&config, text.replace("@ROOT@", root.to_str().unwrap())).unwrap();
        let before = snapshot(dir.path());
        let out = masctl(&images, &config);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let want = format!("{}:{loc}: ", config.display());
        if out.status.success() || err.lines().count() != 1 || !err.contains(&want) {
            failures.push(format!("{what}: exit {:?}, wanted {want}, got {err:?}", out.status.code()));
        }
        if snapshot(dir.path()) != before || root.exists() {
            failures.push(format!("{what}: changed the host"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// An images directory with the project's declarations plus the MAS stand-in
/// recipe tests/mas.rs uses.
fn images_with_standin(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir(&images).unwrap();
    for e in std::fs::read_dir(repo().join("images")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml" || x == "lock") {
            std::fs::copy(&p, images.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        images.join("mas-standin.toml"),
        "base = \"synapse\"\n[[copy]]\nfrom = \"mas-standin/mas-cli\"\nto = \"/usr/local/bin/mas-cli\"\n\
[config]\nuser = \"65532:65532\"\nentrypoint = [\"/usr/local/bin/mas-cli\"]\n",
    )
    .unwrap();
    images
}

#[test]
fn the_configs_the_project_writes_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let images = images_with_standin(dir.path());
    let stack_root = "/var/tmp/masctl-stack-Ab3xYz";
    // The SMTP password is read at load, so it must exist and be private.
    let smtp_password = dir.path().join("smtp-password");
    std::fs::write(&smtp_password, "s3cret\n").unwrap();
    std::fs::set_permissions(&smtp_password, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // So is the provider's client secret.
    let dex_secret = dir.path().join("dex-secret");
    std::fs::write(&dex_secret, "d3x\n").unwrap();
    std::fs::set_permissions(&dex_secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // What tests/common/stack.rs writes, with the extras tests/switch.rs and tests/mas.rs add.
    let stack = |extra: &str| {
        format!(
            "server_name = \"test.local\"\ninstance = \"t12345-mas\"\nstate_root = \"{stack_root}\"\n[ports]\n\
synapse = \"127.0.0.1:40123\"\n{extra}[synapse.extra.rc_login.address]\nper_second = 1000\nburst_count = 1000\n\
[synapse.extra.rc_login.account]\nper_second = 1000\nburst_count = 1000\n"
        )
    };
    let full = format!(
        "server_name = \"example.com\"\ninstance = \"prod\"\nstate_root = \"{}\"\n[hostnames]\nmatrix = \"matrix.example.com\"\n\
[postgres.settings]\nshared_buffers = \"256MB\"\nmax_connections = 50\n\"auto_explain.log_min_duration\" = \"1s\"\n\
[synapse]\nlog_level = \"WARNING\"\n[synapse.extra]\nmax_upload_size = \"50M\"\n[synapse.extra.password_config]\npepper = \"p\"\n\
[ports]\nsynapse = \"[::1]:8448\"\n[mas]\nenabled = true\nhostname = \"auth.example.com\"\npath_prefix = \"/account/mas\"\n\
[mas.email]\ntransport = \"smtp\"\nfrom = \"\\\"Example Auth\\\" <auth@example.com>\"\nhostname = \"mail.example.com\"\n\
port = 587\nmode = \"starttls\"\nusername = \"auth@example.com\"\npassword_file = \"{}\"\n\
[mas.account]\npassword_registration_enabled = false\n[mas.extra.branding]\nservice_name = \"Example\"\n\
[[mas.upstream_oauth2.providers]]\nid = \"{ULID}\"\nsynapse_idp_id = \"oidc-dex\"\nissuer = \"https://dex.example.com:8443/dex\"\n\
client_id = \"mas-client_1\"\nclient_secret_file = \"{}\"\ntoken_endpoint_auth_method = \"client_secret_post\"\n\
scope = \"openid profile email\"\n",
        dir.path().join("root").display(),
        smtp_password.display(),
        dex_secret.display()
    );
    let configs: Vec<(&str, String)> = vec![
        ("masctl.example.toml", std::fs::read_to_string(repo().join("masctl.example.toml")).unwrap()),
        ("stack", stack("")),
        ("stack, synapse.extra", stack("[synapse.extra]\nmax_upload_size = \"7M\"\n")),
        ("stack, postgres", stack("[postgres.settings]\nwork_mem = \"8MB\"\n")),
        ("stack, registration", stack("[synapse]\nenable_registration = true\n")),
        (
            "stack, MAS migrating",
            stack("[images]\nmas = \"mas-standin\"\n[mas]\nenabled = true\nmigration_in_progress = true\n"),
        ),
        ("stack, MAS on", stack("[images]\nmas = \"mas-standin\"\n[mas]\nenabled = true\n")),
        ("everything", full),
    ];
    for (what, text) in configs {
        let config = dir.path().join("masctl.toml");
        std::fs::write(&config, text).unwrap();
        let out = masctl(&images, &config);
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(!dir.path().join("root").exists() && !Path::new(stack_root).exists());
}

#[test]
fn external_postgres_password_files_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("synapse-db-password");
    std::fs::write(&pw, "correct horse battery staple\n").unwrap();
    let config = dir.path().join("masctl.toml");
    let text = ext("", &SYN.replace("/nonexistent/pw", pw.to_str().unwrap()))
        .replace("@ROOT@", dir.path().join("root").to_str().unwrap());
    std::fs::write(&config, text).unwrap();
    let images = repo().join("images");
    // (mode, accepted, a word of the refusal)
    for (mode, ok, word) in
        [(0o644, false, "(mode 0644); make it 0600"), (0o640, false, "mode 0640"), (0o600, true, "")]
    {
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = masctl(&images, &config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{mode:o}: {err}");
        if !ok {
            assert!(err.contains(&format!("{}:5:69: ", config.display())) && err.contains(word), "{err}");
            assert!(!err.contains("correct horse"), "the refusal shows no password: {err}");
        }
    }
    assert!(!dir.path().join("root").exists());
}

#[test]
fn image_recipes_whose_base_loops_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for name in ["base.toml", "postgres.toml"] {
        std::fs::copy(repo().join("images").join(name), images.join(name)).unwrap();
    }
    for (name, base) in [("synapse", "loop-a"), ("loop-a", "loop-b"), ("loop-b", "loop-a")] {
        std::fs::write(images.join(format!("{name}.toml")), format!("base = \"{base}\"\n[config]\nuser = \"1:1\"\n"))
            .unwrap();
    }
    let config = dir.path().join("masctl.toml");
    std::fs::write(&config, "server_name = \"e.com\"\n").unwrap();
    let out = masctl(&images, &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("synapse → loop-a → loop-b → loop-a"), "{err}");
}

/// A bridge's registration, as mautrix writes one (tokens are the test's markers).
fn registration(id: &str, as_token: &str, hs_token: &str, lp: &str, url: &str, regex: &str) -> String {
    format!(
        "id: {id}\nurl: {url}\nas_token: {as_token}\nhs_token: {hs_token}\nsender_localpart: {lp}\n\
namespaces:\n  users:\n  - exclusive: true\n    regex: '{regex}'\nrate_limited: false\n"
    )
}

#[test]
fn appservice_registrations_are_checked_with_a_location_and_the_host_unchanged() {
    let good =
        |id: &str, a: &str, h: &str, lp: &str| registration(id, a, h, lp, "http://bridge:29317", "@tg_.*:e\\.com$");
    // (what, the files, where the one-line error points: (file index or None = the config, line:col), a word)
    type Case = (&'static str, Vec<String>, (Option<usize>, &'static str), &'static str);
    let cases: Vec<Case> = vec![
        (
            "bad regex",
            vec![registration("tg", "SECRETA1", "SECRETH1", "tgbot", "http://b:1", "@tg_(.*")],
            (Some(0), "9:12"),
            "does not compile",
        ),
        (
            "Python-only regex",
            vec![registration("tg", "SECRETA1", "SECRETH1", "tgbot", "http://b:1", "@(?=x)")],
            (Some(0), "9:12"),
            "lookahead",
        ),
        (
            "url not http(s)",
            vec![registration("tg", "SECRETA1", "SECRETH1", "tgbot", "ftp://b:1", "@tg_.*")],
            (Some(0), "2:6"),
            "not an http",
        ),
        (
            "url missing",
            vec![good("tg", "SECRETA1", "SECRETH1", "tgbot").replace("url: http://bridge:29317\n", "")],
            (Some(0), "1:1"),
            "explicit `url: null`",
        ),
        (
            "duplicate id",
            vec![good("tg", "SECRETA1", "SECRETH1", "tgbot"), good("tg", "SECRETA2", "SECRETH2", "bot2")],
            (Some(1), "1:5"),
            "id is the same as in",
        ),
        (
            "duplicate as_token",
            vec![good("tg", "SECRETA1", "SECRETH1", "tgbot"), good("wa", "SECRETA1", "SECRETH2", "wabot")],
            (Some(1), "3:11"),
            "as_token",
        ),
        (
            "duplicate hs_token",
            vec![good("tg", "SECRETA1", "SECRETH1", "tgbot"), good("wa", "SECRETA2", "SECRETH1", "wabot")],
            (Some(1), "4:11"),
            "hs_token",
        ),
        (
            "clash with the double puppet",
            vec![good("tg", "SECRETA1", "SECRETH1", "appservice-double-puppet")],
            (Some(0), "5:19"),
            "masctl's own",
        ),
        (
            "duplicate key",
            vec![good("tg", "SECRETA1", "SECRETH1", "tgbot") + "id: again\n"],
            (Some(0), "11:1"),
            "duplicated key",
        ),
        ("missing file", vec![], (None, "4:8"), "does not exist"),
    ];
    let images = repo().join("images");
    let mut failures = Vec::new();
    for (what, files, (file, loc), word) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let mut paths = Vec::new();
        for (i, body) in files.iter().enumerate() {
            let p = dir.path().join(format!("reg{i}.yaml"));
            std::fs::write(&p, body).unwrap();
            paths.push(p);
        }
        if paths.is_empty() {
            paths.push(dir.path().join("missing.yaml"));
        }
        let mut text = format!("server_name = \"e.com\"\nstate_root = \"{}\"\n", root.display());
        for p in &paths {
            text.push_str(&format!("[[synapse.appservices]]\npath = \"{}\"\n", p.display()));
        }
        let config = dir.path().join("masctl.toml");
        std::fs::write(&config, &text).unwrap();
        let before = snapshot(dir.path());
        let out = masctl(&images, &config);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let at = file.map_or(config.clone(), |i| paths[i].clone());
        let want = format!("{}:{loc}: ", at.display());
        if out.status.success() || err.lines().count() != 1 || !err.contains(&want) || !err.contains(word) {
            failures.push(format!("{what}: exit {:?}, wanted {want}…{word}, got {err:?}", out.status.code()));
        }
        if err.contains("SECRET") {
            failures.push(format!("{what}: a token in the error: {err:?}"));
        }
        if snapshot(dir.path()) != before || root.exists() {
            failures.push(format!("{what}: changed the host"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn appservice_settings_in_extra_are_refused_and_good_registrations_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("tg.yaml");
    std::fs::write(&reg, registration("tg", "SECRETA1", "SECRETH1", "tgbot", "null", "@tg_.*:e\\.com$")).unwrap();
    let root = dir.path().join("root");
    let head = format!("server_name = \"e.com\"\nstate_root = \"{}\"\n", root.display());
    let with_reg = format!("{head}[[synapse.appservices]]\npath = \"{}\"\nnetwork = \"bridges\"\n", reg.display());
    let images = repo().join("images");
    // (config, accepted, where, a word)
    let cases = [
        (
            format!("{with_reg}[synapse]\nencrypted_bridges = true\n[synapse.double_puppet]\nenabled = true\n"),
            true,
            "",
            "",
        ),
        (format!("{head}[synapse.extra]\napp_service_config_files = []\n"), false, "4:1", "managed by masctl"),
        (
            format!("{head}[synapse.extra.experimental_features]\nmsc3202_transaction_extensions = true\n"),
            false,
            "4:1",
            "encrypted_bridges",
        ),
        (with_reg.replace("\"bridges\"", "\"no good\""), false, "5:11", "network"),
    ];
    for (text, ok, loc, word) in cases {
        let config = dir.path().join("masctl.toml");
        std::fs::write(&config, &text).unwrap();
        let out = masctl(&images, &config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{text}: {err}");
        if !ok {
            let want = format!("{}:{loc}: ", config.display());
            assert!(err.contains(&want) && err.contains(word) && err.lines().count() == 1, "{want} {word}: {err}");
        }
        assert!(!root.exists());
    }
}
