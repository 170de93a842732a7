//! Health probes and the per-task check loop.
//!
//! Swarm's semantics: checks run every `interval`; failures during `start_period` do not
//! count; the first pass makes the task healthy. Any failure takes the task out of rotation
//! at once (`failing`); `retries` consecutive failures make it `unhealthy`, and the agent
//! stops it so the restart policy can replace it.

use shoal_api::{Health, HealthCheck, HealthProbe};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Run one probe against a task reachable on `port` (127.0.0.1) with environment `env`.
pub async fn probe(
    check: &HealthProbe,
    env: &[(String, String)],
    port: Option<u16>,
) -> Result<(), String> {
    match check {
        HealthProbe::Cmd { command } => {
            let status = tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(command)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("health command: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("health command exited with {status}"))
            }
        }
        HealthProbe::Tcp => {
            let port = port.ok_or("no port to probe")?;
            TcpStream::connect(("127.0.0.1", port))
                .await
                .map(|_| ())
                .map_err(|e| format!("tcp connect: {e}"))
        }
        HealthProbe::Http { path } => {
            let port = port.ok_or("no port to probe")?;
            let mut s = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("http connect: {e}"))?;
            let req = format!(
                "GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: shoal-health\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 64];
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            let head = String::from_utf8_lossy(&buf[..n]);
            let code: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("http status {code}"))
            }
        }
    }
}

/// Tracks consecutive results into a health state.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    started: Instant,
    start_period: Duration,
    retries: u32,
    failures: u32,
    pub state: Health,
}

impl HealthTracker {
    pub fn new(check: &HealthCheck, started: Instant) -> HealthTracker {
        HealthTracker {
            started,
            start_period: check.start_period,
            retries: check.retries.max(1),
            failures: 0,
            state: Health::Starting,
        }
    }

    /// Feed one probe result at `now`; returns the new state.
    pub fn record(&mut self, ok: bool, now: Instant) -> Health {
        if ok {
            self.failures = 0;
            self.state = Health::Healthy;
        } else if now.duration_since(self.started) < self.start_period
            && self.state == Health::Starting
        {
            // Failures in the start period do not count.
        } else {
            self.failures += 1;
            self.state = if self.failures >= self.retries {
                Health::Unhealthy
            } else {
                Health::Failing
            };
        }
        self.state
    }
}

/// Probe until the task is unhealthy or the receiver goes away, sending every change.
pub async fn run_checks(
    task_id: String,
    check: HealthCheck,
    env: Vec<(String, String)>,
    port: Option<u16>,
    events: mpsc::Sender<(String, Health, String)>,
) {
    let mut tracker = HealthTracker::new(&check, Instant::now());
    let mut last = Health::Starting;
    loop {
        tokio::time::sleep(check.interval).await;
        let result =
            match tokio::time::timeout(check.timeout, probe(&check.probe, &env, port)).await {
                Ok(r) => r,
                Err(_) => Err(format!("health check timed out after {:?}", check.timeout)),
            };
        let detail = result.as_ref().err().cloned().unwrap_or_default();
        let state = tracker.record(result.is_ok(), Instant::now());
        if state != last {
            last = state;
            if events.send((task_id.clone(), state, detail)).await.is_err() {
                return;
            }
        }
        if state == Health::Unhealthy {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(retries: u32, start_period_ms: u64) -> HealthCheck {
        let mut c = HealthCheck::new(HealthProbe::Tcp);
        c.retries = retries;
        c.start_period = Duration::from_millis(start_period_ms);
        c
    }

    #[test]
    fn tracker_table() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        type Case = (&'static str, HealthCheck, Vec<(bool, Instant)>, Vec<Health>);
        let cases: Vec<Case> = vec![
            (
                "first pass is healthy",
                check(3, 0),
                vec![(true, later)],
                vec![Health::Healthy],
            ),
            (
                "one failure takes it out of rotation",
                check(3, 0),
                vec![(true, later), (false, later)],
                vec![Health::Healthy, Health::Failing],
            ),
            (
                "retries used up is unhealthy",
                check(2, 0),
                vec![(false, later), (false, later)],
                vec![Health::Failing, Health::Unhealthy],
            ),
            (
                "a pass resets the count",
                check(2, 0),
                vec![(false, later), (true, later), (false, later)],
                vec![Health::Failing, Health::Healthy, Health::Failing],
            ),
            (
                "start period failures don't count",
                check(1, 10_000),
                vec![(false, t0), (false, t0), (true, t0)],
                vec![Health::Starting, Health::Starting, Health::Healthy],
            ),
        ];
        for (name, c, inputs, want) in cases {
            let mut t = HealthTracker::new(&c, t0);
            let got: Vec<Health> = inputs
                .into_iter()
                .map(|(ok, at)| t.record(ok, at))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[tokio::test]
    async fn probes_against_real_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 256];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let resp = if req.starts_with("GET /ok") {
                    "HTTP/1.0 200 OK\r\n\r\n"
                } else {
                    "HTTP/1.0 503 No\r\n\r\n"
                };
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        assert!(probe(&HealthProbe::Tcp, &[], Some(port)).await.is_ok());
        assert!(
            probe(&HealthProbe::Http { path: "/ok".into() }, &[], Some(port))
                .await
                .is_ok()
        );
        let err = probe(
            &HealthProbe::Http {
                path: "/bad".into(),
            },
            &[],
            Some(port),
        )
        .await
        .unwrap_err();
        assert!(err.contains("503"), "{err}");
        let env = vec![("X".to_string(), "1".to_string())];
        assert!(probe(
            &HealthProbe::Cmd {
                command: "test \"$X\" = 1".into()
            },
            &env,
            None
        )
        .await
        .is_ok());
        assert!(probe(
            &HealthProbe::Cmd {
                command: "exit 1".into()
            },
            &env,
            None
        )
        .await
        .is_err());
    }
}
