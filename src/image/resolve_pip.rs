//! Resolving Python requirements into pinned wheels with the host's pip (its own
//! index and configuration), for the image's interpreter and platform, not the host's.

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::decl::PythonInputs;
use super::lock::WheelPin;

/// glibc-based platform tags a Debian bookworm (glibc 2.36) interpreter accepts.
const PLATFORMS: [&str; 8] = [
    "manylinux_2_36_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
];

#[derive(Deserialize)]
struct Report {
    install: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    download_info: DownloadInfo,
    metadata: Metadata,
}

#[derive(Deserialize)]
struct DownloadInfo {
    url: String,
    archive_info: Option<ArchiveInfo>,
}

#[derive(Deserialize)]
struct ArchiveInfo {
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    version: String,
}

/// PEP 503 normalisation: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_project(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Turns pip's `--report` JSON into pins (sizes are filled in once downloaded).
pub fn pins_from_report(json: &[u8]) -> Result<Vec<(WheelPin, String)>> {
    let report: Report = serde_json::from_slice(json).context("pip's install report is not the JSON expected")?;
    let mut out = Vec::new();
    for item in report.install {
        let url = item.download_info.url;
        let filename = url.rsplit('/').next().unwrap_or("").split('#').next().unwrap_or("").to_string();
        if !filename.ends_with(".whl") {
            bail!(
                "{} {} is only available as a source distribution ({filename})",
                item.metadata.name,
                item.metadata.version
            );
        }
        let sha256 = item
            .download_info
            .archive_info
            .and_then(|a| a.hashes.get("sha256").cloned())
            .with_context(|| format!("the index gave no sha256 for {filename}"))?;
        let project = normalize_project(&item.metadata.name);
        out.push((
            WheelPin {
                name: project.clone(),
                version: item.metadata.version,
                architecture: super::lock::wheel_architecture(&filename),
                path: format!("{project}/{filename}"),
                sha256,
                size: 0,
            },
            url,
        ));
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

/// Asks pip which wheels `inputs.requirements` need; returns pins and download URLs.
pub fn resolve(inputs: &PythonInputs) -> Result<Vec<(WheelPin, String)>> {
    let dir = tempfile::tempdir()?;
    let report = dir.path().join("report.json");
    let abi = format!("cp{}", inputs.version.replace('.', ""));
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--no-cache-dir"])
        .args(["--only-binary=:all:", "--implementation", "cp", "--python-version", &inputs.version, "--abi", &abi])
        .args(["--abi", "abi3", "--abi", "none"])
        .arg("--target")
        .arg(dir.path().join("target"))
        .arg("--report")
        .arg(&report);
    for p in PLATFORMS {
        cmd.args(["--platform", p]);
    }
    cmd.args(&inputs.requirements);
    let out = cmd.output().context("running the host's pip (python3 -m pip)")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().rfind(|l| l.contains("ERROR")).unwrap_or(err.trim());
        bail!("pip could not resolve {}: {line}", inputs.requirements.join(" "));
    }
    pins_from_report(&std::fs::read(&report)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        for (i, want) in [("Twisted", "twisted"), ("zope.interface", "zope-interface"), ("a__b-.c", "a-b-c")] {
            assert_eq!(normalize_project(i), want);
        }
    }

    #[test]
    fn report_to_pins() {
        let json = br#"{"version":"1","install":[
          {"download_info":{"url":"https://files.example/packages/ab/cd/PyNaCl-1.5.0-cp36-abi3-manylinux_2_17_x86_64.whl",
            "archive_info":{"hashes":{"sha256":"0c"}}},"metadata":{"name":"PyNaCl","version":"1.5.0"}},
          {"download_info":{"url":"https://files.example/packages/attrs-23.1.0-py3-none-any.whl",
            "archive_info":{"hashes":{"sha256":"1d"}}},"metadata":{"name":"attrs","version":"23.1.0"}}]}"#;
        let pins = pins_from_report(json).unwrap();
        assert_eq!(pins[0].0.path, "attrs/attrs-23.1.0-py3-none-any.whl");
        assert_eq!(pins[1].0.name, "pynacl");
        assert_eq!(pins[1].0.filename(), "PyNaCl-1.5.0-cp36-abi3-manylinux_2_17_x86_64.whl");
        let sdist =
            br#"{"install":[{"download_info":{"url":"https://f/x-1.tar.gz","archive_info":{"hashes":{"sha256":"0"}}},
          "metadata":{"name":"x","version":"1"}}]}"#;
        assert!(pins_from_report(sdist).is_err());
    }
}
