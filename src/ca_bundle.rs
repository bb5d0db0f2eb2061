//! The CA bundle MAS (and Synapse) are given through `SSL_CERT_FILE`: that variable
//! replaces the system bundle, so it must hold the image's public roots AND the
//! user's private CA. Pure: the caller reads both files (and locates its errors).

/// Why a user's CA file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaError {
    /// No `-----BEGIN CERTIFICATE-----` block at all (a key, a DER file, empty).
    NoCertificate,
    /// A BEGIN without its END: a truncated copy.
    Unterminated { block: usize },
}

impl std::fmt::Display for CaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaError::NoCertificate => write!(f, "holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"),
            CaError::Unterminated { block } => write!(f, "certificate {block} has no -----END CERTIFICATE----- line"),
        }
    }
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The PEM certificate blocks of `pem`, in order, each ending in a newline.
pub fn certificates(pem: &str) -> Result<Vec<String>, CaError> {
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let tail = &rest[start..];
        let Some(end) = tail.find(END) else {
            return Err(CaError::Unterminated { block: out.len() + 1 });
        };
        out.push(format!("{}\n", &tail[..end + END.len()]));
        rest = &tail[end + END.len()..];
    }
    if out.is_empty() {
        return Err(CaError::NoCertificate);
    }
    Ok(out)
}

/// The image's roots followed by the user's CAs; a user CA already among the
/// roots is not repeated, so the bundle (and the generation's hash) is stable.
pub fn combined(image_roots: &str, user_cas: &[&str]) -> Result<String, CaError> {
    let mut bundle = certificates(image_roots)?;
    for pem in user_cas {
        for cert in certificates(pem)? {
            if !bundle.contains(&cert) {
                bundle.push(cert);
            }
        }
    }
    Ok(bundle.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(body: &str) -> String {
        format!("{BEGIN}\n{body}\n{END}\n")
    }

    #[test]
    fn combined_bundle_table() {
        let (a, b, c) = (cert("AAAA"), cert("BBBB"), cert("CCCC"));
        let roots = format!("# comment\n{a}{b}");
        let cases: Vec<(&str, Vec<String>, Result<String, CaError>)> = vec![
            ("user CA appended", vec![c.clone()], Ok(format!("{a}{b}{c}"))),
            ("duplicate not repeated", vec![b.clone()], Ok(format!("{a}{b}"))),
            ("two user files", vec![c.clone(), format!("junk\n{c}")], Ok(format!("{a}{b}{c}"))),
            ("a key is not a CA", vec!["-----BEGIN PRIVATE KEY-----\nx\n".into()], Err(CaError::NoCertificate)),
            ("empty file", vec![String::new()], Err(CaError::NoCertificate)),
            ("truncated", vec![format!("{c}{BEGIN}\nDDDD\n")], Err(CaError::Unterminated { block: 2 })),
        ];
        for (what, users, want) in cases {
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            assert_eq!(combined(&roots, &users), want, "{what}");
        }
    }

    #[test]
    fn image_without_roots_is_refused() {
        assert_eq!(combined("", &[&cert("C")]), Err(CaError::NoCertificate));
    }
}
