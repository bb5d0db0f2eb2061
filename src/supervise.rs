//! `masctl supervise SPEC`: the main process of a service unit. It owns one
//! container through the Docker API: removes a stale one, creates and starts it,
//! streams its output to the journal, says READY=1 only once it is healthy, stops it
//! with a grace period on SIGTERM, and exits with its status so `Restart=` works.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use tokio::signal::unix::{SignalKind, signal};

use crate::docker::{Engine, Health, print_log};
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

/// Returns the exit code for the process.
pub async fn run(spec_dir: &str) -> Result<i32> {
    let spec = read_spec(spec_dir)?;
    let engine = Engine::connect().await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    ensure_data_dirs(&spec)?;
    engine.ensure_network(&spec.network).await?;
    engine.remove_container(&spec.container).await?;
    for cmd in &spec.pre_start {
        let job = crate::docker::OneShot::like(&spec, cmd.clone(), Some(spec.network.clone()));
        println!("masctl: running `{}` before {}", cmd.join(" "), spec.service);
        let code = engine.run_once(&job, &format!("{}-pre", spec.service)).await?;
        if code != 0 {
            eprintln!("masctl: `{}` exited with {code}; not starting {}", cmd.join(" "), spec.service);
            return Ok(1);
        }
    }
    engine.create_and_start(&spec).await?;
    println!("masctl: started container {} from {}", spec.container, spec.image);

    let mut logs = engine.follow_logs(&spec.container);
    let log_task = tokio::spawn(async move {
        while let Some(Ok(chunk)) = logs.next().await {
            print_log(&chunk);
        }
    });

    // Until healthy: a stop request, an exit, or health.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = term.recv() => return stop(&engine, &spec, log_task).await,
            _ = int.recv() => return stop(&engine, &spec, log_task).await,
            _ = tick.tick() => {
                let st = engine.container_state(&spec.container).await?.context("the container disappeared")?;
                if !st.running {
                    return exited(&engine, &spec, st.exit_code, log_task).await;
                }
                let health = match &spec.health.http {
                    Some(probe) => http_probe(&engine, &spec, probe).await,
                    None => st.health,
                };
                // Before the first "healthy", keep waiting whatever the checks say: a
                // Synapse upgrade migrating its schema, or Postgres recovering, may
                // take longer than any start period. The unit's start timeout and the
                // switch's health gate bound the wait.
                if health == Health::Healthy {
                    break;
                }
            }
        }
    }
    for cmd in &spec.after_healthy {
        let code = engine.exec(&spec.container, cmd).await?;
        if code != 0 {
            eprintln!("masctl: `{}` in {} exited with {code}", cmd.join(" "), spec.container);
            stop(&engine, &spec, log_task).await?;
            return Ok(1);
        }
    }
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("healthy")]);
    println!("masctl: {} is healthy", spec.container);

    loop {
        tokio::select! {
            _ = term.recv() => return stop(&engine, &spec, log_task).await,
            _ = int.recv() => return stop(&engine, &spec, log_task).await,
            _ = tick.tick() => {
                match engine.container_state(&spec.container).await? {
                    Some(st) if st.running => {
                        // An HTTP-probed service is watched by systemd's restart of
                        // its process only; Docker reports its health as "none".
                        if st.health == Health::Unhealthy {
                            eprintln!("masctl: {} turned unhealthy; stopping it so systemd restarts it", spec.container);
                            stop(&engine, &spec, log_task).await?;
                            return Ok(1);
                        }
                    }
                    Some(st) => return exited(&engine, &spec, st.exit_code, log_task).await,
                    None => bail!("container {} was removed behind masctl's back", spec.container),
                }
            }
        }
    }
}

/// `healthy` when `GET http://<container ip>:<port><path>` answers 2xx, else `starting`.
async fn http_probe(engine: &Engine, spec: &ServiceSpec, probe: &crate::spec::HttpProbe) -> Health {
    let Ok(Some(ip)) = engine.container_ip(&spec.container, &spec.network).await else {
        return Health::Starting;
    };
    let url = format!("http://{ip}:{}{}", probe.port, probe.path);
    let ok = crate::docker::http_ok(url, Duration::from_millis(spec.health.timeout_ms)).await;
    if ok { Health::Healthy } else { Health::Starting }
}

async fn stop(engine: &Engine, spec: &ServiceSpec, logs: tokio::task::JoinHandle<()>) -> Result<i32> {
    notify(&[sd_notify::NotifyState::Stopping]);
    println!("masctl: stopping {}", spec.container);
    engine.stop_container(&spec.container, spec.stop_timeout_secs).await?;
    logs.abort();
    engine.remove_container(&spec.container).await?;
    Ok(0)
}

async fn exited(engine: &Engine, spec: &ServiceSpec, code: i64, logs: tokio::task::JoinHandle<()>) -> Result<i32> {
    // Let the log stream deliver the last lines before the container goes.
    let _ = tokio::time::timeout(Duration::from_secs(2), logs).await;
    engine.remove_container(&spec.container).await?;
    eprintln!("masctl: {} exited with status {code}", spec.container);
    // A service that ends by itself has failed, whatever its status says.
    Ok(if code == 0 { 1 } else { code.clamp(1, 255) as i32 })
}
