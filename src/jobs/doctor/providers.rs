//! Whether each upstream OAuth 2.0 provider MAS signs people in through answers
//! from where MAS runs: its discovery document is fetched over the stack's network
//! with MAS's mounts and environment (so with the roots MAS trusts), and the issuer
//! it names must be the configured one, as MAS requires. The fetch runs in a job
//! (Synapse's image, for its Python); its output lines are read here, purely.

use serde_json::Value;

use super::finding::{Finding, Level};

/// A provider as the generation's config has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub issuer: String,
}

/// MAS's providers in the generation's evaluated config.
pub fn from_config(config: &Value) -> Vec<Provider> {
    let list = config["mas"]["upstream_oauth2"]["providers"].as_array().cloned().unwrap_or_default();
    list.iter()
        .filter_map(|p| {
            let issuer = p["issuer"].as_str()?.to_string();
            let name = p["human_name"].as_str().or_else(|| p["id"].as_str()).unwrap_or("").to_string();
            Some(Provider { name, issuer })
        })
        .collect()
}

pub const MARK: &str = "masctl-oidc: ";

/// The probe: for each issuer argument, one `masctl-oidc: <n> ok <issuer seen>` or
/// `masctl-oidc: <n> fail <why>` line.
pub const PROBE: &str = r#"
import json, os, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
for n, issuer in enumerate(sys.argv[1:]):
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
            doc = json.load(r)
        print("masctl-oidc: %d ok %s" % (n, doc.get("issuer")), flush=True)
    except Exception as e:
        print("masctl-oidc: %d fail %s" % (n, " ".join(str(e).split())), flush=True)
"#;

/// The probe's arguments: the issuers, in order.
pub fn args(providers: &[Provider]) -> Vec<String> {
    providers.iter().map(|p| p.issuer.clone()).collect()
}

/// The findings for the probe's output: one per provider.
pub fn findings(providers: &[Provider], out: &str) -> Vec<Finding> {
    providers.iter().enumerate().map(|(n, p)| finding(p, line(out, n))).collect()
}

/// (ok, detail) of provider `n`'s line.
fn line(out: &str, n: usize) -> Option<(bool, &str)> {
    out.lines().filter_map(|l| l.split_once(MARK).map(|(_, rest)| rest)).find_map(|rest| {
        let mut it = rest.splitn(3, ' ');
        (it.next()? == n.to_string()).then_some(())?;
        let verdict = it.next()? == "ok";
        Some((verdict, it.next().unwrap_or("").trim()))
    })
}

fn finding(p: &Provider, seen: Option<(bool, &str)>) -> Finding {
    let who = format!("upstream provider {} ({})", p.name, p.issuer);
    let (level, message) = match seen {
        Some((true, issuer)) if issuer == p.issuer => {
            (Level::Ok, format!("{who}: its discovery document answers from MAS's network and names this issuer"))
        }
        Some((true, issuer)) => (
            Level::Error,
            format!(
                "{who}: its discovery document names the issuer {issuer:?}, which MAS refuses: \
set the provider's issuer to exactly that"
            ),
        ),
        Some((false, why)) => (
            Level::Error,
            format!(
                "{who}: its discovery document cannot be fetched from MAS's network ({why}): check the issuer, \
that the provider is up and reachable (DNS, [edge] networks), and that its certificate chains to the roots MAS \
trusts ([edge] extra_ca)"
            ),
        ),
        None => (Level::Error, format!("{who}: the check stopped before reaching it (see the output above)")),
    };
    Finding { level, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idp() -> Provider {
        Provider { name: "Test IdP".into(), issuer: "https://idp:8443/".into() }
    }

    #[test]
    fn config_names_providers_by_human_name_else_id() {
        let c = serde_json::json!({"mas": {"upstream_oauth2": {"providers": [
            {"id": "01A", "issuer": "https://a/", "human_name": "A"}, {"id": "01B", "issuer": "https://b/"}]}}});
        let names: Vec<String> = from_config(&c).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["A", "01B"]);
        assert!(from_config(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn probe_output_table() {
        let cases: [(&str, Level, &[&str]); 5] = [
            ("masctl-oidc: 0 ok https://idp:8443/\n", Level::Ok, &["names this issuer"]),
            ("masctl-oidc: 0 ok https://idp:8443\n", Level::Error, &["\"https://idp:8443\"", "exactly that"]),
            (
                "masctl-oidc: 0 fail <urlopen error [Errno -2] Name or service not known>\n",
                Level::Error,
                &["cannot be fetched", "Name or service not known", "extra_ca"],
            ),
            (
                "masctl-oidc: 0 fail [SSL: CERTIFICATE_VERIFY_FAILED]\n",
                Level::Error,
                &["CERTIFICATE_VERIFY_FAILED", "roots MAS trusts"],
            ),
            ("Traceback ...\n", Level::Error, &["stopped before"]),
        ];
        for (out, level, words) in cases {
            let f = findings(&[idp()], out);
            assert_eq!(f.len(), 1, "{out}");
            assert_eq!(f[0].level, level, "{out}: {}", f[0].message);
            assert!(f[0].message.contains("https://idp:8443/"), "{}", f[0].message);
            for w in words {
                assert!(f[0].message.contains(w), "{w:?} in {}", f[0].message);
            }
        }
    }

    #[test]
    fn each_provider_reads_its_own_line() {
        let b = Provider { name: "B".into(), issuer: "https://b/".into() };
        let f = findings(&[idp(), b], "masctl-oidc: 1 ok https://b/\nmasctl-oidc: 0 fail refused\n");
        assert_eq!([f[0].level, f[1].level], [Level::Error, Level::Ok]);
    }
}
