//! What every job starts from: the current generation and the systemd connection.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::JobSpec;
use crate::docker::OneShot;
use crate::eval;
use crate::generation::generations::Generations;
use crate::generation::layout::Layout;
use crate::generation::manifest::Manifest;
use crate::service::Service;
use crate::spec::{ServiceSpec, read_spec};
use crate::systemd::{ActiveState, Systemd};

pub struct JobContext<'a> {
    pub layout: &'a Layout,
    pub manifest: Manifest,
    pub systemd: Systemd,
    /// The current generation's number.
    pub number: u32,
}

impl<'a> JobContext<'a> {
    pub async fn load(layout: &'a Layout) -> Result<JobContext<'a>> {
        let current =
            Generations::new(layout).current()?.context("nothing has been switched to yet: run `masctl switch`")?;
        Ok(JobContext {
            layout,
            manifest: current.manifest()?,
            systemd: Systemd::connect().await?,
            number: current.number,
        })
    }

    pub fn spec(&self, service: Service) -> Result<ServiceSpec> {
        let path = self
            .manifest
            .services
            .get(&service)
            .with_context(|| format!("generation {} runs no {service}", self.number))?;
        read_spec(path)
    }

    pub fn mas_spec(&self) -> Result<ServiceSpec> {
        if !self.mas_enabled() {
            bail!("generation {} does not run MAS: set [mas] enabled = true and `masctl switch`", self.number);
        }
        self.spec(Service::Mas)
    }

    pub fn mas_enabled(&self) -> bool {
        self.manifest.mas.enabled
    }

    pub fn migration_in_progress(&self) -> bool {
        self.manifest.mas.enabled && !self.manifest.mas.delegating
    }

    /// A job running mas-cli with MAS's own image, mounts and network.
    pub fn mas_job(&self, mas: &ServiceSpec, args: &[String]) -> OneShot {
        let mut cmd = eval::mas_cli(&[]);
        cmd.extend(args.iter().cloned());
        OneShot::like(mas, cmd, Some(self.manifest.instance.clone()))
    }

    /// Runs the job as a transient unit; its exit status and output. A job on the
    /// stack's network joins an external Postgres's network too, as the services do.
    pub async fn run(&self, description: &str, mut spec: JobSpec) -> Result<(i32, String)> {
        spec.extra_networks.extend(self.external_network());
        super::run(self.layout, &self.systemd, description, spec).await
    }

    /// The network an external Postgres is reached on, if the generation names one.
    pub fn external_network(&self) -> Option<String> {
        self.manifest.external_postgres.as_ref().and_then(|e| e.network.clone())
    }

    /// Refuses `what` on an external Postgres: masctl does not own that server.
    pub fn refuse_external_postgres(&self, what: &str, instead: &str) -> Result<()> {
        if let Some(e) = &self.manifest.external_postgres {
            bail!(
                "{what} works on the bundled Postgres; generation {} uses the external server {}:{} (masctl does not \
own it): {instead}",
                self.number,
                e.host,
                e.port
            );
        }
        Ok(())
    }

    /// Waits (bounded) until the units are active; errors naming the first that is not.
    pub async fn require_active(&self, services: &[Service], limit: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        for s in services {
            let unit = s.unit_name();
            loop {
                let st = self.systemd.unit_state(&unit).await?;
                if st.active_state == ActiveState::Active {
                    break;
                }
                if st.active_state != ActiveState::Activating || tokio::time::Instant::now() > deadline {
                    bail!("{unit} is {} ({}): start it with `masctl switch` first", st.active_state, st.sub_state);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }
}
