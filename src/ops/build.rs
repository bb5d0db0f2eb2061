//! The config → store pipeline: images present in Docker, secrets generated, the
//! config evaluated into store entries, and MAS's own verdict on its config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use toml::Spanned;

use super::image::ImageSource;
use crate::config::Config;
use crate::context::ConfiguredContext;
use crate::docker::{Engine, OneShot};
use crate::eval::{self, Inputs};
use crate::generation::manifest::Manifest;
use crate::generation::store::Store;
use crate::image::decl::ImagesDir;
use crate::service::Service;
use crate::spec::read_spec;
use crate::{secrets, ui};

/// (service, image as written in the config) for every service the config runs,
/// and Postgres's with an external server too: its client tools (pg_dump, psql)
/// are what backups and doctor run against that server.
fn service_image_values(c: &Config) -> Vec<(Service, &Spanned<String>)> {
    let image = |s: Service| match s {
        Service::Postgres => &c.images.postgres,
        Service::Synapse => &c.images.synapse,
        Service::Mas => &c.images.mas,
        Service::Proxy => &c.images.proxy,
        Service::Redis => &c.images.redis,
    };
    Service::ALL.into_iter().filter(|s| c.runs(*s) || *s == Service::Postgres).map(|s| (s, image(s))).collect()
}

/// The backup engine's image, as written, when the config has `[backup]`.
pub fn restic_image(c: &Config) -> Option<&str> {
    c.backup.as_ref().map(|_| c.images.restic.get_ref().as_str())
}

/// (service, image) for every service the config runs.
pub fn service_images(c: &Config) -> Vec<(Service, &str)> {
    service_image_values(c).into_iter().map(|(s, v)| (s, v.get_ref().as_str())).collect()
}

/// Every image the config runs is a pinned reference or a declared recipe, and the
/// config names each input directory a recipe takes, holding what it needs. Errors
/// point into the config; nothing on the host is touched.
pub fn check_images(c: &Config, images: &ImagesDir) -> Result<()> {
    let services = service_image_values(c).into_iter().map(|(s, v)| (s.name(), v));
    let tools = c.backup.as_ref().map(|_| ("restic", &c.images.restic));
    for (service, value) in services.chain(tools) {
        let name = value.get_ref();
        if name.contains('@') {
            continue;
        }
        let chain = images.chain(name).map_err(|e| c.at(value.span(), format!("images.{service}: {e:#}")))?;
        for (input, decl) in chain.iter().flat_map(|(_, d)| &d.inputs) {
            let Some(dir) = c.images.inputs.get(input) else {
                return Err(c.at(
                    value.span(),
                    format!(
                        "images.{service} = {name:?} needs [images.inputs] {input} = \"DIR\" ({})",
                        decl.description
                    ),
                ));
            };
            decl.check(Path::new(dir.get_ref()))
                .map_err(|why| c.at(dir.span(), format!("images.inputs.{input}: {why}")))?;
        }
    }
    Ok(())
}

/// `masctl config check`: the config parses, validates, and every image it names is
/// a declared recipe (with its inputs) or a pinned reference.
pub fn check_config(ctx: &ConfiguredContext) -> Result<()> {
    check_images(ctx.config(), &ctx.images)?;
    ui::step(format!("{}: ok", ctx.config_path.display()));
    Ok(())
}

/// Makes every image the config runs present in Docker; service → image ID.
pub async fn ensure_images(ctx: &ConfiguredContext, engine: &Engine) -> Result<BTreeMap<Service, String>> {
    let source = ImageSource::of(ctx);
    let mut images = BTreeMap::new();
    for (service, image) in service_images(ctx.config()) {
        let id = source.ensure(engine, image).await.with_context(|| format!("image for {service}"))?;
        images.insert(service, id);
    }
    Ok(images)
}

/// Evaluates the config into a generation in the store. Returns its store path and manifest.
pub async fn build(ctx: &ConfiguredContext, engine: &Engine) -> Result<(PathBuf, Manifest)> {
    let c = ctx.config();
    let layout = &ctx.layout;
    let images = ensure_images(ctx, engine).await?;
    let mut created = secrets::ensure(layout)?;
    if c.mas_enabled() && secrets::ensure_rsa_key(layout, engine, &images[&Service::Synapse]).await? {
        created.push("mas-signing-rsa.pem");
    }
    if !created.is_empty() {
        ui::step(format!("generated secrets: {}", created.join(", ")));
    }
    let copied = secrets::ensure_external(layout, c)?;
    if !copied.is_empty() {
        ui::step(format!("external Postgres passwords copied for the services: {}", copied.join(", ")));
    }
    if secrets::ensure_smtp(layout, c)? {
        ui::step(format!("SMTP password copied for MAS: secrets/{}", secrets::MAS_SMTP_PASSWORD));
    }
    let clients = secrets::ensure_client_secrets(layout, c)?;
    if !clients.is_empty() {
        ui::step(format!("OAuth client secrets copied for their services: {}", clients.join(", ")));
    }
    let restic = match restic_image(c) {
        Some(image) => Some(ImageSource::of(ctx).ensure(engine, image).await.context("image for restic")?),
        None => None,
    };
    let repos = secrets::ensure_backup(layout, c)?;
    if !repos.is_empty() {
        ui::step(format!("backup repository secrets copied: {}", repos.join(", ")));
    }
    let registrations = secrets::ensure_appservices(layout, c)?;
    if !registrations.is_empty() {
        ui::step(format!("appservice registrations copied for Synapse: {}", registrations.join(", ")));
    }
    let exe = std::env::current_exe().context("locating the masctl binary")?.display().to_string();
    // No bundled server (an external one): nothing of masctl's lives by major version.
    let pg_major = match images.get(&Service::Postgres) {
        Some(image) => postgres_major(c, engine, image).await?,
        None => eval::postgres::FIRST_MAJOR,
    };
    let ca_bundles = ca_bundles(c, engine, &images).await?;
    let ev = eval::evaluate(&Inputs {
        config: c,
        images: &images,
        layout,
        masctl: &exe,
        pg_major,
        ca_bundles: &ca_bundles,
        restic_image: restic.as_deref(),
    })?;
    let store = Store::new(layout.store());
    let mut last = PathBuf::new();
    for entry in &ev.entries {
        last = store.add_dir(&entry.hash(), &entry.name, |dir| {
            for (path, data) in &entry.files {
                let p = dir.join(path);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&p, data)?;
            }
            Ok(())
        })?;
    }
    Ok((last, ev.manifest))
}

/// Where Debian-based and distroless images keep their public roots.
const IMAGE_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// With `[edge] extra_ca`: for MAS and Synapse, their image's public roots followed
/// by the user's CAs (SSL_CERT_FILE replaces the whole bundle, so both are needed).
async fn ca_bundles(
    c: &Config,
    engine: &Engine,
    images: &BTreeMap<Service, String>,
) -> Result<BTreeMap<Service, String>> {
    let mut out = BTreeMap::new();
    if c.edge.extra_ca.is_empty() {
        return Ok(out);
    }
    let mut user = Vec::new();
    for f in &c.edge.extra_ca {
        let pem = std::fs::read_to_string(f.get_ref())
            .map_err(|e| c.at(f.span(), format!("edge.extra_ca {} cannot be read ({e})", f.get_ref())))?;
        user.push(pem);
    }
    let user: Vec<&str> = user.iter().map(String::as_str).collect();
    for service in [Service::Mas, Service::Synapse] {
        let Some(image) = images.get(&service).filter(|_| c.runs(service)) else { continue };
        let roots = engine.file_in_image(image, IMAGE_ROOTS).await?.ok_or_else(|| {
            anyhow::anyhow!("images.{service}: the image has no {IMAGE_ROOTS} to add edge.extra_ca to")
        })?;
        let roots = String::from_utf8_lossy(&roots);
        let bundle = crate::ca_bundle::combined(&roots, &user).map_err(|e| {
            let f = &c.edge.extra_ca[0];
            c.at(f.span(), format!("edge.extra_ca: {service}'s roots with these CAs: {e}"))
        })?;
        out.insert(service, bundle);
    }
    Ok(out)
}

/// The Postgres major version the configured Postgres image runs; an image that
/// does not say is refused at `images.postgres`.
pub async fn postgres_major(c: &Config, engine: &Engine, image: &str) -> Result<u32> {
    eval::postgres::major_from_env(&engine.image_env(image).await?).ok_or_else(|| {
        c.at(
            c.images.postgres.span(),
            format!(
                "images.postgres: cannot tell which Postgres major version {} runs \
(no PG_MAJOR and no /usr/lib/postgresql/N/bin on its PATH)",
                c.images.postgres.get_ref()
            ),
        )
    })
}

/// `mas-cli config check` against the generation's MAS config, in a one-shot
/// container, so a config MAS would refuse never reaches the host.
pub async fn check_mas_config(engine: &Engine, manifest: &Manifest) -> Result<()> {
    let Some(spec_path) = manifest.services.get(&Service::Mas) else { return Ok(()) };
    let spec = read_spec(spec_path)?;
    let job = OneShot::like(&spec, eval::mas_cli(&["config", "check"]), None);
    let sp = ui::spinner("checking the MAS configuration (mas-cli config check)");
    let code = engine.run_once(&job, "mas-config-check").await?;
    sp.finish_and_clear();
    if code != 0 {
        bail!("mas-cli config check refused the generated MAS configuration (exit {code}); nothing was changed");
    }
    Ok(())
}
