//! Evaluation: config + image IDs → the contents of a generation. Pure: the same
//! inputs give the same bytes, hence the same store paths and generation hash.
//!
//! A generation is a set of store entries: per service a config entry (rendered
//! files) and a spec entry (the container to run), and the generation entry itself
//! (units + manifest) that refers to them by path.

mod backup;
#[cfg(test)]
mod golden;
pub mod mas;
pub mod postgres;
mod proxy;
mod redis;
pub mod synapse;
mod trust;
mod units;
pub mod workers;
mod yaml;

use std::collections::BTreeMap;

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::config::{Config, TlsMode};
use crate::generation::layout::Layout;
use crate::service::{Service, Unit};
use crate::spec::ServiceSpec;

use crate::generation::manifest::{Manifest, MasState};
pub use mas::cli as mas_cli;
pub use units::START_TIMEOUT_SECS;

/// A store entry: a directory of files, named by the hash of its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    pub fn new(name: &str) -> Entry {
        Entry { name: name.to_string(), files: BTreeMap::new() }
    }

    pub fn add(&mut self, path: &str, data: impl Into<Vec<u8>>) -> &mut Self {
        self.files.insert(path.to_string(), data.into());
        self
    }

    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        for (p, d) in &self.files {
            h.update([0]);
            h.update(p.as_bytes());
            h.update([0]);
            h.update((d.len() as u64).to_le_bytes());
            h.update(d);
        }
        hex::encode(h.finalize())
    }

    pub fn path(&self, layout: &Layout) -> String {
        layout.store_path(&self.hash(), &self.name).display().to_string()
    }
}

/// What evaluation needs besides the config.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub config: &'a Config,
    /// service → `sha256:…` image ID.
    pub images: &'a BTreeMap<Service, String>,
    pub layout: &'a Layout,
    /// Absolute path of the masctl binary the units run.
    pub masctl: &'a str,
    /// The Postgres major version of the Postgres image (where its cluster lives).
    pub pg_major: u32,
    /// With `[edge] extra_ca`: MAS's and Synapse's image roots plus the user's CAs.
    pub ca_bundles: &'a BTreeMap<Service, String>,
    /// The restic image's ID (with `[backup]`).
    pub restic_image: Option<&'a str>,
}

pub struct Evaluated {
    /// Entries in dependency order; the generation entry is last.
    pub entries: Vec<Entry>,
    pub manifest: Manifest,
}

#[cfg(test)]
impl Evaluated {
    pub fn generation(&self) -> &Entry {
        self.entries.last().expect("evaluation always yields a generation")
    }
}

pub fn evaluate(inp: &Inputs) -> Result<Evaluated> {
    let mut entries = Vec::new();
    let mut services = BTreeMap::new();
    let mut workers = BTreeMap::new();
    let mut specs: Vec<(ServiceSpec, Unit, String)> = Vec::new();

    let c = inp.config;
    let configured = configured(inp)?;
    for (conf, mut spec, unit) in configured {
        // Synapse (with its workers) and MAS keep state about their database in
        // memory (stream positions, caches): when the cluster changes under them (an
        // upgrade, or a rollback across one), they must restart too, so their units
        // say which major's cluster they use. Not for 15, whose units stay as they were.
        if matches!(unit.service, Service::Synapse | Service::Mas) && inp.pg_major != postgres::FIRST_MAJOR {
            spec.env.push(format!("MASCTL_POSTGRES_MAJOR={}", inp.pg_major));
        }
        entries.push(conf);
        let mut e = Entry::new(&format!("service-{unit}"));
        e.add("spec.json", serde_json::to_vec_pretty(&spec)?);
        let path = e.path(inp.layout);
        match unit.worker {
            None => services.insert(unit.service, path.clone()),
            Some(w) => workers.insert(w, path.clone()),
        };
        specs.push((spec, unit, path));
        entries.push(e);
    }

    let backup = backup::plan(inp)?.map(|(plan, entry)| {
        entries.push(entry);
        plan
    });
    let mut gen_entry = Entry::new("generation");
    let mut unit_hashes = BTreeMap::new();
    for (file, text) in units::render(inp, &specs) {
        unit_hashes.insert(file.clone(), hex::encode(Sha256::digest(text.as_bytes())));
        gen_entry.add(&format!("units/{file}"), text);
    }
    let manifest = Manifest {
        format: 1,
        server_name: inp.config.server_name.get_ref().clone(),
        instance: inp.config.instance.get_ref().clone(),
        config: serde_json::to_value(inp.config)?,
        images: inp.images.clone(),
        services,
        workers,
        units: unit_hashes,
        refs: entries.iter().map(|e| e.path(inp.layout)).collect(),
        client_url: client_url(c),
        databases: postgres::databases(c),
        mas: MasState {
            enabled: c.mas_enabled(),
            delegating: c.mas_delegating(),
            path_prefix: c.mas.path_prefix.get_ref().clone(),
        },
        external_postgres: postgres::external(c),
        backup,
    };
    gen_entry.add("manifest.json", serde_json::to_vec_pretty(&manifest)?);
    entries.push(gen_entry);
    Ok(Evaluated { entries, manifest })
}

/// Each service's configuration entry, spec and unit, in the order units are
/// rendered and the target wants them.
fn configured(inp: &Inputs) -> Result<Vec<(Entry, ServiceSpec, Unit)>> {
    let c = inp.config;
    let instance = c.instance.get_ref();
    // MAS before Synapse.
    let mut configured: Vec<(Entry, ServiceSpec, Unit)> = Vec::new();
    if c.runs(Service::Postgres) {
        let pg_conf = postgres::config_entry(c);
        let pg = postgres::spec(inp, &pg_conf.path(inp.layout));
        configured.push((pg_conf, pg, Service::Postgres.into()));
    }
    if c.workers_on() {
        let redis_conf = redis::config_entry();
        let redis = redis::spec(inp, &redis_conf.path(inp.layout));
        configured.push((redis_conf, redis, Service::Redis.into()));
    }
    if c.mas_enabled() {
        let mut mas_conf = mas::config_entry(c)?;
        let bundled = trust::add_bundle(inp, Service::Mas, &mut mas_conf);
        let mut mas = mas::spec(inp, &mas_conf.path(inp.layout));
        if bundled {
            trust::use_bundle(&mut mas, "/etc/mas");
        }
        proxy::adapt_mas(c, &mut mas);
        postgres::adapt_client(c, inp.layout, &mut mas);
        configured.push((mas_conf, mas, Service::Mas.into()));
    }
    let mut syn_conf = synapse::config_entry(c)?;
    let bundled = trust::add_bundle(inp, Service::Synapse, &mut syn_conf);
    let mut syn = synapse::spec(inp, &syn_conf.path(inp.layout));
    if bundled {
        trust::use_bundle(&mut syn, "/etc/synapse");
    }
    proxy::adapt_synapse(c, &mut syn);
    postgres::adapt_client(c, inp.layout, &mut syn);
    workers::adapt_main(inp, &mut syn);
    let worker_specs: Vec<(Entry, ServiceSpec, Unit)> = c
        .workers()
        .into_iter()
        .map(|w| {
            let conf = workers::config_entry(c, w)?;
            let spec = workers::spec(&syn, instance, w, &conf.path(inp.layout));
            Ok((conf, spec, Unit::worker(w)))
        })
        .collect::<Result<_>>()?;
    configured.push((syn_conf, syn, Service::Synapse.into()));
    configured.extend(worker_specs);
    let proxy_conf = proxy::config_entry(c);
    let proxy = proxy::spec(inp, &proxy_conf.path(inp.layout));
    configured.push((proxy_conf, proxy, Service::Proxy.into()));
    Ok(configured)
}

/// Where clients reach Synapse: the published port in plain mode, the edge otherwise.
fn client_url(c: &Config) -> String {
    match c.tls() {
        TlsMode::Plain => {
            let (ip, port) = c.synapse_publish();
            let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
            format!("http://{host}:{port}")
        }
        TlsMode::Acme | TlsMode::Files => format!("https://{}", c.matrix_hostname()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Database;
    use crate::unit_name::UnitName;
    use std::path::Path;

    fn eval(text: &str, synapse_image: &str) -> Evaluated {
        let config = crate::config::parse(Path::new("m.toml"), text).unwrap();
        let images: BTreeMap<Service, String> = [Service::Postgres, Service::Proxy]
            .into_iter()
            .map(|s| (s, format!("sha256:{}", "1".repeat(64))))
            .chain([(Service::Synapse, synapse_image.to_string())])
            .collect();
        let layout = Layout::new("/var/lib/masctl");
        evaluate(&Inputs {
            config: &config,
            images: &images,
            layout: &layout,
            masctl: "/usr/bin/masctl",
            pg_major: 15,
            ca_bundles: &BTreeMap::new(),
            restic_image: None,
        })
        .unwrap()
    }

    const BASE: &str = "server_name = \"example.com\"\n";

    #[test]
    fn same_inputs_same_generation() {
        let img = format!("sha256:{}", "2".repeat(64));
        assert_eq!(eval(BASE, &img).generation().hash(), eval(BASE, &img).generation().hash());
    }

    #[test]
    fn what_changes_with_what() {
        let img = format!("sha256:{}", "2".repeat(64));
        let units = |e: &Evaluated| e.manifest.units.clone();
        let a = eval(BASE, &img);
        let cases = [
            // (config, synapse image, postgres / synapse / edge unit changes?)
            (format!("{BASE}[synapse.extra]\nmax_upload_size = \"10M\"\n"), img.clone(), false, true, false),
            (BASE.to_string(), format!("sha256:{}", "3".repeat(64)), false, true, false),
            (format!("{BASE}[postgres.settings]\nshared_buffers = \"64MB\"\n"), img.clone(), true, false, false),
            // The edge publishes Synapse's port: only the edge restarts.
            (format!("{BASE}[ports]\nsynapse = \"127.0.0.1:9008\"\n"), img.clone(), false, false, true),
        ];
        for (text, image, pg_changes, syn_changes, edge_changes) in cases {
            let b = eval(&text, &image);
            assert_ne!(a.generation().hash(), b.generation().hash(), "{text}");
            let (ua, ub) = (units(&a), units(&b));
            assert_eq!(ua["masctl-postgres.service"] != ub["masctl-postgres.service"], pg_changes, "{text}");
            assert_eq!(ua["masctl-synapse.service"] != ub["masctl-synapse.service"], syn_changes, "{text}");
            assert_eq!(ua["masctl-proxy.service"] != ub["masctl-proxy.service"], edge_changes, "{text}");
        }
    }

    #[test]
    fn another_postgres_major_restarts_its_clients() {
        let config = crate::config::parse(Path::new("m.toml"), BASE).unwrap();
        let images: BTreeMap<Service, String> = [Service::Postgres, Service::Synapse, Service::Proxy]
            .into_iter()
            .map(|s| (s, format!("sha256:{}", "1".repeat(64))))
            .collect();
        let layout = Layout::new("/var/lib/masctl");
        let units = |pg_major| {
            evaluate(&Inputs {
                config: &config,
                images: &images,
                layout: &layout,
                masctl: "/m",
                pg_major,
                ca_bundles: &BTreeMap::new(),
                restic_image: None,
            })
            .unwrap()
            .manifest
            .units
        };
        let (a, b, c) = (units(15), units(17), units(17));
        assert_eq!(b, c);
        for unit in ["masctl-postgres.service", "masctl-synapse.service"] {
            assert_ne!(a[unit], b[unit], "{unit}");
        }
    }

    #[test]
    fn workers_add_units_without_touching_a_stack_that_has_none() {
        let img = format!("sha256:{}", "2".repeat(64));
        let off = eval(BASE, &img);
        let text: String = off
            .entries
            .iter()
            .flat_map(|e| e.files.values())
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect();
        for word in ["redis", "worker", "entrypoint", "instance_map", "replication"] {
            assert!(!text.contains(word), "{word} in a stack without workers");
        }
        let on = eval_with_mas(&format!("{BASE}[synapse.workers]\npreset = \"one-of-each\"\n"), &img);
        let units: Vec<&UnitName> = on.manifest.units.keys().collect();
        for u in ["masctl-redis.service", "masctl-synapse-generic-1.service", "masctl-synapse-background-1.service"] {
            assert!(units.iter().any(|x| *x == u), "{u} in {units:?}");
        }
        assert_eq!(on.manifest.workers.len(), 5);
        assert!(on.manifest.services.contains_key("proxy"), "workers need the edge");
        // A worker's unit starts after the main process and Redis.
        let unit = on.entries.last().unwrap().files["units/masctl-synapse-generic-1.service"].clone();
        let unit = String::from_utf8(unit).unwrap();
        assert!(unit.contains("After=masctl-synapse.service") && unit.contains("After=masctl-redis.service"), "{unit}");
    }

    #[test]
    fn manifest_says_how_mas_figures() {
        let img = format!("sha256:{}", "2".repeat(64));
        let cases = [
            ("", vec![Database::Synapse], false, false),
            (
                "[mas]\nenabled = true\nmigration_in_progress = true\n",
                vec![Database::Synapse, Database::Mas],
                true,
                false,
            ),
            ("[mas]\nenabled = true\n", vec![Database::Synapse, Database::Mas], true, true),
        ];
        for (extra, dbs, enabled, delegating) in cases {
            let m = eval_with_mas(&format!("{BASE}{extra}"), &img).manifest;
            assert_eq!(m.databases, dbs, "{extra}");
            assert_eq!((m.mas.enabled, m.mas.delegating), (enabled, delegating), "{extra}");
            assert!(m.services.contains_key("proxy"), "the edge runs in every mode: {extra}");
        }
    }

    #[test]
    fn synapse_keeps_its_bridges_networks_when_the_edge_adapts_it() {
        // (config, networks Synapse joins): the edge's networks add to the bridges'.
        let img = format!("sha256:{}", "2".repeat(64));
        let bridge = "[[synapse.appservices]]\npath = \"/b/tg.yaml\"\nnetwork = \"bridges\"\n";
        let cases: [(String, &[&str]); 3] = [
            (bridge.to_string(), &["bridges"]),
            (format!("{bridge}[mas]\nenabled = true\n"), &["bridges"]),
            (
                format!("[edge]\nnetworks = [\"fed\", \"bridges\"]\n{bridge}[mas]\nenabled = true\n"),
                &["bridges", "fed"],
            ),
        ];
        for (extra, want) in cases {
            let e = eval_with_mas(&format!("{BASE}{extra}"), &img);
            let entry = e.entries.iter().find(|x| x.name == "service-synapse").unwrap();
            let spec: ServiceSpec = serde_json::from_slice(&entry.files["spec.json"]).unwrap();
            assert_eq!(spec.extra_networks, want.to_vec(), "{extra}");
        }
    }

    #[test]
    fn an_edited_registration_changes_synapses_config_only() {
        use crate::appservice::{Loaded, registration};
        let text = format!("{BASE}[[synapse.appservices]]\npath = \"/b/tg.yaml\"\n[mas]\nenabled = true\n");
        let entries = |body: &str| {
            let mut c = crate::config::parse(Path::new("m.toml"), &text).unwrap();
            c.registrations.push(Loaded::new("/b/tg.yaml".into(), body.into(), registration::parse(body).unwrap()));
            let images: BTreeMap<Service, String> =
                Service::ALL.into_iter().map(|s| (s, format!("sha256:{}", "1".repeat(64)))).collect();
            let layout = Layout::new("/var/lib/masctl");
            let inp = Inputs {
                config: &c,
                images: &images,
                layout: &layout,
                masctl: "/usr/bin/masctl",
                pg_major: 15,
                ca_bundles: &BTreeMap::new(),
                restic_image: None,
            };
            let e = evaluate(&inp).unwrap();
            e.entries.iter().map(|x| (x.name.clone(), x.files.clone())).collect::<BTreeMap<_, _>>()
        };
        let body = "id: tg\nurl: null\nas_token: A\nhs_token: H\nsender_localpart: tgbot\nnamespaces: {}\n";
        let (before, after) = (entries(body), entries(&format!("{body}rate_limited: false\n")));
        let changed = |k: &str| before[k] != after[k];
        assert!(changed("synapse-config"));
        // MAS's copy of Synapse's config leaves the registrations out: MAS keeps running.
        assert!(!changed("mas-config") && !changed("service-mas"));
    }

    fn eval_with_mas(text: &str, synapse_image: &str) -> Evaluated {
        let config = crate::config::parse(Path::new("m.toml"), text).unwrap();
        let images: BTreeMap<Service, String> = [Service::Postgres, Service::Mas, Service::Proxy, Service::Redis]
            .into_iter()
            .map(|s| (s, format!("sha256:{}", "1".repeat(64))))
            .chain([(Service::Synapse, synapse_image.to_string())])
            .collect();
        let layout = Layout::new("/var/lib/masctl");
        evaluate(&Inputs {
            config: &config,
            images: &images,
            layout: &layout,
            masctl: "/usr/bin/masctl",
            pg_major: 15,
            ca_bundles: &BTreeMap::new(),
            restic_image: None,
        })
        .unwrap()
    }

    #[test]
    fn imported_password_config_reaches_synapse_and_mas_as_files() {
        let img = format!("sha256:{}", "2".repeat(64));
        let file = |e: &Evaluated, entry: &str, path: &str| -> String {
            e.entries
                .iter()
                .find(|x| x.name == entry)
                .and_then(|x| x.files.get(path))
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .unwrap_or_default()
        };
        // (extra config, Synapse reads the section, MAS reads the pepper)
        let cases = [
            ("", true, false),
            ("[mas]\nenabled = true\nmigration_in_progress = true\n", true, true),
            // Delegating: Synapse refuses password_config, so it must not read it.
            ("[mas]\nenabled = true\n", false, true),
        ];
        for (extra, synapse_reads, mas_reads) in cases {
            let text = format!("{BASE}[synapse]\nimported_password_config = true\n{extra}");
            let e = eval_with_mas(&text, &img);
            let spec = file(&e, "service-synapse", "spec.json");
            assert_eq!(spec.contains("/run/secrets/synapse-password-config.yaml"), synapse_reads, "{extra}");
            let mas = file(&e, "mas-config", "config.yaml");
            assert_eq!(mas.contains("\"secret_file\": \"/run/secrets/mas-pepper\""), mas_reads, "{extra}");
        }
        let plain = eval(BASE, &img);
        assert!(!file(&plain, "service-synapse", "spec.json").contains("password-config"));
    }

    #[test]
    fn an_external_postgres_replaces_the_bundled_one() {
        let img = format!("sha256:{}", "2".repeat(64));
        let text = format!(
            "{BASE}[mas]\nenabled = true\n[postgres.external]\nhost = \"db.internal\"\nport = 6432\nnetwork = \"dbnet\"\n\
synapse = {{ database = \"syn\", user = \"syn_user\", password_file = \"/etc/pw/syn\" }}\n\
mas = {{ database = \"auth\", user = \"auth_user\", password_file = \"/etc/pw/auth\" }}\n"
        );
        let e = eval_with_mas(&text, &img);
        let file = |entry: &str, path: &str| -> String {
            let x = e.entries.iter().find(|x| x.name == entry).unwrap_or_else(|| panic!("no {entry}"));
            String::from_utf8_lossy(&x.files[path]).into_owned()
        };
        assert!(!e.manifest.services.contains_key("postgres"));
        assert!(e.entries.iter().all(|x| x.name != "postgres-config"));
        assert!(e.manifest.units.keys().all(|u| u != "masctl-postgres.service"));
        assert!(
            e.entries
                .iter()
                .flat_map(|x| x.files.values())
                .all(|d| !String::from_utf8_lossy(d).contains("Wants=masctl-postgres"))
        );
        let hs: serde_json::Value = serde_json::from_str(
            file("synapse-config", "homeserver.yaml").split_once('\n').unwrap().1.split_once('\n').unwrap().1,
        )
        .unwrap();
        let args = &hs["database"]["args"];
        assert_eq!(
            (&args["host"], &args["port"], &args["user"], &args["dbname"]),
            (&"db.internal".into(), &6432.into(), &"syn_user".into(), &"syn".into())
        );
        let mas = file("mas-config", "config.yaml");
        assert!(
            mas.contains("\"username\": \"auth_user\"")
                && mas.contains("\"database\": \"auth\"")
                && mas.contains("\"port\": 6432"),
            "{mas}"
        );
        for (service, inside, derived) in [
            ("synapse", "synapse-pgpass", "external-synapse-pgpass"),
            ("mas", "mas-db-password", "external-mas-db-password"),
        ] {
            let spec: ServiceSpec = serde_json::from_str(&file(&format!("service-{service}"), "spec.json")).unwrap();
            let bind = crate::spec::Bind::secret(format!("/var/lib/masctl/secrets/{derived}"), inside);
            assert!(spec.binds.contains(&bind), "{service}: {:?}", spec.binds);
            assert!(
                spec.binds.iter().all(|b| !b.host.starts_with("/etc/pw/")),
                "the password files themselves are not mounted"
            );
            assert!(spec.extra_networks.contains(&"dbnet".to_string()), "{service}");
        }
        let ext = e.manifest.external_postgres.as_ref().expect("recorded for jobs");
        assert_eq!((ext.host.as_str(), ext.port, ext.network.as_deref()), ("db.internal", 6432, Some("dbnet")));
        assert_eq!(
            ext.databases[&Database::Mas],
            crate::generation::manifest::DbLogin { database: "auth".into(), user: "auth_user".into() }
        );
        // The bundled stack's manifest has no such key (same bytes as before).
        let plain = eval_with_mas(BASE, &img);
        assert!(plain.manifest.external_postgres.is_none());
        assert!(!file_of(&plain, "generation", "manifest.json").contains("external_postgres"));
    }

    fn file_of(e: &Evaluated, entry: &str, path: &str) -> String {
        String::from_utf8_lossy(&e.entries.iter().find(|x| x.name == entry).unwrap().files[path]).into_owned()
    }

    #[test]
    fn no_secret_material_in_the_generation() {
        let e = eval(BASE, &format!("sha256:{}", "2".repeat(64)));
        for entry in &e.entries {
            for (path, data) in &entry.files {
                let text = String::from_utf8_lossy(data);
                assert!(!text.contains("password:"), "{path} has an inline password");
                if path == "homeserver.yaml" {
                    assert!(text.contains("/run/secrets/"), "{path} refers to secrets by path");
                }
            }
        }
    }
}
