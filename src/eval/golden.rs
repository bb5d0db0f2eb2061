//! The generation hashes of fixed configs, recorded before the typed vocabulary
//! (binds, databases, unit names) replaced strings: the types must serialize to
//! the same bytes, or every host would see a changed generation after upgrading.

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
    let inputs = Inputs { config: &config, images: &images, layout: &layout, masctl: "/usr/bin/masctl", pg_major };
    evaluate(&inputs).unwrap().entries.last().unwrap().hash()
}

#[test]
fn the_example_config_keeps_its_generation_hash() {
    let cases: [(&str, String, u32, &str); 6] = [
        ("example", EXAMPLE.to_string(), 15, "99ff28d95de7da33ad4857fd43a64eed1cd59c37517ead6bf8afdcc26c4266e6"),
        ("example on 17", EXAMPLE.to_string(), 17, "0d443b1720b367b34dee014d297cb2fbfde969f3a82bf395011be0f74b026fc9"),
        ("mas", variant(""), 15, "0095e80d045a4e4150e86c6e02e8eab93a5e27dde45d4a36d130cb721dfa9fbe"),
        (
            "mas + workers",
            variant("[synapse.workers]\npreset = \"one-of-each\"\n"),
            17,
            "587b5889ad1b8e3890d85d8515e968c7d8d9eb5e86928364e0100bcc596ff331",
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
            "e3113ae859cd7d2040f07c06e3ef837056567f9a62487b08c71090ddd89448ed",
        ),
        (
            "acme",
            variant("").replace("tls = \"plain\"", "tls = \"acme\"\nacme_email = \"a@example.com\""),
            15,
            "a9fc7b7ff659d3327b8719fc84ad0a04564478cdf5ea8b64158f8eb6ebfdec7c",
        ),
    ];
    let got: Vec<String> =
        cases.iter().map(|(name, text, major, _)| format!("{name}: {}", hash(text, *major))).collect();
    let want: Vec<String> = cases.iter().map(|(name, _, _, h)| format!("{name}: {h}")).collect();
    assert_eq!(got, want);
}
