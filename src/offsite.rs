//! Off-host backups' domain: when they run and where a repository is. Pure: the
//! config reads these, the manifest carries them, the jobs act on them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When scheduled backups run: systemd calendar shorthands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Hourly,
    #[default]
    Daily,
    Weekly,
}

impl Schedule {
    /// The timer's `OnCalendar=`.
    pub fn on_calendar(self) -> &'static str {
        match self {
            Schedule::Hourly => "hourly",
            Schedule::Daily => "daily",
            Schedule::Weekly => "weekly",
        }
    }

    /// The time between two runs: `doctor` warns when the last backup is older
    /// than twice this.
    pub fn interval(self) -> Duration {
        Duration::from_secs(match self {
            Schedule::Hourly => 3600,
            Schedule::Daily => 86_400,
            Schedule::Weekly => 7 * 86_400,
        })
    }
}

/// Where a repository is, as restic reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "at", rename_all = "lowercase")]
pub enum RepoUrl {
    /// A directory on this machine, mounted into the restic container.
    Local(PathBuf),
    /// `sftp:…` as restic takes it.
    Sftp(String),
    /// `rest:…` as restic takes it.
    Rest(String),
}

impl RepoUrl {
    /// Reads a `url` value; the error says why it is refused.
    pub fn parse(s: &str) -> Result<RepoUrl, String> {
        // It goes into a job's shell script and restic's environment as is.
        if let Some(c) = s.chars().find(|&c| !(c.is_ascii_alphanumeric() || "/._-+@:~%".contains(c))) {
            return Err(format!("contains {c:?}; repository URLs may use letters, digits and /._-+@:~%"));
        }
        if s.starts_with('/') {
            if s.len() > 1024 || s.split('/').any(|c| c == "..") {
                return Err("must be a path of at most 1024 bytes without ..".into());
            }
            return Ok(RepoUrl::Local(PathBuf::from(s)));
        }
        if let Some(rest) = s.strip_prefix("sftp:") {
            let (login, path) = rest.trim_start_matches("//").split_once([':', '/']).unwrap_or((rest, ""));
            if !login.contains('@') || path.is_empty() {
                return Err("is not sftp:USER@HOST:/PATH".into());
            }
            return Ok(RepoUrl::Sftp(s.to_string()));
        }
        if let Some(url) = s.strip_prefix("rest:") {
            let Some(after) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
                return Err("is not rest:http(s)://HOST[:PORT]/PATH".into());
            };
            if after.split('/').next().is_some_and(|authority| authority.contains('@')) {
                return Err("carries credentials: a password in the URL would be on restic's command line; \
protect the REST server by network or TLS instead"
                    .into());
            }
            return Ok(RepoUrl::Rest(s.to_string()));
        }
        Err("is not an absolute path, sftp:USER@HOST:/PATH or rest:https://HOST/PATH".into())
    }

    /// `RESTIC_REPOSITORY` inside the restic container.
    pub fn for_restic(&self) -> String {
        match self {
            RepoUrl::Local(_) => LOCAL_REPO_IN_CONTAINER.to_string(),
            RepoUrl::Sftp(s) | RepoUrl::Rest(s) => s.clone(),
        }
    }
}

/// Where a local repository is mounted in the restic container.
pub const LOCAL_REPO_IN_CONTAINER: &str = "/repo";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls() {
        let ok = [
            ("/mnt/backup/masctl", RepoUrl::Local("/mnt/backup/masctl".into())),
            ("sftp:backup@host:/srv/restic", RepoUrl::Sftp("sftp:backup@host:/srv/restic".into())),
            ("sftp://backup@host:2222//srv/restic", RepoUrl::Sftp("sftp://backup@host:2222//srv/restic".into())),
            (
                "rest:https://backup.example:8000/masctl",
                RepoUrl::Rest("rest:https://backup.example:8000/masctl".into()),
            ),
        ];
        for (s, want) in ok {
            assert_eq!(RepoUrl::parse(s), Ok(want), "{s}");
        }
        let bad = [
            ("relative/dir", "absolute path"),
            ("/mnt/a b", "may use letters"),
            ("/mnt/../etc", "without .."),
            ("sftp:u@h:/x'y", "may use letters"),
            ("sftp:host", "sftp:USER@HOST"),
            ("rest:https://u:pw@h/x", "credentials"),
            ("rest:ftp://h/x", "rest:http"),
            ("s3:bucket", "absolute path"),
        ];
        for (s, frag) in bad {
            let e = RepoUrl::parse(s).unwrap_err();
            assert!(e.contains(frag), "{s}: {e}");
        }
    }

    #[test]
    fn schedules() {
        for (s, cal, hours) in
            [(Schedule::Hourly, "hourly", 1), (Schedule::Daily, "daily", 24), (Schedule::Weekly, "weekly", 168)]
        {
            assert_eq!(s.on_calendar(), cal);
            assert_eq!(s.interval(), Duration::from_secs(hours * 3600));
        }
        assert_eq!(Schedule::default(), Schedule::Daily);
    }
}
