//! The Docker Engine edge (bollard): load archives, pull by digest, inspect images.
//! The API version is negotiated, since Docker 20.10 speaks at most 1.41.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use bollard::Docker;

/// The label on networks masctl creates.
const NETWORK_LABEL: &str = "masctl.network";
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ImportImageOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::image::reference::Reference;
use crate::spec::{Bind, ServiceSpec, bind_strings};

/// Cheap to clone: clones share the connection settings.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

/// What masctl checks of an image in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageState {
    pub id: String,
    pub layers: Vec<String>,
    pub repo_digests: Vec<String>,
}

enum Entry {
    File(Vec<u8>),
    Link(String),
    Other,
}

/// The first member of a tar archive (what Docker's archive API sends for one path).
fn first_entry(archive: &[u8]) -> Result<Entry> {
    let mut tar = tar::Archive::new(archive);
    let Some(entry) = tar.entries()?.next() else { return Ok(Entry::Other) };
    let mut entry = entry?;
    let kind = entry.header().entry_type();
    if kind.is_file() {
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        return Ok(Entry::File(data));
    }
    match entry.link_name()? {
        Some(target) if kind.is_symlink() => Ok(Entry::Link(target.display().to_string())),
        _ => Ok(Entry::Other),
    }
}

/// Where a symbolic link at `path` pointing at `target` leads.
fn resolve_link(path: &str, target: &str) -> String {
    if target.starts_with('/') {
        return target.to_string();
    }
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{dir}/{target}")
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

impl Engine {
    /// Connects to `DOCKER_HOST` or the default socket and negotiates the API version.
    pub async fn connect() -> Result<Engine> {
        let docker = Docker::connect_with_defaults().context("connecting to the Docker engine")?;
        let docker = docker
            .negotiate_version()
            .await
            .context("the Docker engine does not answer (is dockerd running? is /var/run/docker.sock there?)")?;
        Ok(Engine { docker })
    }

    pub async fn inspect(&self, name: &str) -> Result<Option<ImageState>> {
        match self.docker.inspect_image(name).await {
            Ok(i) => Ok(Some(ImageState {
                id: i.id.unwrap_or_default(),
                layers: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("inspecting image {name}")),
        }
    }

    /// The environment an image's containers start with (`Config.Env`).
    pub async fn image_env(&self, id: &str) -> Result<Vec<String>> {
        let i = self.docker.inspect_image(id).await.with_context(|| format!("inspecting image {id}"))?;
        Ok(i.config.and_then(|c| c.env).unwrap_or_default())
    }

    /// `docker load` of an archive, reading the response stream to its end (errors
    /// arrive inside it with HTTP 200).
    pub async fn load(&self, archive: &Path) -> Result<()> {
        let mut file = std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
        let chunks = std::iter::from_fn(move || {
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some(Ok::<Bytes, std::io::Error>(Bytes::from(buf)))
                }
                Err(e) => Some(Err(e)),
            }
        });
        let opts = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut stream = self.docker.import_image_stream(opts, futures_util::stream::iter(chunks), None);
        while let Some(item) = stream.next().await {
            let info = item.context("loading the image archive into Docker")?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                bail!("Docker refused the archive: {e}");
            }
        }
        Ok(())
    }

    /// Pulls `reference` by digest and checks that the engine holds that digest.
    pub async fn pull(&self, reference: &Reference) -> Result<ImageState> {
        let pinned = reference.pinned();
        let opts = CreateImageOptionsBuilder::default().from_image(&pinned).build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            let info = item.with_context(|| format!("pulling {pinned}"))?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                bail!("pulling {pinned}: {e}");
            }
        }
        let state =
            self.inspect(&pinned).await?.with_context(|| format!("{pinned} is not in the engine after the pull"))?;
        if !state.repo_digests.iter().any(|d| d.ends_with(&format!("@{}", reference.digest))) {
            // Never keep an image that is not what the reference pins.
            let _ = self
                .docker
                .remove_image(&state.id, Some(RemoveImageOptionsBuilder::default().force(true).build()), None)
                .await;
            bail!("{pinned}: the registry served digests {:?}, not {}", state.repo_digests, reference.digest);
        }
        Ok(state)
    }
}

/// A container's health as Docker reports it (`none` without a health check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    #[default]
    None,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Starting => "starting",
            Health::None => "none",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Health {
    fn from(s: &str) -> Health {
        match s {
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            "starting" => Health::Starting,
            _ => Health::None,
        }
    }
}

/// A container's state as supervision needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerState {
    pub running: bool,
    pub paused: bool,
    pub exit_code: i64,
    /// Docker's health; for a service probed over HTTP, [`crate::supervision::health::service_state`]
    /// puts the probe's verdict here.
    pub health: Health,
    pub image: String,
    pub started_at: Option<std::time::SystemTime>,
    /// Network name → the container's address on it.
    pub addresses: std::collections::BTreeMap<String, String>,
    /// The `masctl.spec` label: which spec the container was made from.
    pub spec_id: Option<String>,
}

impl ContainerState {
    /// Whether the container serves `spec`: running its image, and healthy.
    pub fn serves(&self, spec: &ServiceSpec) -> bool {
        self.running && self.image == spec.image && self.health == Health::Healthy
    }
}

/// The label that names the spec a service container was created from (the spec's
/// content-addressed store entry), so a restarted supervisor can adopt it.
pub const SPEC_LABEL: &str = "masctl.spec";

/// Whether `GET url` answers 2xx within `timeout` (run off the async runtime).
pub async fn http_ok(url: String, timeout: std::time::Duration) -> bool {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
        agent.get(&url).call().is_ok()
    })
    .await
    .unwrap_or(false)
}

fn ms_to_ns(ms: u64) -> i64 {
    (ms as i64) * 1_000_000
}

/// The container's endpoint on each of its networks: its aliases.
fn endpoint(spec: &ServiceSpec) -> EndpointSettings {
    EndpointSettings { aliases: Some(spec.aliases.clone()), ..Default::default() }
}

/// The Docker create body for a service: pinned image, non-root user, read-only root,
/// no capabilities, no privilege gain, tmpfs for scratch, a health check.
pub fn container_body(spec: &ServiceSpec, spec_id: &str) -> ContainerCreateBody {
    let mut ports = std::collections::HashMap::new();
    for p in &spec.ports {
        ports.insert(
            format!("{}/tcp", p.container_port),
            Some(vec![PortBinding { host_ip: Some(p.host_ip.clone()), host_port: Some(p.host_port.to_string()) }]),
        );
    }
    // No command means the supervisor probes over HTTP; Docker then checks nothing.
    let test = if spec.health.test.is_empty() {
        vec!["NONE".to_string()]
    } else {
        std::iter::once("CMD".to_string()).chain(spec.health.test.iter().cloned()).collect()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: Some(spec.user.clone()),
        networking_config: (!spec.aliases.is_empty())
            .then(|| NetworkingConfig { endpoints_config: Some([(spec.network.clone(), endpoint(spec))].into()) }),
        entrypoint: (!spec.entrypoint.is_empty()).then(|| spec.entrypoint.clone()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
        env: Some(spec.env.clone()),
        exposed_ports: (!spec.ports.is_empty())
            .then(|| spec.ports.iter().map(|p| format!("{}/tcp", p.container_port)).collect()),
        labels: Some(
            [("masctl.service".to_string(), spec.service.clone()), (SPEC_LABEL.to_string(), spec_id.to_string())]
                .into(),
        ),
        healthcheck: Some(HealthConfig {
            test: Some(test),
            interval: Some(ms_to_ns(spec.health.interval_ms)),
            timeout: Some(ms_to_ns(spec.health.timeout_ms)),
            retries: Some(spec.health.retries.into()),
            start_period: Some(ms_to_ns(spec.health.start_period_ms)),
            start_interval: None,
        }),
        stop_timeout: Some(spec.stop_timeout_secs.into()),
        host_config: Some(HostConfig {
            binds: Some(bind_strings(&spec.binds)),
            tmpfs: Some(spec.tmpfs.clone().into_iter().collect()),
            port_bindings: (!ports.is_empty()).then_some(ports),
            network_mode: Some(spec.network.clone()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Engine {
    pub async fn ensure_network(&self, name: &str) -> Result<()> {
        if self.docker.inspect_network(name, None).await.is_ok() {
            return Ok(());
        }
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            // Marks the network as masctl's: see `foreign_network`.
            labels: Some([(NETWORK_LABEL.to_string(), "1".to_string())].into()),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            // Created concurrently by another service's supervisor.
            Err(_) if self.docker.inspect_network(name, None).await.is_ok() => Ok(()),
            Err(e) => Err(e).with_context(|| format!("creating network {name}")),
        }
    }

    /// Why an existing network named `name` is not masctl's to use, if it is not:
    /// it lacks masctl's label and a container that is not masctl's is on it.
    /// (Networks masctl made before it labelled them hold only its own containers,
    /// or none.)
    pub async fn foreign_network(&self, name: &str) -> Result<Option<String>> {
        let Ok(net) = self.docker.inspect_network(name, None).await else { return Ok(None) };
        if net.labels.as_ref().is_some_and(|l| l.contains_key(NETWORK_LABEL)) {
            return Ok(None);
        }
        for (id, endpoint) in net.containers.unwrap_or_default() {
            let labels = self.docker.inspect_container(&id, None).await.ok().and_then(|c| c.config?.labels);
            if !labels.is_some_and(|l| l.keys().any(|k| k.starts_with("masctl."))) {
                let who = endpoint.name.unwrap_or(id);
                return Ok(Some(format!(
                    "Docker network {name:?} exists and was not made by masctl (container {who} is on it); \
choose another instance name"
                )));
            }
        }
        Ok(None)
    }

    /// Attaches a container to a network (nothing to do if it is attached already).
    pub async fn connect_network(&self, network: &str, container: &str) -> Result<()> {
        let attached = self
            .docker
            .inspect_container(container, None)
            .await?
            .network_settings
            .and_then(|n| n.networks)
            .is_some_and(|n| n.contains_key(network));
        if attached {
            return Ok(());
        }
        let req = bollard::models::NetworkConnectRequest { container: container.to_string(), ..Default::default() };
        self.docker.connect_network(network, req).await.with_context(|| format!("connecting {container} to {network}"))
    }

    /// The container's address on `network`.
    pub async fn container_ip(&self, name: &str, network: &str) -> Result<Option<String>> {
        let c = self.docker.inspect_container(name, None).await.with_context(|| format!("inspecting {name}"))?;
        Ok(c.network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty()))
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing network {name}")),
        }
    }

    /// A label of a container, if the container exists and has it.
    pub async fn container_label(&self, name: &str, key: &str) -> Option<String> {
        let c = self.docker.inspect_container(name, None).await.ok()?;
        c.config?.labels?.remove(key)
    }

    /// Creates and starts a container running systemd as PID 1 (see DESIGN.md:
    /// `--privileged` fails here, these are the capabilities it needs instead).
    pub async fn start_systemd_host(&self, host: &SystemdHost) -> Result<()> {
        let body = ContainerCreateBody {
            image: Some(host.image.clone()),
            hostname: Some(host.name.clone()),
            env: Some(host.env.clone()),
            labels: Some(host.labels.clone().into_iter().collect()),
            host_config: Some(HostConfig {
                binds: Some(bind_strings(&host.binds)),
                mounts: host.engine_dir.as_ref().map(|d| {
                    vec![bollard::models::Mount {
                        target: Some("/run/masctl-engine".into()),
                        source: Some(d.clone()),
                        typ: Some(bollard::models::MountType::BIND),
                        read_only: Some(true),
                        bind_options: Some(bollard::models::MountBindOptions {
                            non_recursive: Some(true),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]
                }),
                tmpfs: Some([("/run".to_string(), String::new()), ("/run/lock".to_string(), String::new())].into()),
                cap_add: Some(vec!["SYS_ADMIN".into()]),
                security_opt: Some(vec!["seccomp=unconfined".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = &host.name;
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker.create_container(Some(opts), body).await.with_context(|| format!("creating {name}"))?;
        self.docker.start_container(name, None).await.with_context(|| format!("starting {name}"))?;
        Ok(())
    }

    /// A file of `image`'s filesystem (following symlinks), read from a container
    /// that is created and never started; None when the image has no such file.
    pub async fn file_in_image(&self, image: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let name = container_name("read")?;
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            // Never run: only there because an image without a command cannot be created.
            entrypoint: Some(vec!["/masctl-never-runs".into()]),
            network_disabled: Some(true),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(opts), body).await.with_context(|| format!("reading {path} of {image}"))?;
        let got = self.file_in_container(&name, path).await;
        self.remove_container(&name).await?;
        got.with_context(|| format!("reading {path} of {image}"))
    }

    async fn file_in_container(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let mut path = path.to_string();
        // A few links at most (Debian's bundle is a file; other images link it).
        for _ in 0..8 {
            let opts = DownloadFromContainerOptionsBuilder::default().path(&path).build();
            let mut stream = self.docker.download_from_container(container, Some(opts));
            let mut archive = Vec::new();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(b) => archive.extend_from_slice(&b),
                    Err(e) if is_not_found(&e) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            match first_entry(&archive)? {
                Entry::File(data) => return Ok(Some(data)),
                Entry::Link(target) => path = resolve_link(&path, &target),
                Entry::Other => return Ok(None),
            }
        }
        bail!("{path}: too many symbolic links")
    }

    pub async fn remove_container(&self, name: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing container {name}")),
        }
    }

    pub async fn create_and_start(&self, spec: &ServiceSpec, spec_id: &str) -> Result<()> {
        let opts = CreateContainerOptionsBuilder::default().name(&spec.container).build();
        self.docker
            .create_container(Some(opts), container_body(spec, spec_id))
            .await
            .with_context(|| format!("creating container {}", spec.container))?;
        for net in &spec.extra_networks {
            let req = bollard::models::NetworkConnectRequest {
                container: spec.container.clone(),
                endpoint_config: Some(endpoint(spec)),
            };
            self.docker
                .connect_network(net, req)
                .await
                .with_context(|| format!("connecting {} to network {net} (does it exist?)", spec.container))?;
        }
        self.docker
            .start_container(&spec.container, None)
            .await
            .with_context(|| format!("starting container {}", spec.container))?;
        Ok(())
    }

    pub async fn container_state(&self, name: &str) -> Result<Option<ContainerState>> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => {
                let st = c.state.unwrap_or_default();
                let addresses = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(net, e)| e.ip_address.filter(|ip| !ip.is_empty()).map(|ip| (net, ip)))
                    .collect();
                Ok(Some(ContainerState {
                    running: st.running.unwrap_or(false),
                    paused: st.paused.unwrap_or(false),
                    exit_code: st.exit_code.unwrap_or(0),
                    health: st
                        .health
                        .and_then(|h| h.status)
                        .map_or(Health::None, |s| Health::from(s.to_string().as_str())),
                    image: c.image.unwrap_or_default(),
                    started_at: st
                        .started_at
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .map(std::time::SystemTime::from),
                    addresses,
                    spec_id: c.config.and_then(|c| c.labels).and_then(|mut l| l.remove(SPEC_LABEL)),
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("inspecting container {name}")),
        }
    }

    pub async fn stop_container(&self, name: &str, grace_secs: u32) -> Result<()> {
        let opts = StopContainerOptionsBuilder::default().t(grace_secs as i32).build();
        match self.docker.stop_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("stopping container {name}")),
        }
    }

    /// Follows the container's output; with `since` (unix seconds), only from then on.
    pub fn follow_logs(
        &self,
        name: &str,
        since: Option<i64>,
    ) -> impl futures_util::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + use<> {
        let mut opts = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true);
        if let Some(t) = since {
            opts = opts.since(t.clamp(0, i32::MAX.into()) as i32);
        }
        let opts = opts.build();
        self.docker.logs(name, Some(opts))
    }

    /// Runs a command in the container, forwarding its output; returns its exit code.
    pub async fn exec(&self, container: &str, cmd: &[String]) -> Result<i64> {
        Ok(self.exec_in(container, cmd, &[], ExecOutput::Forward).await?.0)
    }

    /// One SQL statement as the superuser over the socket of the Postgres in
    /// `container` (unaligned rows, no psqlrc); its exit code and output.
    pub async fn psql(&self, container: &str, db: &str, sql: &str) -> Result<(i64, String)> {
        let cmd =
            ["psql", "-X", "-h", "/run/postgresql", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-tAqc", sql]
                .map(String::from);
        self.exec_in(container, &cmd, &[], ExecOutput::Capture).await
    }

    /// Runs a command in the container with extra environment; returns its exit code
    /// and, with [`ExecOutput::Capture`], its output.
    pub async fn exec_in(
        &self,
        container: &str,
        cmd: &[String],
        env: &[String],
        output_to: ExecOutput,
    ) -> Result<(i64, String)> {
        let exec = self
            .docker
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(cmd.to_vec()),
                    env: Some(env.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("exec in {container}"))?;
        let mut captured = String::new();
        if let StartExecResults::Attached { mut output, .. } = self.docker.start_exec(&exec.id, None).await? {
            while let Some(chunk) = output.next().await {
                let chunk = chunk?;
                match output_to {
                    ExecOutput::Capture => captured.push_str(&String::from_utf8_lossy(chunk.as_ref())),
                    ExecOutput::Forward => print_log(&chunk),
                    ExecOutput::Stderr => {
                        use std::io::Write;
                        let _ = std::io::stderr().lock().write_all(chunk.as_ref());
                    }
                }
            }
        }
        let inspect = self.docker.inspect_exec(&exec.id).await?;
        Ok((inspect.exit_code.unwrap_or(-1), captured))
    }
}

/// A one-shot container: runs to its end, its output forwarded to stderr.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OneShot {
    pub image: String,
    pub user: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub binds: Vec<Bind>,
    pub network: Option<String>,
    pub env: Vec<String>,
}

impl OneShot {
    /// `cmd` in a container like the service's: same image, user, mounts, environment.
    pub fn like(spec: &ServiceSpec, cmd: Vec<String>, network: Option<String>) -> OneShot {
        OneShot {
            image: spec.image.clone(),
            user: spec.user.clone(),
            entrypoint: None,
            cmd,
            binds: spec.binds.clone(),
            network,
            env: spec.env.clone(),
        }
    }
}

impl Engine {
    /// Runs `job` to completion (read-only root, no capabilities) and returns its
    /// exit code; the container is removed afterwards whatever happens.
    pub async fn run_once(&self, job: &OneShot, what: &str) -> Result<i64> {
        self.run_once_joining(job, what, &[], &[]).await
    }

    /// [`Engine::run_once`], the container joining `networks` too (made by the
    /// user: an external Postgres's) when it has a network at all, and keeping
    /// the capabilities `cap_add` names (every other is dropped).
    pub async fn run_once_joining(
        &self,
        job: &OneShot,
        what: &str,
        networks: &[String],
        cap_add: &[String],
    ) -> Result<i64> {
        let name = container_name(what)?;
        let body = ContainerCreateBody {
            image: Some(job.image.clone()),
            user: Some(job.user.clone()),
            entrypoint: job.entrypoint.clone(),
            cmd: (!job.cmd.is_empty()).then(|| job.cmd.clone()),
            env: Some(job.env.clone()),
            labels: Some([("masctl.job".to_string(), what.to_string())].into()),
            host_config: Some(HostConfig {
                binds: Some(bind_strings(&job.binds)),
                tmpfs: Some([("/tmp".to_string(), "rw,nosuid,nodev,size=64m".to_string())].into()),
                network_mode: job.network.clone().or(Some("none".into())),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: (!cap_add.is_empty()).then(|| cap_add.to_vec()),
                security_opt: Some(vec!["no-new-privileges".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(opts), body).await.with_context(|| format!("creating {name}"))?;
        for net in networks.iter().filter(|_| job.network.is_some()) {
            let req = bollard::models::NetworkConnectRequest { container: name.clone(), ..Default::default() };
            if let Err(e) = self.docker.connect_network(net, req).await {
                self.remove_container(&name).await?;
                return Err(e).with_context(|| format!("connecting {name} to network {net} (does it exist?)"));
            }
        }
        let result = self.run_created(&name).await;
        self.remove_container(&name).await?;
        result
    }

    async fn run_created(&self, name: &str) -> Result<i64> {
        self.docker.start_container(name, None).await.with_context(|| format!("starting {name}"))?;
        let mut logs = self.follow_logs(name, None);
        while let Some(Ok(chunk)) = logs.next().await {
            use std::io::Write;
            let _ = std::io::stderr().lock().write_all(chunk.as_ref());
        }
        let mut wait = self.docker.wait_container(name, None);
        let code = match wait.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(e).with_context(|| format!("waiting for {name}")),
            None => self.container_state(name).await?.map_or(-1, |s| s.exit_code),
        };
        Ok(code)
    }
}

/// A container that runs systemd as PID 1, for `masctl try`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdHost {
    /// Container name and hostname.
    pub name: String,
    pub image: String,
    pub env: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub binds: Vec<Bind>,
    /// A host directory mounted read-only, not recursively, at `/run/masctl-engine`
    /// (the Docker socket's: recursively it would pin other containers' namespaces).
    pub engine_dir: Option<String>,
}

/// Where the output of [`Engine::exec_in`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutput {
    /// stdout to stdout, stderr to stderr.
    Forward,
    /// Everything to stderr (stdout is kept for the caller's own result).
    Stderr,
    Capture,
}

/// Writes a chunk of container output to the matching stream of this process.
pub fn print_log(chunk: &bollard::container::LogOutput) {
    use std::io::Write;
    match chunk {
        bollard::container::LogOutput::StdErr { message } => {
            let _ = std::io::stderr().lock().write_all(message);
        }
        other => {
            let _ = std::io::stdout().lock().write_all(other.as_ref());
            let _ = std::io::stdout().flush();
        }
    }
}

impl Engine {
    pub async fn remove_image(&self, id: &str) -> Result<()> {
        self.docker
            .remove_image(id, Some(RemoveImageOptionsBuilder::default().force(false).build()), None)
            .await
            .with_context(|| format!("removing image {id}"))?;
        Ok(())
    }
}

/// A fresh name for a short-lived container: `masctl-<what>-<12 random hex digits>`.
fn container_name(what: &str) -> Result<String> {
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).map_err(|e| anyhow::anyhow!("random name: {e}"))?;
    Ok(format!("masctl-{what}-{}", hex::encode(rnd)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::{Health, HttpProbe};

    /// A spec checked by a command, or probed over HTTP.
    pub(crate) fn spec(http: bool) -> ServiceSpec {
        ServiceSpec {
            service: "s".into(),
            container: "c".into(),
            network: "n".into(),
            image: "sha256:a".into(),
            user: "1:1".into(),
            entrypoint: vec![],
            cmd: vec![],
            env: vec![],
            binds: vec![],
            tmpfs: Default::default(),
            ports: vec![],
            health: Health {
                test: if http { vec![] } else { vec!["true".into()] },
                http: http.then(|| HttpProbe { port: 1, path: "/".into() }),
                interval_ms: 1,
                timeout_ms: 1,
                retries: 1,
                start_period_ms: 1,
            },
            after_healthy: vec![],
            pre_start: vec![],
            data_dirs: vec![],
            stop_timeout_secs: 1,
            aliases: vec![],
            extra_networks: vec![],
        }
    }

    #[test]
    fn serves_table() {
        let st = |running: bool, image: &str, health: &str| ContainerState {
            running,
            health: health.into(),
            image: image.into(),
            ..Default::default()
        };
        let cases = [
            (false, st(true, "sha256:a", "healthy"), true),
            (false, st(true, "sha256:a", "none"), false),
            (false, st(true, "sha256:a", "starting"), false),
            (false, st(true, "sha256:b", "healthy"), false),
            (false, st(false, "sha256:a", "healthy"), false),
            // Probed over HTTP: the probe's verdict, never Docker's "none", counts.
            (true, st(true, "sha256:a", "none"), false),
            (true, st(true, "sha256:a", "healthy"), true),
            (true, st(true, "sha256:b", "healthy"), false),
        ];
        for (http, state, want) in cases {
            assert_eq!(state.serves(&spec(http)), want, "{http} {state:?}");
        }
    }
}
