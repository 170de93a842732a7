//! Services of containers on the real Docker Engine of this machine, driven through the real
//! CLI, with images built here from our own binary (`shoal_testkit::docker`). Without an
//! engine these tests skip and say why, unless `SHOAL_REQUIRE_DOCKER=1` (set by `.ci/run`).

use shoal_testkit::docker::{self, Images};
use shoal_testkit::{free_port, wait_until, Daemon, Load};
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// Generous: image work on a busy 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// A single-node cluster whose containers are removed however the test ends.
struct Node {
    d: Daemon,
    id: String,
    images: Images,
}

impl Drop for Node {
    fn drop(&mut self) {
        docker::remove_node_containers(&self.id);
    }
}

fn node() -> Option<Node> {
    if !docker::available() {
        return None;
    }
    let images = docker::images(bin());
    let d = Daemon::start_cluster(bin());
    let id = d.node_id();
    Some(Node { d, id, images })
}

impl Node {
    fn create(&self, name: &str, image: &str, extra: &[&str]) {
        let mut args = vec!["service", "create", "--name", name];
        args.extend_from_slice(extra);
        args.push(image);
        let out = self.d.cli(&args);
        assert!(out.ok(), "{out:?}\n{}", self.d.log());
    }

    fn tasks(&self, service: &str) -> Vec<serde_json::Value> {
        self.d
            .json(&["service", "ps", service, "--format", "json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Container IDs of the service's running tasks.
    fn running_containers(&self, service: &str) -> HashSet<String> {
        self.tasks(service)
            .iter()
            .filter(|t| t["status"]["state"] == "running" && t["desired_state"] == "running")
            .filter_map(|t| t["status"]["runtime"]["container"]["id"].as_str())
            .map(str::to_string)
            .collect()
    }

    fn containers(&self) -> usize {
        docker::containers_of_node(&self.id).len()
    }
}

fn names(port: u16, n: usize) -> HashSet<String> {
    shoal_testkit::whoami_names(std::net::SocketAddr::from(([127, 0, 0, 1], port)), n)
}

#[test]
fn a_published_container_service_answers_round_robin_scales_and_leaves_nothing() {
    let Some(n) = node() else { return };
    let port = free_port();
    let publish = format!("{port}:80");
    n.create(
        "web",
        &n.images.v1,
        &[
            "--replicas",
            "3",
            "--publish",
            &publish,
            "--limit-memory",
            "64M",
            "--limit-cpu",
            "0.5",
            "--limit-pids",
            "100",
        ],
    );
    assert!(
        wait_until(WAIT, || names(port, 9).len() == 3),
        "three replicas answer: {:?}\n{}",
        names(port, 9),
        n.d.log()
    );
    let ls = n.d.cli(&["service", "ls"]).stdout;
    assert!(
        ls.contains("IMAGE") && ls.contains("shoal-test/app-1"),
        "{ls}"
    );
    let ps = n.d.cli(&["service", "ps", "web"]).stdout;
    assert!(ps.contains("shoal-test/app-1"), "{ps}");
    let ids = n.running_containers("web");
    assert_eq!(ids.len(), 3);
    let c = docker::inspect(ids.iter().next().expect("one"));
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["com.shoal.service.name"], "web");
    assert_eq!(labels["com.shoal.node.id"], n.id.as_str());
    assert!(labels["com.shoal.task.slot"].is_string());
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(
        c["HostConfig"]["Memory"],
        64 << 20,
        "limits reach the engine"
    );
    assert_eq!(c["HostConfig"]["NanoCpus"], 500_000_000);
    assert_eq!(c["HostConfig"]["PidsLimit"], 100);

    assert!(n.d.cli(&["service", "scale", "web=1"]).ok());
    assert!(
        wait_until(WAIT, || n.containers() == 1),
        "scaled down: {} containers",
        n.containers()
    );
    assert!(n.d.cli(&["service", "scale", "web=2"]).ok());
    assert!(wait_until(WAIT, || names(port, 6).len() == 2));
    assert!(n.d.cli(&["service", "rm", "web"]).ok());
    assert!(
        wait_until(WAIT, || n.containers() == 0),
        "service rm leaves no container: {}",
        n.containers()
    );
}

#[test]
fn a_killed_container_is_replaced() {
    let Some(n) = node() else { return };
    n.create("solo", &n.images.v1, &["--restart-delay", "0s"]);
    assert!(wait_until(WAIT, || n.running_containers("solo").len() == 1));
    let first = n.running_containers("solo");
    let id = first.iter().next().expect("one").clone();
    let out = Command::new("docker")
        .args(["kill", &id])
        .output()
        .expect("docker kill");
    assert!(out.status.success());
    assert!(
        wait_until(WAIT, || {
            let now = n.running_containers("solo");
            now.len() == 1 && now != first
        }),
        "replaced: {:?}",
        n.tasks("solo")
    );
    let ps = n.d.cli(&["service", "ps", "solo"]).stdout;
    assert!(ps.contains("\\_ solo.1"), "history row: {ps}");
    assert!(ps.contains("killed by signal 9"), "{ps}");
    assert!(
        wait_until(WAIT, || n.containers() == 1),
        "the dead container is removed"
    );
}

#[test]
fn a_missing_image_or_bind_source_is_rejected_with_the_engines_message() {
    let Some(n) = node() else { return };
    n.create("ghost", "shoal-test/no-such-image:9", &["--detach"]);
    let rejected = || {
        n.tasks("ghost")
            .into_iter()
            .find(|t| t["status"]["state"] == "rejected")
    };
    assert!(
        wait_until(WAIT, || rejected().is_some()),
        "{:?}",
        n.tasks("ghost")
    );
    let task = rejected().expect("rejected task");
    let err = task["status"]["err"].as_str().unwrap_or_default();
    assert!(
        err.contains("shoal-test/no-such-image:9") && err.contains("could not be pulled"),
        "{err}"
    );
    assert_eq!(n.containers(), 0, "nothing half-created");

    // A bind mount of a path the node lacks: the engine refuses to create the container.
    let missing = format!("/nonexistent-shoal-test-{}", std::process::id());
    let mount = format!("type=bind,source={missing},target=/data");
    n.create("nobind", &n.images.v1, &["--detach", "--mount", &mount]);
    let rejected = || {
        n.tasks("nobind")
            .into_iter()
            .any(|t| t["status"]["state"] == "rejected")
    };
    assert!(
        wait_until(WAIT, rejected),
        "{:?}\n{}",
        n.tasks("nobind"),
        n.d.log()
    );
    let ps = n.d.cli(&["service", "ps", "--no-trunc", "nobind"]).stdout;
    assert!(
        ps.contains(&format!("bind source path does not exist: {missing}")),
        "{ps}"
    );
    assert_eq!(n.containers(), 0, "nothing half-created");
}

#[test]
fn daemon_kill9_and_restart_adopts_the_same_containers() {
    let Some(mut n) = node() else { return };
    let port = free_port();
    let publish = format!("{port}:80");
    n.create(
        "web",
        &n.images.v1,
        &["--replicas", "2", "--publish", &publish],
    );
    assert!(wait_until(WAIT, || n.running_containers("web").len() == 2));
    let before = n.running_containers("web");
    let started: Vec<String> = before
        .iter()
        .map(|id| docker::inspect(id)["State"]["StartedAt"].to_string())
        .collect();
    let tasks_before = n.tasks("web").len();
    n.d.kill9();
    n.d.restart();
    assert!(
        wait_until(WAIT, || names(port, 6).len() == 2),
        "serving again after the restart\n{}",
        n.d.log()
    );
    assert!(wait_until(WAIT, || n.running_containers("web") == before));
    let after: Vec<String> = before
        .iter()
        .map(|id| docker::inspect(id)["State"]["StartedAt"].to_string())
        .collect();
    assert_eq!(started, after, "the same containers, not restarted");
    assert_eq!(n.containers(), 2, "no duplicate");
    assert_eq!(n.tasks("web").len(), tasks_before, "no replacement task");
    assert!(n.d.log().contains("task adopted after restart"));
    // The Docker API still shows each task at its own container's address.
    let ips: std::collections::BTreeSet<String> = before
        .iter()
        .map(|id| {
            let c = docker::inspect(id);
            c["NetworkSettings"]["IPAddress"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let (code, _, body) = n.d.http("GET", "/v1.44/tasks");
    assert_eq!(code, 200, "{body}");
    let tasks: serde_json::Value = serde_json::from_str(&body).expect("tasks");
    let shown: std::collections::BTreeSet<String> = tasks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["Status"]["State"] == "running")
        .filter_map(|t| t["NetworksAttachments"][0]["Addresses"][0].as_str())
        .filter_map(|a| a.split_once('/').map(|(ip, _)| ip.to_string()))
        .collect();
    assert_eq!(shown, ips, "{body}");
}

#[test]
fn rolling_update_between_image_tags_under_load_fails_no_request() {
    let Some(n) = node() else { return };
    for order in ["stop-first", "start-first"] {
        let port = free_port();
        let publish = format!("{port}:80");
        let name = format!("roll-{order}");
        n.create(
            &name,
            &n.images.v1,
            &[
                "--replicas",
                "3",
                "--publish",
                &publish,
                "--update-order",
                order,
            ],
        );
        assert!(wait_until(WAIT, || names(port, 9).len() == 3));
        let load = Load::start(port);
        std::thread::sleep(Duration::from_millis(300));
        let out =
            n.d.cli(&["service", "update", "--image", &n.images.v2, &name]);
        assert!(out.ok(), "{out:?}");
        std::thread::sleep(Duration::from_millis(300));
        let report = load.finish();
        assert!(report.sent > 20, "{report:?}");
        assert_eq!(report.failed, 0, "{order}: {report:?}");
        let live = n.running_containers(&name);
        assert_eq!(live.len(), 3);
        for id in &live {
            let env = docker::inspect(id)["Config"]["Env"].to_string();
            assert!(env.contains("APP_VERSION=2"), "{order}: {env}");
        }
        assert!(n.d.cli(&["service", "rm", &name]).ok());
    }
}

#[test]
fn an_update_to_an_image_whose_health_check_fails_rolls_back_and_exits_non_zero() {
    let Some(n) = node() else { return };
    let port = free_port();
    let publish = format!("{port}:80");
    n.create(
        "hc",
        &n.images.healthy,
        &["--replicas", "2", "--publish", &publish],
    );
    assert!(wait_until(WAIT, || {
        n.tasks("hc")
            .iter()
            .filter(|t| t["status"]["health"] == "healthy")
            .count()
            == 2
    }));
    let out = n.d.cli(&[
        "service",
        "update",
        "--image",
        &n.images.sick,
        "--update-failure-action",
        "rollback",
        "hc",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let svc = n.d.json(&["service", "inspect", "hc"]);
    assert_eq!(
        svc[0]["update_status"]["state"], "rollback_completed",
        "{svc:#}"
    );
    assert_eq!(
        svc[0]["spec"]["task"]["runtime"]["container"]["image"],
        n.images.healthy.as_str()
    );
    assert!(wait_until(WAIT, || names(port, 6).len() == 2));
}

/// Three nodes on this machine's loopback sharing its one engine: each node touches only
/// the containers labelled with its own node ID. Each mesh binds its own loopback address
/// (127.0.0.1-3), so all three can publish the same port. Tasks run on the two workers; a
/// client reaches both through the manager's mesh, which forwards to the workers' host
/// ports.
#[test]
fn container_tasks_on_two_nodes_are_reached_through_a_third_nodes_mesh() {
    if !docker::available() {
        return;
    }
    let images = docker::images(bin());
    let start = |ip: &str| Daemon::start_at(bin(), ip);
    let m = start("127.0.0.1");
    m.init();
    let token = m.worker_token();
    let workers: Vec<Daemon> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|mesh| {
            let w = start(mesh);
            let listen = format!("{mesh}:{}", free_port());
            let out = w.cli(&[
                "join",
                "--token",
                &token,
                "--listen-addr",
                &listen,
                "--advertise-addr",
                mesh,
                &m.control_addr(),
            ]);
            assert!(out.ok(), "join: {out:?}\n{}", w.log());
            w
        })
        .collect();
    let ids: Vec<String> = workers.iter().map(Daemon::node_id).collect();
    let _cleanup: Vec<Cleanup> = ids
        .iter()
        .chain([m.node_id()].iter())
        .map(|id| Cleanup(id.clone()))
        .collect();
    for id in &ids {
        let out = m.cli(&["node", "update", "--label-add", "role=web", id]);
        assert!(out.ok(), "{out:?}");
    }
    let port = free_port();
    let publish = format!("{port}:80");
    let out = m.cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "4",
        "--publish",
        &publish,
        "--constraint",
        "node.labels.role==web",
        &images.v1,
    ]);
    assert!(out.ok(), "{out:?}\n{}", m.log());
    for id in &ids {
        assert!(
            wait_until(WAIT, || docker::containers_of_node(id).len() == 2),
            "two containers labelled with node {id}"
        );
    }
    assert!(docker::containers_of_node(&m.node_id()).is_empty());
    // Through the manager's mesh (127.0.0.1), which runs none of the tasks.
    let via = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let seen: HashSet<String> = shoal_testkit::whoami_names(via, 16);
    assert_eq!(
        seen.len(),
        4,
        "all four tasks answer through the third node: {seen:?}"
    );
    assert!(m.cli(&["service", "rm", "web"]).ok());
    for id in &ids {
        assert!(
            wait_until(WAIT, || docker::containers_of_node(id).is_empty()),
            "node {id} removed its containers"
        );
    }
}

/// Removes a node's containers however the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        docker::remove_node_containers(&self.0);
    }
}

/// The executor conformance suite every executor passes, against the real engine.
#[test]
fn the_container_executor_passes_the_conformance_suite() {
    if !docker::available() {
        return;
    }
    let images = docker::images(bin());
    let node_id = format!("conformance-{}", std::process::id());
    let _cleanup = Cleanup(node_id.clone());
    let logs = tempfile::tempdir().expect("logs");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let exec = shoal_agent::ContainerExecutor::connect(
            &shoal_agent::docker_host(None),
            &node_id,
            "conformance",
            logs.path(),
            shoal_agent::LogRotation::default(),
        )
        .await
        .expect("engine");
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("com.shoal.node.id".to_string(), node_id.clone());
        let fixture = shoal_agent::conformance::Fixture {
            dir: logs.path(),
            workdir: "/tmp".into(),
            container: Some(shoal_agent::ContainerLaunch {
                image: images.v1.clone(),
                entrypoint: None,
                labels,
                ports: vec![],
                stop_signal: "SIGTERM".into(),
                ..Default::default()
            }),
        };
        shoal_agent::conformance::run_all(&exec, &fixture).await;
    });
}

/// `docker service create` options reach the container; a host-mode port is bound by the
/// engine on the task's node.
#[test]
fn container_options_and_host_mode_publishing_reach_the_container() {
    let Some(n) = node() else { return };
    let port = free_port();
    let env_file = tempfile::NamedTempFile::new().expect("env file");
    std::fs::write(env_file.path(), "# comment\nFROM_FILE=yes\n").expect("write env file");
    let publish = format!("mode=host,published={port},target=8080");
    let env_path = env_file.path().display().to_string();
    // A directory of the node to bind (readable by the container's user), a named volume
    // (which the engine keeps after the container: removed at the end) and a tmpfs.
    let data = tempfile::tempdir().expect("bind source");
    std::fs::write(data.path().join("hello"), "from the node\n").expect("write bind file");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bind = format!(
        "type=bind,source={},target=/data,readonly",
        data.path().display()
    );
    let volume = format!("shoal-test-opts-{}", std::process::id());
    let _volume = VolumeCleanup {
        node: n.id.clone(),
        name: volume.clone(),
    };
    let named = format!("type=volume,source={volume},target=/cache,volume-label=team=a");
    n.create(
        "opts",
        &n.images.healthy,
        &[
            "--publish",
            &publish,
            "--env",
            "PORT=8080",
            "--env-file",
            &env_path,
            "--user",
            "nobody",
            "--hostname",
            "web-{{.Task.Slot}}",
            "--init",
            "--read-only",
            "--container-label",
            "team=a",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "MKNOD",
            "--no-healthcheck",
            "--mount",
            &bind,
            "--mount",
            &named,
            "--mount",
            "type=tmpfs,target=/scratch,tmpfs-size=1m",
            "--ulimit",
            "nofile=1024:2048",
        ],
    );
    assert!(
        wait_until(WAIT, || names(port, 2).len() == 1),
        "host-mode port answers\n{}",
        n.d.log()
    );
    let id = n
        .running_containers("opts")
        .into_iter()
        .next()
        .expect("running");
    let c = docker::inspect(&id);
    assert_eq!(c["Config"]["User"], "nobody");
    assert_eq!(c["Config"]["Hostname"], "web-1");
    assert_eq!(c["Config"]["Labels"]["team"], "a");
    assert_eq!(
        c["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert!(c["Config"]["Env"].to_string().contains("FROM_FILE=yes"));
    assert_eq!(c["HostConfig"]["Init"], true);
    assert_eq!(c["HostConfig"]["ReadonlyRootfs"], true);
    assert!(c["HostConfig"]["CapAdd"].to_string().contains("NET_ADMIN"));
    assert!(c["HostConfig"]["CapDrop"].to_string().contains("MKNOD"));
    let task = &n.tasks("opts")[0];
    assert!(task["status"]["health"].is_null(), "no check: {task}");

    // Mounts and ulimits as the engine took them, and as the container sees them.
    let mount = |target: &str| {
        c["HostConfig"]["Mounts"]
            .as_array()
            .and_then(|all| all.iter().find(|m| m["Target"] == target).cloned())
            .unwrap_or_else(|| panic!("no mount at {target}: {:#}", c["HostConfig"]))
    };
    let (b, v, t) = (mount("/data"), mount("/cache"), mount("/scratch"));
    assert_eq!(b["Type"], "bind");
    assert_eq!(b["Source"], data.path().display().to_string());
    assert_eq!(b["ReadOnly"], true);
    assert_eq!(v["Type"], "volume");
    assert_eq!(v["Source"], volume.as_str());
    assert_eq!(v["VolumeOptions"]["Labels"]["team"], "a");
    assert_eq!(t["Type"], "tmpfs");
    assert_eq!(t["TmpfsOptions"]["SizeBytes"], 1 << 20);
    let mounted = c["Mounts"].to_string();
    assert!(mounted.contains(&volume), "{mounted}");
    assert!(
        docker::volume_exists(&volume),
        "the engine created the volume"
    );
    assert_eq!(
        c["HostConfig"]["Ulimits"],
        serde_json::json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
    );
    let inside =
        |script: &str| docker::exec_sh(&id, script).unwrap_or_else(|e| panic!("{script}: {e}"));
    assert_eq!(
        inside("read -r line < /data/hello; echo \"$line\""),
        "from the node\n"
    );
    // The container's own process, as the engine started it (a `docker exec`'d shell may
    // not get the container's limits: runc's exec can leave the soft limit raised to the
    // hard one).
    let limits = inside(
        "while read -r l; do case $l in 'Max open files'*) echo \"$l\";; esac; done < /proc/1/limits",
    );
    let fields: Vec<&str> = limits.split_whitespace().collect();
    assert_eq!(fields[3..], ["1024", "2048", "files"], "{limits}");
    assert_eq!(
        inside("echo w > /scratch/f && read -r x < /scratch/f && echo \"$x\""),
        "w\n",
        "the tmpfs is writable on a read-only root"
    );
    assert!(
        docker::exec_sh(&id, "echo x > /data/hello").is_err(),
        "the bind mount is read-only"
    );

    let pretty = n.d.cli(&["service", "inspect", "--pretty", "opts"]).stdout;
    assert!(
        pretty.contains("Target:\t/cache") && pretty.contains("Ulimits:\tnofile=1024:2048"),
        "{pretty}"
    );

    // A process service cannot take container options: one line, nothing created.
    for option in [["--user", "nobody"], ["--mount", "type=tmpfs,target=/t"]] {
        let mut args = vec!["service", "create", "--name", "p"];
        args.extend(option);
        args.extend(["--", "shoal", "whoami"]);
        let out = n.d.cli(&args);
        assert!(!out.ok());
        assert!(out.stderr.contains("need an image"), "{}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    }

    assert!(n.d.cli(&["service", "rm", "opts"]).ok());
    assert!(
        wait_until(WAIT, || n.containers() == 0),
        "container removed"
    );
    assert!(docker::remove_volume(&volume), "volume {volume} removed");
}

/// Removes a volume a test's service created, after the node's containers, however the
/// test ends.
struct VolumeCleanup {
    node: String,
    name: String,
}

impl Drop for VolumeCleanup {
    fn drop(&mut self) {
        docker::remove_node_containers(&self.node);
        docker::remove_volume(&self.name);
    }
}

/// A service's `--health-cmd` runs in the container, as the engine's HEALTHCHECK (the
/// image has no `/usr/bin`, the node does): a passing one makes the task healthy, a
/// failing one makes it fail, never healthy.
#[test]
fn a_health_cmd_of_a_container_service_runs_in_the_container() {
    let Some(n) = node() else { return };
    let check = |cmd: &'static str| {
        [
            "--health-cmd",
            cmd,
            "--health-interval",
            "1s",
            "--health-timeout",
            "10s",
            "--health-retries",
            "2",
        ]
    };
    let mut ok = check("test ! -e /usr/bin").to_vec();
    ok.push("--detach");
    n.create("inside", &n.images.v1, &ok);
    let mut sick = check("test -e /usr/bin").to_vec();
    sick.extend(["--restart-condition", "none", "--detach"]);
    n.create("outside", &n.images.v1, &sick);

    let healthy = |service: &str| {
        n.tasks(service)
            .iter()
            .any(|t| t["status"]["state"] == "running" && t["status"]["health"] == "healthy")
    };
    assert!(
        wait_until(WAIT, || healthy("inside")),
        "{:?}\n{}",
        n.tasks("inside"),
        n.d.log()
    );
    let id = n
        .running_containers("inside")
        .into_iter()
        .next()
        .expect("running");
    let hc = &docker::inspect(&id)["Config"]["Healthcheck"];
    assert_eq!(
        hc["Test"],
        serde_json::json!(["CMD-SHELL", "test ! -e /usr/bin"])
    );
    assert_eq!(hc["Interval"], 1_000_000_000u64);
    assert_eq!(hc["Timeout"], 10_000_000_000u64);
    assert_eq!(hc["Retries"], 2);

    let failed = || {
        n.tasks("outside")
            .into_iter()
            .find(|t| t["status"]["state"] == "failed")
    };
    assert!(
        wait_until(WAIT, || failed().is_some()),
        "{:?}\n{}",
        n.tasks("outside"),
        n.d.log()
    );
    let task = failed().expect("failed task");
    let err = task["status"]["err"].as_str().unwrap_or_default();
    assert!(err.contains("unhealthy"), "{task}");
    assert!(!healthy("outside"), "{:?}", n.tasks("outside"));
    assert!(
        wait_until(WAIT, || docker::containers_of_node(&n.id).len() == 1),
        "the failed task's container is removed"
    );
}

/// A container task finds its secret at /run/secrets/<name> and its config at the target,
/// read-only, templates expanded; the files leave the node's tmpfs with the task.
#[test]
fn a_container_gets_its_secret_and_config_as_read_only_files() {
    let Some(n) = node() else { return };
    let secret = n.d.docker_with_input(
        &["secret", "create", "db_password", "-"],
        b"s3cret-in-a-file",
    );
    assert!(secret.ok(), "{secret:?}");
    let config = n.d.docker_with_input(
        &[
            "config",
            "create",
            "--template-driver",
            "golang",
            "app",
            "-",
        ],
        b"task={{.Service.Name}}.{{.Task.Slot}}",
    );
    assert!(config.ok(), "{config:?}");
    let create = n.d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "vault",
        "--secret",
        "db_password",
        "--config",
        "source=app,target=/etc/app.conf,mode=0400",
        &n.images.v1,
    ]);
    assert!(create.ok(), "{create:?}");
    let up = wait_until(WAIT, || n.running_containers("vault").len() == 1);
    assert!(up, "{:?}\n{}", n.tasks("vault"), n.d.log());
    let id = n
        .running_containers("vault")
        .into_iter()
        .next()
        .expect("a container");
    let inside =
        |script: &str| docker::exec_sh(&id, script).unwrap_or_else(|e| panic!("{script}: {e}"));
    assert_eq!(
        inside("read -r l < /run/secrets/db_password; echo \"$l\""),
        "s3cret-in-a-file\n"
    );
    assert_eq!(
        inside("read -r l < /etc/app.conf; echo \"$l\""),
        "task=vault.1\n"
    );
    assert!(
        docker::exec_sh(&id, "echo x > /run/secrets/db_password").is_err(),
        "the secret is read-only"
    );
    let c = docker::inspect(&id);
    let mounts = c["Mounts"].to_string();
    assert!(mounts.contains("/dev/shm/shoal/"), "{mounts}");
    let files = Path::new("/dev/shm/shoal").join(&n.id);
    assert!(n.d.docker(&["service", "rm", "vault"]).ok());
    let gone = wait_until(WAIT, || {
        std::fs::read_dir(&files).map_or(true, |mut d| d.next().is_none())
    });
    assert!(gone, "task files left in {}", files.display());
}
