//! A service container's health, whatever checks it: Docker's own health check (a
//! command in the container), or an HTTP probe masctl makes itself for images with
//! no shell or client (MAS's is distroless, the proxy's has no HTTP client; Docker
//! reports those as "none"). Supervision, `status`, `doctor` and the switch's health
//! gate all ask here, so they agree.

use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::docker::{ContainerState, Engine, Health};
use crate::spec::ServiceSpec;

/// The container of `spec` with its real health, or `None` if there is none.
pub async fn service_state(engine: &Engine, spec: &ServiceSpec) -> Result<Option<ContainerState>> {
    let Some(mut st) = engine.container_state(&spec.container).await? else { return Ok(None) };
    st.health = health(&st, spec).await;
    Ok(Some(st))
}

/// The health of a container `spec` describes, given Docker's view of it: Docker's
/// health, or the verdict of one HTTP probe.
pub async fn health(st: &ContainerState, spec: &ServiceSpec) -> Health {
    let Some(probe) = &spec.health.http else { return st.health };
    if !st.running || st.paused {
        return if st.running { Health::Unhealthy } else { Health::None };
    }
    let ok = match st.addresses.get(&spec.network) {
        Some(ip) => {
            let url = format!("http://{ip}:{}{}", probe.port, probe.path);
            crate::docker::http_ok(url, Duration::from_millis(spec.health.timeout_ms)).await
        }
        None => false,
    };
    let running_for = st.started_at.and_then(|t| SystemTime::now().duration_since(t).ok());
    probe_verdict(ok, running_for, Duration::from_millis(spec.health.start_period_ms))
}

/// One probe's answer as a health, the way Docker counts its own checks: a failure
/// within the start period is still "starting".
pub fn probe_verdict(ok: bool, running_for: Option<Duration>, start_period: Duration) -> Health {
    if ok {
        Health::Healthy
    } else if running_for.is_none_or(|d| d < start_period) {
        Health::Starting
    } else {
        Health::Unhealthy
    }
}

/// Liveness of a ready service: how many checks in a row failed, and whether that
/// is enough to call it dead. Docker counts its own retries (its "unhealthy" is the
/// verdict); an HTTP probe's failures are counted here up to `retries`.
#[derive(Debug, Default)]
pub struct Liveness {
    failures: u32,
}

impl Liveness {
    /// Records one observation; true when the service must be restarted.
    pub fn dead_after(&mut self, health: Health, spec: &ServiceSpec) -> bool {
        if spec.health.http.is_none() {
            return health == Health::Unhealthy;
        }
        if health == Health::Healthy {
            self.failures = 0;
            return false;
        }
        self.failures += 1;
        self.failures >= spec.health.retries.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_verdict_table() {
        let period = Duration::from_secs(30);
        let cases = [
            (true, Some(Duration::from_secs(1)), Health::Healthy),
            (true, Some(Duration::from_secs(100)), Health::Healthy),
            (false, Some(Duration::from_secs(1)), Health::Starting),
            (false, None, Health::Starting),
            (false, Some(Duration::from_secs(31)), Health::Unhealthy),
        ];
        for (ok, running_for, want) in cases {
            assert_eq!(probe_verdict(ok, running_for, period), want, "{ok} {running_for:?}");
        }
    }

    fn spec(http: bool, retries: u32) -> ServiceSpec {
        let mut s = crate::docker::tests::spec(http);
        s.health.retries = retries;
        s
    }

    #[test]
    fn liveness_table() {
        use Health::*;
        let cases: [(bool, u32, &[Health], bool); 6] = [
            // An HTTP probe: `retries` failures in a row, a success resets the count.
            (true, 3, &[Unhealthy, Unhealthy], false),
            (true, 3, &[Unhealthy, Unhealthy, Unhealthy], true),
            (true, 3, &[Unhealthy, Unhealthy, Healthy, Unhealthy, Starting], false),
            (true, 0, &[Unhealthy], true),
            // Docker's check: its own "unhealthy" already counted the retries.
            (false, 3, &[Unhealthy], true),
            (false, 3, &[Starting, None, Healthy], false),
        ];
        for (http, retries, seen, want) in cases {
            let s = spec(http, retries);
            let mut l = Liveness::default();
            let dead = seen.iter().fold(false, |_, h| l.dead_after(*h, &s));
            assert_eq!(dead, want, "{http} {retries} {seen:?}");
        }
    }

    #[tokio::test]
    async fn docker_health_passes_through_and_probes_need_an_address() {
        let st = ContainerState { running: true, health: Health::Healthy, ..Default::default() };
        assert_eq!(health(&st, &spec(false, 1)).await, Health::Healthy);
        // Probed over HTTP but without an address on its network, long after start: unhealthy.
        let st = ContainerState {
            running: true,
            started_at: Some(SystemTime::now() - Duration::from_secs(60)),
            ..Default::default()
        };
        assert_eq!(health(&st, &spec(true, 1)).await, Health::Unhealthy);
        let paused = ContainerState { paused: true, ..st.clone() };
        assert_eq!(health(&paused, &spec(true, 1)).await, Health::Unhealthy);
        let stopped = ContainerState { running: false, ..st };
        assert_eq!(health(&stopped, &spec(true, 1)).await, Health::None);
    }
}
