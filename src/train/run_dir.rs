//! A run directory that nothing can corrupt: an exclusive lock held for the whole run
//! (a second process fails at once, naming the holder), new runs only into empty
//! directories unless told to overwrite, and every file written atomically through a
//! uniquely named temporary file that is removed on failure.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The lock file; it stays in the directory (an empty or stale one is harmless: the
/// lock is the kernel's `flock`, released when the holder exits, however it exits).
pub const LOCK_FILE: &str = ".lock";

/// How a run may use its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// A new run: the directory must be empty or absent.
    New,
    /// A new run replacing whatever the directory holds (it is cleared first).
    Overwrite,
    /// Continue the run the directory holds.
    Resume,
}

/// A locked run directory.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    // Held for the lifetime of the run; closing it releases the lock. `None` for a
    // follower (another rank of a distributed run), which writes nothing.
    _lock: Option<File>,
}

/// A new run was pointed at a directory that holds files (how to go on depends on the
/// caller: `rbd train` has `--resume` and `--overwrite`, a sweep continues what is there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupied {
    /// The directory.
    pub path: PathBuf,
    /// What it holds (the first few names).
    pub holds: String,
}

impl std::fmt::Display for Occupied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} already holds a run ({})",
            self.path.display(),
            self.holds
        )
    }
}

impl std::error::Error for Occupied {}

/// What a directory holds apart from the lock file.
fn entries(path: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name != LOCK_FILE {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Checks, without writing anything, that `path` can take a run as `claim` asks;
/// called before slow work (data loading) so a mistake costs nothing.
pub fn precheck(path: &Path, claim: Claim) -> Result<()> {
    match claim {
        Claim::New => {
            if path.exists() {
                if !path.is_dir() {
                    bail!("{} exists and is not a directory", path.display());
                }
                let held = entries(path)?;
                if !held.is_empty() {
                    return Err(Occupied {
                        path: path.to_path_buf(),
                        holds: preview(&held),
                    }
                    .into());
                }
            }
            // A finished run kept in its folder's pack is a run there too.
            if super::record::is_packed(path) {
                return Err(Occupied {
                    path: path.to_path_buf(),
                    holds: format!("a finished run, in {}", super::pack::PACK),
                }
                .into());
            }
        }
        Claim::Overwrite => {
            if path.exists() && !path.is_dir() {
                bail!("{} exists and is not a directory", path.display());
            }
        }
        Claim::Resume => {
            // A sealed or packed run is a run too (it is reopened to be extended).
            if !path.join("config.json").is_file()
                && !path.join(super::record::SEALED).is_file()
                && !super::record::is_packed(path)
            {
                bail!("no run to resume at {} (no config.json)", path.display());
            }
        }
    }
    Ok(())
}

fn preview(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    if names.len() > shown.len() {
        format!("{}, …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl RunDir {
    /// Creates (if needed) and locks `path`, then checks it against `claim` under the
    /// lock; `Overwrite` clears it.
    pub fn claim(path: &Path, claim: Claim) -> Result<RunDir> {
        precheck(path, claim)?;
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let lock = lock(path)?;
        // Re-check under the lock: another process may have written meanwhile.
        precheck(path, claim)?;
        if claim == Claim::Overwrite {
            super::pack::remove(path)?;
            for name in entries(path)? {
                let p = path.join(&name);
                let removed = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                removed.with_context(|| format!("clearing {}", p.display()))?;
            }
        }
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: Some(lock),
        })
    }

    /// The run directory as seen by a rank other than 0 of a distributed run: read
    /// (to resume) but neither locked nor written; [`RunDir::write`] does nothing.
    pub fn follow(path: &Path) -> RunDir {
        RunDir {
            path: path.to_path_buf(),
            _lock: None,
        }
    }

    /// Whether this process writes the directory (false for a follower).
    pub fn writes(&self) -> bool {
        self._lock.is_some()
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file of the run.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `data` to the run's file `name` atomically (a follower writes nothing).
    pub fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        if !self.writes() {
            return Ok(());
        }
        write_atomic(&self.file(name), data)
    }
}

#[cfg(unix)]
fn lock(dir: &Path) -> Result<File> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // The lock belongs to the open file, which a child process shares from its fork to
    // its exec: a run this process released is still held while another thread starts
    // a program. So when the holder named is this process, wait a moment for that.
    let own = format!("pid {} ", std::process::id());
    let patience = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        // SAFETY: flock on a file descriptor we own.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            break;
        }
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        let holder = holder.trim();
        if holder.starts_with(&own) && std::time::Instant::now() < patience {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        bail!(
            "{} is in use by another rbd process{}; wait for it to finish or use another directory",
            dir.display(),
            if holder.is_empty() {
                String::new()
            } else {
                format!(" ({holder})")
            }
        );
    }
    let me = format!(
        "pid {} since {} s after the Unix epoch",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    file.set_len(0)?;
    file.write_all(me.as_bytes())?;
    Ok(file)
}

#[cfg(not(unix))]
fn lock(dir: &Path) -> Result<File> {
    // Without flock: an exclusive create, removed by the run's end.
    let path = dir.join(LOCK_FILE);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("{} is in use by another rbd process", dir.display()))
}

/// Whether another process holds the run directory's lock right now (a run in
/// progress). Reads only: creates no lock file where there is none.
#[cfg(unix)]
pub fn in_use(dir: &Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .open(dir.join(LOCK_FILE))
    else {
        return false;
    };
    // SAFETY: flock on a file descriptor we own; a shared lock we take is released
    // when `file` is dropped.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}

/// Whether another process holds the run directory's lock (the lock file exists).
#[cfg(not(unix))]
pub fn in_use(dir: &Path) -> bool {
    dir.join(LOCK_FILE).exists()
}

/// Writes `data` to `path` through a uniquely named temporary file in the same
/// directory, fsync and rename; the temporary file is removed if anything fails.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> Result<()> {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(data)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("flushing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rbd-rundir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_new_run_refuses_a_used_directory_and_overwrite_clears_it() {
        let d = scratch("claim");
        {
            let r = RunDir::claim(&d, Claim::New).unwrap();
            r.write("metrics.csv", b"x").unwrap();
        }
        let e = RunDir::claim(&d, Claim::New).unwrap_err().to_string();
        assert!(
            e.contains("already holds a run") && e.contains("metrics.csv"),
            "{e}"
        );
        assert_eq!(std::fs::read(d.join("metrics.csv")).unwrap(), b"x");
        {
            let _r = RunDir::claim(&d, Claim::Overwrite).unwrap();
            assert!(!d.join("metrics.csv").exists());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_second_claim_fails_at_once_naming_the_holder() {
        let d = scratch("lock");
        let _held = RunDir::claim(&d, Claim::New).unwrap();
        let e = RunDir::claim(&d, Claim::Overwrite).unwrap_err().to_string();
        assert!(e.contains("in use by another rbd process"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(_held);
        assert!(RunDir::claim(&d, Claim::Overwrite).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_shared_with_a_child_before_its_exec_is_waited_for() {
        let d = scratch("fork");
        let held = RunDir::claim(&d, Claim::New).unwrap();
        // SAFETY: the child only sleeps and exits (async-signal-safe calls), holding
        // the lock's descriptor as a child between fork and exec does.
        let child = unsafe { libc::fork() };
        if child == 0 {
            unsafe {
                libc::usleep(300_000);
                libc::_exit(0);
            }
        }
        drop(held);
        let t = std::time::Instant::now();
        let again = RunDir::claim(&d, Claim::Overwrite);
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(again.is_ok(), "{:?}", again.err());
        assert!(t.elapsed() >= std::time::Duration::from_millis(200));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let d = scratch("tmp");
        std::fs::create_dir_all(d.join("target-is-a-dir")).unwrap();
        std::fs::write(d.join("target-is-a-dir").join("f"), b"keep").unwrap();
        // Renaming a file over a non-empty directory fails.
        assert!(write_atomic(&d.join("target-is-a-dir"), b"data").is_err());
        let leftovers: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
