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
