//! The stand-in MAS (tests/mas-standin) as an image recipe next to the project's own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::repo;

/// A declarations directory: the project's images plus the stand-in MAS image.
pub fn images_with_standin() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(repo().join("images")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    copy_dir(&repo().join("images/files"), &dir.path().join("files"));
    copy_dir(&repo().join("tests/mas-standin"), &dir.path().join("mas-standin"));
    std::fs::write(
        dir.path().join("mas-standin.toml"),
        r#"description = "TEST DOUBLE: the mas-cli stand-in from tests/mas-standin, on the Synapse image (it is Python)"
base = "synapse"

[[copy]]
from = "mas-standin/mas-cli"
to = "/usr/local/bin/mas-cli"
mode = 0o755

[[copy]]
from = "mas-standin/share"
to = "/usr/local/share/mas-cli"

[config]
user = "65532:65532"
entrypoint = ["/usr/local/bin/mas-cli"]
cmd = ["server"]
env = ["PATH=/usr/local/bin:/usr/bin", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"]
"#,
    )
    .unwrap();
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest: PathBuf = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
