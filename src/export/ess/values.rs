//! The chart's `values.yaml`: server name, hosts, TLS, components, databases.

use serde_json::{Map, Value, json};

use super::input::{Database, Input, Issuer, PostgresTarget, Tls};
use super::refuse::Refusal;
use super::report::{self, Finding, Reason};
use super::secrets::{Part, SecretSet};
use super::{appservices, mas, synapse, workers};

/// The values, filling `secrets` and `report` on the way.
pub fn build(input: &Input, secrets: &mut SecretSet, report: &mut Vec<Finding>) -> Result<Value, Vec<Refusal>> {
    report.extend(report::community_limits());
    let mut syn = synapse::section(input, secrets, report);
    syn.insert("ingress".into(), json!({"host": input.matrix_host}));
    let regs = appservices::section(input, secrets, report);
    if !regs.is_empty() {
        syn.insert("appservices".into(), Value::Array(regs));
    }
    report.extend(super::users::findings(input));
    let w = workers::map(&input.workers, &input.worker_extra_kinds, report);
    if !w.is_empty() {
        syn.insert("workers".into(), Value::Object(w));
    }
    let mut masv = mas::section(input, secrets, report);
    let mut v = json!({
        "serverName": input.server_name(),
        "ingress": ingress(input, secrets, report)?,
        // masctl runs none of these; they stay off rather than appear unasked.
        "elementWeb": {"enabled": false},
        "elementAdmin": {"enabled": false},
        "matrixRTC": {"enabled": false},
        "hookshot": {"enabled": false},
        "wellKnownDelegation": {"enabled": true},
    });
    postgres(input, &mut v, &mut syn, &mut masv, secrets);
    if let PostgresTarget::External { synapse, .. } = &input.postgres {
        let why = format!("the cluster's pods must reach {}:{} (masctl's containers did)", synapse.host, synapse.port);
        report.push(Finding::new("postgres.external.host", Reason::Changed(why)));
    }
    v["synapse"] = Value::Object(syn);
    v["matrixAuthenticationService"] = Value::Object(masv);
    if let Some(issuer) = cert_issuer(&input.tls) {
        v["certManager"] = issuer;
    }
    Ok(v)
}

fn ingress(input: &Input, secrets: &mut SecretSet, report: &mut Vec<Finding>) -> Result<Value, Vec<Refusal>> {
    Ok(match &input.tls {
        Tls::Plain => {
            let why = "TLS stays with your own proxy: route the hosts to the cluster's ingress over HTTP";
            report.push(Finding::new("edge.tls = \"plain\"", Reason::Changed(why.into())));
            json!({"tlsEnabled": false})
        }
        Tls::Acme { issuer: None, .. } => return Err(vec![Refusal::AcmeNeedsIssuer]),
        Tls::Acme { email, directory, .. } => {
            let why = format!(
                "ACME ({directory}{}) is configured on the cert-manager issuer, not in the chart",
                email.as_ref().map(|e| format!(", contact {e}")).unwrap_or_default()
            );
            report.push(Finding::new("edge.acme_email / edge.acme_directory", Reason::Changed(why)));
            json!({})
        }
        Tls::Files { certificate, key } => {
            let r = secrets.credential(Part::Tls, "tls.crt", certificate);
            secrets.credential(Part::Tls, "tls.key", key);
            json!({"tlsSecret": r["secret"]})
        }
    })
}

fn cert_issuer(tls: &Tls) -> Option<Value> {
    match tls {
        Tls::Acme { issuer: Some(Issuer::Cluster(n)), .. } => Some(json!({"clusterIssuer": n})),
        Tls::Acme { issuer: Some(Issuer::Namespaced(n)), .. } => Some(json!({"issuer": n})),
        _ => None,
    }
}

/// Bundled: the chart's Postgres with masctl's role passwords (the dumps are
/// loaded under the chart's names). External: the same server masctl uses.
fn postgres(
    input: &Input,
    v: &mut Value,
    syn: &mut Map<String, Value>,
    masv: &mut Map<String, Value>,
    secrets: &mut SecretSet,
) {
    match &input.postgres {
        PostgresTarget::Bundled => {
            let mut pw = Map::new();
            for (value, file) in [("synapse", "postgres-synapse"), ("matrixAuthenticationService", "postgres-mas")] {
                if (value == "synapse" || input.mas_config.is_some())
                    && let Some(p) = input.secret(file)
                {
                    pw.insert(value.into(), secrets.credential(Part::Postgres, value, p));
                }
            }
            let mut pg = json!({"enabled": true, "essPasswords": pw});
            if let Some(p) = input.secret("postgres-superuser") {
                pg["adminPassword"] = secrets.credential(Part::Postgres, "adminPassword", p);
            }
            v["postgres"] = pg;
        }
        PostgresTarget::External { synapse, mas } => {
            v["postgres"] = json!({"enabled": false});
            syn.insert("postgres".into(), external(synapse, "synapse", secrets));
            if let (Some(m), true) = (mas, input.mas_config.is_some()) {
                masv.insert("postgres".into(), external(m, "matrixAuthenticationService", secrets));
            }
        }
    }
}

fn external(db: &Database, key: &str, secrets: &mut SecretSet) -> Value {
    json!({
        "host": db.host, "port": db.port, "user": db.user, "database": db.database,
        // libpq's own default, which masctl's services use too
        "sslMode": "prefer",
        "password": secrets.credential(Part::Postgres, key, &db.password),
    })
}
