use super::*;

const PB: &str = "https://matrix.b.test/auth/";

fn expect() -> Expect {
    Expect {
        server_host: "b.test".into(),
        base_url: "https://matrix.b.test/".into(),
        mas: Mas::On { public_base: PB.into(), qr_login: true },
        hostnames: vec!["matrix.b.test".into(), "b.test".into()],
        plain: false,
        trust: Some("/etc/ca.pem".into()),
        extra_ca: vec![],
    }
}

fn answer(status: u16, body: Value) -> Fetched {
    Fetched::Answer { status, body: body.to_string() }
}

fn metadata(issuer: &str, base: &str) -> Value {
    serde_json::json!({
        "issuer": issuer, "authorization_endpoint": format!("{base}authorize"),
        "token_endpoint": format!("{base}oauth2/token"), "jwks_uri": format!("{base}oauth2/keys.json"),
        "registration_endpoint": format!("{base}oauth2/registration"),
        "response_types_supported": ["code"],
    })
}

/// What a healthy stack answers (the shapes MAS, Synapse and the edge give).
fn healthy() -> Observed {
    let wk = serde_json::json!({"m.homeserver": {"base_url": "https://matrix.b.test/"},
        "org.matrix.msc2965.authentication": {"issuer": PB, "account": format!("{PB}account/")}});
    let flows = serde_json::json!({"flows": [{"type": "m.login.password"},
        {"type": "m.login.sso", "identity_providers": [], "oauth_aware_preferred": true}, {"type": "m.login.token"}]});
    Observed {
        wellknown: answer(200, wk),
        auth_metadata: answer(200, metadata(PB, PB)),
        auth_metadata_unstable: answer(200, metadata(PB, PB)),
        discovery: Some(answer(200, metadata(PB, PB))),
        login: answer(200, flows),
        logout: answer(401, serde_json::json!({"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})),
        refresh: answer(401, serde_json::json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid refresh token"})),
        rendezvous: Some(Rendezvous {
            preflight: Fetched::Answer { status: 204, body: String::new() },
            create: answer(201, serde_json::json!({"url": "https://matrix.b.test/_synapse/client/rendezvous/x"})),
        }),
        tls: ["matrix.b.test", "b.test"].iter().map(|h| (h.to_string(), answer(404, Value::Null))).collect(),
        edge_ip: Some("172.18.0.5".parse().unwrap()),
        via_edge: vec![],
    }
}

fn synapse_404() -> Fetched {
    answer(404, serde_json::json!({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}))
}

fn errors(f: &[Finding]) -> Vec<&str> {
    f.iter().filter(|f| f.level == Level::Error).map(|f| f.message.as_str()).collect()
}

#[test]
fn healthy_stack_is_all_ok() {
    let f = walk(&expect(), &healthy());
    assert!(f.iter().all(|f| f.level == Level::Ok && f.message.starts_with(PREFIX)), "{f:#?}");
    // well-known, two auth_metadata, discovery, login, logout, refresh, proxy, rendezvous, TLS
    assert_eq!(f.len(), 10, "{f:#?}");
}

#[test]
fn each_broken_setup_gives_its_one_error_line() {
    type Break = fn(&mut Expect, &mut Observed);
    // (what is broken, how, words the ❌ line holds: both values and the setting)
    let cases: Vec<(&str, Break, Vec<&str>)> = vec![
        (
            "issuer mismatch",
            |_, o| {
                o.auth_metadata = answer(200, metadata("http://[::]:8080/", "http://[::]:8080/"));
                o.discovery = Some(Fetched::Unreachable("connection refused".into()));
            },
            vec!["issuer http://[::]:8080/ from https://matrix.b.test/_matrix/client/v1/auth_metadata", PB, "[mas]"],
        ),
        (
            "trailing slash missing from the issuer",
            |_, o| o.auth_metadata_unstable = answer(200, metadata("https://matrix.b.test/auth", PB)),
            vec!["issuer https://matrix.b.test/auth from", "msc2965", "≠ mas.public_base"],
        ),
        (
            "auth_metadata 404",
            |_, o| o.auth_metadata = synapse_404(),
            vec!["v1/auth_metadata answered 404", "migration_in_progress = false"],
        ),
        (
            "discovery endpoints on an internal address",
            |_, o| {
                let mut d = metadata(PB, PB);
                d["token_endpoint"] = "http://masctl-mas:8080/oauth2/token".into();
                o.discovery = Some(answer(200, d));
            },
            vec!["token_endpoint http://masctl-mas:8080/oauth2/token", PB, "[mas] hostname"],
        ),
        (
            "discovery of another MAS",
            |_, o| o.discovery = Some(answer(200, metadata("https://auth.b.test/", PB))),
            vec!["issuer https://auth.b.test/ in", "≠ issuer https://matrix.b.test/auth/ from auth_metadata"],
        ),
        ("GET /login sent to Synapse", |_, o| o.login = synapse_404(), vec!["v3/login answered 404", "to MAS"]),
        (
            "GET /login answered by a Synapse that logs in itself",
            |_, o| o.login = answer(200, serde_json::json!({"flows": [{"type": "m.login.password"}]})),
            vec!["lists flows [m.login.password]", "OAuth-aware"],
        ),
        (
            "POST /logout sent to Synapse",
            |_, o| o.logout = synapse_404(),
            vec!["v3/logout answered 404 M_UNRECOGNIZED"],
        ),
        (
            "POST /refresh dropped by a proxy",
            |_, o| o.refresh = Fetched::Answer { status: 404, body: String::new() },
            vec!["v3/refresh answered 404 ≠", "pass them to the edge"],
        ),
        (
            "the edge outside MAS's trusted proxies (X-Forwarded-For dropped)",
            |_, o| o.edge_ip = Some("100.64.3.2".parse().unwrap()),
            vec!["100.64.3.2 ∉ MAS's trusted_proxies", "X-Forwarded-For", "default-address-pools"],
        ),
        (
            "rendezvous 404 while qr_login is on",
            |_, o| o.rendezvous.as_mut().unwrap().create = synapse_404(),
            vec![
                "POST https://matrix.b.test/_matrix/client/unstable/org.matrix.msc4108/rendezvous answered 404",
                "qr_login",
            ],
        ),
        (
            "a bad TLS chain",
            |_, o| {
                let bad = Fetched::Tls("invalid peer certificate: UnknownIssuer".into());
                o.tls[1].1 = bad.clone();
                o.wellknown = bad;
            },
            vec!["https://b.test/", "UnknownIssuer", "[edge] trust /etc/ca.pem"],
        ),
        (
            "the well-known names another base URL",
            |_, o| o.wellknown = answer(200, serde_json::json!({"m.homeserver": {"base_url": "https://b.test/"}})),
            vec!["base_url https://b.test/ from https://b.test/.well-known/matrix/client", "[hostnames] matrix"],
        ),
    ];
    for (what, breaks, words) in cases {
        let (mut e, mut o) = (expect(), healthy());
        breaks(&mut e, &mut o);
        let f = walk(&e, &o);
        let bad = errors(&f);
        assert_eq!(bad.len(), 1, "{what}: {f:#?}");
        for w in words {
            assert!(bad[0].contains(w), "{what}: {w:?} not in {:?}", bad[0]);
        }
    }
}

#[test]
fn an_untrusted_matrix_host_is_one_line_per_host() {
    let mut o = healthy();
    let bad = Fetched::Tls("invalid peer certificate: UnknownIssuer".into());
    for f in [&mut o.auth_metadata, &mut o.auth_metadata_unstable, &mut o.login, &mut o.logout, &mut o.refresh] {
        *f = bad.clone();
    }
    o.discovery = None;
    o.rendezvous.as_mut().unwrap().create = bad.clone();
    o.tls[0].1 = bad.clone();
    let f = walk(&expect(), &o);
    assert_eq!(errors(&f).len(), 1, "{f:#?}");
    assert!(errors(&f)[0].contains("https://matrix.b.test/"), "{f:#?}");
}

#[test]
fn qr_login_off_asks_no_rendezvous() {
    let mut e = expect();
    e.mas = Mas::On { public_base: PB.into(), qr_login: false };
    let mut o = healthy();
    o.rendezvous = None;
    let f = walk(&e, &o);
    assert!(errors(&f).is_empty() && !f.iter().any(|f| f.message.contains("rendezvous")), "{f:#?}");
}

#[test]
fn without_mas_the_walk_is_one_line() {
    for (mas, word) in [(Mas::Off, "runs no MAS"), (Mas::Migrating, "migration_in_progress = true")] {
        let e = Expect { mas, ..expect() };
        let f = walk(&e, &healthy());
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].level == Level::Warning && f[0].message.contains(word), "{f:#?}");
        assert_eq!(skipped(&e).as_ref(), Some(&f[0]));
    }
    assert_eq!(skipped(&expect()), None);
}

#[test]
fn plain_edge_unreachable_is_one_warning() {
    let gone = Fetched::Unreachable("host not found".into());
    let e = Expect { plain: true, ..expect() };
    let f = not_reachable_here(&e, &gone).unwrap();
    assert!(f.level == Level::Warning && f.message.contains("edge.tls = \"plain\""), "{f:?}");
    assert_eq!(not_reachable_here(&expect(), &gone), None, "with TLS at the edge the walk goes on");
    assert_eq!(not_reachable_here(&e, &healthy().wellknown), None);
}

#[test]
fn names_resolved_at_the_edge_are_said() {
    let mut o = healthy();
    o.via_edge = vec!["b.test".into()];
    let f = walk(&expect(), &o);
    assert!(f[0].level == Level::Warning && f[0].message.contains("b.test do not resolve"), "{f:#?}");
    assert!(errors(&f).is_empty());
}

#[test]
fn next_urls_follow_the_answers() {
    let e = expect();
    let wk = answer(200, serde_json::json!({"m.homeserver": {"base_url": "https://other.test"}}));
    assert_eq!(base_url(&e, &wk), "https://other.test/");
    assert_eq!(base_url(&e, &Fetched::Unreachable("x".into())), "https://matrix.b.test/");
    assert_eq!(issuer(&answer(200, metadata(PB, PB))).as_deref(), Some(PB));
    assert_eq!(issuer(&synapse_404()), None);
    assert_eq!(discovery_url(PB), "https://matrix.b.test/auth/.well-known/openid-configuration");
    assert_eq!(discovery_url("https://a.test"), "https://a.test/.well-known/openid-configuration");
}

#[test]
fn cidr_table() {
    for (ip, cidr, want) in [
        ("172.18.0.5", "172.16.0.0/12", true),
        ("172.32.0.1", "172.16.0.0/12", false),
        ("10.63.255.255", "10.0.0.0/10", true),
        ("10.64.0.1", "10.0.0.0/10", false),
        ("fd12::1", "fd00::/8", true),
        ("::1", "::1/128", true),
        ("192.168.1.1", "fd00::/8", false),
    ] {
        assert_eq!(in_cidr(ip.parse().unwrap(), cidr), want, "{ip} in {cidr}");
    }
}

#[test]
fn expectations_match_the_evaluated_config() {
    let base = "server_name = \"b.test\"\n";
    for extra in [
        "[mas]\nenabled = true\n[edge]\ntls = \"acme\"\nacme_email = \"a@b.test\"\ntrust = \"/etc/ca.pem\"\n",
        "[hostnames]\nmatrix = \"hs.b.test:8443\"\n[mas]\nenabled = true\nhostname = \"id.b.test\"\npath_prefix = \"/x\"\nqr_login = false\n",
        "[mas]\nenabled = true\nmigration_in_progress = true\n",
        "",
    ] {
        let c = crate::config::parse(std::path::Path::new("m.toml"), &format!("{base}{extra}")).unwrap();
        let mas = MasState {
            enabled: c.mas_enabled(),
            delegating: c.mas_delegating(),
            path_prefix: c.mas.path_prefix.get_ref().clone(),
        };
        let e = Expect::from_generation("b.test", &serde_json::to_value(&c).unwrap(), &mas);
        assert_eq!(e.base_url, format!("https://{}/", c.matrix_hostname()), "{extra}");
        assert_eq!(e.hostnames, c.served_hostnames(), "{extra}");
        assert_eq!(e.plain, c.tls() == crate::config::TlsMode::Plain, "{extra}");
        assert_eq!(e.trust, c.edge.trust.as_ref().map(|t| t.get_ref().clone()), "{extra}");
        let want = if !c.mas_enabled() {
            Mas::Off
        } else if !c.mas_delegating() {
            Mas::Migrating
        } else {
            let v = crate::eval::mas::config(&c).unwrap();
            Mas::On { public_base: v["http"]["public_base"].as_str().unwrap().into(), qr_login: c.qr_login() }
        };
        assert_eq!(e.mas, want, "{extra}");
    }
}
