//! A real daemon process in a temporary directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What a CLI run printed and how it exited.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

#[derive(Debug)]
pub struct Daemon {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The node's address: 127.0.0.1, or its namespace's address.
    pub ip: String,
    /// Port of the load-balancer health endpoint (`GET /healthz`).
    pub health_port: u16,
    /// Network namespace the daemon runs in, if any.
    netns: Option<String>,
    /// More `shoal daemon` flags.
    extra: Vec<String>,
    /// Soft and hard `RLIMIT_NOFILE` the daemon starts with, if not the test's own.
    fd_limit: Option<u64>,
    child: Option<Child>,
}

impl Daemon {
    /// Start a daemon (not yet in a cluster) and wait until its API answers.
    pub fn start(bin: &Path) -> Daemon {
        Daemon::launch(bin, "127.0.0.1".into(), crate::free_port(), None, None)
    }

    /// Start a daemon on loopback address `ip` (its mesh and health endpoint bind there), so
    /// several daemons on this machine's own network can publish the same port.
    pub fn start_at(bin: &Path, ip: &str) -> Daemon {
        Daemon::launch(bin, ip.to_string(), crate::free_port(), None, None)
    }

    /// Start a daemon (not yet in a cluster) whose soft and hard file-descriptor limits are
    /// both `nofile` (set by `prlimit`, util-linux), so it cannot raise them.
    pub fn start_with_fd_limit(bin: &Path, nofile: u64) -> Daemon {
        Daemon::launch(
            bin,
            "127.0.0.1".into(),
            crate::free_port(),
            None,
            Some(nofile),
        )
    }

    /// Start a daemon inside network namespace `i` of `net`, listening on its address.
    pub fn start_in(bin: &Path, net: &crate::TestNet, i: usize) -> Daemon {
        Daemon::launch(
            bin,
            net.ip(i).to_string(),
            2378,
            Some(net.ns(i).to_string()),
            None,
        )
    }

    /// Start a daemon with more `shoal daemon` flags, after `prepare` has been given its data
    /// dir's path (not created yet) to set up, e.g. to mount a small file system there.
    pub fn start_with(bin: &Path, extra: &[&str], prepare: impl FnOnce(&Path)) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(&dir.path().join("data"));
        let mut d = Daemon::new(bin, dir, "127.0.0.1".into(), crate::free_port(), None, None);
        d.extra = extra.iter().map(|a| a.to_string()).collect();
        d.spawn();
        d
    }

    fn launch(
        bin: &Path,
        ip: String,
        health_port: u16,
        netns: Option<String>,
        fd_limit: Option<u64>,
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon::new(bin, dir, ip, health_port, netns, fd_limit);
        d.spawn();
        d
    }

    /// A daemon not started yet.
    fn new(
        bin: &Path,
        dir: tempfile::TempDir,
        ip: String,
        health_port: u16,
        netns: Option<String>,
        fd_limit: Option<u64>,
    ) -> Daemon {
        let socket = dir.path().join("shoal.sock");
        Daemon {
            bin: bin.to_path_buf(),
            dir,
            socket,
            ip,
            health_port,
            netns,
            extra: Vec::new(),
            fd_limit,
            child: None,
        }
    }

    /// Start a daemon and make it a single-node cluster.
    pub fn start_cluster(bin: &Path) -> Daemon {
        let d = Daemon::start(bin);
        d.init();
        d
    }

    /// `shoal init` on this node's address (control port: 2377 in a namespace, a free
    /// loopback port otherwise).
    pub fn init(&self) -> Output {
        self.init_with(&[])
    }

    /// `shoal init` with extra flags.
    pub fn init_with(&self, extra: &[&str]) -> Output {
        let port = if self.netns.is_some() {
            2377
        } else {
            crate::free_port()
        };
        let listen = format!("{}:{port}", self.ip);
        let mut args = vec![
            "init",
            "--listen-addr",
            &listen,
            "--advertise-addr",
            &self.ip,
        ];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert!(out.ok(), "init failed: {out:?}\n{}", self.log());
        out
    }

    /// The worker join token, from this manager.
    pub fn worker_token(&self) -> String {
        self.join_token("worker")
    }

    /// The join token for `role` (`worker` or `manager`), from this manager.
    pub fn join_token(&self, role: &str) -> String {
        let out = self.cli(&["join-token", role, "-q"]);
        assert!(out.ok(), "join-token failed: {out:?}");
        out.stdout.trim().to_string()
    }

    /// The manager's control port address (`IP:PORT`), once it is in a cluster.
    pub fn control_addr(&self) -> String {
        self.json(&["info", "--format", "json"])["managers"][0]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// This node's ID.
    pub fn node_id(&self) -> String {
        self.json(&["info", "--format", "json"])["node_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        // ip netns exec NS prlimit --nofile=N:N -- shoal daemon ...: each wrapper execs the next.
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns].map(Into::into));
        }
        if let Some(n) = self.fd_limit {
            argv.extend([
                "prlimit".into(),
                format!("--nofile={n}:{n}").into(),
                "--".into(),
            ]);
        }
        argv.push(self.bin.clone().into());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        // VIPs and DNS live on an interface of the node's host: only a node in a network
        // namespace of the test's own has them, never the machine running the tests.
        if self.netns.is_none() {
            cmd.args(["daemon", "--vip-interface", "off"]);
        } else {
            cmd.arg("daemon");
        }
        let child = cmd
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--socket")
            .arg(&self.socket)
            .arg("--mesh-bind")
            .arg(&self.ip)
            .arg("--health-addr")
            .arg(format!("{}:{}", self.ip, self.health_port))
            .args(&self.extra)
            .env("SHOAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn daemon");
        self.child = Some(child);
        let up = crate::wait_until(Duration::from_secs(10), || self.cli(&["info"]).ok());
        assert!(up, "daemon did not come up: {}", self.log());
    }

    /// The daemon's own log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The API socket (for CLI calls from other threads).
    pub fn socket(&self) -> PathBuf {
        self.socket.clone()
    }

    /// Is the daemon process running (not killed or stopped by the test)?
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Run `shoal -H <socket> ARGS...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.bin)
            .arg("-H")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run shoal");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run the real `docker` CLI against this daemon's socket (`DOCKER_HOST`), with a
    /// config dir of its own so the machine's contexts and settings play no part.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_with_input(args, b"")
    }

    /// [`Daemon::docker`] with `input` on the command's stdin (`docker secret create s -`).
    pub fn docker_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let config = self.dir.path().join("docker-config");
        let mut child = Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", &config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker");
        if let Some(mut stdin) = child.stdin.take() {
            // A command that reads nothing closes its end early: not an error here.
            let _ = stdin.write_all(input);
        }
        let out = child.wait_with_output().expect("run docker");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The daemon's own directory (its data dir, socket, log and docker CLI config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A raw HTTP request to the daemon's socket (`curl --unix-socket`): the status line's
    /// code, the response headers and the body. For routes no CLI command reaches.
    pub fn http(&self, method: &str, path: &str) -> (u16, String, String) {
        self.http_with(method, path, None)
    }

    /// [`Daemon::http`] with a JSON request body.
    pub fn http_with(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
        let mut cmd = Command::new("curl");
        // `-X HEAD` would wait for the body the length header announces.
        match method {
            "HEAD" => cmd.args(["-s", "-I", "--max-time", "30", "--unix-socket"]),
            _ => cmd.args([
                "-s",
                "-i",
                "--max-time",
                "30",
                "-X",
                method,
                "--unix-socket",
            ]),
        };
        cmd.arg(&self.socket).arg(format!("http://localhost{path}"));
        if let Some(body) = body {
            cmd.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        let out = cmd.stdin(Stdio::null()).output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, head.to_owned(), body.to_owned())
    }

    /// Run `shoal -H <socket> ARGS...`, giving up (and killing it) after `limit`: `None`
    /// if it did not finish in time. For commands with short output.
    pub fn cli_within(&self, args: &[&str], limit: Duration) -> Option<Output> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-H").arg(&self.socket).args(args);
        run_within(&mut cmd, limit)
    }

    /// Run a CLI command that prints JSON and parse it.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(out.ok(), "shoal {args:?} failed: {out:?}");
        serde_json::from_str(&out.stdout).expect("json output")
    }

    /// Tasks of a service (all, history included).
    pub fn tasks(&self, service: &str) -> Vec<serde_json::Value> {
        match self.json(&["service", "ps", service, "--format", "json"]) {
            serde_json::Value::Array(v) => v,
            other => panic!("unexpected {other}"),
        }
    }

    /// The first published port and the VIP of `service`, as `service inspect` shows them.
    pub fn published_and_vip(&self, service: &str) -> (u16, String) {
        let svc = self.json(&["service", "inspect", service]);
        let published = svc[0]["ports"][0]["published"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("no published port in {svc}"));
        let vip = svc[0]["vip"]
            .as_str()
            .unwrap_or_else(|| panic!("no VIP in {svc}"))
            .to_string();
        (published, vip)
    }

    /// Tasks observed running.
    pub fn running_tasks(&self, service: &str) -> Vec<serde_json::Value> {
        self.tasks(service)
            .into_iter()
            .filter(|t| t["status"]["state"] == "running" && t["desired_state"] == "running")
            .collect()
    }

    /// Live tasks wanted running, per slot of `service` (a converged slot has one).
    pub fn wanted_per_slot(&self, service: &str) -> HashMap<u64, usize> {
        let mut per = HashMap::new();
        for t in self.tasks(service) {
            let live = !matches!(
                t["status"]["state"].as_str(),
                Some("complete" | "shutdown" | "failed" | "rejected" | "remove" | "orphaned")
            );
            if live && t["desired_state"] == "running" {
                *per.entry(t["slot"].as_u64().unwrap_or(0)).or_default() += 1;
            }
        }
        per
    }

    /// Kill the daemon with SIGKILL (its tasks die with it).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop with SIGTERM and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
            let exited = crate::wait_until(Duration::from_secs(20), || {
                matches!(c.try_wait(), Ok(Some(_)))
            });
            if !exited {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    /// Start again on the same data dir and socket.
    pub fn restart(&mut self) {
        self.spawn();
    }
}

/// Run `cmd`, giving up (and killing it) after `limit`: `None` if it did not finish in
/// time. For commands with short output (it is read once the command exits).
pub fn run_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    let done = crate::wait_until(limit, || matches!(child.try_wait(), Ok(Some(_))));
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    let out = child.wait_with_output().expect("command output");
    Some(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
