//! `masctl supervise SPEC`: the main process of a service unit. It owns one
//! container through the Docker API: adopts a running one made from the same spec
//! (a supervisor killed and restarted must not kill its service), else stops the old
//! one gracefully and creates and starts its own; streams its output to the journal,
//! says READY=1 only once it is healthy, restarts it (by exiting non-zero) when it
//! stops answering its health check, stops it with a grace period on SIGTERM, and
//! rides out Docker API errors and a restart of dockerd (retrying with backoff, the
//! log stream reconnecting) instead of exiting and leaving the container behind.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::health::{self, Liveness};
use crate::docker::{ContainerState, Engine, Health, print_log};
use crate::generation::store::Store;
use crate::spec::{ServiceSpec, read_spec};

fn notify(states: &[sd_notify::NotifyState]) {
    // Outside systemd there is no NOTIFY_SOCKET; that is fine.
    let _ = sd_notify::notify(states);
}

fn ensure_data_dirs(spec: &ServiceSpec) -> Result<()> {
    for d in &spec.data_dirs {
        if !std::path::Path::new(&d.path).exists() {
            std::fs::create_dir_all(&d.path).with_context(|| format!("creating {}", d.path))?;
            std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(d.mode))?;
        }
        // Only the top directory: the service owns what it wrote inside.
        std::os::unix::fs::chown(&d.path, Some(d.uid), Some(d.uid)).with_context(|| format!("chown {}", d.path))?;
    }
    Ok(())
}

/// Docker API errors in a row are retried with a growing pause, up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Retries a Docker call through transient failures (dockerd restarting), saying
/// so once per outage. Gives up after `limit`.
async fn retrying<T, F, Fut>(what: &str, limit: Duration, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(200);
    let mut said = false;
    loop {
        match call().await {
            Ok(v) => {
                if said {
                    println!("masctl: the Docker engine answers again");
                }
                return Ok(v);
            }
            Err(e) if started.elapsed() < limit => {
                if !said {
                    eprintln!("masctl: {what}: {e:#}; retrying");
                    said = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e).with_context(|| format!("{what}: Docker did not answer for {limit:?}")),
        }
    }
}

/// How long start-up waits for the engine: the unit's start timeout bounds it too.
const STARTUP_PATIENCE: Duration = Duration::from_secs(600);

/// A running container made from this very spec, which a restarted supervisor takes
/// over instead of replacing (not a paused one: it would never answer its check).
fn adoptable(st: &ContainerState, spec_id: &str) -> bool {
    st.running && !st.paused && st.spec_id.as_deref() == Some(spec_id)
}

/// Returns the exit code for the process.
pub async fn run(spec_dir: &str) -> Result<i32> {
    let spec = read_spec(spec_dir)?;
    // The spec's store entry is content-addressed: equal names, equal containers.
    let spec_id = Store::entry_name(std::path::Path::new(spec_dir.trim_end_matches('/')));
    let term = signal(SignalKind::terminate())?;
    let int = signal(SignalKind::interrupt())?;
    let engine = retrying("connecting to Docker", STARTUP_PATIENCE, Engine::connect).await?;
    ensure_data_dirs(&spec)?;
    retrying("creating the network", STARTUP_PATIENCE, || engine.ensure_network(&spec.network)).await?;
    let existing =
        retrying("inspecting the container", STARTUP_PATIENCE, || engine.container_state(&spec.container)).await?;
    let adopted = existing.as_ref().is_some_and(|st| adoptable(st, &spec_id));
    if adopted {
        println!("masctl: adopting the running container {} (same spec {spec_id})", spec.container);
    } else if let Some(code) = replace(&engine, &spec, &spec_id, existing.is_some_and(|st| st.running)).await? {
        return Ok(code);
    }

    // An adopted container's earlier output is in the journal already.
    let since = adopted.then(now_secs);
    let logs = tokio::spawn(forward_logs(engine.clone(), spec.container.clone(), since));
    let mut s = Supervised { engine, spec, term, int, watch: Watch::default(), logs };

    // Before the first "healthy", keep waiting whatever the checks say: a Synapse
    // upgrade migrating its schema, or Postgres recovering, may take longer than any
    // start period. The unit's start timeout and the switch's health gate bound the wait.
    let until_healthy = |h, _: &ServiceSpec| if h == Health::Healthy { Verdict::Healthy } else { Verdict::Wait };
    if let Some(code) = s.watch(Duration::from_millis(250), until_healthy).await? {
        return Ok(code);
    }
    if !adopted {
        for cmd in &s.spec.after_healthy {
            let code = s.engine.exec(&s.spec.container, cmd).await?;
            if code != 0 {
                eprintln!("masctl: `{}` in {} exited with {code}", cmd.join(" "), s.spec.container);
                stop(&s.engine, &s.spec, &s.logs).await?;
                return Ok(1);
            }
        }
    }
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("healthy")]);
    println!("masctl: {} is healthy", s.spec.container);

    let period = Duration::from_millis(s.spec.health.interval_ms.clamp(250, 10_000));
    let mut liveness = Liveness::default();
    let alive = |h, spec: &ServiceSpec| if liveness.dead_after(h, spec) { Verdict::Dead } else { Verdict::Wait };
    Ok(s.watch(period, alive).await?.unwrap_or(1))
}

/// Replaces whatever container has the spec's name with a new one, after the
/// spec's pre-start commands; `Some(exit code)` when one of those failed.
async fn replace(engine: &Engine, spec: &ServiceSpec, spec_id: &str, running: bool) -> Result<Option<i32>> {
    if running {
        // Someone else's container, or an older spec's: give it its grace period.
        println!("masctl: stopping the old container {} before replacing it", spec.container);
        engine.stop_container(&spec.container, spec.stop_timeout_secs).await?;
    }
    engine.remove_container(&spec.container).await?;
    for cmd in &spec.pre_start {
        let job = crate::docker::OneShot::like(spec, cmd.clone(), Some(spec.network.clone()));
        println!("masctl: running `{}` before {}", cmd.join(" "), spec.service);
        let code = engine.run_once_joining(&job, &format!("{}-pre", spec.service), &spec.extra_networks, &[]).await?;
        if code != 0 {
            eprintln!("masctl: `{}` exited with {code}; not starting {}", cmd.join(" "), spec.service);
            return Ok(Some(1));
        }
    }
    engine.create_and_start(spec, spec_id).await?;
    println!("masctl: started container {} from {}", spec.container, spec.image);
    Ok(None)
}

/// What one health observation means to the watch.
enum Verdict {
    Wait,
    Healthy,
    Dead,
}

/// The container being supervised, with what watching it needs.
struct Supervised {
    engine: Engine,
    spec: ServiceSpec,
    term: Signal,
    int: Signal,
    watch: Watch,
    logs: tokio::task::JoinHandle<()>,
}

impl Supervised {
    /// Checks the container every `period` until a stop request, its exit, or `judge`
    /// ends the watch: `None` once it is healthy, else the exit code for the process.
    async fn watch(
        &mut self,
        period: Duration,
        mut judge: impl FnMut(Health, &ServiceSpec) -> Verdict,
    ) -> Result<Option<i32>> {
        let (engine, spec) = (&self.engine, &self.spec);
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = self.term.recv() => return stop(engine, spec, &self.logs).await.map(Some),
                _ = self.int.recv() => return stop(engine, spec, &self.logs).await.map(Some),
                _ = tick.tick() => {
                    let Some(st) = self.watch.observe(engine, spec).await? else { continue };
                    if !st.running {
                        return exited(engine, spec, st.exit_code, &mut self.logs).await.map(Some);
                    }
                    match judge(health::health(&st, spec).await, spec) {
                        Verdict::Wait => {}
                        Verdict::Healthy => return Ok(None),
                        Verdict::Dead => {
                            eprintln!("masctl: {} turned unhealthy; stopping it so systemd restarts it", spec.container);
                            notify(&[sd_notify::NotifyState::Status("unhealthy")]);
                            stop(engine, spec, &self.logs).await?;
                            return Ok(Some(1));
                        }
                    }
                }
            }
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Watches the container through Docker API outages: an error skips the check
/// (backing off), it is never taken for a dead service.
#[derive(Default)]
struct Watch {
    down_since: Option<Instant>,
    next_try: Option<Instant>,
}

impl Watch {
    /// The container's state; `None` while Docker does not answer. An error only when
    /// the container is gone.
    async fn observe(&mut self, engine: &Engine, spec: &ServiceSpec) -> Result<Option<ContainerState>> {
        if self.next_try.is_some_and(|t| Instant::now() < t) {
            return Ok(None);
        }
        match engine.container_state(&spec.container).await {
            Ok(Some(st)) => {
                if let Some(t) = self.down_since.take() {
                    println!("masctl: the Docker engine answers again after {:.1}s", t.elapsed().as_secs_f64());
                }
                self.next_try = None;
                Ok(Some(st))
            }
            Ok(None) => bail!("container {} was removed behind masctl's back", spec.container),
            Err(e) => {
                let since = *self.down_since.get_or_insert_with(|| {
                    eprintln!(
                        "masctl: the Docker engine does not answer ({e:#}); {} keeps running, retrying",
                        spec.container
                    );
                    Instant::now()
                });
                let pause = since.elapsed().min(MAX_BACKOFF).max(Duration::from_millis(250));
                self.next_try = Some(Instant::now() + pause);
                Ok(None)
            }
        }
    }
}

/// Streams the container's output to ours until the container ends; when the stream
/// breaks while it still runs (dockerd restarting) it reconnects, from then on.
async fn forward_logs(engine: Engine, container: String, mut since: Option<i64>) {
    let mut pause = Duration::from_millis(200);
    loop {
        let mut logs = engine.follow_logs(&container, since);
        while let Some(Ok(chunk)) = logs.next().await {
            print_log(&chunk);
            pause = Duration::from_millis(200);
        }
        since = Some(now_secs());
        match engine.container_state(&container).await {
            Ok(Some(st)) if st.running => {}
            Ok(_) => return,
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn stop(engine: &Engine, spec: &ServiceSpec, logs: &tokio::task::JoinHandle<()>) -> Result<i32> {
    notify(&[sd_notify::NotifyState::Stopping]);
    println!("masctl: stopping {}", spec.container);
    let grace = Duration::from_secs(spec.stop_timeout_secs.into()) + Duration::from_secs(5);
    retrying("stopping the container", grace, || engine.stop_container(&spec.container, spec.stop_timeout_secs))
        .await?;
    logs.abort();
    engine.remove_container(&spec.container).await?;
    Ok(0)
}

async fn exited(engine: &Engine, spec: &ServiceSpec, code: i64, logs: &mut tokio::task::JoinHandle<()>) -> Result<i32> {
    // Let the log stream deliver the last lines before the container goes.
    let _ = tokio::time::timeout(Duration::from_secs(2), logs).await;
    engine.remove_container(&spec.container).await?;
    eprintln!("masctl: {} exited with status {code}", spec.container);
    // A service that ends by itself has failed, whatever its status says.
    Ok(if code == 0 { 1 } else { code.clamp(1, 255) as i32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adoption_table() {
        let st = |running: bool, paused: bool, label: Option<&str>| ContainerState {
            running,
            paused,
            spec_id: label.map(String::from),
            ..Default::default()
        };
        let cases = [
            (st(true, false, Some("abc-spec")), true),
            (st(true, false, Some("def-spec")), false),
            (st(true, false, None), false),
            (st(false, false, Some("abc-spec")), false),
            (st(true, true, Some("abc-spec")), false),
        ];
        for (state, want) in cases {
            assert_eq!(adoptable(&state, "abc-spec"), want, "{state:?}");
        }
    }
}
