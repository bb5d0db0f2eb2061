//! Before syn2mas migrates anything: every provider Synapse recorded in
//! `user_external_ids.auth_provider` must be some MAS provider's `synapse_idp_id`,
//! or its users would lose their single sign-on (real syn2mas: "Unknown upstream
//! provider oidc-…"). Pure: the caller runs the SQL and formats the refusal.

/// The `auth_provider` Synapse stores for an `oidc_providers` entry: `oidc-<idp_id>`,
/// or plain `oidc` for a missing `idp_id`, an `idp_id` of `oidc` and legacy `oidc_config`.
// The rule the check relies on, pinned by its table test.
#[cfg(test)]
pub fn synapse_auth_provider(idp_id: Option<&str>) -> String {
    match idp_id {
        None | Some("oidc") => "oidc".to_string(),
        Some(id) => format!("oidc-{id}"),
    }
}

/// A MAS provider as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasProvider<'a> {
    pub id: &'a str,
    pub synapse_idp_id: Option<&'a str>,
}

/// One Synapse provider no MAS provider maps, with the ids MAS's providers do map
/// (a typo or a different idp_id shows next to the recorded one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub synapse: String,
    pub users: u64,
    pub mapped: Vec<String>,
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Synapse signs {} user(s) in through provider {:?}, which no [[mas.upstream_oauth2.providers]] entry has as synapse_idp_id",
            self.users, self.synapse
        )?;
        match self.mapped.as_slice() {
            [] => write!(f, " (none has a synapse_idp_id)"),
            ids => write!(f, " (they map {})", ids.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ")),
        }
    }
}

/// `recorded`: Synapse's distinct `auth_provider` values with their user counts.
/// `oauth-delegated` (left by an earlier MAS) is not a provider and is skipped here.
pub fn unmapped(recorded: &[(&str, u64)], mas: &[MasProvider<'_>]) -> Vec<Unmapped> {
    let mapped: Vec<String> = mas.iter().filter_map(|m| m.synapse_idp_id.map(str::to_string)).collect();
    recorded
        .iter()
        .filter(|(p, _)| *p != "oauth-delegated")
        .filter(|(p, _)| !mapped.iter().any(|m| m == p))
        .map(|(p, n)| Unmapped { synapse: p.to_string(), users: *n, mapped: mapped.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synapse_names_table() {
        for (idp, want) in [(None, "oidc"), (Some("oidc"), "oidc"), (Some("keycloak"), "oidc-keycloak")] {
            assert_eq!(synapse_auth_provider(idp), want, "{idp:?}");
        }
    }

    /// name, Synapse's recorded providers, MAS's providers, the unmapped names.
    type Case<'a> = (&'a str, Vec<(&'a str, u64)>, Vec<MasProvider<'a>>, Vec<&'a str>);

    #[test]
    fn unmapped_table() {
        let kc = MasProvider { id: "01HFVBY12TMNTYTBV8W921M5FA", synapse_idp_id: Some("oidc-keycloak") };
        let other = MasProvider { id: "01HFVBY12TMNTYTBV8W921M5FB", synapse_idp_id: Some("oidc-gitlab") };
        let none = MasProvider { id: "01HFVBY12TMNTYTBV8W921M5FC", synapse_idp_id: None };
        let cases: Vec<Case> = vec![
            ("mapped", vec![("oidc-keycloak", 3)], vec![kc.clone()], vec![]),
            ("no users, nothing to map", vec![], vec![none.clone()], vec![]),
            ("a different id", vec![("oidc-keycloak", 3)], vec![other.clone()], vec!["oidc-keycloak"]),
            ("no provider at all", vec![("oidc", 1)], vec![], vec!["oidc"]),
            ("earlier MAS rows skipped", vec![("oauth-delegated", 5)], vec![], vec![]),
            ("one of two", vec![("oidc-keycloak", 1), ("oidc-gitlab", 2)], vec![kc], vec!["oidc-gitlab"]),
        ];
        for (what, recorded, mas, want) in cases {
            let got: Vec<String> = unmapped(&recorded, &mas).into_iter().map(|u| u.synapse).collect();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn refusal_names_both_sides() {
        let other = MasProvider { id: "01HFVBY12TMNTYTBV8W921M5FB", synapse_idp_id: Some("oidc-gitlab") };
        let line = unmapped(&[("oidc-keycloak", 2)], &[other])[0].to_string();
        for needle in ["\"oidc-keycloak\"", "they map \"oidc-gitlab\"", "2 user(s)"] {
            assert!(line.contains(needle), "{needle} in {line}");
        }
    }
}
