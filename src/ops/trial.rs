//! `masctl try`: the stack in a throwaway systemd host, the way `nixos-rebuild
//! build-vm` lets you try a system. The host is a container running systemd as
//! PID 1; service containers are its siblings on the same Docker engine, and the
//! state root is mounted at the same path so bind mounts resolve alike.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::build::service_images;
use super::image::ImageSource;
use crate::context::ConfiguredContext;
use crate::docker::{Engine, ExecOutput, SystemdHost};
use crate::generation::generations::Generations;
use crate::generation::layout::Layout;
use crate::generation::store::Store;
use crate::image::{import, mirrors, oci::RunConfig};
use crate::service::{Service, Unit};
use crate::spec::Bind;
use crate::ui;

const HOST_REPO: &str = "masctl/systemd-host";
const SUITE: &str = "bookworm";
/// Where the state, binary, images and config appear inside the host.
const IMAGES_IN_HOST: &str = "/usr/share/masctl/images";
/// The masctl binary is copied into the store and its directory mounted here, so a
/// rebuilt binary never leaves the host running a deleted file.
const BIN_DIR_IN_HOST: &str = "/opt/masctl/bin";
const MASCTL_IN_HOST: &str = "/opt/masctl/bin/masctl";
const CONFIG_DIR_IN_HOST: &str = "/etc/masctl";
/// The store entry kind of copied masctl binaries (`<sha256>-masctl`), which gc keeps.
pub const BINARY_ENTRY: &str = "masctl";

/// A stack running in a throwaway host. (Fields in the order `--json` has always
/// printed them.)
#[derive(Serialize)]
pub struct Trial {
    pub client_url: String,
    pub generation: u32,
    pub host: String,
    pub state_root: PathBuf,
}

/// Flags of this invocation that the `masctl switch` inside the host repeats.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verbosity {
    pub quiet: bool,
    pub verbose: u8,
}

fn host_name(ctx: &ConfiguredContext) -> String {
    format!("{}-host", ctx.config().instance.get_ref())
}

/// Removes the host and the stack's containers and network; data stays. The host's name.
pub async fn down(ctx: &ConfiguredContext) -> Result<String> {
    let instance = ctx.config().instance.get_ref();
    let engine = Engine::connect().await?;
    let host = host_name(ctx);
    let workers = ctx.config().workers().into_iter().map(|w| Unit::worker(w).container(instance));
    let services = Service::ALL.into_iter().rev().map(|s| s.container(instance));
    for name in std::iter::once(host.clone()).chain(workers).chain(services) {
        engine.remove_container(&name).await?;
    }
    let _ = engine.remove_network(instance).await;
    Ok(host)
}

/// Boots (or reuses) the host and runs `masctl switch` inside it.
pub async fn up(ctx: &ConfiguredContext, verbosity: Verbosity) -> Result<Trial> {
    let layout = &ctx.layout;
    let instance = ctx.config().instance.get_ref();
    let c = ctx.config();
    super::build::check_images(c, &ctx.images)?;
    let engine = Engine::connect().await?;
    if let Some(why) = engine.foreign_network(instance).await? {
        return Err(c.at(c.instance.span(), format!("instance: {why}")));
    }
    let host = host_name(ctx);
    let host_image = ensure_host_image(&engine, layout).await?;
    // Images are built out here, where the mirrors are reachable; inside, the
    // switch finds them in the shared store.
    let source = ImageSource::of(ctx);
    let tools = super::build::restic_image(ctx.config());
    for image in service_images(ctx.config()).into_iter().map(|(_, i)| i).chain(tools) {
        source.ensure(&engine, image).await?;
    }
    let mounts = HostMounts {
        images_dir: std::fs::canonicalize(&ctx.images.dir).context("locating the images directory")?,
        config_path: std::fs::canonicalize(&ctx.config_path)?,
        cache: ctx.cache.clone(),
        // Recipe inputs appear at the same paths inside, where the switch hashes them.
        inputs: ctx.config().images.inputs.values().map(|d| PathBuf::from(d.get_ref())).collect(),
    };
    let (config_path, cache) = (&mounts.config_path, &mounts.cache);
    ensure_host(&engine, &host, &host_image, layout, &mounts).await?;
    // Supervisors inside the host probe services over the stack's network.
    engine.ensure_network(instance).await?;
    engine.connect_network(instance, &host).await?;

    let config_in_host = config_in_host(config_path)?;
    let mut cmd = vec![MASCTL_IN_HOST.to_string()];
    if verbosity.quiet {
        cmd.push("-q".into());
    }
    for _ in 0..verbosity.verbose {
        cmd.push("-v".into());
    }
    cmd.extend(["--root".into(), layout.root().display().to_string()]);
    cmd.extend(["-c".into(), config_in_host.display().to_string(), "switch".into()]);
    let env = vec![format!("MASCTL_IMAGES={IMAGES_IN_HOST}"), format!("MASCTL_CACHE={}", cache.display())];
    let (code, _) = engine.exec_in(&host, &cmd, &env, ExecOutput::Stderr).await?;
    if code != 0 {
        bail!(
            "`masctl switch` inside {host} failed (exit {code}); `docker exec {host} journalctl -u 'masctl-*'` has the details"
        );
    }
    let gen_ = Generations::new(layout).current()?.context("the switch left no current generation")?;
    let m = gen_.manifest()?;
    Ok(Trial { client_url: m.client_url, host, generation: gen_.number, state_root: layout.root().to_path_buf() })
}

/// The systemd host image: debootstrap of systemd + dbus, imported once.
async fn ensure_host_image(engine: &Engine, layout: &Layout) -> Result<String> {
    let tag = format!("{HOST_REPO}:{SUITE}");
    if let Some(s) = engine.inspect(&tag).await? {
        return Ok(s.id);
    }
    if which("debootstrap").is_none() {
        bail!("the systemd host image is built with debootstrap: apt-get install debootstrap");
    }
    let mirror = main_archive(&mirrors::debian_mirrors()?)?;
    std::fs::create_dir_all(layout.cache())?;
    let work = tempfile::Builder::new().prefix("systemd-host-").tempdir_in(layout.cache())?;
    let rootfs = work.path().join("rootfs");
    let sp = ui::spinner("building the systemd host image with debootstrap (once; about a minute)");
    let out = std::process::Command::new("debootstrap")
        .args(["--variant=minbase", "--include=systemd,systemd-sysv,dbus", SUITE])
        .arg(&rootfs)
        .arg(&mirror)
        .output()
        .context("running debootstrap")?;
    sp.finish_and_clear();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stdout);
        bail!("debootstrap failed: {}", err.lines().last().unwrap_or(""));
    }
    let run = RunConfig {
        user: "0:0".into(),
        env: vec!["container=docker".into()],
        entrypoint: vec!["/lib/systemd/systemd".into()],
        workdir: "/".into(),
        stop_signal: Some("SIGRTMIN+3".into()),
        ..Default::default()
    };
    let archive = work.path().join("host.tar");
    let id = import::archive_dir(&rootfs, &run, HOST_REPO, SUITE, &archive)?;
    engine.load(&archive).await?;
    Ok(id)
}

/// The first mirror that serves the suite itself (not only security updates).
fn main_archive(mirrors: &[String]) -> Result<String> {
    let agent = crate::image::fetch::http();
    for m in mirrors {
        if agent.get(&format!("{m}/dists/{SUITE}/Release")).call().is_ok() {
            return Ok(m.clone());
        }
    }
    bail!("none of the host's Debian mirrors ({}) serves {SUITE}", mirrors.join(", "))
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(cmd)).find(|p| p.exists())
}

/// What the systemd host mounts from this machine besides the state root.
struct HostMounts {
    images_dir: PathBuf,
    config_path: PathBuf,
    cache: PathBuf,
    inputs: Vec<PathBuf>,
}

async fn ensure_host(engine: &Engine, host: &str, image: &str, layout: &Layout, m: &HostMounts) -> Result<()> {
    let HostMounts { images_dir, config_path, cache, inputs } = m;
    let (bin_hash, bin_dir) = store_binary(layout)?;
    let inputs_label = inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    if let Some(st) = engine.container_state(host).await? {
        let same_binary = engine.container_label(host, "masctl.binary").await.is_some_and(|l| l == bin_hash);
        let same_inputs = engine.container_label(host, "masctl.inputs").await.unwrap_or_default() == inputs_label;
        if st.running && same_binary && same_inputs {
            return wait_for_systemd(engine, host).await;
        }
        ui::step(format!("recreating {host} (masctl binary or recipe inputs changed, or host stopped)"));
        engine.stop_container(host, 60).await?;
        engine.remove_container(host).await?;
    }
    std::fs::create_dir_all(cache)?;
    let (socket_dir, socket_name) = engine_socket()?;
    let config_dir = config_path.parent().context("config directory")?;
    let mut binds = vec![
        Bind::same_rw("/sys/fs/cgroup"),
        Bind::same_rw(layout.root()),
        Bind::ro(bin_dir, BIN_DIR_IN_HOST),
        Bind::ro(images_dir, IMAGES_IN_HOST),
        Bind::ro(config_dir, CONFIG_DIR_IN_HOST),
    ];
    if !cache.starts_with(layout.root()) {
        binds.push(Bind::same_rw(cache));
    }
    binds.extend(inputs.iter().map(Bind::same_ro));
    engine
        .start_systemd_host(&SystemdHost {
            name: host.to_string(),
            image: image.to_string(),
            env: host_env(cache, layout.root(), &config_in_host(config_path)?),
            labels: [
                ("masctl.role".to_string(), "systemd-host".to_string()),
                ("masctl.binary".to_string(), bin_hash),
                ("masctl.inputs".to_string(), inputs_label),
            ]
            .into(),
            binds,
            engine_dir: Some(socket_dir.display().to_string()),
        })
        .await?;
    link_engine_socket(engine, host, &socket_name).await?;
    wait_for_systemd(engine, host).await
}

/// Links `/run/docker.sock` inside the host to the engine's socket. The socket is
/// reached through its directory because dockerd makes a new socket file when it
/// restarts, which a bind of the old file would never see. `/run` is a tmpfs that a
/// `docker restart` of the host empties, so the link is a tmpfiles.d rule in the
/// host's own `/etc`: systemd remakes it on every boot, before any masctl unit.
async fn link_engine_socket(engine: &Engine, host: &str, socket_name: &str) -> Result<()> {
    let rule = tmpfiles_rule(socket_name);
    let script = format!("printf '%s\\n' '{rule}' > {TMPFILES_RULE} && systemd-tmpfiles --create {TMPFILES_RULE}");
    let (code, _) = engine.exec_in(host, &["sh".into(), "-c".into(), script], &[], ExecOutput::Stderr).await?;
    if code != 0 {
        bail!("could not link the Docker socket inside {host}");
    }
    Ok(())
}

const TMPFILES_RULE: &str = "/etc/tmpfiles.d/masctl-engine.conf";

/// `L+` replaces whatever is at the path with the symlink.
fn tmpfiles_rule(socket_name: &str) -> String {
    format!("L+ /run/docker.sock - - - - {ENGINE_DIR_IN_HOST}/{socket_name}")
}

/// Where the directory of the engine's socket appears inside the host.
const ENGINE_DIR_IN_HOST: &str = "/run/masctl-engine";

/// The directory and file name of the Docker socket this process talks to.
fn engine_socket() -> Result<(PathBuf, String)> {
    let sock = match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(h.trim_start_matches("unix://")),
        Ok(h) => bail!("masctl try needs the Docker engine on a local socket, not DOCKER_HOST={h}"),
        Err(_) => PathBuf::from("/var/run/docker.sock"),
    };
    let name = sock.file_name().context("the Docker socket path has no file name")?.to_string_lossy().into_owned();
    let dir = std::fs::canonicalize(sock.parent().unwrap_or(Path::new("/")))
        .with_context(|| format!("locating {}", sock.display()))?;
    Ok((dir, name))
}

/// The host's environment: masctl inside finds the images, the shared input cache
/// and this machine's mirrors (the host's own apt sources are debootstrap's).
fn host_env(cache: &Path, root: &Path, config_in_host: &Path) -> Vec<String> {
    let mut env = vec![
        "container=docker".to_string(),
        // `docker exec HOST masctl status` works as on a real host.
        format!("PATH={BIN_DIR_IN_HOST}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        format!("MASCTL_ROOT={}", root.display()),
        format!("MASCTL_CONFIG={}", config_in_host.display()),
        format!("MASCTL_IMAGES={IMAGES_IN_HOST}"),
        format!("MASCTL_CACHE={}", cache.display()),
    ];
    if let Ok(m) = mirrors::debian_mirrors() {
        env.push(format!("MASCTL_DEBIAN_MIRRORS={}", m.join(" ")));
    }
    if let Ok(i) = mirrors::python_index() {
        env.push(format!("MASCTL_PYTHON_INDEX={i}"));
    }
    env
}

fn config_in_host(config_path: &Path) -> Result<PathBuf> {
    Ok(Path::new(CONFIG_DIR_IN_HOST).join(config_path.file_name().context("config file name")?))
}

/// Copies the running masctl into the store (`<sha256>-masctl/masctl`).
fn store_binary(layout: &Layout) -> Result<(String, PathBuf)> {
    let exe = std::env::current_exe().context("locating the masctl binary")?;
    let data = std::fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?;
    let hash = crate::image::layer::sha256_hex(&data);
    let store = Store::new(layout.store());
    let dir = store.add_dir(&hash, BINARY_ENTRY, |d| {
        let p = d.join("masctl");
        std::fs::write(&p, &data)?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o555))?;
        Ok(())
    })?;
    Ok((hash, dir))
}

/// Waits until systemd inside the host has finished booting (a readiness check).
async fn wait_for_systemd(engine: &Engine, host: &str) -> Result<()> {
    let sp = ui::spinner(&format!("waiting for systemd in {host}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let cmd = ["systemctl", "is-system-running", "--wait"].map(String::from);
    loop {
        let (_, out) = engine.exec_in(host, &cmd, &[], ExecOutput::Capture).await?;
        let state = out.trim();
        if state == "running" || state == "degraded" {
            sp.finish_and_clear();
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("systemd in {host} did not finish booting (state {state:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
