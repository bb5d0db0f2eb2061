//! The generation hashes of fixed configs, recorded before the typed vocabulary
//! (binds, databases, unit names) replaced strings: the types must serialize to
//! the same bytes, or every host would see a changed generation after upgrading.
//! A hash changes here only with a deliberate change of what Synapse or MAS runs
//! (last: the edge in front of Synapse in plain HTTP too, which changes the
//! MAS-less example's two hashes).

use std::collections::BTreeMap;
use std::path::Path;

use super::{Inputs, evaluate};
use crate::generation::layout::Layout;
use crate::service::Service;

const EXAMPLE: &str = include_str!("../../masctl.example.toml");

/// The example with MAS enabled and further tables appended.
fn variant(extra: &str) -> String {
    let mut text = EXAMPLE.replace("\nenabled = false\n", "\nenabled = true\n");
    assert_ne!(text, EXAMPLE);
    text.push('\n');
    text.push_str(extra);
    text
}

fn hash(text: &str, pg_major: u32) -> String {
    let config = crate::config::parse(Path::new("masctl.toml"), text).unwrap();
    let images: BTreeMap<Service, String> = Service::ALL
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, format!("sha256:{}", i.to_string().repeat(64))))
        .collect();
    let layout = Layout::new(config.state_root.get_ref());
    let inputs = Inputs {
        config: &config,
        images: &images,
        layout: &layout,
        masctl: "/usr/bin/masctl",
        pg_major,
        ca_bundles: &BTreeMap::new(),
        restic_image: None,
    };
    evaluate(&inputs).unwrap().entries.last().unwrap().hash()
}

#[test]
fn the_example_config_keeps_its_generation_hash() {
    let cases: [(&str, String, u32, &str); 6] = [
        ("example", EXAMPLE.to_string(), 15, "a4f0730c0f59764424c182f01cc7cfc72abb4e81e32fc4b3f42a1d502e41eadd"),
        ("example on 17", EXAMPLE.to_string(), 17, "05f40b84fc3658c0e3053ab888c87b755d1b46985dbb6c0719b5e11e838e9a37"),
        ("mas", variant(""), 15, "fde1fc35ca230504002f4be04ce6e7bfedee5f062b38698df8fae96787342732"),
        (
            "mas + workers",
            variant("[synapse.workers]\npreset = \"one-of-each\"\n"),
            17,
            "af504bf83e2a2ed2874e54390f863e2fa94b5cb4491a2c7b350d8a7252ff2918",
        ),
        (
            "external postgres",
            variant(
                "[postgres.external]\nhost = \"db.internal\"\nport = 6432\n\
network = \"dbnet\"\nsynapse = { database = \"syn\", user = \"syn_user\", password_file = \"/etc/pw/syn\" }\n\
mas = { database = \"auth\", user = \"auth_user\", password_file = \"/etc/pw/auth\" }\n",
            )
            .replace("shared_buffers = \"128MB\"\n", ""),
            15,
            "4003e0de35c36e63426edc4d3189298b680f907895bc0f27f3cca38aa36a3ed3",
        ),
        (
            "acme",
            variant("").replace("tls = \"plain\"", "tls = \"acme\"\nacme_email = \"a@example.com\""),
            15,
            "1e7530d845f7fbe1895970b253ea30d09a677d1758fa76744db79c03b57a70a8",
        ),
    ];
    let got: Vec<String> =
        cases.iter().map(|(name, text, major, _)| format!("{name}: {}", hash(text, *major))).collect();
    let want: Vec<String> = cases.iter().map(|(name, _, _, h)| format!("{name}: {h}")).collect();
    assert_eq!(got, want);
}
