//! Crash-safe file writing shared by the local state backend and the file-backed simulated
//! cloud: atomic replacement through a temporary file, and the rules for recognising the
//! temporary files a killed process left behind. Knows nothing of what the files hold.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Distinguishes the temporary files of concurrent writes within one process.
static TEMP_SERIAL: AtomicU64 = AtomicU64::new(0);

/// How old a temporary file must be before it is taken for stale where this platform cannot
/// tell whether the process that wrote it still runs.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// The temporary file `write_atomic` writes before renaming it over `path`:
/// `.<file name>.tmp-<pid>-<serial>` in the same directory.
fn temp_path(path: &Path) -> PathBuf {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let serial = TEMP_SERIAL.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{file_name}.tmp-{}-{serial}", std::process::id()))
}

/// Write `bytes` to `path` so that readers see either the old or the new file, never a torn one:
/// a temporary file in the same directory (created with its parents), fsync, rename over `path`,
/// fsync of the directory. The temporary file is removed when any step fails.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// [`write_atomic`], with the content written by `fill` through a buffer instead of given
/// whole: a snapshot is streamed to the file, never held in memory in full.
pub(crate) fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let tmp = temp_path(path);
    let written = (|| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&tmp)?);
        fill(&mut w)?;
        let f = w.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable; not every platform lets a directory be opened.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The pid in the name of a temporary file `write_atomic` wrote for a file named `target`
/// (`.state.json.tmp-<pid>-<serial>`), or in the older form `<stem>.tmp<pid>` (`state.tmp<pid>`).
pub(crate) fn temp_file_pid(name: &str, target: &str) -> Option<u32> {
    if let Some(rest) = name.strip_prefix(&format!(".{target}.tmp-")) {
        let (pid, serial) = rest.split_once('-')?;
        return (serial.bytes().all(|b| b.is_ascii_digit()) && !serial.is_empty()).then(|| pid.parse().ok()).flatten();
    }
    let stem = Path::new(target).file_stem()?.to_str()?;
    let digits = name.strip_prefix(&format!("{stem}.tmp"))?;
    digits.parse().ok()
}

/// Whether the process `pid` is running: `None` where this platform cannot tell (no `/proc`).
pub(crate) fn pid_running(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// Remove `path`, a temporary file written by process `pid`, when that process is gone (or,
/// where that cannot be told, when the file is older than ten minutes). Returns whether it was
/// removed. Failures are ignored: a leftover is harmless, only untidy.
pub(crate) fn remove_if_stale(path: &Path, pid: u32) -> bool {
    let stale = match pid_running(pid) {
        Some(running) => !running,
        None => std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER),
    };
    stale && std::fs::remove_file(path).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_rename_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a non-empty directory fails on every platform.
        let target = dir.path().join("state.json");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        assert!(write_atomic(&target, b"{}").is_err());
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(names, ["state.json"], "the temporary file was removed");
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The temporary file's name is taken by a directory: creating it fails.
        let target = dir.path().join("cloud.json");
        let serial = TEMP_SERIAL.load(Ordering::Relaxed);
        for s in serial..serial + 64 {
            std::fs::create_dir(dir.path().join(format!(".cloud.json.tmp-{}-{s}", std::process::id()))).unwrap();
        }
        let before = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(write_atomic(&target, b"{}").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before, "nothing new left behind");
        assert!(!target.exists());
    }

    #[test]
    fn writes_replace_the_file_and_leave_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub").join("state.json");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(target.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn temporary_names_carry_the_writer_pid() {
        assert_eq!(temp_file_pid(".state.json.tmp-123-7", "state.json"), Some(123));
        assert_eq!(temp_file_pid("state.tmp456", "state.json"), Some(456));
        assert_eq!(temp_file_pid(".state.json.tmp-x-7", "state.json"), None);
        assert_eq!(temp_file_pid(".state.json.tmp-12-", "state.json"), None);
        assert_eq!(temp_file_pid("state.json", "state.json"), None);
        assert_eq!(temp_file_pid("journal.jsonl", "state.json"), None);
        assert_eq!(pid_running(std::process::id()), Some(true));
        if Path::new("/proc/self").exists() {
            // Above every pid_max Linux allows (2^22).
            assert_eq!(pid_running(u32::MAX - 1), Some(false));
        }
    }
}
