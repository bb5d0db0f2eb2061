//! The MAS stand-in image for tests: a declarations directory holding the
//! project's images plus `mas-standin` (tests/mas-standin on the Synapse image),
//! packed by tests/mas-standin.toml with the same copy-a-local-mas-cli mechanism as
//! `images/mas-local.toml`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::repo;

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
    std::fs::copy(repo().join("tests/mas-standin.toml"), dir.path().join("mas-standin.toml")).unwrap();
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
