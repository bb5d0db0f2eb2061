//! Namespace regexes as Synapse compiles them: Python's `re`. masctl checks them with
//! regex-lite, whose syntax is close to the subset bridges use; what only Python has
//! (lookaround, backreferences, conditionals, atomic groups, comments) or only Rust
//! has (`(?<name>…)` before Python 3.12, `\p{…}`, `\z`) is found by a pre-scan first,
//! so a regex masctl accepts is one Synapse compiles, and a refusal says why.

/// Ok, or why Synapse (or masctl's check) would refuse `pattern`.
pub fn check(pattern: &str) -> Result<(), String> {
    prescan(pattern)?;
    // Python's `\Z` is Rust's `\z` (end of text); Python 3.11 has no `\z`.
    let rust = translate(pattern);
    regex_lite::Regex::new(&rust).map(|_| ()).map_err(|e| {
        let text = e.to_string();
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid").trim().to_string();
        format!("does not compile: {last}")
    })
}

/// Syntax only one of the two engines has; Python's meaning where Rust has none.
const PYTHON_ONLY: [(&str, &str); 7] = [
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?P=", "a named backreference"),
    ("(?#", "a comment group"),
    ("(?(", "a conditional group"),
];

fn prescan(p: &str) -> Result<(), String> {
    let b = p.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let rest = &p[i..];
        match b[i] {
            b'\\' => {
                let next = b.get(i + 1).copied();
                match next {
                    Some(d @ b'1'..=b'9') if !in_class => {
                        return Err(format!("uses a backreference (\\{}), which masctl cannot check", d as char));
                    }
                    Some(b'p' | b'P') => return Err("uses \\p{…}, which Python's re does not have".into()),
                    Some(b'z') => return Err("uses \\z, which Python's re does not have (write \\Z)".into()),
                    _ => {}
                }
                i += 2;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => {
                if let Some((_, what)) = PYTHON_ONLY.iter().find(|(s, _)| rest.starts_with(s)) {
                    return Err(format!("uses {what}, which masctl cannot check (Rust's regex has none)"));
                }
                if rest.starts_with("(?>") {
                    return Err("uses an atomic group (?>…), which masctl cannot check".into());
                }
                if rest.starts_with("(?<") {
                    return Err("uses (?<name>…), which Python's re before 3.12 refuses: write (?P<name>…)".into());
                }
            }
            _ => {}
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    Ok(())
}

fn translate(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('Z') => out.push_str("\\z"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn table() {
        let ok = [
            r"@telegram_.*:example\.org$",
            r"@_discord_[0-9]+:matrix\.example\.com",
            r"#telegram_.+:example\.org",
            r"@(?P<name>bot)_.*\Z",
            r"[(?=]",
            r"(?i)@Bot.*",
            r"@.*:test\.local$",
        ];
        for p in ok {
            assert_eq!(check(p), Ok(()), "{p}");
        }
        let bad = [
            (r"@telegram_(.*", "does not compile"),
            (r"@[a-z", "does not compile"),
            (r"*foo", "does not compile"),
            (r"@(?=x).*", "lookahead"),
            (r"@(?<!x).*", "negative lookbehind"),
            (r"@(a)\1", "backreference"),
            (r"@(?<n>a)", "(?P<name>"),
            (r"@\p{L}+", "\\p"),
            (r"@a\z", "\\Z"),
            (r"@(?>a)", "atomic"),
        ];
        for (p, want) in bad {
            let err = check(p).expect_err(p);
            assert!(err.contains(want), "{p}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
