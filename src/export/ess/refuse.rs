//! Why an export is refused, checked before anything is written.

use std::fmt;

use super::input::{Input, PostgresTarget};

/// The Synapse the chart runs (`charts/matrix-stack/values.yaml`, 26.8.1).
pub const CHART_SYNAPSE: &str = "v1.159.0";
/// `SCHEMA_VERSION` of the chart's Synapse (`synapse/storage/schema/__init__.py`).
/// The stored element-hq/synapse history ends before v1.159.0: its newest tag
/// v1.157.1 (2026-07-22) and develop a58ad44e (2026-07-24) both say
/// `SCHEMA_VERSION = 94`, `SCHEMA_COMPAT_VERSION = 84`. Schema versions only
/// grow, so 94 is a lower bound for v1.159.0: a refusal may be too strict, never
/// too lax. Confirm at the v1.159.0 tag before release.
pub const CHART_SCHEMA_VERSION: u32 = 94;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Synapse refuses a database whose `compat_version` exceeds its
    /// `SCHEMA_VERSION` (synapse/storage/prepare_database.py, "Cannot use this
    /// database as it is too new for the server to understand").
    SchemaTooNew {
        version: u32,
        compat: u32,
        masctl_synapse: String,
    },
    /// The Synapse schema could not be read, so the check above cannot be made.
    SchemaUnknown,
    MigrationInProgress,
    /// The chart serves well-known on the server name and Synapse on its own host.
    MatrixHostIsServerName(String),
    AcmeNeedsIssuer,
    /// `--postgres external` with no `[postgres.external]` in masctl.toml.
    NoExternalPostgres,
    /// The chart refuses Synapse and MAS on the same `host:port/database`.
    SharedDatabase(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::SchemaTooNew { version, compat, masctl_synapse } => write!(
                f,
                "the Synapse database (schema {version}, compatible back to {compat}, written by masctl's \
                 Synapse {masctl_synapse}) is newer than the chart's Synapse {CHART_SYNAPSE} serves \
                 (schema {CHART_SCHEMA_VERSION}); wait for a chart release with a newer Synapse"
            ),
            Refusal::SchemaUnknown => {
                f.write_str("cannot read the Synapse database's schema version (is Postgres running?)")
            }
            Refusal::MigrationInProgress => f.write_str(
                "mas.migration_in_progress = true: finish `masctl syn2mas migrate` and switch before exporting",
            ),
            Refusal::MatrixHostIsServerName(h) => write!(
                f,
                "hostnames.matrix is the server name {h}: the chart serves the well-known documents there and \
                 Synapse on a host of its own; set hostnames.matrix to another name first"
            ),
            Refusal::AcmeNeedsIssuer => f.write_str(
                "edge.tls = \"acme\": name the cluster's cert-manager issuer with --cert-issuer [cluster:]NAME",
            ),
            Refusal::NoExternalPostgres => f.write_str("--postgres external needs [postgres.external] in masctl.toml"),
            Refusal::SharedDatabase(d) => write!(f, "Synapse and MAS share the database {d}; the chart refuses that"),
        }
    }
}

/// Every refusal that applies (the caller prints them all).
pub fn check(input: &Input) -> Vec<Refusal> {
    let mut out = Vec::new();
    match input.synapse_schema {
        None => out.push(Refusal::SchemaUnknown),
        Some(s) => {
            if let Some(compat) = s.compat_version.filter(|c| *c > CHART_SCHEMA_VERSION) {
                out.push(Refusal::SchemaTooNew {
                    version: s.version,
                    compat,
                    masctl_synapse: input.synapse_version.clone(),
                });
            }
        }
    }
    if input.mas_config.is_some() && input.mas_migration_in_progress {
        out.push(Refusal::MigrationInProgress);
    }
    if input.matrix_host == input.server_name() {
        out.push(Refusal::MatrixHostIsServerName(input.matrix_host.clone()));
    }
    if let PostgresTarget::External { synapse, mas: Some(m) } = &input.postgres
        && input.mas_config.is_some()
        && (&synapse.host, synapse.port, &synapse.database) == (&m.host, m.port, &m.database)
    {
        out.push(Refusal::SharedDatabase(format!("{}:{}/{}", m.host, m.port, m.database)));
    }
    out
}
