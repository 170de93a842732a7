//! Trust boundaries on one node: what a local user who is not root can read or use.

use shoal_testkit::{free_port, Daemon};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_shoal"))
}

/// Every file and directory under `dir`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        out.push(p.clone());
        if p.is_dir() && !p.is_symlink() {
            walk(&p, out);
        }
    }
}

/// Run `args` as the unprivileged user `nobody`.
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("setpriv")
}

/// The data dir was 0755 and keys, the state (holding the CA key) and task logs 0644: as
/// `nobody`, `strings state.redb` gave the CA key, and the node key gave root on every node.
#[test]
fn local_user_cannot_read_keys_or_use_the_node() {
    let d = Daemon::start_cluster(bin());
    let port = free_port().to_string();
    let publish = format!("{port}:80");
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--publish",
        &publish,
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "{out:?}");
    let client = d.dir.path().join("client");
    let out = d.cli(&["client-cert", "--out", client.to_str().unwrap_or_default()]);
    assert!(out.ok(), "{out:?}");
    // As if the data dir lived under a world-readable parent such as /var/lib.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let mut paths = Vec::new();
    walk(d.dir.path(), &mut paths);
    // The test's own capture of the daemon's output is not the daemon's file.
    paths.retain(|p| p.file_name().is_some_and(|n| n != "daemon.log"));
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    for must in [
        "node-key.pem",
        "state.redb",
        "raft-log.redb",
        "shoal.sock",
        ".log",
        "client/key.pem",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(must)),
            "no {must} in {names:?}"
        );
    }
    // Each path nobody can open (files), list (directories) or connect to (the socket).
    let script = r#"for f; do
        if [ -S "$f" ]; then continue
        elif [ -d "$f" ]; then ls "$f" >/dev/null 2>&1 && echo "$f"
        else cat "$f" >/dev/null 2>&1 && echo "$f"
        fi
    done"#;
    let mut args = vec!["sh", "-c", script, "sh"];
    args.extend(names.iter().map(String::as_str));
    let readable = as_nobody(&args);
    let readable = String::from_utf8_lossy(&readable.stdout).into_owned();
    assert!(readable.trim().is_empty(), "nobody can read:\n{readable}");

    let sock = d.socket();
    let api = as_nobody(&[
        bin().to_str().unwrap_or_default(),
        "-H",
        sock.to_str().unwrap_or_default(),
        "service",
        "ls",
    ]);
    let err = String::from_utf8_lossy(&api.stderr);
    assert!(
        !api.status.success() && err.contains("ermission denied"),
        "nobody used the API: {}{err}",
        String::from_utf8_lossy(&api.stdout)
    );
}

/// A file system mounted for one test, unmounted when dropped (lazily, so a daemon still
/// running on it does not keep it busy).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

/// On a 3 MB data dir a create failed with `No space left on device`, every later write
/// failed with `no quorum` even after space returned, until a restart; after the restart the
/// service the client was told had failed was there.
#[test]
fn disk_full_refuses_writes_and_recovers_without_restart() {
    let mut mount = None;
    let mut d = Daemon::start_with(bin(), &["--min-free-disk", "4M"], |data| {
        std::fs::create_dir_all(data).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(data)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mount tmpfs");
        mount = Some(Mount(data.to_path_buf()));
    });
    let _mount = mount;
    d.init();
    let data = d.data_dir();
    // Leave a little more than the 4 MiB the daemon keeps free.
    let filler = data.join("filler");
    let fill = free_bytes(&data).saturating_sub((4 << 20) + (512 << 10));
    std::fs::write(&filler, vec![0u8; fill as usize]).expect("fill");

    let env = format!("PAD={}", "x".repeat(4000));
    let mut refused = None;
    for i in 0..2000 {
        let name = format!("s{i}");
        let out = d.cli(&[
            "service",
            "create",
            "--detach",
            "--replicas",
            "0",
            "--name",
            &name,
            "--env",
            &env,
            "--",
            "shoal",
            "whoami",
        ]);
        if !out.ok() {
            refused = Some((name, out));
            break;
        }
    }
    let (name, out) = refused.expect("no write was refused on a nearly full disk");
    eprintln!("refused at {name}: {}", out.stderr.trim());
    assert!(
        out.stderr.contains("not enough disk space") && out.stderr.contains("nothing was written"),
        "{out:?}"
    );
    // Still refused, cleanly, while the disk stays full.
    let again = d.cli(&[
        "service", "create", "--detach", "--name", "again", "--", "shoal", "whoami",
    ]);
    assert!(again.stderr.contains("not enough disk space"), "{again:?}");

    // Room again: writes work at once, without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let after = d.cli(&[
        "service",
        "create",
        "--detach",
        "--replicas",
        "0",
        "--name",
        "after",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(after.ok(), "{after:?}\n{}", d.log());

    // The refused writes never happened, before or after a restart.
    for _ in 0..2 {
        let ls = d.cli(&["service", "ls"]);
        assert!(ls.ok(), "{ls:?}");
        let names: Vec<&str> = ls
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert!(names.contains(&"after"), "{names:?}");
        assert!(
            !names.contains(&name.as_str()) && !names.contains(&"again"),
            "{names:?}"
        );
        d.restart();
    }
}
