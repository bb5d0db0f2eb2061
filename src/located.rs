//! Reading TOML files with errors that say where: `file:line:column: message`.

use std::path::Path;

use anyhow::{Result, anyhow};
use serde::de::DeserializeOwned;

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses `text` (read from `path`) into `T`; the error is one line with a location.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        let msg = e.message().replace('\n', " ");
        anyhow!("{}:{line}:{col}: {}", path.display(), msg.trim())
    })
}

/// Reads and parses a TOML file.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    parse_toml(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
        port: u16,
    }

    #[test]
    fn line_col_table() {
        let text = "a = 1\nbb = 2\n";
        for (off, want) in [(0, (1, 1)), (4, (1, 5)), (6, (2, 1)), (9, (2, 4))] {
            assert_eq!(line_col(text, off), want, "{off}");
        }
    }

    #[test]
    fn errors_are_located_one_liners() {
        let p = Path::new("x.toml");
        let cases = [
            ("name = \"a\"\nport = 70000\n", "x.toml:2:8:"),
            ("name = \"a\"\nport = 1\nextra = 2\n", "x.toml:3:1:"),
            ("name = \n", "x.toml:1:8:"),
        ];
        for (text, prefix) in cases {
            let e = parse_toml::<T>(p, text).unwrap_err().to_string();
            assert!(e.starts_with(prefix), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
