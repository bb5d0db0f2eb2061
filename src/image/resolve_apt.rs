//! Resolving Debian package names into pinned `.deb`s with the host's apt.
//!
//! apt picks the closure (with an empty dpkg status, so nothing counts as installed);
//! masctl then keeps only what is reachable from the requested packages without
//! passing through an excluded package or one the base image already has. That is
//! how "no Perl, no LLVM" trimming stays declarative.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::deb::parse_stanza;
use super::decl::DebianInputs;
use super::lock::DebPin;

/// What the resolver needs to know of one candidate package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    /// `Pre-Depends` + `Depends`, each a list of alternatives (names only).
    pub depends: Vec<Vec<String>>,
    pub provides: Vec<String>,
}

/// `a (>= 1) | b:any, c` → `[[a, b], [c]]`.
pub fn parse_depends(field: &str) -> Vec<Vec<String>> {
    field
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let name = alt.trim().split([' ', '(', '[']).next().unwrap_or("");
                    let name = name.split(':').next().unwrap_or("");
                    (!name.is_empty()).then(|| name.to_string())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

pub fn candidate_from_stanza(text: &str) -> Result<Candidate> {
    let f = parse_stanza(text);
    let get = |k: &str| f.get(k).cloned().with_context(|| format!("apt stanza without {k}"));
    let mut depends = parse_depends(f.get("Pre-Depends").map_or("", String::as_str));
    depends.extend(parse_depends(f.get("Depends").map_or("", String::as_str)));
    Ok(Candidate {
        name: get("Package")?,
        version: get("Version")?,
        architecture: get("Architecture")?,
        filename: get("Filename")?,
        sha256: get("SHA256")?,
        size: get("Size")?.parse().context("Size is not a number")?,
        depends,
        provides: parse_depends(f.get("Provides").map_or("", String::as_str)).into_iter().flatten().collect(),
    })
}

/// The packages reachable from `roots` through `candidates`' dependencies, never
/// entering a name in `stop` (excluded, or supplied by the base image). An
/// alternative group is satisfied by the first member apt chose (present in
/// `candidates`, by name or by `Provides`), or by a stop name.
pub fn reachable(candidates: &[Candidate], roots: &[String], stop: &BTreeSet<String>) -> Result<BTreeSet<String>> {
    let by_name: BTreeMap<&str, &Candidate> = candidates.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut providers: BTreeMap<&str, &str> = BTreeMap::new();
    for c in candidates {
        for p in &c.provides {
            providers.entry(p.as_str()).or_insert(c.name.as_str());
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(name) = todo.pop() {
        if stop.contains(&name) || !seen.insert(name.clone()) {
            continue;
        }
        let c = by_name.get(name.as_str()).with_context(|| format!("apt did not resolve {name}"))?;
        for group in &c.depends {
            if group.iter().any(|a| stop.contains(a)) {
                continue;
            }
            let pick = group.iter().find_map(|a| {
                by_name
                    .get(a.as_str())
                    .map(|c| c.name.clone())
                    .or_else(|| providers.get(a.as_str()).map(|p| p.to_string()))
            });
            match pick {
                Some(p) => todo.push(p),
                None => bail!("{name} depends on {} which apt did not resolve", group.join(" | ")),
            }
        }
    }
    Ok(seen)
}

/// `sources.list` lines for `suite` on the host's mirror roots: the suite and its
/// `-updates` on an archive root, `SUITE-security` on a security root (one whose
/// path ends in `-security`, as Debian's does). No host name is invented here.
pub fn suite_sources(mirrors: &[String], suite: &str) -> String {
    let key = "signed-by=/usr/share/keyrings/debian-archive-keyring.gpg";
    let mut out = String::new();
    for m in mirrors {
        if m.ends_with("-security") {
            out.push_str(&format!("deb [{key}] {m} {suite}-security main\n"));
        } else {
            out.push_str(&format!("deb [{key}] {m} {suite} main\ndeb [{key}] {m} {suite}-updates main\n"));
        }
    }
    out
}

/// The host's Debian release codename (`/etc/os-release`), if it says.
fn host_suite() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=")).map(|v| v.trim_matches('"').to_string())
}

/// apt options for resolving `suite`: none when the host runs that release (its own
/// apt lists answer), else a private sources list on the host's mirrors and private
/// lists, fetched now, so a trixie recipe resolves on a bookworm host and the other
/// way round. The returned directory holds that state and must outlive the options.
fn apt_state_for(suite: &str) -> Result<(Option<tempfile::TempDir>, Vec<String>)> {
    if host_suite().as_deref() == Some(suite) {
        return Ok((None, Vec::new()));
    }
    let dir = tempfile::tempdir()?;
    let sources = dir.path().join("sources.list");
    std::fs::write(&sources, suite_sources(&super::mirrors::debian_mirrors()?, suite))?;
    std::fs::create_dir_all(dir.path().join("lists/partial"))?;
    std::fs::create_dir_all(dir.path().join("cache/archives/partial"))?;
    let d = dir.path().display();
    let opts = vec![
        format!("Dir::Etc::sourcelist={}", sources.display()),
        format!("Dir::Etc::sourceparts={d}/none"),
        format!("Dir::State::lists={d}/lists"),
        format!("Dir::Cache={d}/cache"),
        "Dir::Cache::pkgcache=".to_string(),
        "Dir::Cache::srcpkgcache=".to_string(),
    ];
    let mut args = vec!["apt-get", "-q", "-o", "Debug::NoLocking=1"];
    for o in &opts {
        args.extend(["-o", o.as_str()]);
    }
    args.push("update");
    crate::ui::step(format!("fetching the package lists of Debian {suite} from the host's mirrors"));
    apt(&args).with_context(|| format!("reading Debian {suite}'s package lists"))?;
    Ok((Some(dir), opts))
}

fn apt(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("running {} (is apt installed?)", args[0]))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().rfind(|l| l.starts_with("E:")).unwrap_or(err.trim());
        bail!("{} failed: {line}", args[..2].join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `name=version` for each package of apt's `--print-uris` answer, whose lines
/// look like: 'URI' name_version_arch.deb size hash
fn wanted_versions(uris: &str) -> Vec<String> {
    let mut wanted = Vec::new();
    for line in uris.lines().filter(|l| l.starts_with('\'')) {
        let file = line.split_whitespace().nth(1).unwrap_or("");
        let mut parts = file.trim_end_matches(".deb").splitn(3, '_');
        if let (Some(n), Some(v)) = (parts.next(), parts.next()) {
            wanted.push(format!("{n}={}", v.replace("%3a", ":")));
        }
    }
    wanted
}

/// Resolves `inputs` into pins. `base` holds packages the base image already has.
pub fn resolve(inputs: &DebianInputs, base: &BTreeSet<String>) -> Result<Vec<DebPin>> {
    let empty = tempfile::NamedTempFile::new()?;
    let status = format!("Dir::State::status={}", empty.path().display());
    let (_state, opts) = apt_state_for(&inputs.suite)?;
    let mut args = vec!["apt-get", "-q"];
    for o in &opts {
        args.extend(["-o", o.as_str()]);
    }
    args.extend([
        "-o",
        &status,
        "-o",
        "Debug::NoLocking=1",
        "-o",
        "APT::Install-Recommends=0",
        "-o",
        "APT::Install-Suggests=0",
        "install",
        "--print-uris",
        "-y",
    ]);
    let arch_names: Vec<String> = inputs.packages.iter().map(|p| format!("{p}:{}", inputs.architecture)).collect();
    args.extend(arch_names.iter().map(String::as_str));
    let uris = apt(&args)?;
    let wanted = wanted_versions(&uris);
    if wanted.is_empty() {
        bail!("apt resolved nothing for {}: run `apt-get update` first", inputs.packages.join(" "));
    }
    let mut show = vec!["apt-cache"];
    for o in &opts {
        show.extend(["-o", o.as_str()]);
    }
    show.extend(["show", "--no-all-versions"]);
    show.extend(wanted.iter().map(String::as_str));
    let text = apt(&show)?;
    let candidates: Vec<Candidate> =
        text.split("\n\n").filter(|s| s.contains("Package:")).map(candidate_from_stanza).collect::<Result<_>>()?;
    let mut stop: BTreeSet<String> = base.clone();
    stop.extend(inputs.exclude.iter().cloned());
    let keep = reachable(&candidates, &inputs.packages, &stop)?;
    let mut pins: Vec<DebPin> = candidates
        .into_iter()
        .filter(|c| keep.contains(&c.name))
        .map(|c| DebPin {
            name: c.name,
            version: c.version,
            architecture: c.architecture,
            path: c.filename,
            sha256: c.sha256,
            size: c.size,
        })
        .collect();
    pins.sort_by(|a, b| a.name.cmp(&b.name));
    pins.dedup_by(|a, b| a.name == b.name);
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, depends: &str, provides: &str) -> Candidate {
        Candidate {
            name: name.into(),
            version: "1".into(),
            architecture: "amd64".into(),
            filename: format!("pool/{name}.deb"),
            sha256: "0".repeat(64),
            size: 1,
            depends: parse_depends(depends),
            provides: parse_depends(provides).into_iter().flatten().collect(),
        }
    }

    #[test]
    fn suite_sources_table() {
        let k = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]";
        let cases: [(&[&str], &str, String); 3] = [
            (&[], "trixie", String::new()),
            (
                &["http://m.example/debian"],
                "trixie",
                format!(
                    "deb {k} http://m.example/debian trixie main\ndeb {k} http://m.example/debian trixie-updates main\n"
                ),
            ),
            (
                &["http://m.example/debian-security"],
                "bookworm",
                format!("deb {k} http://m.example/debian-security bookworm-security main\n"),
            ),
        ];
        for (mirrors, suite, want) in cases {
            let m: Vec<String> = mirrors.iter().map(|s| s.to_string()).collect();
            assert_eq!(suite_sources(&m, suite), want, "{mirrors:?}");
        }
    }

    #[test]
    fn parse_depends_table() {
        let cases: [(&str, Vec<Vec<&str>>); 3] = [
            ("libc6 (>= 2.34), libssl3", vec![vec!["libc6"], vec!["libssl3"]]),
            ("debconf (>= 0.5) | debconf-2.0", vec![vec!["debconf", "debconf-2.0"]]),
            ("python3:any, perl [amd64]", vec![vec!["python3"], vec!["perl"]]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_depends(input), want, "{input}");
        }
    }

    #[test]
    fn reachable_table() {
        let all = vec![
            cand("postgresql-15", "postgresql-common, libllvm14, libpq5, tzdata", ""),
            cand("postgresql-common", "perl, debconf | debconf-2.0", ""),
            cand("perl", "perl-base", ""),
            cand("libllvm14", "libz3-4", ""),
            cand("libz3-4", "libc6", ""),
            cand("libpq5", "libc6, libssl3", ""),
            cand("libssl3", "libc6", ""),
            cand("tzdata", "debconf | debconf-2.0", ""),
            cand("cdebconf", "libc6", "debconf-2.0"),
            cand("libc6", "", ""),
        ];
        let roots = vec!["postgresql-15".to_string()];
        let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let cases = [
            (
                set(&["postgresql-common", "libllvm14", "debconf"]),
                set(&["postgresql-15", "libpq5", "libssl3", "libc6", "tzdata"]),
            ),
            // libc6 comes from the base image; tzdata's debconf picked via Provides.
            (
                set(&["postgresql-common", "libllvm14", "libc6"]),
                set(&["postgresql-15", "libpq5", "libssl3", "tzdata", "cdebconf"]),
            ),
        ];
        for (stop, want) in cases {
            assert_eq!(reachable(&all, &roots, &stop).unwrap(), want);
        }
        let missing = vec![cand("a", "b", "")];
        assert!(reachable(&missing, &["a".into()], &BTreeSet::new()).is_err());
    }

    #[test]
    fn stanza_to_candidate() {
        let s = "Package: libpq5\nVersion: 15.20-0+deb12u1\nArchitecture: amd64\n\
Depends: libc6 (>= 2.34), libssl3\nPre-Depends: multiarch-support\nFilename: pool/updates/main/p/postgresql-15/libpq5_15.20_amd64.deb\n\
Size: 205248\nSHA256: abc\n";
        let c = candidate_from_stanza(s).unwrap();
        assert_eq!(c.depends, vec![vec!["multiarch-support"], vec!["libc6"], vec!["libssl3"]]);
        assert_eq!(c.size, 205248);
        assert!(c.filename.starts_with("pool/"));
    }
}
