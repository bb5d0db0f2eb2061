//! `RUNBOOK.md`: the commands, in order, that move the stack onto the cluster
//! with chart 26.8.1, and the way back. masctl keeps serving until DNS moves.

use std::fmt::Write as _;

use super::input::{Input, PostgresTarget};
use super::report::{self, Finding};
use super::{CHART_OCI, CHART_VERSION};

/// The chart's database and owner names for its bundled Postgres.
pub const DATABASES: [(&str, &str, &str); 2] = [
    ("synapse", "synapse", "synapse_user"),
    ("mas", "matrixauthenticationservice", "matrixauthenticationservice_user"),
];
/// Synapse's uid/gid in the chart's pods (values.yaml `synapse.podSecurityContext`).
const SYNAPSE_UID: u32 = 10091;

struct Ctx<'a> {
    ns: &'a str,
    rel: &'a str,
    bundled: bool,
    mas: bool,
}

pub fn render(input: &Input, findings: &[Finding]) -> String {
    let c = Ctx {
        ns: &input.namespace,
        rel: &input.release,
        bundled: input.postgres == PostgresTarget::Bundled,
        mas: input.mas_config.is_some(),
    };
    let mut out = format!(
        "# Moving {} to ESS Community (matrix-stack {CHART_VERSION})\n\n\
         Run from this directory, with `kubectl` pointed at the cluster. The masctl host keeps \
         serving until step 7; nothing here changes it.\n\n",
        input.server_name()
    );
    prerequisites(&mut out);
    install(&mut out, &c, &hold_flags(input));
    if c.bundled {
        databases(&mut out, &c, input.mas_config.is_some());
    }
    media(&mut out, &c);
    scale_up(&mut out, &c);
    out.push_str(&super::appservices::runbook(input, &super::secrets::SecretSet::new(c.rel)));
    dns(&mut out, input);
    out.push_str(&super::users::runbook(input));
    back(&mut out, &c);
    let _ = write!(out, "## What does not carry over\n\n```\n{}```\n", report::to_text(findings));
    out
}

fn prerequisites(out: &mut String) {
    out.push_str(
        "## 0. Before you start\n\n\
         - An ingress controller and a default StorageClass (ReadWriteOnce); cert-manager with the issuer \
         named in values.yaml when it has `certManager`.\n\
         - Stop writes for the cut-over window: `masctl export ess` took the dumps; users who write after \
         it lose those writes. For a clean cut, stop the stack (`systemctl stop 'masctl-*'`) before the \
         export, and start it again only to go back.\n\n",
    );
}

/// `--set` flags that hold Synapse (main and workers) and MAS at zero pods.
fn hold_flags(input: &Input) -> Vec<String> {
    let mut flags = vec!["synapse.replicas=0".to_string()];
    if input.mas_config.is_some() {
        flags.push("matrixAuthenticationService.replicas=0".into());
    }
    for (kind, _) in input.workers.iter().filter(|(_, n)| *n > 0) {
        for t in super::workers::chart_types(kind) {
            flags.push(format!("synapse.workers.{t}.replicas=0"));
        }
    }
    flags.sort();
    flags.dedup();
    flags
}

fn helm(c: &Ctx, extra: &str) -> String {
    format!("helm upgrade --install -n {} {} {CHART_OCI} --version {CHART_VERSION} -f values.yaml{extra}", c.ns, c.rel)
}

fn install(out: &mut String, c: &Ctx, hold: &[String]) {
    let sets: String = hold.iter().map(|f| format!(" \\\n  --set {f}")).collect();
    let pg = if c.bundled {
        format!("kubectl -n {ns} rollout status statefulset/{rel}-postgres --timeout=10m\n", ns = c.ns, rel = c.rel)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "## 1. Namespace and Secrets\n\n```sh\nkubectl create namespace {ns}\n\
         kubectl -n {ns} apply -f secrets.yaml\n```\n\n\
         ## 2. Install, Synapse and MAS held at zero\n\n\
         No `--wait`: HAProxy is not ready until Synapse runs (ess-helm #686).\n\n\
         ```sh\n{cmd}\n{pg}```\n\n",
        ns = c.ns,
        cmd = helm(c, &sets),
    );
}

fn databases(out: &mut String, c: &Ctx, mas: bool) {
    let _ = write!(
        out,
        "## 3. Load the databases\n\nThe dumps (`pg_dump -Fc`, verified by masctl) carry no owner; \
        they are restored as the chart's owner roles.\n\n```sh\n"
    );
    for (ours, db, owner) in DATABASES.iter().filter(|(o, ..)| *o == "synapse" || mas) {
        let _ = writeln!(
            out,
            "kubectl -n {ns} exec -i {rel}-postgres-0 -- pg_restore -U postgres --no-owner --no-acl \
             --role={owner} --exit-on-error -d {db} < data/{ours}.dump",
            ns = c.ns,
            rel = c.rel,
        );
    }
    let _ = write!(
        out,
        "kubectl -n {ns} exec -i {rel}-postgres-0 -- psql -U postgres -d synapse -v ON_ERROR_STOP=1 \
         -c 'TRUNCATE e2e_one_time_keys_json'\n```\n\n",
        ns = c.ns,
        rel = c.rel,
    );
}

fn media(out: &mut String, c: &Ctx) {
    let _ = write!(
        out,
        "## 4. Copy the media\n\nSynapse is at zero, so a short-lived pod mounts the media volume \
         (`{rel}-synapse-media`) as Synapse's user:\n\n```sh\n\
         kubectl -n {ns} run {rel}-media-load --restart=Never --image=postgres:17-alpine \\\n  \
         --overrides='{{\"spec\":{{\"securityContext\":{{\"runAsUser\":{uid},\"runAsGroup\":{uid},\"fsGroup\":{uid}}},\
         \"volumes\":[{{\"name\":\"m\",\"persistentVolumeClaim\":{{\"claimName\":\"{rel}-synapse-media\"}}}}],\
         \"containers\":[{{\"name\":\"load\",\"image\":\"postgres:17-alpine\",\"command\":[\"sleep\",\"3600\"],\
         \"volumeMounts\":[{{\"name\":\"m\",\"mountPath\":\"/media\"}}]}}]}}}}'\n\
         kubectl -n {ns} wait --for=condition=Ready pod/{rel}-media-load --timeout=5m\n\
         kubectl -n {ns} exec -i {rel}-media-load -- sh -c 'mkdir -p /media/media_store && tar -xf - -C /media/media_store' < data/media.tar\n\
         kubectl -n {ns} exec -i {rel}-media-load -- sh -c 'cd /media/media_store && sha256sum -c -s' < data/media.sha256\n\
         kubectl -n {ns} delete pod {rel}-media-load\n```\n\n",
        ns = c.ns,
        rel = c.rel,
        uid = SYNAPSE_UID,
    );
}

fn scale_up(out: &mut String, c: &Ctx) {
    let mas = if c.mas {
        format!(
            "kubectl -n {ns} rollout status deployment/{rel}-matrix-authentication-service --timeout=10m\n",
            ns = c.ns,
            rel = c.rel
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "## 5. Scale up\n\nThe same install without the holds: Synapse migrates its schema at start, MAS in \
         its init container.\n\n```sh\n{cmd} --wait --timeout 15m\n\
         kubectl -n {ns} rollout status statefulset/{rel}-synapse-main --timeout=10m\n{mas}```\n\n\
         ## 6. Check before DNS moves\n\nThrough the ingress, with the new address pinned \
         (`curl --resolve HOST:443:INGRESS_IP`): `/_matrix/key/v2/server` names the same key id as the \
         masctl host, `/_matrix/client/versions` answers, and a user logs in.\n\n",
        cmd = helm(c, ""),
        ns = c.ns,
        rel = c.rel,
    );
}

fn dns(out: &mut String, input: &Input) {
    let mut hosts = vec![input.server_name().to_string(), input.matrix_host.clone()];
    if input.mas_config.is_some() {
        hosts.push(input.chart_mas_host());
    }
    hosts.dedup();
    let _ = write!(
        out,
        "## 7. Move DNS\n\nPoint {} at the cluster's ingress. Federation follows `/.well-known/matrix/server` \
         on {} (served by the chart). Once the old records' TTL has passed and the cluster serves, stop \
         the masctl host: `systemctl stop 'masctl-*'`.\n\n",
        hosts.join(", "),
        input.server_name()
    );
}

fn back(out: &mut String, c: &Ctx) {
    let _ = write!(
        out,
        "## The way back\n\n\
         - Before DNS moved: `helm uninstall -n {ns} {rel}`; the masctl host never stopped serving. The \
         PVCs (`helm.sh/resource-policy: keep`) and the `{rel}-generated` Secret stay: delete them, or \
         `kubectl delete namespace {ns}`.\n\
         - After DNS moved: point DNS back at the masctl host and start it (`masctl switch` of its current \
         generation, or `systemctl start 'masctl-*'`). Anything written in the cluster since is not on the \
         masctl host: bring it back with `pg_dump -Fc` from `{rel}-postgres-0` and `masctl restore`, or \
         accept the loss. `helm rollback` restores manifests only, never schemas or data.\n\n",
        ns = c.ns,
        rel = c.rel,
    );
}
