//! `masctl export ess`: the stack as values, Secrets, a report and a runbook for
//! Element's ESS Community Helm chart (`matrix-stack` 26.8.1). Pure: the caller
//! reads masctl's rendered configs, secrets and database schema into an
//! [`Input`] and writes what [`export`] returns.

pub mod appservices;
pub mod chart_schema;
pub mod fragment;
pub mod input;
pub mod keys;
pub mod mas;
pub mod refuse;
pub mod report;
pub mod runbook;
pub mod secrets;
pub mod synapse;
pub mod users;
pub mod values;
pub mod workers;

pub use input::Input;
pub use refuse::Refusal;
pub use report::Finding;

/// The chart release this export is written for.
pub const CHART_VERSION: &str = "26.8.1";
pub const CHART_OCI: &str = "oci://ghcr.io/element-hq/ess-helm/matrix-stack";

/// Everything `export ess` writes, as text and data.
#[derive(Debug)]
pub struct Export {
    pub values: serde_json::Value,
    pub secrets: secrets::SecretSet,
    pub report: Vec<Finding>,
    pub runbook: String,
}

/// The export, or every reason it cannot be made (all of them, not the first).
pub fn export(input: &Input) -> Result<Export, Vec<Refusal>> {
    let mut refusals = refuse::check(input);
    let mut report = Vec::new();
    let mut secrets = secrets::SecretSet::new(&input.release);
    let values = values::build(input, &mut secrets, &mut report);
    let values = match values {
        Ok(v) => v,
        Err(mut more) => {
            refusals.append(&mut more);
            serde_json::Value::Null
        }
    };
    if !refusals.is_empty() {
        return Err(refusals);
    }
    report.sort();
    report.dedup();
    let runbook = runbook::render(input, &report);
    Ok(Export { values, secrets, report, runbook })
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
