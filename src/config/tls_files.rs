//! `[edge] tls = "files"`: the certificate and key you bring are checked when the
//! config is loaded, before anything on the host changes — the key must be the
//! certificate's, and the certificate must name every hostname the edge serves.

use std::path::Path;

use anyhow::Result;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{Config, TlsMode, at};

/// What is wrong with a certificate and key, or `Ok` when they serve `hostnames`.
pub fn check_pair(cert_pem: &[u8], key_pem: &[u8], hostnames: &[String]) -> std::result::Result<(), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("is not a PEM certificate chain ({e})"))?;
    let Some(leaf) = chain.first().cloned() else { return Err("holds no certificate".into()) };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("key: not a PEM private key ({e})"))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).map_err(|e| format!("key: {e}"))?;
    CertifiedKey::new(chain, signing).keys_match().map_err(|_| "does not match edge.key".to_string())?;
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| format!("cannot be parsed ({e:?})"))?;
    for h in hostnames {
        let name = ServerName::try_from(h.as_str()).map_err(|e| format!("{h}: {e}"))?;
        ee.verify_is_valid_for_subject_name(&name).map_err(|_| format!("does not cover {h}"))?;
    }
    Ok(())
}

/// Reads the files a `files` edge names and checks them; errors point at
/// `edge.certificate` (or `edge.key` when that file cannot be read).
pub fn check(c: &Config, path: &Path, text: &str) -> Result<()> {
    let (TlsMode::Files, Some(cert), Some(key)) = (c.tls(), &c.edge.certificate, &c.edge.key) else {
        return Ok(());
    };
    let read = |f: &toml::Spanned<String>, what: &str| {
        std::fs::read(f.get_ref()).map_err(|e| at(path, text, f.span(), format!("{what} {}: {e}", f.get_ref())))
    };
    let (cert_pem, key_pem) = (read(cert, "edge.certificate")?, read(key, "edge.key")?);
    check_pair(&cert_pem, &key_pem, &c.served_hostnames())
        .map_err(|why| at(path, text, cert.span(), format!("edge.certificate {} {why}", cert.get_ref())))
}

/// Each `[edge] extra_ca` file can be read and holds PEM certificates; errors
/// point at the file's entry. Read again when a generation is built.
pub fn check_extra_ca(c: &Config, path: &Path, text: &str) -> Result<()> {
    for f in &c.edge.extra_ca {
        let located = |why: String| at(path, text, f.span(), format!("edge.extra_ca {} {why}", f.get_ref()));
        let pem = std::fs::read_to_string(f.get_ref()).map_err(|e| located(format!("cannot be read ({e})")))?;
        crate::ca_bundle::certificates(&pem).map_err(|e| located(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> (String, String) {
        let k = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        (k.cert.pem(), k.key_pair.serialize_pem())
    }

    #[test]
    fn certificate_and_key_table() {
        let hosts: Vec<String> = ["matrix.e.com", "e.com"].map(String::from).to_vec();
        let (cert, key) = pair(&["matrix.e.com", "e.com"]);
        let (_, other_key) = pair(&["matrix.e.com", "e.com"]);
        let (narrow, narrow_key) = pair(&["matrix.e.com"]);
        let (wild, wild_key) = pair(&["*.e.com", "e.com"]);
        let cases: [(&str, &str, Result<(), &str>); 6] = [
            (&cert, &key, Ok(())),
            (&wild, &wild_key, Ok(())),
            (&cert, &other_key, Err("does not match edge.key")),
            (&narrow, &narrow_key, Err("does not cover e.com")),
            ("", &key, Err("holds no certificate")),
            (&cert, "not a key", Err("key: not a PEM private key")),
        ];
        for (c, k, want) in cases {
            let got = check_pair(c.as_bytes(), k.as_bytes(), &hosts);
            match want {
                Ok(()) => assert!(got.is_ok(), "{got:?}"),
                Err(w) => assert!(got.as_ref().is_err_and(|e| e.contains(w)), "{got:?}, wanted {w}"),
            }
        }
    }
}
