//! masctl's worker kinds → the chart's `synapse.workers.<type>`.

use serde_json::{Map, Value, json};

use super::report::{Finding, Reason};

/// The chart's worker types that run at most one replica (its values schema's
/// `replicas.maximum: 1`).
const SINGLE: [&str; 10] = [
    "account-data",
    "appservice",
    "background",
    "encryption",
    "media-repository",
    "presence-writer",
    "push-rules",
    "sso-login",
    "typing-persister",
    "user-dir",
];

/// The request groups masctl's generic worker serves when no worker of the
/// specialised kind exists (src/eval/workers.rs `GROUPS`); each is a chart type
/// of the same name.
const GENERIC_DUTIES: [&str; 5] =
    ["synchrotron", "federation-inbound", "event-creator", "client-reader", "federation-reader"];

/// The chart types a masctl kind's duties go to; empty when the chart has none.
pub fn chart_types(kind: &str) -> &'static [&'static str] {
    match kind {
        "synchrotron" => &["synchrotron"],
        "client-reader" => &["client-reader"],
        "event-creator" => &["event-creator"],
        "federation-reader" => &["federation-reader"],
        "federation-inbound" => &["federation-inbound"],
        "media-repository" => &["media-repository"],
        "federation-sender" => &["federation-sender"],
        "pusher" => &["pusher"],
        // masctl's background worker also runs the user directory and appservice
        // notifications; the chart gives each its own worker.
        "background" => &["background", "user-dir", "appservice"],
        _ => &[],
    }
}

/// `synapse.workers`, and a finding for each kind that does not carry over as is.
pub fn map(workers: &[(String, u32)], extra_kinds: &[String], report: &mut Vec<Finding>) -> Map<String, Value> {
    let mut out = Map::new();
    let running: Vec<&str> = workers.iter().filter(|(_, n)| *n > 0).map(|(k, _)| k.as_str()).collect();
    for (kind, count) in workers.iter().filter(|(_, n)| *n > 0) {
        let setting = format!("synapse.workers.counts.{kind}");
        let types = match kind.as_str() {
            "generic" => generic(*count, &running, report),
            _ => chart_types(kind).to_vec(),
        };
        if types.is_empty() && kind != "generic" {
            let why = "the chart has no worker of this kind; its requests go to the main process \
                       (enable client-reader / federation-reader instead)";
            report.push(Finding::new(setting, Reason::NoChartEquivalent(why.into())));
            continue;
        }
        for t in &types {
            let mut n = *count;
            if SINGLE.contains(t) && n > 1 {
                let why = format!("{n} {kind} workers: the chart runs one {t} worker");
                report.push(Finding::new(setting.clone(), Reason::CommunityLimit(why)));
                n = 1;
            }
            out.insert((*t).to_string(), json!({"enabled": true, "replicas": n}));
        }
    }
    for kind in extra_kinds {
        let why = "the chart has no per-worker-type Synapse settings; move them to synapse.additional";
        report.push(Finding::new(format!("synapse.workers.extra.{kind}"), Reason::NoChartEquivalent(why.into())));
    }
    out
}

/// The chart has no generic worker: its duties go to the chart types of the
/// groups it serves here, as many replicas each, reported as a change.
fn generic(count: u32, running: &[&str], report: &mut Vec<Finding>) -> Vec<&'static str> {
    let types: Vec<&'static str> = GENERIC_DUTIES.into_iter().filter(|t| !running.contains(t)).collect();
    if !types.is_empty() {
        let why = format!(
            "the chart has no generic worker; its requests go to {count} replica(s) each of {}",
            types.join(", ")
        );
        report.push(Finding::new("synapse.workers.counts.generic", Reason::Changed(why)));
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &[(&str, u32)]) -> Vec<(String, u32)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn maps_kinds_and_lists_the_rest() {
        type Case = (Vec<(String, u32)>, &'static [(&'static str, u32)], usize);
        let cases: [Case; 7] = [
            (w(&[]), &[], 0),
            (w(&[("synchrotron", 2), ("pusher", 1)]), &[("synchrotron", 2), ("pusher", 1)], 0),
            (w(&[("background", 1)]), &[("background", 1), ("user-dir", 1), ("appservice", 1)], 0),
            // two media workers are capped at one
            (w(&[("media-repository", 2)]), &[("media-repository", 1)], 1),
            // generic: each request group no specialised worker takes
            (
                w(&[("generic", 2)]),
                &[
                    ("synchrotron", 2),
                    ("federation-inbound", 2),
                    ("event-creator", 2),
                    ("client-reader", 2),
                    ("federation-reader", 2),
                ],
                1,
            ),
            (
                w(&[("generic", 1), ("synchrotron", 3), ("client-reader", 1)]),
                &[
                    ("synchrotron", 3),
                    ("client-reader", 1),
                    ("federation-inbound", 1),
                    ("event-creator", 1),
                    ("federation-reader", 1),
                ],
                1,
            ),
            // every group has its own worker: generic serves nothing here
            (
                w(&[
                    ("generic", 1),
                    ("synchrotron", 1),
                    ("federation-inbound", 1),
                    ("event-creator", 1),
                    ("client-reader", 1),
                    ("federation-reader", 1),
                ]),
                &[
                    ("synchrotron", 1),
                    ("client-reader", 1),
                    ("federation-inbound", 1),
                    ("event-creator", 1),
                    ("federation-reader", 1),
                ],
                0,
            ),
        ];
        for (input, want, findings) in cases {
            let mut report = Vec::new();
            let got = map(&input, &[], &mut report);
            let got: Vec<(&str, u64)> =
                got.iter().map(|(k, v)| (k.as_str(), v["replicas"].as_u64().unwrap())).collect();
            let mut want: Vec<(&str, u64)> = want.iter().map(|(k, n)| (*k, *n as u64)).collect();
            want.sort();
            assert_eq!(got, want, "{input:?}");
            assert_eq!(report.len(), findings, "{report:?}");
        }
    }

    #[test]
    fn every_mapped_type_is_a_chart_type() {
        let schema_types = [
            "account-data",
            "appservice",
            "background",
            "client-reader",
            "encryption",
            "device-lists",
            "event-creator",
            "event-persister",
            "federation-inbound",
            "federation-reader",
            "federation-sender",
            "initial-synchrotron",
            "mas-helper",
            "media-repository",
            "presence-writer",
            "push-rules",
            "pusher",
            "receipts",
            "sliding-sync",
            "sso-login",
            "synchrotron",
            "typing-persister",
            "user-dir",
        ];
        assert_eq!(schema_types.len(), 23);
        let kinds = [
            "generic",
            "synchrotron",
            "client-reader",
            "event-creator",
            "federation-reader",
            "federation-inbound",
            "media-repository",
            "federation-sender",
            "pusher",
            "background",
        ];
        for k in kinds {
            for t in chart_types(k) {
                assert!(schema_types.contains(t), "{k} → {t}");
            }
        }
        assert!(SINGLE.iter().all(|t| schema_types.contains(t)));
    }
}
