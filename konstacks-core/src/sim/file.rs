//! The file of a persistent simulated cloud, shared by every process that opens it: an
//! exclusive OS lock on a sibling lock file (`<file>.lock`) around every call, the file's bytes
//! read under that lock (so a process sees what the others did), and atomic replacement of the
//! file after a change, still under the lock. What the bytes mean is the caller's business.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::base::fs;

/// Where a persistent simulated cloud lives, and how it is locked.
#[derive(Debug)]
pub(crate) struct SimPath {
    pub(crate) path: PathBuf,
    lock_path: PathBuf,
    /// Whether temporary files left by killed processes were looked for already.
    swept: AtomicBool,
}

/// The lock on the file (released when dropped) and the bytes read under it.
#[derive(Debug)]
pub(crate) struct Held {
    /// `None` when nothing needed locking (a read while the file does not exist).
    lock: Option<File>,
    /// The file's content; `None` when there is no file.
    pub(crate) bytes: Option<Vec<u8>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(f) = &self.lock {
            // Closing the file releases the lock too; unlocking first only makes it prompt.
            let _ = f.unlock();
        }
    }
}

impl SimPath {
    pub(crate) fn new(path: PathBuf) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "sim-cloud".into());
        let lock_path = path.with_file_name(format!("{name}.lock"));
        Self { path, lock_path, swept: AtomicBool::new(false) }
    }

    fn open_lock_file(&self, create_dir: bool) -> std::io::Result<File> {
        if create_dir {
            if let Some(dir) = self.lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
        }
        // Never truncated, never removed: removing a lock file others may hold open would let
        // two processes hold "the" lock at once.
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.lock_path)
    }

    fn read(&self, lock: Option<File>) -> std::io::Result<Held> {
        if lock.is_some() && !self.swept.swap(true, Ordering::Relaxed) {
            self.sweep();
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Held { lock, bytes })
    }

    /// Wait for the lock, then read the file. A read (`mutating == false`) of a file that does
    /// not exist locks nothing and creates nothing. Blocks: call it off the async runtime.
    pub(crate) fn acquire_blocking(&self, mutating: bool) -> std::io::Result<Held> {
        if !mutating && !self.path.exists() {
            return Ok(Held { lock: None, bytes: None });
        }
        let f = self.open_lock_file(mutating)?;
        f.lock()?;
        self.read(Some(f))
    }

    /// Take the lock if nobody holds it, then read the file; `None` when it is held.
    pub(crate) fn try_acquire_blocking(&self) -> std::io::Result<Option<Held>> {
        if !self.path.exists() {
            return Ok(Some(Held { lock: None, bytes: None }));
        }
        let f = self.open_lock_file(false)?;
        match f.try_lock() {
            Ok(()) => self.read(Some(f)).map(Some),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Replace the file with `bytes` (atomically), under the lock `held`.
    pub(crate) fn write_blocking(&self, held: &Held, bytes: &[u8]) -> std::io::Result<()> {
        if held.lock.is_none() {
            return Err(std::io::Error::other("the simulated cloud's file is written only under its lock"));
        }
        fs::write_atomic(&self.path, bytes)
    }

    /// Remove temporary files of this file whose writer is gone (killed between writing and
    /// renaming). Called once per process, under the lock.
    fn sweep(&self) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else { return };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let name = name.to_string_lossy();
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            if let Some(pid) = fs::temp_file_pid(&e.file_name().to_string_lossy(), &name) {
                if fs::remove_if_stale(&e.path(), pid) {
                    tracing::debug!(file = %e.path().display(), pid, "removed a temporary file left by a process that is gone");
                }
            }
        }
    }
}
