//! `masctl status`: the current generation against what actually runs.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::docker::{Engine, Health};
use crate::generation::generations::Generations;
use crate::service::{Service, Worker};
use crate::spec::read_spec;
use crate::systemd::{ActiveState, Systemd};

#[derive(Serialize)]
pub struct UnitRow {
    pub name: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
}

#[derive(Serialize)]
pub struct ContainerRow {
    pub name: String,
    pub service: Service,
    /// The Synapse worker the container runs (`generic-1`), if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<Worker>,
    pub image: Option<String>,
    pub expected_image: String,
    pub running: bool,
    pub health: Option<Health>,
}

#[derive(Serialize)]
pub struct StatusReport {
    pub generation: Option<u32>,
    pub hash: Option<String>,
    pub units: Vec<UnitRow>,
    pub containers: Vec<ContainerRow>,
    pub images: BTreeMap<Service, String>,
    /// Units active and every container running its generation's image, healthy.
    pub matches_current: bool,
    pub client_url: Option<String>,
    /// With `[backup]`: the last successful push to each repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups: Option<Vec<RepoBackup>>,
}

/// The last push to one repository, as `status` shows it.
#[derive(Serialize)]
pub struct RepoBackup {
    pub repository: String,
    pub last_snapshot: Option<String>,
    /// Seconds since the last successful push (None: never).
    pub age_secs: Option<u64>,
}

fn backups(ctx: &Context, manifest: &crate::generation::manifest::Manifest) -> Option<Vec<RepoBackup>> {
    let plan = manifest.backup.as_ref()?;
    let last = crate::jobs::offsite::read_last(&ctx.layout);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Some(
        plan.repositories
            .iter()
            .map(|r| {
                let l = last.repositories.get(&r.name);
                RepoBackup {
                    repository: r.name.clone(),
                    last_snapshot: l.map(|l| l.snapshot.clone()),
                    age_secs: l.map(|l| now.saturating_sub(l.at)),
                }
            })
            .collect(),
    )
}

/// The report, or `None` when nothing has been switched to yet.
pub async fn status(ctx: &Context) -> Result<Option<StatusReport>> {
    let Some(current) = Generations::new(&ctx.layout).current()? else { return Ok(None) };
    let manifest = current.manifest()?;
    let systemd = Systemd::connect().await?;
    let engine = Engine::connect().await?;
    let mut units = Vec::new();
    let mut all_active = true;
    for name in manifest.units.keys() {
        let s = systemd.unit_state(name).await?;
        // A scheduled unit is inactive between its timer's runs.
        all_active &= name.kind() == crate::unit_name::UnitKind::Scheduled || s.active_state == ActiveState::Active;
        units.push(UnitRow {
            name: s.name,
            load_state: s.load_state,
            active_state: s.active_state.to_string(),
            sub_state: s.sub_state.to_string(),
        });
    }
    let mut containers = Vec::new();
    let mut all_serve = true;
    for (unit, spec_path) in manifest.units() {
        let spec = read_spec(spec_path)?;
        let st = crate::supervision::health::service_state(&engine, &spec).await?;
        all_serve &= st.as_ref().is_some_and(|s| s.serves(&spec));
        containers.push(ContainerRow {
            name: spec.container.clone(),
            service: unit.service,
            worker: unit.worker,
            image: st.as_ref().map(|s| s.image.clone()),
            expected_image: spec.image.clone(),
            running: st.as_ref().is_some_and(|s| s.running),
            health: st.map(|s| s.health),
        });
    }
    Ok(Some(StatusReport {
        generation: Some(current.number),
        hash: Some(current.hash()),
        units,
        containers,
        images: manifest.images.clone(),
        matches_current: all_serve && all_active,
        client_url: Some(manifest.client_url.clone()),
        backups: backups(ctx, &manifest),
    }))
}
