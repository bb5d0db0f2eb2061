//! What kind of database file an import was given, and a plain SQL dump made fit
//! to load into the stack's Postgres as Synapse's own role.

use std::io::{BufRead, Write};

/// A database file by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `pg_dump -Fc`
    Custom,
    /// `pg_dump` (plain SQL)
    Plain,
    /// Synapse's SQLite database file
    Sqlite,
}

/// The newest custom-format archive version the stack's `pg_restore` (15) reads.
const NEWEST_ARCHIVE: (u8, u8) = (1, 14);

/// Tells the kind from the first bytes; refuses what cannot be loaded, saying why.
pub fn detect(head: &[u8]) -> Result<Kind, String> {
    if head.is_empty() {
        return Err("is empty".into());
    }
    if let Some(v) = head.strip_prefix(b"PGDMP") {
        let ver = (v.first().copied().unwrap_or(0), v.get(1).copied().unwrap_or(0));
        if ver > NEWEST_ARCHIVE {
            return Err(format!(
                "is a pg_dump archive of format {}.{}, made by a pg_dump newer than the stack's Postgres 15 reads: \
dump again in plain format (`pg_dump -Fp`)",
                ver.0, ver.1
            ));
        }
        return Ok(Kind::Custom);
    }
    if head.starts_with(b"SQLite format 3\0") {
        return Ok(Kind::Sqlite);
    }
    if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err("is compressed (gzip or zstd): decompress it first".into());
    }
    if head.len() > 262 && &head[257..262] == b"ustar" {
        return Err("is a tar-format dump: use `pg_dump -Fc` (custom) or plain".into());
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]);
    if text.contains("PostgreSQL database cluster dump") {
        return Err("is a pg_dumpall of a whole cluster: dump Synapse's database alone (`pg_dump -Fc synapse`)".into());
    }
    if text.contains("PostgreSQL database dump") {
        return Ok(Kind::Plain);
    }
    Err("is neither a pg_dump (custom or plain format) nor a SQLite database".into())
}

/// `SET` lines of newer pg_dumps that Postgres 15 does not know.
const UNKNOWN_SETTINGS: [&str; 1] = ["SET transaction_timeout"];

/// Copies a plain dump, leaving out what would tie it to the source's roles
/// (`OWNER TO`, `GRANT`, `REVOKE`) and settings Postgres 15 lacks; the rows of
/// `COPY` blocks pass untouched. Returns the lines left out.
pub fn filter_plain(input: impl BufRead, mut out: impl Write) -> std::io::Result<u64> {
    let mut in_copy = false;
    let mut skipped = 0;
    for line in input.split(b'\n') {
        let line = line?;
        if in_copy {
            if line == b"\\." {
                in_copy = false;
            }
        } else {
            let text = String::from_utf8_lossy(&line);
            let skip = (text.starts_with("ALTER ") && text.contains(" OWNER TO "))
                || text.starts_with("GRANT ")
                || text.starts_with("REVOKE ")
                || UNKNOWN_SETTINGS.iter().any(|s| text.starts_with(s));
            if skip {
                skipped += 1;
                continue;
            }
            in_copy = text.starts_with("COPY ") && text.trim_end().ends_with("FROM stdin;");
        }
        out.write_all(&line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_table() {
        let mut tar = vec![0u8; 300];
        tar[257..262].copy_from_slice(b"ustar");
        let cases: [(&[u8], Result<Kind, &str>); 9] = [
            (b"PGDMP\x01\x0e\x00", Ok(Kind::Custom)),
            (b"PGDMP\x01\x10\x00", Err("plain format")),
            (b"SQLite format 3\0....", Ok(Kind::Sqlite)),
            (b"--\n-- PostgreSQL database dump\n--\n", Ok(Kind::Plain)),
            (b"--\n-- PostgreSQL database cluster dump\n--\n", Err("pg_dumpall")),
            (b"\x1f\x8b\x08", Err("compressed")),
            (b"", Err("empty")),
            (&tar, Err("tar-format")),
            (b"hello", Err("neither")),
        ];
        for (head, want) in cases {
            match (detect(head), want) {
                (Ok(k), Ok(w)) => assert_eq!(k, w),
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{e}"),
                (got, want) => panic!("{:?}: got {got:?}, want {want:?}", String::from_utf8_lossy(head)),
            }
        }
    }

    #[test]
    fn plain_filter_drops_ownership_but_not_rows() {
        let dump = "SET transaction_timeout = 0;\nCREATE TABLE public.t (a text);\n\
ALTER TABLE public.t OWNER TO synapse_user;\n\
COPY public.t (a) FROM stdin;\nALTER TABLE x OWNER TO y;\nGRANT row\n\\.\n\
GRANT ALL ON TABLE public.t TO bob;\nREVOKE ALL ON SCHEMA public FROM PUBLIC;\nSELECT 1;\n";
        let mut out = Vec::new();
        let skipped = filter_plain(dump.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(skipped, 4);
        assert_eq!(
            out,
            "CREATE TABLE public.t (a text);\nCOPY public.t (a) FROM stdin;\nALTER TABLE x OWNER TO y;\nGRANT row\n\\.\nSELECT 1;\n"
        );
    }
}
