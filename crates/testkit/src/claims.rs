//! Claims on what parallel test processes share (a network namespace's subnet, a port): a
//! file per resource under [`DIR`], created exclusively and holding the owner's pid. A claim
//! whose owner has exited is stale; [`sweep`] removes those, one sweeper at a time, so a
//! sweeper never removes a claim another made after the stale one went.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

pub(crate) const DIR: &str = "/run/shoal-testkit";

/// What came of a claim.
pub(crate) enum Claim {
    /// Ours until this process exits or removes the file.
    Ours(PathBuf),
    /// Another live process holds it.
    Taken,
    /// No claim can be made here (not root, say): the error.
    Unavailable(std::io::Error),
}

/// Claim `name` for this process. With `take_over_stale`, a claim whose owner has exited is
/// removed and made again as ours.
pub(crate) fn claim(name: &str, take_over_stale: bool) -> Claim {
    if let Err(e) = std::fs::create_dir_all(DIR) {
        return Claim::Unavailable(e);
    }
    let path = Path::new(DIR).join(name);
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                return match writeln!(file, "{}", std::process::id()) {
                    Ok(()) => Claim::Ours(path),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        Claim::Unavailable(e)
                    }
                };
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if !take_over_stale || !remove_if_stale(&path) {
                    return Claim::Taken;
                }
            }
            Err(e) => return Claim::Unavailable(e),
        }
    }
    Claim::Taken
}

/// Remove every stale claim.
pub(crate) fn sweep() {
    let _sweeping = lock("sweep.lock");
    let Ok(entries) = std::fs::read_dir(DIR) else {
        return;
    };
    for e in entries.flatten() {
        if stale(&e.path()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// An exclusive lock on `name` in [`DIR`] (in the temporary directory where [`DIR`] cannot
/// be written), held until dropped; `None` if no lock file can be opened at all.
pub(crate) fn lock(name: &str) -> Option<Flock<File>> {
    let open = |dir: &Path| {
        std::fs::create_dir_all(dir).ok()?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(name))
            .ok()
    };
    let file = open(Path::new(DIR)).or_else(|| open(&std::env::temp_dir()))?;
    Flock::lock(file, FlockArg::LockExclusive).ok()
}

fn remove_if_stale(path: &Path) -> bool {
    let _sweeping = lock("sweep.lock");
    stale(path) && std::fs::remove_file(path).is_ok()
}

/// A claim whose pid no longer runs (lock files and claims still being written hold none).
fn stale(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|pid| !crate::alive(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_claim_is_kept_and_a_stale_one_taken_over_only_when_asked() {
        let name = format!("test-claim-{}", std::process::id());
        let path = match claim(&name, true) {
            Claim::Ours(path) => path,
            Claim::Taken => panic!("a fresh name is taken"),
            // Not root: nothing to check here.
            Claim::Unavailable(_) => return,
        };
        assert!(matches!(claim(&name, true), Claim::Taken));

        // Its owner gone: a process that has exited.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        {
            // No other process's sweep in between.
            let _sweeping = lock("sweep.lock");
            std::fs::write(&path, format!("{dead}\n")).expect("write");
            assert!(matches!(claim(&name, false), Claim::Taken));
        }
        assert!(matches!(claim(&name, true), Claim::Ours(_)));
        let owner = std::fs::read_to_string(&path).expect("read");
        assert_eq!(owner.trim(), std::process::id().to_string());

        std::fs::write(&path, format!("{dead}\n")).expect("write");
        sweep();
        assert!(!path.exists(), "a stale claim is swept");
    }
}
