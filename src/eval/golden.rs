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
        ("mas", variant(""), 15, "78b737faf1221cbc247e1fcceb34d2ed8b880d10a30c80bce0a7dab290f993ff"),
        (
            "mas + workers",
            variant("[synapse.workers]\npreset = \"one-of-each\"\n"),
            17,
            "52bf1ae0036060a022b3e3f87446fb99bdac97ad915bed119852907f137c7094",
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
            "6b14ec6c8d80f2df441f91f7f04f2e2d1f113aad222faa3a3cb51a9345ea2a1c",
        ),
        (
            "acme",
            variant("").replace("tls = \"plain\"", "tls = \"acme\"\nacme_email = \"a@example.com\""),
            15,
            "e484ba048161b1f5869b6e5518dd542d0e74efa78d11a0cea27098020c6b83f7",
        ),
    ];
    let got: Vec<String> =
        cases.iter().map(|(name, text, major, _)| format!("{name}: {}", hash(text, *major))).collect();
    let want: Vec<String> = cases.iter().map(|(name, _, _, h)| format!("{name}: {h}")).collect();
    assert_eq!(got, want);
}
