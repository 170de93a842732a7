//! The local Docker Engine for container tests: whether it answers, and images built here
//! from our own binary (no registry is reachable).
//!
//! The images hold the `shoal` binary (stripped), `/bin/sh`, `sleep` and the libraries they
//! link, and run `shoal whoami` on `$PORT` by default. `app:1` and `app:2` differ only in an
//! environment variable (a rolling update between two tags); `app-healthy` and `app-sick`
//! carry a HEALTHCHECK that passes or fails; `app-tools` is `app:1` with `bash` (its
//! `/dev/tcp`) and `getent` (glibc's resolver, which reads the container's
//! `/etc/resolv.conf`), to reach services by name from inside a container. Tags carry a hash
//! of the binary, so a rebuilt binary gets fresh images and concurrent tests share them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Set to `1` (as `.ci/run` does) to make container tests fail, not skip, without an engine.
pub const REQUIRE_ENV: &str = "SHOAL_REQUIRE_DOCKER";

/// Label every container a test makes directly carries, so leftovers are easy to find.
pub const TEST_LABEL: &str = "com.shoal.test";

/// Whether the engine answers; the error says why not.
pub fn engine() -> Result<String, String> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `true` when container tests can run. Without an engine: panic when
/// `SHOAL_REQUIRE_DOCKER=1`, else print why the test is skipped and return `false`.
pub fn available() -> bool {
    match engine() {
        Ok(_) => true,
        Err(why) if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") => {
            panic!("container tests need a Docker Engine ({REQUIRE_ENV}=1): {why}")
        }
        Err(why) => {
            eprintln!("skipped: no Docker Engine ({why}); set {REQUIRE_ENV}=1 to fail instead");
            false
        }
    }
}

/// The test images, built once per binary.
#[derive(Debug, Clone)]
pub struct Images {
    pub v1: String,
    pub v2: String,
    pub healthy: String,
    pub sick: String,
    /// `v1` plus `bash` and `getent`.
    pub tools: String,
}

/// Build (or reuse) the test images from `bin`, the shoal binary under test.
pub fn images(bin: &Path) -> Images {
    let tag = binary_tag(bin);
    let name = |repo: &str| format!("shoal-test/{repo}:{tag}");
    let images = Images {
        v1: name("app-1"),
        v2: name("app-2"),
        healthy: name("app-healthy"),
        sick: name("app-sick"),
        tools: name("app-tools"),
    };
    let all = [
        &images.v1,
        &images.v2,
        &images.healthy,
        &images.sick,
        &images.tools,
    ];
    if all.iter().all(|i| exists(i)) {
        return images;
    }
    // One build at a time across the test processes: the others wait, then find the images.
    let _lock = crate::claims::lock("images.lock");
    if all.iter().all(|i| exists(i)) {
        return images;
    }
    let ctx = tempfile::tempdir().expect("build context");
    rootfs(bin, &ctx.path().join("rootfs"));
    // Only the tools image copies this second tree over the first.
    let tools = ctx.path().join("tools");
    std::fs::create_dir_all(tools.join("bin")).expect("tools");
    add_programs(
        &tools,
        &[("bin/bash", which("bash")), ("bin/getent", which("getent"))],
    );
    let build = |image: &str, extra: &str| {
        let dockerfile = format!(
            "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/bin\n{extra}\nCMD [\"shoal\", \"whoami\"]\n"
        );
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
        let out = Command::new("docker")
            .args(["build", "-q", "-t", image, "."])
            .env("DOCKER_BUILDKIT", "0")
            .current_dir(ctx.path())
            .output()
            .expect("docker build");
        assert!(
            out.status.success(),
            "docker build {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    build(&images.v1, "ENV APP_VERSION=1");
    build(&images.v2, "ENV APP_VERSION=2");
    build(
        &images.healthy,
        "HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD [\"/bin/sh\", \"-c\", \"exit 0\"]",
    );
    build(
        &images.sick,
        "HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD [\"/bin/sh\", \"-c\", \"exit 1\"]",
    );
    build(&images.tools, "ENV APP_VERSION=1\nCOPY tools/ /");
    images
}

fn exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tag from the binary's size and modification time (hashing 200 MB would be slow).
fn binary_tag(bin: &Path) -> String {
    let meta = std::fs::metadata(bin).expect("binary");
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("b{:x}", (mtime ^ u128::from(meta.len())) as u64)
}

/// A root filesystem with the stripped binary, a shell, `sleep` and their libraries.
fn rootfs(bin: &Path, root: &Path) {
    let usr_bin = root.join("usr/local/bin");
    std::fs::create_dir_all(&usr_bin).expect("rootfs");
    std::fs::create_dir_all(root.join("bin")).expect("rootfs");
    std::fs::create_dir_all(root.join("tmp")).expect("rootfs");
    std::fs::create_dir_all(root.join("etc")).expect("rootfs");
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .expect("passwd");
    let shoal = usr_bin.join("shoal");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&shoal)
        .arg(bin)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(bin, &shoal).expect("copy shoal");
    }
    add_programs(
        root,
        &[
            // Already there, stripped: only its libraries are wanted.
            ("usr/local/bin/shoal", bin.to_path_buf()),
            ("bin/sh", which("sh")),
            ("bin/sleep", which("sleep")),
        ],
    );
}

/// Copy each program to its path under `root` (unless it is there already), with the
/// shared libraries it links at their own paths.
fn add_programs(root: &Path, programs: &[(&str, PathBuf)]) {
    for (to, program) in programs {
        let to = root.join(to);
        if !to.exists() {
            std::fs::copy(program, &to).expect("copy program");
        }
        for lib in libraries(program) {
            let to = root.join(lib.strip_prefix("/").unwrap_or(&lib));
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).expect("lib dir");
            }
            // Follow symlinks: the image gets the files under their linked names.
            std::fs::copy(&lib, &to).expect("copy lib");
        }
    }
}

fn which(program: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return std::fs::canonicalize(&p).expect("canonical");
        }
    }
    panic!("{program} not found on this machine");
}

/// The shared libraries `program` loads, from `ldd`.
fn libraries(program: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(program).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// IDs of the containers labelled with `node_id` by shoal (running or not).
pub fn containers_of_node(node_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=com.shoal.node.id={node_id}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `docker inspect` of one container, as JSON.
pub fn inspect(id: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args(["inspect", id])
        .output()
        .expect("docker inspect");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.get(0).cloned().unwrap_or_default()
}

/// Force-remove every container shoal made for `node_id`, and the files it kept for them
/// (test cleanup).
pub fn remove_node_containers(node_id: &str) {
    let ids = containers_of_node(node_id);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .output();
    }
    // The secrets and configs the node kept for its containers (the agent's `files`).
    if !node_id.is_empty() {
        let _ = std::fs::remove_dir_all(Path::new("/dev/shm/shoal").join(node_id));
    }
}

/// `docker exec CONTAINER sh -c SCRIPT`: its output, or why it failed.
pub fn exec_sh(id: &str, script: &str) -> Result<String, String> {
    let out = Command::new("docker")
        .args(["exec", id, "sh", "-c", script])
        .output()
        .map_err(|e| format!("cannot run docker exec: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether the engine has a volume of this name.
pub fn volume_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Remove a volume a test made through a mount (the engine keeps named volumes after their
/// container is removed); whether it is gone.
pub fn remove_volume(name: &str) -> bool {
    let _ = Command::new("docker")
        .args(["volume", "rm", "-f", name])
        .output();
    !volume_exists(name)
}
