//! Whole exports of the three fixture stacks.

use serde_json::{Value, json};

use super::fixtures::{self, RSA_PEM};
use super::input::{DbSchema, Input, Tls};
use super::{Refusal, export};

/// Every `{secret, secretKey}` in the values, with its JSON pointer.
fn references(v: &Value, at: &str, out: &mut Vec<(String, String, String)>) {
    match v {
        Value::Object(m) => {
            let pair = |a: &str, b: &str| Some((m.get(a)?.as_str()?.to_string(), m.get(b)?.as_str()?.to_string()));
            if let Some((s, k)) = pair("secret", "secretKey").or_else(|| pair("configSecret", "configSecretKey")) {
                out.push((at.to_string(), s, k));
            }
            for (k, x) in m {
                references(x, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| references(x, &format!("{at}/{i}"), out)),
        _ => {}
    }
}

struct Case {
    name: &'static str,
    input: Input,
    /// (JSON pointer, value) pairs the values must hold.
    values: Vec<(&'static str, Value)>,
    /// (reference pointer, the secret's expected content)
    credentials: Vec<(&'static str, &'static str)>,
    /// settings the report must name
    findings: Vec<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "default stack",
            input: fixtures::default_stack(),
            values: vec![
                ("/serverName", json!("example.org")),
                ("/synapse/ingress/host", json!("matrix.example.org")),
                ("/ingress/tlsEnabled", json!(false)),
                ("/matrixAuthenticationService/enabled", json!(false)),
                ("/postgres/enabled", json!(true)),
                ("/synapse/logging/rootLevel", json!("INFO")),
            ],
            credentials: vec![
                ("/synapse/signingKey", "ed25519 a_abcd c2VlZA"),
                ("/synapse/macaroon", "mac-1"),
                ("/synapse/registrationSharedSecret", "reg-1"),
                ("/postgres/essPasswords/synapse", "pgsyn-1"),
                ("/postgres/adminPassword", "super-1"),
            ],
            findings: vec!["edge.tls = \"plain\"", "synapse (main process)", "synapse media store"],
        },
        Case {
            name: "MAS, workers, provider, SMTP",
            input: fixtures::mas_workers_provider_smtp(),
            values: vec![
                ("/certManager/clusterIssuer", json!("letsencrypt")),
                ("/matrixAuthenticationService/ingress/host", json!("auth.example.org")),
                ("/synapse/media/maxUploadSize", json!("100M")),
                ("/synapse/workers/synchrotron/replicas", json!(2)),
                ("/synapse/workers/user-dir/replicas", json!(1)),
                // the generic worker's duties, synchrotron excepted (it has its own)
                ("/synapse/workers/client-reader/replicas", json!(1)),
                ("/synapse/workers/federation-reader/replicas", json!(1)),
                ("/postgres/essPasswords/matrixAuthenticationService/secretKey", json!("matrixAuthenticationService")),
            ],
            credentials: vec![
                ("/matrixAuthenticationService/encryptionSecret", "enc-1"),
                ("/matrixAuthenticationService/synapseSharedSecret", "shared-1"),
                ("/matrixAuthenticationService/privateKeys/rsa", RSA_PEM.trim_end()),
            ],
            findings: vec![
                "synapse.workers.counts.generic",
                "synapse.workers.extra.federation-sender",
                "synapse.extra.listeners",
                "mas.hostname / mas.path_prefix",
                "mas clients",
            ],
        },
        Case {
            name: "external Postgres",
            input: fixtures::external_postgres(),
            values: vec![
                ("/postgres/enabled", json!(false)),
                ("/synapse/postgres/host", json!("db.internal")),
                ("/synapse/postgres/database", json!("syn")),
                ("/synapse/postgres/user", json!("syn_u")),
                ("/ingress/tlsSecret", json!("ess-masctl-tls")),
            ],
            credentials: vec![("/synapse/postgres/password", "ext-syn-1")],
            findings: vec!["postgres.external.host"],
        },
        Case {
            name: "bridges, double puppet, declared users",
            input: fixtures::bridges(),
            values: vec![
                ("/synapse/appservices/0/secret", json!("ess-masctl-appservices")),
                ("/synapse/appservices/0/secretKey", json!("telegram.yaml")),
                ("/synapse/appservices/1/secretKey", json!("hooks.yaml")),
                ("/synapse/appservices/2/secretKey", json!("double-puppet.yaml")),
            ],
            credentials: vec![
                ("/synapse/appservices/0", fixtures::BRIDGE_REGISTRATION.trim_end()),
                ("/synapse/appservices/1", "id: hooks\nas_token: hk-as-1"),
            ],
            findings: vec![
                "[[synapse.appservices]] \"telegram\" url",
                "[[synapse.appservices]] \"hooks\" url",
                "synapse.double_puppet",
                "[[users]] localpart = \"alice\"",
                "[[users]] localpart = \"bot\"",
            ],
        },
    ]
}

#[test]
fn exports_the_fixture_stacks() {
    for case in cases() {
        let e = export(&case.input).unwrap_or_else(|r| panic!("{}: refused {r:?}", case.name));
        for (ptr, want) in &case.values {
            assert_eq!(e.values.pointer(ptr), Some(want), "{}: {ptr}", case.name);
        }
        let mut refs = Vec::new();
        references(&e.values, "", &mut refs);
        for (at, secret, key) in &refs {
            assert!(e.secrets.get(secret, key).is_some(), "{}: {at} names {secret}/{key}, not exported", case.name);
        }
        for (ptr, want) in &case.credentials {
            let (_, s, k) = refs.iter().find(|(at, ..)| at == ptr).unwrap_or_else(|| panic!("{}: no {ptr}", case.name));
            assert_eq!(e.secrets.get(s, k).map(str::trim_end), Some(*want), "{}: {ptr}", case.name);
        }
        let text = e.values.to_string();
        for secret in case.input.secrets.values() {
            assert!(!text.contains(secret.trim()), "{}: a secret is inline in the values", case.name);
        }
        let named: Vec<&str> = e.report.iter().map(|f| f.setting.as_str()).collect();
        for f in &case.findings {
            assert!(named.contains(f), "{}: report lacks {f}: {named:?}", case.name);
        }
        assert!(e.runbook.contains("helm upgrade --install -n ess ess"), "{}", case.name);
    }
}

#[test]
fn secrets_in_mas_fragments_stay_in_secrets() {
    let e = export(&fixtures::mas_workers_provider_smtp()).unwrap();
    let add = &e.values["matrixAuthenticationService"]["additional"];
    assert_eq!(add["masctl-email"]["configSecretKey"], "email.yaml");
    assert_eq!(add["masctl-upstream_oauth2"]["configSecretKey"], "upstream_oauth2.yaml");
    assert!(add["masctl-passwords"]["config"].is_string());
    let email: Value = serde_json::from_str(e.secrets.get("ess-masctl-mas", "email.yaml").unwrap()).unwrap();
    assert_eq!(email["email"]["password"], "smtp-1");
    let up: Value = serde_json::from_str(e.secrets.get("ess-masctl-mas", "upstream_oauth2.yaml").unwrap()).unwrap();
    assert_eq!(up["upstream_oauth2"]["providers"][0]["client_secret"], "prov-1");
    let syn: Value = serde_json::from_str(e.secrets.get("ess-masctl-synapse", "masctl-secret.yaml").unwrap()).unwrap();
    assert_eq!(syn, json!({"form_secret": "form-1"}));
    // chart-owned and masctl's own keys are not in Synapse's inline fragment
    let inline: Value =
        serde_json::from_str(e.values["synapse"]["additional"]["masctl"]["config"].as_str().unwrap()).unwrap();
    for k in ["instance_map", "listeners", "matrix_authentication_service", "worker_replication_secret_path"] {
        assert!(inline.get(k).is_none(), "{k}");
    }
    assert_eq!(inline["enable_registration"], false);
    assert!(e.runbook.contains("--set synapse.workers.synchrotron.replicas=0"));
    assert!(e.runbook.contains("matrixauthenticationservice_user"));
}

#[test]
fn bridges_carry_as_secrets_and_their_urls_are_reported() {
    let input = fixtures::bridges();
    let e = export(&input).unwrap();
    let syn = &e.values["synapse"];
    assert_eq!(syn["appservices"].as_array().map(Vec::len), Some(3));
    // The registrations are Secrets, never inline; no token anywhere but secrets.yaml.
    let printed = [e.values.to_string(), super::report::to_text(&e.report), e.runbook.clone()];
    for token in ["bridge-as-1", "bridge-hs-1", "hk-as-1", "dp-as-1", "dp-hs-1"] {
        assert!(printed.iter().all(|t| !t.contains(token)), "{token} outside secrets.yaml");
    }
    assert!(e.secrets.render("ess").contains("\"telegram.yaml\""));
    assert_eq!(e.secrets.get("ess-masctl-appservices", "double-puppet.yaml"), Some(input.appservices[2].text.as_str()));
    // masctl's registration paths do not exist in the chart's pods: it mounts its own.
    let inline: Value = serde_json::from_str(syn["additional"]["masctl"]["config"].as_str().unwrap()).unwrap();
    assert!(inline.get("app_service_config_files").is_none());
    // encrypted_bridges' features carry in `additional` (the chart merges maps).
    assert_eq!(inline["experimental_features"]["msc3202_transaction_extensions"], true);
    assert_eq!(inline["experimental_features"]["msc2409_to_device_messages_enabled"], true);
    let detail = |s: &str| e.report.iter().find(|f| f.setting == s).map(|f| format!("{:?}", f.reason)).unwrap();
    let cases = [
        ("[[synapse.appservices]] \"telegram\" url", "Docker network bridges"),
        ("[[synapse.appservices]] \"hooks\" url", "Docker bridge"),
        ("[[users]] localpart = \"alice\"", "dumps of Synapse's and MAS's databases"),
    ];
    for (setting, says) in cases {
        let d = detail(setting);
        assert!(d.contains(says) && (setting.contains("users") || d.contains("deploy the bridge")), "{setting}: {d}");
    }
    for says in ["## Bridges", "--from-file=telegram.yaml --from-file=hooks.yaml --from-file=double-puppet.yaml"] {
        assert!(e.runbook.contains(says), "{says}");
    }
    assert!(e.runbook.contains("mas-cli manage register-user") && e.runbook.contains("@alice:example.org (admin)"));
    // Without MAS the declared users are made with Synapse's own tool.
    let mut i = fixtures::default_stack();
    i.declared_users = input.declared_users.clone();
    let plain = export(&i).unwrap();
    assert!(plain.runbook.contains("register_new_matrix_user -c /conf/homeserver.yaml"));
    assert!(plain.values["synapse"].get("appservices").is_none());
    assert!(!plain.runbook.contains("## Bridges"));
    // A user's own experimental feature carries too, no longer reported as chart-owned.
    let mut i = fixtures::default_stack();
    i.homeserver["experimental_features"] = json!({"msc3266_enabled": true});
    i.synapse_extra_keys = vec!["experimental_features".into()];
    let e = export(&i).unwrap();
    assert!(e.values["synapse"]["additional"]["masctl"]["config"].as_str().unwrap().contains("msc3266_enabled"));
    assert!(!e.report.iter().any(|f| f.setting.contains("experimental_features")));
}

#[test]
fn refusals_name_what_and_why() {
    let base = fixtures::mas_workers_provider_smtp;
    type Edit = fn(&mut Input);
    type Want = fn(&Refusal) -> bool;
    let cases: [(Edit, Want); 5] = [
        (
            |i| i.synapse_schema = Some(DbSchema { version: 99, compat_version: Some(97) }),
            |r| matches!(r, Refusal::SchemaTooNew { version: 99, compat: 97, .. }),
        ),
        (|i| i.synapse_schema = None, |r| *r == Refusal::SchemaUnknown),
        (|i| i.mas_migration_in_progress = true, |r| *r == Refusal::MigrationInProgress),
        (|i| i.matrix_host = "example.org".into(), |r| matches!(r, Refusal::MatrixHostIsServerName(_))),
        (
            |i| i.tls = Tls::Acme { issuer: None, email: None, directory: "d".into() },
            |r| *r == Refusal::AcmeNeedsIssuer,
        ),
    ];
    for (edit, want) in cases {
        let mut i = base();
        edit(&mut i);
        let refused = export(&i).expect_err("must refuse");
        assert!(refused.iter().any(want), "{refused:?}");
    }
    let mut i = base();
    i.synapse_schema = Some(DbSchema { version: 99, compat_version: Some(97) });
    let msg = export(&i).unwrap_err()[0].to_string();
    assert!(msg.contains("1.163.2") && msg.contains("v1.159.0") && msg.contains("schema 94"), "{msg}");
    // a newer schema Synapse still accepts (compat within range) exports
    i.synapse_schema = Some(DbSchema { version: 99, compat_version: Some(84) });
    assert!(export(&i).is_ok());
}
