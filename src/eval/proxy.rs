//! The edge in front of Synapse and MAS: Caddy, configured by a rendered Caddyfile.
//!
//! - `tls = "plain"`: one HTTP listener on `ports.synapse` (behind your own proxy,
//!   or `masctl try`); it runs only with MAS, to route between the two.
//! - `tls = "acme"` / `"files"`: HTTPS on 443 for every hostname the stack serves,
//!   HTTP on 80 (redirects and ACME challenges), federation on 8448, with
//!   certificates from an ACME CA (obtained and renewed by Caddy, kept in
//!   `data/edge`) or the ones you bring.
//!
//! Every mode also has an internal HTTP listener (8080) on the instance's network,
//! where MAS reaches Synapse and the supervisor probes health. Requests that arrive
//! while Synapse or MAS restart are held (`lb_try_duration`) instead of failing.
//! Synapse's admin API is public only when the config says so; MAS's admin API
//! (its internal listener) is never routed.

use serde_json::json;

use super::mas::COMPAT_PORT;
use super::trust::{TRUST_IN, trust_bind};
use super::workers::{self, Route};
use super::{Entry, Inputs};
use crate::config::{Config, TlsMode};
use crate::service::Service;
use crate::spec::{Bind, DataDir, Health, HttpProbe, Port, ServiceSpec};

const SERVICE: Service = Service::Proxy;

/// The internal listener (published on `ports.synapse` in plain mode).
pub const INTERNAL_PORT: u16 = 8080;
pub const HEALTH_PATH: &str = "/_masctl/proxy-health";
/// How long a request waits for a restarting upstream before it fails.
pub const HOLD_SECS: u32 = 30;
const CONFIG_IN: &str = "/etc/proxy";
const CERT_IN: &str = "/etc/proxy-tls/cert.pem";
const KEY_IN: &str = "/etc/proxy-tls/key.pem";
const ACME_CA_IN: &str = "/etc/proxy-acme/ca.pem";
/// The health probe's hops through each TLS listener (from 127.0.0.1 only).
/// Browsers' preflight for the QR-login rendezvous (MSC4108), which Synapse does
/// not answer on `/_synapse/client/rendezvous`; the rest goes to Synapse.
const RENDEZVOUS_PREFLIGHT: &str = "\t@rendezvous_preflight {\n\t\tmethod OPTIONS\n\t\tpath \
/_matrix/client/unstable/org.matrix.msc4108/rendezvous /_synapse/client/rendezvous/*\n\t}\n";
const RENDEZVOUS_CORS: &str = "header Access-Control-Allow-Origin *\n\t\t\theader Access-Control-Allow-Methods \
\"GET, HEAD, POST, PUT, DELETE, OPTIONS\"\n\t\t\theader Access-Control-Allow-Headers \
\"Origin, Content-Type, Accept, If-Match, If-None-Match\"\n\t\t\theader Access-Control-Expose-Headers \
\"Synapse-Trace-Id, Server, ETag\"\n\t\t\trespond 204";
const HOP_PATH: &str = "/_masctl/edge-health/";

/// What a site block serves.
#[derive(Debug, Default, Clone, Copy)]
struct Roles {
    wellknown: bool,
    matrix: bool,
    mas: bool,
}

fn host_only(h: &str) -> String {
    h.split(':').next().unwrap_or(h).to_string()
}

/// `/.well-known/matrix/server`: federation is delegated to the Matrix hostname on 443.
pub fn server_wellknown(c: &Config) -> String {
    json!({"m.server": format!("{}:443", host_only(&c.matrix_hostname()))}).to_string()
}

/// `/.well-known/matrix/client`: where clients find the homeserver and, once
/// Synapse delegates to it, MAS.
pub fn client_wellknown(c: &Config) -> String {
    let mut doc = json!({"m.homeserver": {"base_url": format!("https://{}/", c.matrix_hostname())}});
    if c.mas_delegating() {
        let issuer = format!("https://{}{}/", c.mas_hostname(), c.mas.path_prefix.get_ref());
        doc["org.matrix.msc2965.authentication"] = json!({"issuer": issuer, "account": format!("{issuer}account/")});
    }
    doc.to_string()
}

struct Render<'a> {
    c: &'a Config,
    synapse: String,
    mas: String,
    mas_compat: String,
    workers: Vec<Route>,
}

impl Render<'_> {
    fn upstream(&self, to: &str) -> String {
        format!("reverse_proxy {to} {{\n\t\t\t\timport hold\n\t\t\t}}")
    }

    /// `(matchers, handles)` sending each worker group to its workers; only the
    /// federation groups on the federation listener.
    fn worker_routes(&self, federation_only: bool) -> (String, Vec<(String, String)>) {
        let mut matchers = String::new();
        let mut handles = Vec::new();
        for r in self.workers.iter().filter(|r| r.federation || !federation_only) {
            let m = format!("@w_{}", r.name.replace('-', "_"));
            matchers.push_str(&format!("\t{m} path_regexp {}\n", r.regex));
            let policy = if r.upstreams.len() > 1 {
                format!("\n\t\t\t\tlb_policy {}", r.affinity.lb_policy())
            } else {
                String::new()
            };
            let body = format!("reverse_proxy {} {{{policy}\n\t\t\t\timport hold\n\t\t\t}}", r.upstreams.join(" "));
            handles.push((m, body));
        }
        (matchers, handles)
    }

    /// The routes of one site, in order (the first matching `handle` wins). A
    /// `public` site serves only the paths clients and servers need; the internal
    /// listener passes everything else to Synapse (MAS calls `/_synapse/mas`).
    fn routes(&self, roles: Roles, public: bool, block_admin: bool, hop: Option<String>) -> String {
        let c = self.c;
        let prefix = c.mas.path_prefix.get_ref();
        let mut matchers = String::new();
        let mut handles = String::new();
        let mut handle = |matcher: &str, body: &str| {
            let matcher = if matcher.is_empty() { String::new() } else { format!("{matcher} ") };
            handles.push_str(&format!("\t\thandle {matcher}{{\n\t\t\t{body}\n\t\t}}\n"));
        };
        if let Some(h) = hop {
            handle("@hop", &h);
        }
        if block_admin {
            matchers.push_str("\t@admin path /_synapse/admin /_synapse/admin/*\n");
            handle("@admin", "respond 404");
        }
        if roles.wellknown {
            let cors = "header Access-Control-Allow-Origin *\n\t\t\theader Content-Type application/json";
            handle("/.well-known/matrix/server", &format!("{cors}\n\t\t\trespond `{}` 200", server_wellknown(c)));
            handle("/.well-known/matrix/client", &format!("{cors}\n\t\t\trespond `{}` 200", client_wellknown(c)));
        }
        if roles.mas {
            matchers.push_str(&format!("\t@mas path {prefix} {prefix}/*\n"));
            handle("@mas", &self.upstream(&self.mas));
        }
        if roles.matrix && c.qr_login() {
            matchers.push_str(RENDEZVOUS_PREFLIGHT);
            handle("@rendezvous_preflight", RENDEZVOUS_CORS);
        }
        if roles.matrix && c.mas_delegating() {
            matchers.push_str("\t@compat path_regexp ^/_matrix/client/[^/]+/(login|logout|refresh)\n");
            handle("@compat", &self.upstream(&self.mas_compat));
        }
        if roles.matrix {
            let (m, hs) = self.worker_routes(false);
            matchers.push_str(&m);
            for (name, body) in hs {
                handle(&name, &body);
            }
        }
        if roles.matrix && !public {
            handle("", &self.upstream(&self.synapse));
        } else {
            if roles.matrix {
                let admin = if c.expose_admin() { " /_synapse/admin /_synapse/admin/*" } else { "" };
                matchers.push_str(&format!("\t@synapse path /_matrix/* /_synapse/client/*{admin}\n"));
                handle("@synapse", &self.upstream(&self.synapse));
            }
            handle("", "respond 404");
        }
        format!("{matchers}\troute {{\n{handles}\t}}\n")
    }

    /// The federation listener: federation and key requests only.
    fn federation_routes(&self, hop: Option<String>) -> String {
        let (matchers, workers) = self.worker_routes(true);
        let mut out = format!("\t@federation path /_matrix/federation/* /_matrix/key/*\n{matchers}\troute {{\n");
        if let Some(h) = hop {
            out.push_str(&format!("\t\thandle @hop {{\n\t\t\t{h}\n\t\t}}\n"));
        }
        for (m, body) in workers {
            out.push_str(&format!("\t\thandle {m} {{\n\t\t\t{body}\n\t\t}}\n"));
        }
        out.push_str(&format!("\t\thandle @federation {{\n\t\t\t{}\n\t\t}}\n", self.upstream(&self.synapse)));
        out.push_str("\t\thandle {\n\t\t\trespond 404\n\t\t}\n\t}\n");
        out
    }
}

/// The health probe's next step: through the TLS listener `(host, port)` to hop
/// `n` there — answering only if Caddy holds a certificate for `host`.
fn hop_to(host: &str, port: u16, n: usize) -> String {
    format!(
        "rewrite * {HOP_PATH}{n}\n\t\t\treverse_proxy https://127.0.0.1:{port} {{\n\t\t\t\theader_up Host {host}\n\t\t\t\t\
transport http {{\n\t\t\t\t\ttls_server_name {host}\n\t\t\t\t\ttls_insecure_skip_verify\n\t\t\t\t}}\n\t\t\t}}"
    )
}

/// The Caddyfile's global options (TLS mode, ACME account) and the `hold` snippet.
fn global_options(c: &Config) -> String {
    let mut out = String::from("# Generated by masctl from masctl.toml; edit that file instead.\n{\n\tadmin off\n");
    out.push_str("\tgrace_period 10s\n\tstorage file_system {\n\t\troot /data\n\t}\n");
    // HTTP/3 would need UDP published too; TCP (h1, h2) is what every client speaks.
    out.push_str("\tservers {\n\t\tprotocols h1 h2\n\t}\n");
    match c.tls() {
        TlsMode::Plain => out.push_str("\tauto_https off\n"),
        TlsMode::Files => out.push_str("\tauto_https disable_certs\n"),
        TlsMode::Acme => {
            if let Some(e) = &c.edge.acme_email {
                out.push_str(&format!("\temail {}\n", e.get_ref()));
            }
            out.push_str(&format!("\tacme_ca {}\n", c.edge.acme_directory.get_ref()));
            if c.edge.acme_directory_ca.is_some() {
                out.push_str(&format!("\tacme_ca_root {ACME_CA_IN}\n"));
            }
        }
    }
    out.push_str("}\n\n");
    // Hold requests while an upstream restarts: retry the dial until it answers.
    out.push_str(&format!("(hold) {{\n\tlb_try_duration {HOLD_SECS}s\n\tlb_try_interval 100ms\n}}\n\n"));
    out
}

pub fn caddyfile(c: &Config) -> String {
    let instance = c.instance.get_ref();
    let r = Render {
        c,
        synapse: format!("{}:8008", Service::Synapse.container(instance)),
        mas: format!("{}:8080", Service::Mas.container(instance)),
        mas_compat: format!("{}:{COMPAT_PORT}", Service::Mas.container(instance)),
        workers: workers::routes(c),
    };
    let mode = c.tls();
    let mut out = global_options(c);
    let matrix = host_only(&c.matrix_hostname());
    let mas_host = host_only(&c.mas_hostname());
    let server = host_only(c.server_name.get_ref());
    let hosts = c.served_hostnames();
    // The probe walks every TLS site (443) and then the federation listener.
    let mut hops: Vec<(String, u16)> = hosts.iter().map(|h| (h.clone(), 443)).collect();
    hops.push((matrix.clone(), 8448));
    let hop_here = |i: usize| {
        if mode == TlsMode::Plain {
            return None;
        }
        Some(match hops.get(i + 1) {
            Some((h, p)) => hop_to(h, *p, i + 1),
            None => "respond \"ok\" 200".to_string(),
        })
    };
    let hop_matcher = |i: usize| format!("\t@hop {{\n\t\tpath {HOP_PATH}{i}\n\t\tremote_ip 127.0.0.1\n\t}}\n");

    // The internal listener: everything, as a client inside the stack sees it.
    let health = match hops.first() {
        Some((h, p)) if mode != TlsMode::Plain => hop_to(h, *p, 0),
        _ => "respond \"ok\" 200".to_string(),
    };
    let all = Roles { wellknown: true, matrix: true, mas: c.mas_enabled() };
    out.push_str(&format!(":{INTERNAL_PORT} {{\n\t@hop path {HEALTH_PATH}\n"));
    // Plain: this listener is the published one, admin API as the config says;
    // with TLS it is internal only (the stack's own network).
    let block_admin = mode == TlsMode::Plain && !c.expose_admin();
    out.push_str(&r.routes(all, false, block_admin, Some(health)));
    out.push_str("}\n");

    if mode == TlsMode::Plain {
        return out;
    }
    let tls = if mode == TlsMode::Files { format!("\ttls {CERT_IN} {KEY_IN}\n") } else { String::new() };
    for (i, h) in hosts.iter().enumerate() {
        let roles = Roles { wellknown: *h == server, matrix: *h == matrix, mas: c.mas_enabled() && *h == mas_host };
        out.push_str(&format!("\n{h} {{\n{tls}{}", hop_matcher(i)));
        out.push_str(&r.routes(roles, true, !c.expose_admin(), hop_here(i)));
        out.push_str("}\n");
    }
    let fed = hops.len() - 1;
    out.push_str(&format!("\n{matrix}:8448 {{\n{tls}{}", hop_matcher(fed)));
    out.push_str(&r.federation_routes(hop_here(fed)));
    out.push_str("}\n");
    out
}

pub fn config_entry(c: &Config) -> Entry {
    let mut e = Entry::new("proxy-config");
    e.add("Caddyfile", caddyfile(c));
    e
}

fn publish(p: &crate::config::Publish) -> (String, u16) {
    p.addr().unwrap_or(("127.0.0.1".into(), 0))
}

/// What the edge publishes: Synapse's port in plain mode, else HTTP, HTTPS and federation.
fn ports(c: &Config) -> Vec<Port> {
    let e = &c.edge;
    match c.tls() {
        TlsMode::Plain => {
            let (host_ip, host_port) = c.synapse_publish();
            vec![Port { host_ip, host_port, container_port: INTERNAL_PORT }]
        }
        TlsMode::Acme | TlsMode::Files => [(&e.http, 80), (&e.https, 443), (&e.federation, 8448)]
            .into_iter()
            .map(|(p, container_port)| {
                let (host_ip, host_port) = publish(p.get_ref());
                Port { host_ip, host_port, container_port }
            })
            .collect(),
    }
}

pub fn spec(inp: &Inputs, config_dir: &str) -> ServiceSpec {
    let c = inp.config;
    let instance = c.instance.get_ref();
    let e = &c.edge;
    let data = inp.layout.data_dir(SERVICE).display().to_string();
    let mut binds = vec![Bind::ro(config_dir, CONFIG_IN), Bind::rw(&data, "/data")];
    if c.tls() == TlsMode::Files
        && let (Some(cert), Some(key)) = (&e.certificate, &e.key)
    {
        binds.push(Bind::ro(cert.get_ref(), CERT_IN));
        binds.push(Bind::ro(key.get_ref(), KEY_IN));
    }
    if c.tls() == TlsMode::Acme
        && let Some(ca) = &e.acme_directory_ca
    {
        binds.push(Bind::ro(ca.get_ref(), ACME_CA_IN));
    }
    let health = Health {
        test: vec![],
        http: Some(HttpProbe { port: INTERNAL_PORT, path: HEALTH_PATH.into() }),
        interval_ms: 500,
        timeout_ms: 3000,
        retries: 3,
        // Obtaining certificates may take a while; the switch's timeout bounds it.
        start_period_ms: 120_000,
    };
    ServiceSpec {
        cmd: ["run", "--config", "/etc/proxy/Caddyfile", "--adapter", "caddyfile"].map(String::from).to_vec(),
        binds,
        ports: ports(c),
        data_dirs: vec![DataDir { path: data, uid: SERVICE.uid(), mode: 0o700 }],
        // Inside the stack the public names lead to the edge, so MAS's own checks
        // of `https://<server_name>/.well-known/…` reach it as clients do.
        aliases: if c.tls() == TlsMode::Plain { vec![] } else { c.served_hostnames() },
        extra_networks: networks(c),
        ..ServiceSpec::base(SERVICE, instance, &inp.images[&SERVICE], health, 15)
    }
}

/// `[edge] networks`, joined by the edge and by Synapse (outgoing federation).
pub fn networks(c: &Config) -> Vec<String> {
    c.edge.networks.iter().map(|n| n.get_ref().clone()).collect()
}

/// What MAS needs of the edge: the trusted roots for its HTTPS client.
pub fn adapt_mas(c: &Config, spec: &mut ServiceSpec) {
    if let Some(b) = trust_bind(c) {
        spec.binds.push(b);
        spec.env.push(format!("SSL_CERT_FILE={TRUST_IN}"));
    }
}

/// What Synapse needs of the edge: the trusted roots, and the extra networks —
/// added to the ones Synapse joins already (its appservices' networks).
pub fn adapt_synapse(c: &Config, spec: &mut ServiceSpec) {
    spec.binds.extend(trust_bind(c));
    for n in networks(c) {
        if !spec.extra_networks.contains(&n) {
            spec.extra_networks.push(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        crate::config::parse(std::path::Path::new("m.toml"), &format!("server_name = \"e.com\"\n{extra}")).unwrap()
    }

    const ACME: &str = "[edge]\ntls = \"acme\"\nacme_email = \"admin@e.com\"\n";

    /// The routes of the site block for `site` (up to the next block).
    fn site<'a>(conf: &'a str, site: &str) -> &'a str {
        let start = conf.find(&format!("\n{site} {{\n")).unwrap_or_else(|| panic!("no site {site} in\n{conf}"));
        let rest = &conf[start + 1..];
        &rest[..rest.find("\n}\n").unwrap()]
    }

    #[test]
    fn compat_routes_only_when_mas_delegates() {
        let on = caddyfile(&config("[mas]\nenabled = true\n"));
        assert!(on.contains("(login|logout|refresh)") && on.contains("@mas path /auth /auth/*"), "{on}");
        let migrating = caddyfile(&config("[mas]\nenabled = true\nmigration_in_progress = true\n"));
        assert!(!migrating.contains("(login|logout|refresh)"));
        assert!(migrating.contains("@mas path /auth /auth/*"));
        let prefix = caddyfile(&config("[mas]\nenabled = true\npath_prefix = \"/account\"\n"));
        assert!(prefix.contains("@mas path /account /account/*"));
    }

    #[test]
    fn rendezvous_preflight_only_with_qr_login() {
        // (config, the preflight handle is there)
        let cases = [
            ("[mas]\nenabled = true\n", true),
            ("[mas]\nenabled = true\nqr_login = false\n", false),
            ("[mas]\nenabled = true\nmigration_in_progress = true\n", false),
            ("", false),
        ];
        for (extra, want) in cases {
            let conf = caddyfile(&config(extra));
            assert_eq!(conf.contains("handle @rendezvous_preflight {"), want, "{extra}: {conf}");
            assert_eq!(conf.contains("path /_matrix/client/unstable/org.matrix.msc4108/rendezvous"), want);
        }
    }

    #[test]
    fn sites_per_mode() {
        // (config, sites that must exist, sites that must not)
        let cases: [(String, &[&str], &[&str]); 4] = [
            ("[mas]\nenabled = true\n".into(), &[":8080"], &["e.com", "matrix.e.com", "matrix.e.com:8448"]),
            (ACME.into(), &[":8080", "matrix.e.com", "e.com", "matrix.e.com:8448"], &[]),
            (
                format!("{ACME}[mas]\nenabled = true\nhostname = \"auth.e.com\"\n"),
                &["matrix.e.com", "auth.e.com", "e.com", "matrix.e.com:8448"],
                &[],
            ),
            (
                "[hostnames]\nmatrix = \"e.com\"\n[edge]\ntls = \"files\"\ncertificate = \"/c\"\nkey = \"/k\"\n".into(),
                &["e.com", "e.com:8448"],
                &["matrix.e.com"],
            ),
        ];
        for (extra, yes, no) in cases {
            let conf = caddyfile(&config(&extra));
            for s in yes {
                site(&conf, s);
            }
            for s in no {
                assert!(!conf.contains(&format!("\n{s} {{\n")), "{s} in\n{conf}");
            }
        }
    }

    #[test]
    fn what_each_public_site_serves() {
        let conf = caddyfile(&config(&format!("{ACME}[mas]\nenabled = true\nhostname = \"auth.e.com\"\n")));
        let base = site(&conf, "e.com");
        assert!(base.contains("/.well-known/matrix/server") && !base.contains("e.com-synapse"), "{base}");
        assert!(base.contains(r#"{"m.server":"matrix.e.com:443"}"#), "{base}");
        assert!(base.contains("Access-Control-Allow-Origin *"));
        assert!(base.contains(r#""issuer":"https://auth.e.com/auth/""#), "{base}");
        let m = site(&conf, "matrix.e.com");
        assert!(m.contains("@synapse path /_matrix/* /_synapse/client/*\n") && m.contains("(login|logout|refresh)"));
        assert!(m.contains("@admin path /_synapse/admin") && !m.contains("/.well-known"), "{m}");
        let auth = site(&conf, "auth.e.com");
        assert!(auth.contains("masctl-mas:8080") && !auth.contains("masctl-synapse"), "{auth}");
        let fed = site(&conf, "matrix.e.com:8448");
        assert!(fed.contains("@federation path /_matrix/federation/* /_matrix/key/*"), "{fed}");
        // MAS's internal listener (health, admin API) is never routed.
        assert!(!conf.contains(&format!(":{}", crate::eval::mas::INTERNAL_PORT)), "{conf}");
        for u in ["masctl-synapse:8008 {", "masctl-mas:8080 {"] {
            assert!(conf.contains(u) && conf.contains("import hold"), "{conf}");
        }
    }

    #[test]
    fn admin_api_on_public_listeners_only_when_asked() {
        let hidden = caddyfile(&config(ACME));
        assert!(site(&hidden, "matrix.e.com").contains("handle @admin {\n\t\t\trespond 404"));
        let shown = caddyfile(&config(&format!("{ACME}expose_admin = true\n")));
        let m = site(&shown, "matrix.e.com");
        assert!(!m.contains("handle @admin") && m.contains("/_synapse/client/* /_synapse/admin"), "{m}");
        // Plain HTTP (loopback by default) keeps today's behaviour: everything to
        // Synapse, unless the config hides the admin API.
        let plain = caddyfile(&config("[mas]\nenabled = true\n"));
        assert!(!plain.contains("@admin") && !plain.contains("@synapse"), "{plain}");
        let hid = caddyfile(&config("[mas]\nenabled = true\n[edge]\nexpose_admin = false\n"));
        assert!(hid.contains("handle @admin {\n\t\t\trespond 404"), "{hid}");
        // With TLS the internal listener keeps the admin API, on the stack's network only.
        assert!(!site(&hidden, ":8080").contains("@admin"));
    }

    #[test]
    fn health_walks_every_tls_listener() {
        let conf = caddyfile(&config(&format!("{ACME}[mas]\nenabled = true\nhostname = \"auth.e.com\"\n")));
        let internal = site(&conf, ":8080");
        assert!(internal.contains("tls_server_name matrix.e.com") && internal.contains("/_masctl/edge-health/0"));
        // matrix.e.com (0) → auth.e.com (1) → e.com (2) → matrix.e.com:8448 (3) answers.
        assert!(site(&conf, "matrix.e.com").contains("tls_server_name auth.e.com"));
        assert!(site(&conf, "auth.e.com").contains("tls_server_name e.com"));
        assert!(site(&conf, "e.com").contains("reverse_proxy https://127.0.0.1:8448"));
        let fed = site(&conf, "matrix.e.com:8448");
        assert!(fed.contains("path /_masctl/edge-health/3") && fed.contains("respond \"ok\" 200"), "{fed}");
        assert!(fed.contains("remote_ip 127.0.0.1"));
        let plain = caddyfile(&config("[mas]\nenabled = true\n"));
        assert!(plain.contains("respond \"ok\" 200") && !plain.contains("edge-health"));
    }

    #[test]
    fn acme_and_files_global_options() {
        let conf = caddyfile(&config(&format!(
            "{ACME}acme_directory = \"https://ca.test:14000/dir\"\nacme_directory_ca = \"/etc/ca.pem\"\n"
        )));
        assert!(conf.contains(
            "\temail admin@e.com\n\tacme_ca https://ca.test:14000/dir\n\tacme_ca_root /etc/proxy-acme/ca.pem\n"
        ));
        let le = caddyfile(&config(ACME));
        assert!(le.contains(&format!("acme_ca {}\n", crate::config::LETS_ENCRYPT)) && !le.contains("acme_ca_root"));
        let files = caddyfile(&config("[edge]\ntls = \"files\"\ncertificate = \"/c\"\nkey = \"/k\"\n"));
        assert!(files.contains("tls /etc/proxy-tls/cert.pem /etc/proxy-tls/key.pem") && !files.contains("acme_ca"));
    }

    #[test]
    fn client_wellknown_names_mas_once_it_delegates() {
        let v = |extra: &str| serde_json::from_str::<serde_json::Value>(&client_wellknown(&config(extra))).unwrap();
        assert_eq!(v("")["m.homeserver"]["base_url"], "https://matrix.e.com/");
        assert!(
            v("[mas]\nenabled = true\nmigration_in_progress = true\n")
                .get("org.matrix.msc2965.authentication")
                .is_none()
        );
        let on = v("[mas]\nenabled = true\n");
        assert_eq!(on["org.matrix.msc2965.authentication"]["issuer"], "https://matrix.e.com/auth/");
        assert_eq!(on["org.matrix.msc2965.authentication"]["account"], "https://matrix.e.com/auth/account/");
    }
}
