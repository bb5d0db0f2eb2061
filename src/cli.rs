//! Command-line definitions (clap). Behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "masctl",
    version,
    about = "Deploy Postgres, Synapse and Matrix Authentication Service the NixOS way",
    long_about = "masctl builds pinned, reproducible container images and systemd units into \
immutable generations, activates them atomically and rolls back when a new one is unhealthy."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// More detail on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// State root: store, cache, generations, secrets, service data
    /// [default: the config's state_root, else /var/lib/masctl]
    #[arg(long, global = true, env = "MASCTL_ROOT")]
    pub root: Option<PathBuf>,
    /// The stack's configuration
    #[arg(short, long, global = true, env = "MASCTL_CONFIG", default_value = "/etc/masctl/masctl.toml")]
    pub config: PathBuf,
    /// Image declarations directory [default: ./images, else the installed share/masctl/images]
    #[arg(long, global = true, env = "MASCTL_IMAGES")]
    pub images: Option<PathBuf>,
    /// Input cache [default: <root>/cache]
    #[arg(long, global = true, env = "MASCTL_CACHE")]
    pub cache: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the configured generation and activate it: stop what changed, flip
    /// `current`, start, wait for health; roll back automatically if it fails.
    ///
    /// When the image of Postgres, Synapse or MAS changes, every database is backed
    /// up (and the backup verified) first and recorded with the new generation: a new
    /// Synapse or MAS migrates its schema forward at its first start, and the old one
    /// may then refuse it. If the new generation fails its health gate and the old one
    /// cannot run on the migrated schema, the automatic rollback restores that backup.
    Switch {
        /// Build and print the plan, change nothing on the host
        #[arg(long)]
        dry_run: bool,
        /// How long each unit may take to start and become healthy, in seconds. A
        /// Synapse or MAS upgrade migrates its database while starting: give a large
        /// database time. The units' start timeout is set to the same value, so
        /// systemd and the health gate give up together, never half-way through a
        /// migration the other still waits for
        #[arg(long, default_value_t = crate::eval::START_TIMEOUT_SECS, value_parser = parse_timeout)]
        timeout: u64,
        /// Switch although a guard refuses, with a warning: logins handed to MAS
        /// though no `syn2mas migrate` has completed and Synapse has users (they will
        /// not be able to log in), or a new Synapse image started while the old one's
        /// background updates are pending (its migration may fail; the automatic
        /// rollback then restores the backup)
        #[arg(long)]
        force: bool,
        /// Skip the backup before a change of the Postgres, Synapse or MAS image (with
        /// a warning): neither `rollback --restore-data` nor the automatic rollback
        /// can then bring back a schema the new version migrated
        #[arg(long)]
        no_backup: bool,
        /// Set the password of every existing `[[users]]` entry that has a
        /// password_file from that file again (by default a switch sets a declared
        /// user's password only when it creates the user)
        #[arg(long)]
        reset_declared_passwords: bool,
    },
    /// Switch back to an earlier generation (default: the one before the current).
    ///
    /// Across a switch that changed the image of Postgres, Synapse or MAS, the
    /// databases may be newer than the old images: rollback says so, and refuses when
    /// the old Synapse cannot serve the current schema. `--restore-data` restores the
    /// backup taken before that switch (the current state is kept and backed up)
    Rollback {
        /// Generation number to return to
        #[arg(long)]
        to: Option<u32>,
        /// How long each unit may take to start and become healthy, in seconds (as
        /// for switch)
        #[arg(long, default_value_t = crate::eval::START_TIMEOUT_SECS, value_parser = parse_timeout)]
        timeout: u64,
        /// As for switch: hand logins to MAS without a completed migration
        #[arg(long)]
        force: bool,
        /// Restore the databases from the verified backup taken before the switch
        /// into the current generation (the current state is kept, then backed up; data
        /// written since that switch is then only in that new backup)
        #[arg(long)]
        restore_data: bool,
        /// Print what was done as JSON
        #[arg(long)]
        json: bool,
    },
    /// The current generation, each unit's state and each container's health
    Status {
        #[arg(long)]
        json: bool,
    },
    /// List generations (number, date, hash, current marker)
    Generations {
        #[arg(long)]
        json: bool,
    },
    /// What differs between two generations (default: the previous and the current)
    Diff { a: Option<u32>, b: Option<u32> },
    /// Delete old generations and the store entries and images only they used.
    /// Never the current generation, never service data, secrets or backups.
    Gc {
        /// Keep this many newest generations (besides the current one)
        #[arg(long)]
        keep: Option<usize>,
        /// Delete generations older than this (e.g. 30d, 12h, 90m)
        #[arg(long, value_parser = parse_age)]
        older_than: Option<std::time::Duration>,
    },
    /// Boot a throwaway systemd host container and switch the config into it
    Try {
        /// Remove the throwaway host and its service containers
        #[arg(long)]
        down: bool,
        #[arg(long)]
        json: bool,
    },
    /// Build, load, pull and list the stack's container images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Check the configuration without touching the host
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show a service's journal (the current run of its unit)
    Logs {
        /// postgres, redis, synapse, mas, proxy, or a Synapse worker: synapse-<kind>-<n>
        /// (e.g. synapse-generic-1; `masctl status` lists them)
        service: String,
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
        /// Lines of history to show
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
        /// All runs of the unit, not only the current one
        #[arg(long)]
        all: bool,
    },
    /// Migrate Synapse's users to MAS (needs [mas] enabled with migration_in_progress)
    #[command(subcommand)]
    Syn2mas(Syn2masCommand),
    /// Create a user: through MAS when it is integrated, else with Synapse's shared secret
    RegisterUser {
        /// The localpart (alice) or full user ID (@alice:example.com)
        name: String,
        /// Let the user be (or request being) an admin
        #[arg(long)]
        admin: bool,
        /// Email addresses (verified), with MAS
        #[arg(long = "email", value_name = "EMAIL")]
        emails: Vec<String>,
        /// Read the password from this file [default: prompt on a terminal, else stdin]
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Registration tokens: through MAS's admin API when MAS handles logins, else
    /// Synapse's admin API (as masctl's own admin account, masctl-admin)
    #[command(subcommand, name = "registration-token")]
    RegistrationToken(RegistrationTokenCommand),
    /// Manage MAS's users through MAS's admin API (with [mas] enabled)
    User {
        /// Print the user (or the list) as JSON for scripts
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        cmd: UserCommand,
    },
    /// Check the stack: `mas-cli doctor` plus units, containers, images and routes
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Hand the stack to another engine (Kubernetes with Element's ESS chart)
    #[command(subcommand)]
    Export(ExportCommand),
    /// Dump every database into backups/, each verified by a test restore, then push
    /// the set (dumps, media, secrets, config) to every [[backup.repository]] with
    /// restic. Shows each dump's bytes, rate and ETA (against the last dump of that
    /// database). Fails if any repository cannot be pushed to
    Backup {
        /// Print the files made and the snapshots pushed as JSON, and progress as
        /// JSON event lines on stderr
        #[arg(long)]
        json: bool,
        /// What the backup timer runs: labels the set `scheduled`, and fails
        /// without [backup]
        #[arg(long)]
        scheduled: bool,
    },
    /// List the backups in backups/, or with --remote the snapshots in the restic
    /// repositories with their generation, Synapse schema and MAS migration
    Backups {
        #[arg(long)]
        json: bool,
        /// The snapshots in the repositories of [backup] (each, or the one --from names)
        #[arg(long)]
        remote: bool,
        /// With --remote: only this repository (its url as written, or 1, 2, …)
        #[arg(long, requires = "remote")]
        from: Option<String>,
    },
    /// Restore a backup set: load each dump into a scratch database and check it, stop
    /// what uses the databases, swap them in (the replaced ones kept), start and
    /// health-gate; then a unit backs up the replaced databases (a pre-restore set)
    /// and drops them. Refuses a backup newer than the running images can serve.
    /// With --from, the set comes from a restic repository (a new host needs only
    /// the config and the repository's password file): the snapshot is fetched
    /// whole and checked first, and the server's secrets (its signing key…) and
    /// media come back with the databases
    Restore {
        /// The set: its id (20260804T100000Z-manual), one of its files, or a path to one
        /// [default: the newest set holding every database]; with --from, a snapshot
        /// id (or its start) or set id [default: the newest snapshot]
        backup: Option<String>,
        /// A [[backup.repository]] to restore from: its url as written, or 1, 2, …
        #[arg(long)]
        from: Option<String>,
        /// Print what was done as JSON
        #[arg(long)]
        json: bool,
        /// How long the stack may take to become healthy again, in seconds
        #[arg(long, default_value_t = crate::eval::START_TIMEOUT_SECS, value_parser = parse_timeout)]
        timeout: u64,
    },
    /// Bring an existing server along into this stack
    #[command(subcommand)]
    Import(ImportCommand),
    /// Run any other mas-cli command as a transient unit (e.g. manage add-email alice a@b.c)
    #[command(name = "mas-cli")]
    MasCli {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Run one job's container (the main process of a transient unit)
    #[command(hide = true)]
    Job { spec: String },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout
    Man,
    /// Run one service's container (the main process of its systemd unit)
    #[command(hide = true)]
    Supervise {
        /// The service's spec directory in the store
        spec: String,
    },
}

/// The longest age `gc --older-than` takes: older is before the epoch anyway.
const MAX_AGE_SECS: u64 = 100 * 365 * 86400;

/// `30d`, `12h`, `90m`, `45s` → a duration, at most 100 years.
pub fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: expected a number and d, h, m or s"))?;
    let per = match unit {
        "d" => 86400,
        "h" => 3600,
        "m" => 60,
        "s" | "" => 1,
        _ => return Err(format!("{s:?}: unit must be d, h, m or s")),
    };
    match n.checked_mul(per) {
        Some(secs) if secs <= MAX_AGE_SECS => Ok(std::time::Duration::from_secs(secs)),
        _ => Err(format!("{s:?}: more than 100 years")),
    }
}

/// The longest health timeout a switch or rollback takes: a day.
const MAX_TIMEOUT_SECS: u64 = 86400;

/// `--timeout` seconds: 1 to a day.
pub fn parse_timeout(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if (1..=MAX_TIMEOUT_SECS).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: expected seconds from 1 to {MAX_TIMEOUT_SECS}")),
    }
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Write values.yaml, secrets.yaml (0600), RUNBOOK.md, a report of what does not
    /// carry over and data/ (verified database dumps, the media archive with its
    /// checksums) for Element's ESS `matrix-stack` Helm chart. The masctl host keeps
    /// serving; RUNBOOK.md says how to install, load the data and move DNS.
    ///
    /// Refused, with nothing written: a non-empty --out, a Synapse database newer
    /// than the chart's Synapse serves, ACME TLS without --cert-issuer, values the
    /// --chart checkout's values.schema.json refuses.
    Ess(ExportEss),
}

#[derive(Args, Debug)]
pub struct ExportEss {
    /// The directory to write (new or empty; made 0700)
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// The Helm release name
    #[arg(long, default_value = "ess")]
    pub release: String,
    /// The Kubernetes namespace
    #[arg(long, default_value = "ess")]
    pub namespace: String,
    /// `bundled`: the chart's own Postgres, loaded from data/*.dump; `external`:
    /// the [postgres.external] server masctl uses (only the media is exported)
    #[arg(long, value_enum, default_value_t = PostgresChoice::Bundled)]
    pub postgres: PostgresChoice,
    /// With edge.tls = "acme": the cert-manager issuer, `NAME` (an Issuer in the
    /// namespace) or `cluster:NAME` (a ClusterIssuer)
    #[arg(long)]
    pub cert_issuer: Option<String>,
    /// The host MAS answers on in the cluster (default: masctl's own MAS host when
    /// it has one, else auth.<server_name>)
    #[arg(long)]
    pub mas_host: Option<String>,
    /// A checkout of the matrix-stack chart (ess-helm/charts/matrix-stack at the
    /// release tag): the values must pass its values.schema.json (Draft 2020-12)
    /// before anything is written
    #[arg(long, value_name = "DIR")]
    pub chart: Option<std::path::PathBuf>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostgresChoice {
    Bundled,
    External,
}

#[derive(Subcommand, Debug)]
pub enum Syn2masCommand {
    /// Check whether the migration can run (exit 0 clean, 10 errors, 11 warnings)
    Check,
    /// Back up, stop Synapse, migrate; on failure start Synapse again
    Migrate {
        /// Migrate into MAS and roll it back; Synapse keeps running
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// An existing Synapse: its database, signing key, media store and the settings of
    /// its homeserver.yaml (server_name must match masctl.toml's). Secrets go into
    /// secrets/, media into data/synapse/media, the database replaces Synapse's (kept,
    /// then backed up and dropped); then the stack starts and must come up healthy.
    #[command(long_about = None)]
    Synapse(ImportSynapse),
}

#[derive(Args, Debug)]
pub struct ImportSynapse {
    /// Synapse's database: a pg_dump (custom `-Fc` or plain format, Postgres 15 or
    /// older for custom) or its SQLite file (ported with Synapse's synapse_port_db)
    #[arg(long, value_name = "FILE")]
    pub dump: PathBuf,
    /// The source's homeserver.yaml
    #[arg(long, value_name = "FILE", required_unless_present = "from_playbook", conflicts_with = "from_playbook")]
    pub homeserver: Option<PathBuf>,
    /// Read a matrix-docker-ansible-deploy host's layout under DIR (usually /matrix):
    /// synapse/config/homeserver.yaml, its signing key, synapse/storage/media-store
    #[arg(long, value_name = "DIR")]
    pub from_playbook: Option<PathBuf>,
    /// The signing key file [default: signing_key_path of homeserver.yaml]
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// The media store directory [default: media_store_path of homeserver.yaml]
    #[arg(long, value_name = "DIR")]
    pub media: Option<PathBuf>,
    /// Import even though this stack's Synapse has users (they are replaced; the
    /// replaced database is kept until a verified backup of it exists)
    #[arg(long)]
    pub replace: bool,
    /// Write the settings that carry over into masctl.toml and switch to it
    /// [default: print them]
    #[arg(long)]
    pub write_config: bool,
    /// Print what was done as JSON
    #[arg(long)]
    pub json: bool,
    /// How long the stack may take to become healthy again, in seconds
    #[arg(long, default_value_t = crate::eval::START_TIMEOUT_SECS, value_parser = parse_timeout)]
    pub timeout: u64,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Every user MAS knows: name, admin flag, locked, deactivated
    List,
    /// Lock a user: their sessions stop working until unlocked
    Lock { name: String },
    /// Unlock a locked user
    Unlock { name: String },
    /// Deactivate a user (their data in Synapse is kept, not erased)
    Deactivate { name: String },
    /// Reactivate a deactivated user
    Reactivate { name: String },
    /// Set a user's password [default: prompt on a terminal, else stdin]
    SetPassword {
        name: String,
        /// Read the password from this file
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Give a user a verified email address through MAS's admin API, for when
    /// MAS's mail cannot reach them (an address they have already is kept)
    AddEmail { name: String, email: String },
    /// The same as add-email, under the name of mas-cli's `manage verify-email`
    VerifyEmail { name: String, email: String },
    /// Let a user request admin rights (or, with --revoke, no longer)
    SetAdmin {
        name: String,
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RegistrationTokenCommand {
    /// Create a token and print it
    Create {
        /// The token's text [default: generated by the server]
        #[arg(long)]
        token: Option<String>,
        /// How many registrations it allows [default: unlimited]
        #[arg(long)]
        uses: Option<u32>,
        /// When it expires: a duration from now (30d, 12h, 90m) or an RFC 3339
        /// timestamp (2027-01-01T00:00:00Z) [default: never]
        #[arg(long, value_parser = parse_expiry)]
        expires: Option<Expiry>,
        #[arg(long)]
        json: bool,
    },
    /// Every token, with its uses, expiry and whether it is still valid
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token (MAS marks it revoked; Synapse deletes it)
    Revoke {
        /// The token's text (or, with MAS, its id)
        #[arg(long)]
        token: String,
        #[arg(long)]
        json: bool,
    },
}

/// `--expires`: in a while, or at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    In(std::time::Duration),
    /// Milliseconds since the epoch.
    At(i64),
}

pub fn parse_expiry(s: &str) -> Result<Expiry, String> {
    if s.starts_with(|c: char| c.is_ascii_digit()) && !s.contains('-') {
        return parse_age(s).map(Expiry::In);
    }
    s.parse::<jiff::Timestamp>()
        .map(|t| Expiry::At(t.as_millisecond()))
        .map_err(|_| format!("{s:?}: expected a duration (30d, 12h, 90m) or an RFC 3339 time (2027-01-01T00:00:00Z)"))
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Parse and validate the config (and the images it names); print nothing else
    Check,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Resolve a declaration into its lock (every input pinned by sha256), using the
    /// host's apt and pip with their configured mirrors
    Lock {
        /// Image names (files images/<name>.toml)
        #[arg(required = true)]
        names: Vec<String>,
        /// Keep the existing lock and re-resolve only the packages the Debian mirrors
        /// no longer serve (Debian drops superseded versions); unchanged if none are gone
        #[arg(long)]
        update: bool,
    },
    /// Build images from their locks into the store and print their IDs
    Build {
        #[arg(required = true)]
        names: Vec<String>,
        /// Build again from scratch and fail unless the archives are byte-identical
        #[arg(long)]
        check: bool,
        /// Directory for a recipe's named input, e.g. --input mas-dist=./dist
        #[arg(long = "input", value_name = "NAME=DIR", value_parser = parse_input)]
        inputs: Vec<(String, PathBuf)>,
    },
    /// Load built images into Docker (building first if needed) and verify their IDs;
    /// upstream images are pulled by digest
    Load {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long = "input", value_name = "NAME=DIR", value_parser = parse_input)]
        inputs: Vec<(String, PathBuf)>,
    },
    /// Pull an image by digest (repo[:tag]@sha256:…); anything else is refused
    Pull { reference: String },
    /// Declared images: IDs, sizes, whether built and loaded
    List {
        /// Print a JSON array for scripts
        #[arg(long)]
        json: bool,
    },
}

fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), PathBuf::from(v))),
        _ => Err(format!("expected NAME=DIR, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn expiry_table() {
        let cases: [(&str, Option<Expiry>); 6] = [
            ("30d", Some(Expiry::In(std::time::Duration::from_secs(30 * 86400)))),
            ("90m", Some(Expiry::In(std::time::Duration::from_secs(5400)))),
            ("2027-01-01T00:00:00Z", Some(Expiry::At(1_798_761_600_000))),
            ("soon", None),
            ("2027-13-01T00:00:00Z", None),
            ("5y", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_expiry(s).ok(), want, "{s}");
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn age_table() {
        assert_eq!(parse_age("30d").unwrap().as_secs(), 30 * 86400);
        assert_eq!(parse_age("90m").unwrap().as_secs(), 5400);
        assert_eq!(parse_age("15").unwrap().as_secs(), 15);
        assert!(parse_age("3w").is_err());
        assert!(parse_age("d").is_err());
        assert_eq!(parse_age("36500d").unwrap().as_secs(), MAX_AGE_SECS);
        for overflow in ["99999999999999999999d", "18446744073709551615d", "18446744073709551615s", "36501d", "-1d"] {
            assert!(parse_age(overflow).is_err(), "{overflow}");
        }
    }

    #[test]
    fn timeout_table() {
        assert_eq!(parse_timeout("300"), Ok(300));
        assert_eq!(parse_timeout("86400"), Ok(86400));
        for bad in ["0", "86401", "18446744073709551615", "99999999999999999999", "-1", "1e3", ""] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        for cmd in ["switch", "rollback"] {
            let e = Cli::try_parse_from(["masctl", cmd, "--timeout", "18446744073709551615"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{cmd}");
        }
        let e = Cli::try_parse_from(["masctl", "gc", "--older-than", "99999999999999999999d"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn input_parse_table() {
        assert_eq!(parse_input("a=/x").unwrap(), ("a".into(), PathBuf::from("/x")));
        for bad in ["a", "=x", "a="] {
            assert!(parse_input(bad).is_err(), "{bad}");
        }
    }
}
