//! Which of the chart's `matrixAuthenticationService.privateKeys.*` slots a MAS
//! signing key fills: the chart takes one key per type.

use base64::Engine as _;

/// The chart's key slots, by value name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyType {
    Rsa,
    EcdsaPrime256v1,
    EcdsaSecp256k1,
    EcdsaSecp384r1,
}

impl KeyType {
    pub fn value_name(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::EcdsaPrime256v1 => "ecdsaPrime256v1",
            KeyType::EcdsaSecp256k1 => "ecdsaSecp256k1",
            KeyType::EcdsaSecp384r1 => "ecdsaSecp384r1",
        }
    }
}

// DER-encoded OIDs (tag 06, length, body) that name the key's algorithm or curve.
const RSA_ENCRYPTION: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const PRIME256V1: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const SECP256K1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
const SECP384R1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The key type of a PEM private key (PKCS#1, SEC1 or PKCS#8), or `None` for
/// one the chart has no slot for (or that is not a PEM private key).
pub fn classify(pem: &str) -> Option<KeyType> {
    let label = pem.lines().find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))?;
    if label == "RSA PRIVATE KEY" {
        return Some(KeyType::Rsa);
    }
    if label != "EC PRIVATE KEY" && label != "PRIVATE KEY" {
        return None;
    }
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()?;
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    [(RSA_ENCRYPTION, KeyType::Rsa), (PRIME256V1, KeyType::EcdsaPrime256v1), (SECP256K1, KeyType::EcdsaSecp256k1)]
        .into_iter()
        .chain([(SECP384R1, KeyType::EcdsaSecp384r1)])
        .find(|(oid, _)| has(oid))
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b}\n-----END {label}-----\n")
    }

    #[test]
    fn classifies_each_slot() {
        let wrap = |oid: &[u8]| [&[0x30u8, 0x10, 0x02, 0x01, 0x01][..], oid, &[0x04, 0x01, 0x00]].concat();
        let cases: [(String, Option<KeyType>); 7] = [
            (pem("RSA PRIVATE KEY", &[0x30, 0x00]), Some(KeyType::Rsa)),
            (pem("PRIVATE KEY", &wrap(RSA_ENCRYPTION)), Some(KeyType::Rsa)),
            (pem("EC PRIVATE KEY", &wrap(PRIME256V1)), Some(KeyType::EcdsaPrime256v1)),
            (pem("PRIVATE KEY", &wrap(SECP256K1)), Some(KeyType::EcdsaSecp256k1)),
            (pem("EC PRIVATE KEY", &wrap(SECP384R1)), Some(KeyType::EcdsaSecp384r1)),
            // ed25519 (1.3.101.112): no slot in the chart
            (pem("PRIVATE KEY", &wrap(&[0x06, 0x03, 0x2b, 0x65, 0x70])), None),
            ("not a key".to_string(), None),
        ];
        for (text, want) in cases {
            assert_eq!(classify(&text), want, "{text}");
        }
    }
}
