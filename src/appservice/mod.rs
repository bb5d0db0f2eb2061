//! Appservices (bridges and bots): registration files checked as Synapse would,
//! and cross-checked with each other; the built-in double-puppet registration.
//! Pure: the config's edge reads the files.

pub mod double_puppet;
pub mod python_re;
pub mod registration;

use std::path::PathBuf;

use registration::{Pos, Registration};
use sha2::{Digest, Sha256};

/// A registration file as read when the config was loaded: the bytes Synapse gets
/// (copied into `secrets/`) and what they say. Debug shows no token.
#[derive(Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub text: String,
    pub reg: Registration,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Loaded({}, {})", self.path.display(), self.file_name())
    }
}

impl Loaded {
    pub fn new(path: PathBuf, text: String, reg: Registration) -> Loaded {
        Loaded { path, text, reg }
    }

    pub fn id(&self) -> &str {
        &self.reg.id.0
    }

    /// `<id>.<digest>.yaml`: a changed registration is a new file, so the config
    /// Synapse runs changes (Synapse restarts, nothing else) and a rollback gets the
    /// registration it had. The digest of two random tokens says nothing about them.
    pub fn file_name(&self) -> String {
        let digest = hex::encode(Sha256::digest(self.text.as_bytes()));
        format!("{}.{}.yaml", self.id(), &digest[..12])
    }
}

/// Two registrations that must not share a value: (index of the later one, its
/// position, message naming the earlier file).
pub fn cross_check(
    all: &[(PathBuf, Registration)],
    reserved_ids: &[&str],
    reserved_localparts: &[&str],
) -> Result<(), (usize, Pos, String)> {
    for (i, (_, r)) in all.iter().enumerate() {
        if reserved_ids.contains(&r.id.0.as_str()) {
            return Err((i, r.id.1, format!("id {:?} is masctl's built-in double-puppet registration", r.id.0)));
        }
        if let Some(why) = reserved_localparts.iter().find(|l| **l == r.sender_localpart.0) {
            return Err((
                i,
                r.sender_localpart.1,
                format!("sender_localpart {why:?} is a declared user or masctl's own"),
            ));
        }
        for (earlier, e) in &all[..i] {
            let clash = |what: &str, at: Pos| Some((i, at, format!("{what} is the same as in {}", earlier.display())));
            let found = if r.id.0 == e.id.0 {
                clash("id", r.id.1)
            } else if [&e.as_token.0, &e.hs_token.0].contains(&&r.as_token.0) {
                clash("as_token (each appservice needs its own tokens)", r.as_token.1)
            } else if [&e.as_token.0, &e.hs_token.0].contains(&&r.hs_token.0) {
                clash("hs_token (each appservice needs its own tokens)", r.hs_token.1)
            } else if r.sender_localpart.0 == e.sender_localpart.0 {
                clash("sender_localpart", r.sender_localpart.1)
            } else {
                None
            };
            if let Some(err) = found {
                return Err(err);
            }
        }
        if r.as_token.0 == r.hs_token.0 {
            return Err((i, r.hs_token.1, "hs_token must differ from as_token".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, a: &str, h: &str, lp: &str) -> (PathBuf, Registration) {
        let text =
            format!("id: {id}\nurl: null\nas_token: {a}\nhs_token: {h}\nsender_localpart: {lp}\nnamespaces: {{}}\n");
        (PathBuf::from(format!("/r/{id}.yaml")), registration::parse(&text).unwrap())
    }

    #[test]
    fn cross_check_table() {
        let base = reg("one", "A1", "H1", "bot1");
        type Case = (Vec<(PathBuf, Registration)>, Option<(usize, &'static str)>);
        let cases: [Case; 8] = [
            (vec![base.clone(), reg("two", "A2", "H2", "bot2")], None),
            (vec![base.clone(), reg("one", "A2", "H2", "bot2")], Some((1, "id is the same as in /r/one.yaml"))),
            (vec![base.clone(), reg("two", "A1", "H2", "bot2")], Some((1, "as_token"))),
            (vec![base.clone(), reg("two", "A2", "H1", "bot2")], Some((1, "hs_token"))),
            (vec![base.clone(), reg("two", "H1", "H2", "bot2")], Some((1, "as_token"))),
            (vec![base.clone(), reg("two", "A2", "H2", "bot1")], Some((1, "sender_localpart"))),
            (vec![reg("double-puppet", "A2", "H2", "bot2")], Some((0, "built-in"))),
            (vec![reg("two", "A2", "H2", "alice")], Some((0, "declared user"))),
        ];
        for (all, want) in cases {
            let got = cross_check(&all, &["double-puppet"], &["alice"]);
            match (got, want) {
                (Ok(()), None) => {}
                (Err((i, _, msg)), Some((wi, w))) => {
                    assert_eq!(i, wi, "{msg}");
                    assert!(msg.contains(w), "{msg} vs {w}");
                    assert!(!msg.contains("A1") && !msg.contains("H1"), "no token: {msg}");
                }
                (got, want) => panic!("{got:?} vs {want:?}"),
            }
        }
        let same = reg("x", "S", "S", "b");
        assert!(cross_check(&[same], &[], &[]).unwrap_err().2.contains("differ"));
    }
}
