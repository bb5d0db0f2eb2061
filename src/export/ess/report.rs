//! What does not carry over to the chart, each by the masctl setting's name.

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The chart has nothing for it; the value is not in the export.
    NoChartEquivalent(String),
    /// ESS Community allows less than masctl ran (one Synapse main, RWO media, …).
    CommunityLimit(String),
    /// The chart owns this setting and sets it itself; the user's value is dropped.
    ChartOwned(String),
    /// It carries over, but differently: something the user must do or know.
    Changed(String),
}

impl Reason {
    fn tag(&self) -> &'static str {
        match self {
            Reason::NoChartEquivalent(_) => "no-chart-equivalent",
            Reason::CommunityLimit(_) => "community-limit",
            Reason::ChartOwned(_) => "chart-owned",
            Reason::Changed(_) => "changed",
        }
    }

    fn text(&self) -> &str {
        match self {
            Reason::NoChartEquivalent(t) | Reason::CommunityLimit(t) | Reason::ChartOwned(t) | Reason::Changed(t) => t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The masctl setting, as written in `masctl.toml` (or the rendered key).
    pub setting: String,
    pub reason: Reason,
}

impl Finding {
    pub fn new(setting: impl Into<String>, reason: Reason) -> Finding {
        Finding { setting: setting.into(), reason }
    }
}

/// What every export reports: limits of ESS Community itself.
pub fn community_limits() -> Vec<Finding> {
    vec![
        Finding::new(
            "synapse (main process)",
            Reason::CommunityLimit("one Synapse main process (synapse.replicas is capped at 1)".into()),
        ),
        Finding::new(
            "synapse media store",
            Reason::CommunityLimit("media on one ReadWriteOnce volume (no S3 in Community; ess-helm #847)".into()),
        ),
    ]
}

pub fn to_json(findings: &[Finding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| json!({"setting": f.setting, "reason": f.reason.tag(), "detail": f.reason.text()}))
            .collect(),
    )
}

/// One line per finding: `setting: reason: detail`.
pub fn to_text(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("{}: {}: {}\n", f.setting, f.reason.tag(), f.reason.text())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_finding_by_setting() {
        let cases = [
            (Finding::new("a", Reason::ChartOwned("x".into())), "a: chart-owned: x\n"),
            (Finding::new("b", Reason::Changed("y".into())), "b: changed: y\n"),
        ];
        for (f, line) in cases {
            assert_eq!(to_text(std::slice::from_ref(&f)), line);
            assert_eq!(to_json(std::slice::from_ref(&f))[0]["setting"], f.setting);
        }
        assert_eq!(community_limits().len(), 2);
    }
}
