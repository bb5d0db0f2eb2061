//! `synapse.appservices`: each registration Synapse loads (the bridges' and the
//! built-in double puppet) as a key of one Secret, referenced from the values; the
//! chart mounts each at `/as/<index>/<key>`. A registration holds its tokens, so
//! it is never inline. Where Synapse reached a bridge does not exist in the
//! cluster: each such URL is reported by the registration's id.

use std::fmt::Write as _;

use serde_json::Value;

use super::input::{Appservice, Input};
use super::report::{Finding, Reason};
use super::secrets::{Part, SecretSet};

/// Where masctl's Synapse reached a bridge's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Over a Docker network Synapse joined (`network`).
    DockerNetwork(String),
    /// A container name: masctl's own Docker network.
    ContainerName,
    /// Loopback, the Docker host bridge or a private address of the host.
    HostBridge,
    /// A DNS name or public address the cluster may reach too.
    Elsewhere,
}

/// The values' `synapse.appservices` list (empty: none), filling `secrets` and `report`.
pub fn section(input: &Input, secrets: &mut SecretSet, report: &mut Vec<Finding>) -> Vec<Value> {
    let mut out = Vec::new();
    for a in &input.appservices {
        let key = format!("{}.yaml", a.id);
        out.push(secrets.credential(Part::Appservices, &key, &a.text));
        let secret = secrets.name(Part::Appservices);
        if a.builtin {
            let why = format!(
                "carried as the registration in Secret {secret} (key {key}) with the same tokens: bridges moved to \
                 the cluster keep their double-puppet secret"
            );
            report.push(Finding::new("synapse.double_puppet", Reason::Changed(why)));
        } else if let Some(url) = &a.url {
            report.push(url_finding(a, url, &secret, &key));
        }
    }
    out
}

fn url_finding(a: &Appservice, url: &str, secret: &str, key: &str) -> Finding {
    let setting = format!("[[synapse.appservices]] \"{}\" url", a.id);
    let where_ = match reach(url, a.network.as_deref()) {
        Reach::Elsewhere => {
            let why = format!("{url}: the cluster's pods must reach it (masctl's Synapse did)");
            return Finding::new(setting, Reason::Changed(why));
        }
        Reach::DockerNetwork(n) => format!("on the Docker network {n}"),
        Reach::ContainerName => "a container name on masctl's Docker network".to_string(),
        Reach::HostBridge => "an address of the masctl host or its Docker bridge".to_string(),
    };
    let why = format!(
        "{url} is {where_}, which the cluster does not have: deploy the bridge in the cluster, change the \
         registration's url to its Service in Secret {secret} (key {key}) and point the bridge at the cluster's \
         Synapse; until then Synapse cannot reach it"
    );
    Finding::new(setting, Reason::Changed(why))
}

/// The RUNBOOK section for the bridges; empty when no registration has a URL.
pub fn runbook(input: &Input, secrets: &SecretSet) -> String {
    let bridges: Vec<&Appservice> = input.appservices.iter().filter(|a| !a.builtin && a.url.is_some()).collect();
    if bridges.is_empty() {
        return String::new();
    }
    let (ns, rel, secret) = (&input.namespace, &input.release, secrets.name(Part::Appservices));
    let mut out = format!(
        "## Bridges\n\nSynapse in the cluster loads the same registrations (Secret `{secret}`), but the \
         bridges still run beside the masctl host. Before DNS moves, deploy each in the cluster (its own \
         database and config are not in this export), set its registration's `url` to the bridge's Service \
         and apply the Secret again; the upgrade restarts Synapse with it:\n\n"
    );
    for a in &bridges {
        let _ = writeln!(out, "- `{}`: now {}", a.id, a.url.as_deref().unwrap_or_default());
    }
    let keys: Vec<String> = input.appservices.iter().map(|a| format!("{}.yaml", a.id)).collect();
    let _ = write!(out, "\n```sh\numask 077 && mkdir as && cd as\n");
    for k in &keys {
        let jq = k.replace('.', "\\.");
        let _ = writeln!(out, "kubectl -n {ns} get secret {secret} -o jsonpath='{{.data.{jq}}}' | base64 -d > {k}");
    }
    let from: String = keys.iter().map(|k| format!(" --from-file={k}")).collect();
    let _ = write!(
        out,
        "# edit the url in each bridge's file, then:\n\
         kubectl -n {ns} create secret generic {secret}{from} --dry-run=client -o yaml | kubectl apply -f -\n\
         cd .. && helm upgrade --install -n {ns} {rel} {oci} --version {v} -f values.yaml --wait --timeout 15m\n```\n\n",
        oci = super::CHART_OCI,
        v = super::CHART_VERSION,
    );
    out
}

/// How masctl's Synapse reached `url`'s host.
pub fn reach(url: &str, network: Option<&str>) -> Reach {
    if let Some(n) = network {
        return Reach::DockerNetwork(n.to_string());
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    }
    .to_ascii_lowercase();
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return match ip {
            std::net::IpAddr::V4(v4) if v4.is_loopback() || v4.is_private() || v4.is_link_local() => Reach::HostBridge,
            std::net::IpAddr::V6(v6) if v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00 => Reach::HostBridge,
            _ => Reach::Elsewhere,
        };
    }
    match host.as_str() {
        "localhost" | "host.docker.internal" | "gateway.docker.internal" => Reach::HostBridge,
        h if !h.contains('.') => Reach::ContainerName,
        _ => Reach::Elsewhere,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_table() {
        let cases = [
            ("http://bridge:29317", None, Reach::ContainerName),
            ("http://mautrix-telegram:29317/", Some("bridges"), Reach::DockerNetwork("bridges".into())),
            ("http://172.17.0.1:9000", None, Reach::HostBridge),
            ("http://127.0.0.1:9000", None, Reach::HostBridge),
            ("http://[::1]:9000", None, Reach::HostBridge),
            ("http://[fd00::5]:9000", None, Reach::HostBridge),
            ("http://host.docker.internal:9000", None, Reach::HostBridge),
            ("http://LOCALHOST", None, Reach::HostBridge),
            ("http://192.168.1.4", None, Reach::HostBridge),
            ("https://bridge.example.org/as", None, Reach::Elsewhere),
            ("https://user@bridge.example.org:8443", None, Reach::Elsewhere),
            ("http://203.0.113.9:80", None, Reach::Elsewhere),
        ];
        for (url, net, want) in cases {
            assert_eq!(reach(url, net), want, "{url}");
        }
    }
}
