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

/// A running `web` service of one whoami task on a published port.
fn create_web(d: &Daemon) {
    let publish = format!("{}:80", free_port());
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
    create_web(&d);
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
        let out = create_stopped(&d, &name, &["--env", &env]);
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
    let again = create_stopped(&d, "again", &[]);
    assert!(again.stderr.contains("not enough disk space"), "{again:?}");

    // Room again: writes work at once, without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let after = create_stopped(&d, "after", &[]);
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
        d.stop();
        d.restart();
    }
}

/// `service create --detach --replicas 0 --name NAME EXTRA -- shoal whoami`: a write of the
/// cluster state and nothing else.
fn create_stopped(d: &Daemon, name: &str, extra: &[&str]) -> shoal_testkit::Output {
    let mut args = vec![
        "service",
        "create",
        "--detach",
        "--replicas",
        "0",
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "shoal", "whoami"]);
    d.cli(&args)
}

/// Every file of the node's data dir, as bytes, with its path.
fn data_files(d: &Daemon) -> Vec<(PathBuf, Vec<u8>)> {
    let mut paths = Vec::new();
    walk(&d.data_dir(), &mut paths);
    paths
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `strings state.redb` gave the cluster CA's private key, and the Raft log held it too.
#[test]
fn ca_key_and_join_secrets_are_not_on_disk_in_clear() {
    let d = Daemon::start_cluster(bin());
    let token = d.worker_token();
    let secret = token.rsplit('-').next().unwrap_or_default().to_string();
    assert!(secret.len() >= 16, "{token}");
    let out = d.cli(&[
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--env",
        "PASSWORD=hunter2hunter2",
        "--",
        "shoal",
        "whoami",
    ]);
    assert!(out.ok(), "{out:?}");
    let files = data_files(&d);
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(names.iter().any(|n| n.ends_with("state.redb")), "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("raft-log.redb")),
        "{names:?}"
    );
    for (path, bytes) in &files {
        if path.ends_with("certs/node-key.pem") {
            // The node's own key: root only, wrapped only with autolock (docs/security.md).
            continue;
        }
        for needle in [
            b"PRIVATE KEY".as_slice(),
            secret.as_bytes(),
            b"hunter2hunter2",
        ] {
            assert!(
                !contains(bytes, needle),
                "{} holds {:?} in clear",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// `shoal unlock` with `key` on standard input.
fn unlock(d: &Daemon, key: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(bin())
        .arg("-H")
        .arg(d.socket())
        .arg("unlock")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("shoal unlock");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "{key}");
    }
    let out = child.wait_with_output().expect("shoal unlock");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn autolocked_manager_starts_locked_until_unlocked() {
    let mut d = Daemon::start(bin());
    let init = d.init_with(&["--autolock"]);
    let key = init
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .expect("unlock key printed")
        .to_string();
    create_web(&d);
    let dir = d.data_dir();
    let node_key = dir.join("certs").join("node-key.pem");
    let wrapped = shoal_testkit::wait_until(std::time::Duration::from_secs(10), || {
        dir.join("state-key.locked").exists()
            && !dir.join("state-key").exists()
            && std::fs::read(&node_key).is_ok_and(|k| !contains(&k, b"PRIVATE KEY"))
    });
    assert!(
        wrapped,
        "the data key was not wrapped, or the node key not sealed"
    );

    d.stop();
    d.restart();
    let ls = d.cli(&["service", "ls"]);
    assert!(!ls.ok() && ls.stderr.contains("locked"), "{ls:?}");
    assert!(d.cli(&["info"]).stdout.contains("Locked"));
    let (ok, said) = unlock(&d, "SWMKEY-1-0000");
    assert!(!ok && said.contains("invalid unlock key"), "{said}");
    let (ok, said) = unlock(&d, &key);
    assert!(ok, "{said}\n{}", d.log());
    let running = shoal_testkit::wait_until(std::time::Duration::from_secs(20), || {
        let ls = d.cli(&["service", "ls"]);
        ls.ok() && ls.stdout.contains("1/1")
    });
    assert!(running, "{:?}\n{}", d.cli(&["service", "ls"]), d.log());
    let (ok, said) = unlock(&d, &key);
    assert!(!ok && said.contains("not locked"), "{said}");

    // Rotation: the old key stops working, the new one opens the next start.
    let before = std::fs::read_to_string(dir.join("state-key.locked")).expect("locked key");
    let rotated = d.cli(&["unlock-key", "--rotate", "-q"]);
    assert!(rotated.ok(), "{rotated:?}");
    let new_key = rotated.stdout.trim().to_string();
    assert!(
        new_key.starts_with("SWMKEY-1-") && new_key != key,
        "{new_key}"
    );
    assert_eq!(d.cli(&["unlock-key", "-q"]).stdout.trim(), new_key);
    // Wait until the file is rewrapped (its key ID changes): then a restart needs the new key.
    let rewrapped = shoal_testkit::wait_until(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(dir.join("state-key.locked"))
            .is_ok_and(|t| t.split(':').next() != before.split(':').next())
    });
    assert!(
        rewrapped,
        "the data key was not rewrapped with the new unlock key"
    );
    d.stop();
    d.restart();
    let (ok, said) = unlock(&d, &key);
    assert!(!ok && said.contains("invalid unlock key"), "{said}");
    let (ok, said) = unlock(&d, &new_key);
    assert!(ok, "{said}");
}

/// Failed joins were neither logged nor slowed down, so join tokens could be guessed as fast
/// as the network allowed.
#[test]
fn failed_join_is_logged_and_paced() {
    let m = Daemon::start_cluster(bin());
    let t = m.cli(&["join-token", "worker"]);
    assert!(t.ok(), "{t:?}");
    let manager = t
        .stdout
        .split_whitespace()
        .last()
        .expect("manager address")
        .to_string();
    let token = m.worker_token();
    // The right CA digest, a wrong secret.
    let (head, _) = token.rsplit_once('-').expect("token");
    let bad = format!("{head}-{}", "0".repeat(25));
    let nodes: Vec<Daemon> = (0..2).map(|_| Daemon::start(bin())).collect();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for n in &nodes {
            let (bad, manager) = (bad.clone(), manager.clone());
            s.spawn(move || {
                let out = n.cli(&["join", "--token", &bad, &manager]);
                assert!(
                    !out.ok() && out.stderr.contains("invalid join token"),
                    "{out:?}"
                );
            });
        }
    });
    // Answered one at a time, each after a pause of a second.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1900),
        "two failed joins took {:?}",
        started.elapsed()
    );
    assert!(m.log().contains("join refused"), "{}", m.log());
}

#[test]
fn autolock_turns_on_and_off_on_a_running_cluster() {
    let mut d = Daemon::start_cluster(bin());
    let dir = d.data_dir();
    let nothing = d.cli(&["update"]);
    assert!(
        !nothing.ok() && nothing.stderr.contains("nothing to update"),
        "{nothing:?}"
    );
    let on = d.cli(&["update", "--autolock=true"]);
    assert!(on.ok(), "{on:?}");
    let key = on
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .expect("unlock key printed")
        .to_string();
    assert!(shoal_testkit::wait_until(
        std::time::Duration::from_secs(10),
        || { dir.join("state-key.locked").exists() }
    ));
    d.stop();
    d.restart();
    assert!(d.cli(&["info"]).stdout.contains("Locked"));
    let (ok, said) = unlock(&d, &key);
    assert!(ok, "{said}");

    let off = d.cli(&["update", "--autolock=false"]);
    assert!(off.ok(), "{off:?}");
    let missing = d.cli(&["unlock-key"]);
    assert!(
        !missing.ok() && missing.stderr.contains("not enabled"),
        "{missing:?}"
    );
    assert!(shoal_testkit::wait_until(
        std::time::Duration::from_secs(10),
        || { dir.join("state-key").exists() && !dir.join("state-key.locked").exists() }
    ));
    d.stop();
    d.restart();
    let ls = d.cli(&["service", "ls"]);
    assert!(ls.ok(), "not locked any more: {ls:?}");
}
