//! Kernel pipes for `splice(2)`, and a small pool that reuses empty ones.
//!
//! A pipe is the kernel-side buffer of one proxy direction: bytes are spliced from a socket
//! into the pipe and from the pipe into the other socket without entering user space. The
//! pool saves two `pipe2` and four `close` calls per connection, which shows in
//! connection-per-request load.

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Bytes asked for per splice; the default pipe (16 pages) holds 64 KiB.
const SPLICE_LEN: usize = 64 * 1024;

/// Empty pipes kept for reuse (two file descriptors each).
const MAX_IDLE: usize = 256;

/// A non-blocking pipe that knows how many bytes it holds.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    buffered: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(Pipe {
            read,
            write,
            buffered: 0,
        })
    }

    /// Bytes spliced in and not yet spliced out.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Splices up to 64 KiB from `src` into the pipe; `Ok(0)` is end of stream.
    pub(crate) fn fill_from(&mut self, src: impl AsFd) -> io::Result<usize> {
        let n = splice(src, None, &self.write, None, SPLICE_LEN, flags())?;
        self.buffered += n;
        Ok(n)
    }

    /// Splices what the pipe holds into `dst`, as much as `dst` takes now.
    pub(crate) fn drain_into(&mut self, dst: impl AsFd) -> io::Result<usize> {
        let n = splice(&self.read, None, dst, None, self.buffered, flags())?;
        self.buffered -= n;
        Ok(n)
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

/// The pipes of a mesh, at most `max` open at once (in use or idle), so they stay within
/// the descriptors the file-descriptor budget counted for them.
#[derive(Debug)]
pub(crate) struct PipePool {
    idle: Mutex<Vec<Pipe>>,
    open: AtomicUsize,
    max: usize,
}

impl Default for PipePool {
    fn default() -> Self {
        PipePool::new(usize::MAX)
    }
}

impl PipePool {
    /// A pool that keeps at most `max` pipes open.
    pub(crate) fn new(max: usize) -> PipePool {
        PipePool {
            idle: Mutex::default(),
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// An empty pipe, reused or new; an error when `max` pipes are open (the direction
    /// then copies through user space).
    pub(crate) fn take(&self) -> io::Result<Pipe> {
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(pipe) = reused {
            return Ok(pipe);
        }
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(io::Error::other("the mesh's pipes are all in use"));
        }
        Pipe::new().inspect_err(|_| {
            self.open.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Returns a pipe for reuse; one that still holds bytes (a connection that ended in an
    /// error) is closed instead, so a reused pipe never leaks one connection's data into another.
    pub(crate) fn give(&self, pipe: Pipe) {
        if pipe.buffered == 0 {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(pipe);
                return;
            }
        }
        drop(pipe);
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_only_empty_pipes() {
        let pool = PipePool::default();
        let mut dirty = pool.take().unwrap();
        dirty.buffered = 1;
        pool.give(dirty);
        assert_eq!(pool.idle.lock().unwrap().len(), 0);
        pool.give(pool.take().unwrap());
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        let _again = pool.take().unwrap();
        assert_eq!(pool.idle.lock().unwrap().len(), 0);
    }

    #[test]
    fn the_pool_keeps_no_more_pipes_open_than_its_cap() {
        let pool = PipePool::new(2);
        let (a, b) = (pool.take().unwrap(), pool.take().unwrap());
        assert!(pool.take().is_err(), "a third pipe is over the cap");
        pool.give(a);
        let c = pool.take().expect("the pooled pipe again");
        pool.give(b);
        pool.give(c);
        assert_eq!(pool.open.load(Ordering::Acquire), 2);
    }
}
