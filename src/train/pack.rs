//! The finished runs of one folder in one file: an artefact's `runs/`, a tune search's
//! trials, a peer cell's seeds.
//!
//! A sealed run ([`super::record`]) is one `run.json.gz` per run, so an artefact of 40
//! runs is 40 files. Once sealed, a run joins its folder's pack, [`PACK`]: one gzip
//! member per run, each the JSON line `{"rbd_run_record": 1, "run": NAME, "files":
//! {…}}` (the sealed record and the run's directory name), in name order. So `zcat`
//! reads a pack as JSON Lines, a run joining it leaves every other member's bytes as
//! they were (git stores the difference, not the pack again), and the bytes depend on
//! the records alone. The run's `run.json.gz` is removed only once the pack has been
//! read back and found to hold it; a run leaves the pack only to be extended
//! ([`take`]). Writers hold the folder's lock: two sweeps finishing runs of one folder
//! at once both land.

use super::record::{Sealed, FORMAT, SEALED};
use super::run_dir::write_atomic;
use anyhow::{bail, Context, Result};
use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The pack of a folder's finished runs.
pub const PACK: &str = "sealed-runs.jsonl.gz";

/// The lock a writer of a folder's pack holds (beside the runs' own `.lock`s).
const PACK_LOCK: &str = ".pack.lock";

/// One member: a run's directory name and its sealed record.
#[derive(Serialize, Deserialize)]
struct Line {
    rbd_run_record: u32,
    run: String,
    files: BTreeMap<String, String>,
}

/// A run in a pack: its record and the member's bytes as they are in the file.
#[derive(Debug)]
pub struct Member {
    /// The run's records.
    pub sealed: Sealed,
    bytes: Vec<u8>,
}

/// A pack's runs by directory name.
#[derive(Debug, Default)]
pub struct Pack {
    /// Run name → member, in name order.
    pub runs: BTreeMap<String, Member>,
}

/// The pack that holds (or would hold) the run in `dir`, and the run's name in it.
pub fn location(dir: &Path) -> Option<(PathBuf, String)> {
    let name = dir.file_name()?.to_str()?.to_string();
    Some((dir.parent()?.join(PACK), name))
}

/// The pack holding the run in `dir`, if its folder's pack has it.
pub fn find(dir: &Path) -> Result<Option<(Arc<Pack>, String)>> {
    let Some((path, name)) = location(dir) else {
        return Ok(None);
    };
    if !path.is_file() {
        return Ok(None);
    }
    let pack = load(&path)?;
    Ok(pack.runs.contains_key(&name).then_some((pack, name)))
}

/// The names of the runs in `folder`'s pack (none without one); a damaged pack is an
/// error naming it.
pub fn names(folder: &Path) -> Result<Vec<String>> {
    let path = folder.join(PACK);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    Ok(load(&path)?.runs.keys().cloned().collect())
}

/// What identifies a version of a file on disk: a pack is rewritten by rename, so a
/// new version has another inode (and usually another size or time).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Result<Stamp> {
    let m = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode,
    })
}

type Cache = BTreeMap<PathBuf, (Stamp, Arc<Pack>)>;

/// Packs decoded in this process: a summary reads each run's records several times.
static CACHE: Mutex<Cache> = Mutex::new(BTreeMap::new());

/// Reads the pack at `path` (decoded once per version of the file), naming the file in
/// every error.
pub fn load(path: &Path) -> Result<Arc<Pack>> {
    let now = stamp(path)?;
    if let Some((s, pack)) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
        if *s == now {
            return Ok(pack.clone());
        }
    }
    let pack = Arc::new(read(path)?);
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_path_buf(), (now, pack.clone()));
    Ok(pack)
}

/// Reads and decodes the pack at `path`, past the cache (what [`load`] does once per
/// version of the file), naming the file in every error.
pub fn read(path: &Path) -> Result<Pack> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode(&bytes).with_context(|| format!("{}: not a pack of sealed runs", path.display()))
}

fn decode(mut rest: &[u8]) -> Result<Pack> {
    let mut pack = Pack::default();
    let mut index = 0;
    while !rest.is_empty() {
        index += 1;
        let start = rest;
        let mut gz = GzDecoder::new(rest);
        let mut json = String::new();
        gz.read_to_string(&mut json)
            .with_context(|| format!("member {index}: gzip"))?;
        rest = gz.into_inner();
        let bytes = start[..start.len() - rest.len()].to_vec();
        let line: Line =
            serde_json::from_str(&json).with_context(|| format!("member {index}: JSON"))?;
        if line.rbd_run_record != FORMAT {
            bail!(
                "member {index}: format {} (this rbd reads format {FORMAT})",
                line.rbd_run_record
            );
        }
        check_name(&line.run).with_context(|| format!("member {index}"))?;
        let sealed = Sealed {
            rbd_run_record: line.rbd_run_record,
            files: line.files,
        };
        if pack
            .runs
            .insert(line.run.clone(), Member { sealed, bytes })
            .is_some()
        {
            bail!("member {index}: a second run named {:?}", line.run);
        }
    }
    Ok(pack)
}

/// A run or record name must name a file in its folder, nothing else.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("{name:?} is not a plain file name");
    }
    Ok(())
}

fn encode(run: &str, sealed: &Sealed) -> Result<Vec<u8>> {
    let line = Line {
        rbd_run_record: sealed.rbd_run_record,
        run: run.to_string(),
        files: sealed.files.clone(),
    };
    let mut json = serde_json::to_vec(&line)?;
    json.push(b'\n');
    // The gzip header's time stays 0, so the bytes depend on the records alone.
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&json)?;
    Ok(gz.finish()?)
}

/// Writes `runs` as the pack at `path` (removes it when there are none), reads it back
/// and checks that it holds exactly `runs`.
fn write(path: &Path, runs: &BTreeMap<String, Member>) -> Result<()> {
    if runs.is_empty() {
        if path.exists() {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        }
        return Ok(());
    }
    let bytes: Vec<u8> = runs
        .values()
        .flat_map(|m| m.bytes.iter().copied())
        .collect();
    write_atomic(path, &bytes)?;
    let back = load(path)?;
    let same = back.runs.len() == runs.len()
        && runs
            .iter()
            .all(|(k, m)| back.runs.get(k).is_some_and(|b| b.sealed == m.sealed));
    if !same {
        bail!(
            "{}: the pack read back differs from what was written",
            path.display()
        );
    }
    Ok(())
}

/// The runs of the pack at `path` as owned members (none when there is no pack).
fn owned(path: &Path) -> Result<BTreeMap<String, Member>> {
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    Ok(load(path)?
        .runs
        .iter()
        .map(|(k, m)| {
            (
                k.clone(),
                Member {
                    sealed: m.sealed.clone(),
                    bytes: m.bytes.clone(),
                },
            )
        })
        .collect())
}

/// What [`put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// The run joined the pack now.
    Packed {
        /// Bytes of its member.
        bytes: u64,
    },
    /// The pack held it already (a packing interrupted before `run.json.gz` went).
    Already,
}

/// Moves the sealed run in `dir` into its folder's pack: the run joins the pack (which
/// is read back and checked), then `dir/run.json.gz` is removed. Refuses, changing
/// nothing, when the pack holds another record under the run's name.
pub fn put(dir: &Path) -> Result<Put> {
    let (path, name) = location(dir)
        .with_context(|| format!("{}: no folder to pack the run into", dir.display()))?;
    let sealed_path = dir.join(SEALED);
    let sealed = super::record::read_sealed(&sealed_path)?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let _lock = lock(folder)?;
    let mut runs = owned(&path)?;
    let put = match runs.get(&name) {
        Some(m) if m.sealed == sealed => Put::Already,
        Some(_) => bail!(
            "{} holds a run {name} that differs from {}: move one of them away",
            path.display(),
            sealed_path.display()
        ),
        None => {
            let bytes = encode(&name, &sealed)?;
            let n = bytes.len() as u64;
            runs.insert(name, Member { sealed, bytes });
            write(&path, &runs)?;
            Put::Packed { bytes: n }
        }
    };
    std::fs::remove_file(&sealed_path)
        .with_context(|| format!("removing {}", sealed_path.display()))?;
    Ok(put)
}

/// The pack of `dir`'s folder, if there is one: its path, the run's name in it, the
/// folder's lock (held while the caller rewrites the pack) and the runs it holds.
#[allow(clippy::type_complexity)]
fn open_locked(dir: &Path) -> Result<Option<(PathBuf, String, Guard, BTreeMap<String, Member>)>> {
    let Some((path, name)) = location(dir) else {
        return Ok(None);
    };
    if !path.is_file() {
        return Ok(None);
    }
    let guard = lock(path.parent().unwrap_or(Path::new(".")))?;
    let runs = owned(&path)?;
    Ok(Some((path, name, guard, runs)))
}

/// Takes the run in `dir` out of its folder's pack (to extend it): writes each record
/// back into `dir` (a record already there must be the packed text), then rewrites the
/// pack without it. Does nothing when the pack does not hold the run.
pub fn take(dir: &Path) -> Result<()> {
    let Some((path, name, _lock, mut runs)) = open_locked(dir)? else {
        return Ok(());
    };
    let Some(member) = runs.remove(&name) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (file, text) in &member.sealed.files {
        check_name(file).with_context(|| format!("{}: run {name}", path.display()))?;
        let at = dir.join(file);
        match std::fs::read(&at) {
            Ok(there) if there == text.as_bytes() => {}
            Ok(_) => bail!(
                "{} differs from the copy of run {name} in {}: move one of them away",
                at.display(),
                path.display()
            ),
            Err(_) => write_atomic(&at, text.as_bytes())?,
        }
    }
    write(&path, &runs)
}

/// Drops the run in `dir` from its folder's pack, if it is there (a run overwritten by
/// request).
pub fn remove(dir: &Path) -> Result<()> {
    let Some((path, name, _lock, mut runs)) = open_locked(dir)? else {
        return Ok(());
    };
    if runs.remove(&name).is_some() {
        write(&path, &runs)?;
    }
    Ok(())
}

/// Removes the directory of a packed run when nothing but its lock file is left (a run
/// that kept its parameters keeps its directory).
pub fn tidy(dir: &Path) -> Result<()> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    if names.iter().all(|n| n == super::run_dir::LOCK_FILE) {
        let _ = std::fs::remove_file(dir.join(super::run_dir::LOCK_FILE));
        // Another process may have just created something there: then it stays.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

/// What holds a folder's pack lock until dropped.
#[cfg(unix)]
type Guard = std::fs::File;
#[cfg(not(unix))]
type Guard = ();

/// The folder's pack lock, waited for (a writer holds it for one read and write).
#[cfg(unix)]
fn lock(folder: &Path) -> Result<Guard> {
    use std::os::unix::io::AsRawFd;
    let path = folder.join(PACK_LOCK);
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; released when `file` is dropped.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("{}: {}", path.display(), std::io::Error::last_os_error());
    }
    Ok(file)
}

/// Without flock: writers of one folder are not serialised (rbd's runs are on unix).
#[cfg(not(unix))]
fn lock(folder: &Path) -> Result<Guard> {
    let _ = (folder, PACK_LOCK);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::record;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rbd-pack-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A finished run `name` under `folder`, sealed, with `metrics` as its rows.
    fn sealed_run(folder: &Path, name: &str, metrics: &str) -> PathBuf {
        let d = folder.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), format!("{{\"run\":\"{name}\"}}")).unwrap();
        std::fs::write(d.join("metrics.jsonl"), metrics).unwrap();
        record::seal(&d).unwrap();
        d
    }

    #[test]
    fn packed_runs_read_back_exactly_and_leave_no_directory() {
        let runs = scratch("read").join("runs");
        let a = sealed_run(&runs, "a-seed0", "{\"val_loss\":0.30000000000000004}\n");
        let b = sealed_run(&runs, "b-seed0", "{\"val_loss\":1e-300}\n");
        std::fs::write(b.join("final.safetensors"), b"\0params").unwrap();
        for d in [&b, &a] {
            let bytes = put_size(d);
            assert_eq!(put(d).unwrap(), Put::Packed { bytes });
            tidy(d).unwrap();
        }
        // `a` kept nothing else, so its directory went; `b` keeps its parameters.
        assert!(!a.exists() && b.join("final.safetensors").exists());
        assert!(!b.join(SEALED).exists());
        assert_eq!(
            record::text(&a, "metrics.jsonl").unwrap().as_deref(),
            Some("{\"val_loss\":0.30000000000000004}\n")
        );
        assert_eq!(
            record::text(&b, "config.json").unwrap().as_deref(),
            Some("{\"run\":\"b-seed0\"}")
        );
        assert_eq!(record::text(&a, "steps.jsonl").unwrap(), None);
        assert!(record::is_packed(&a) && !record::is_sealed(&a));
        assert_eq!(names(&runs).unwrap(), ["a-seed0", "b-seed0"]);
        assert_eq!(
            record::runs_in(&runs).unwrap(),
            [runs.join("a-seed0"), runs.join("b-seed0")]
        );
        assert!(record::describe(&a, "metrics.jsonl")
            .ends_with("sealed-runs.jsonl.gz:a-seed0/metrics.jsonl"));
        // JSON Lines under zcat: one line per run, in name order.
        let mut all = String::new();
        flate2::read::MultiGzDecoder::new(&std::fs::read(runs.join(PACK)).unwrap()[..])
            .read_to_string(&mut all)
            .unwrap();
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"run\":\"a-seed0\""), "{}", lines[0]);
    }

    /// The size `put` reports is the member's; checked against a fresh encoding.
    fn put_size(d: &Path) -> u64 {
        let sealed = record::read_sealed(&d.join(SEALED)).unwrap();
        let name = d.file_name().unwrap().to_str().unwrap();
        encode(name, &sealed).unwrap().len() as u64
    }

    #[test]
    fn a_run_joining_a_pack_changes_no_other_member_and_the_order_does_not_matter() {
        let one = scratch("order-1").join("runs");
        let two = scratch("order-2").join("runs");
        for (folder, order) in [(&one, ["c", "a", "b"]), (&two, ["b", "c", "a"])] {
            for n in order {
                let d = sealed_run(folder, n, &format!("{{\"x\":\"{n}\"}}\n"));
                put(&d).unwrap();
            }
        }
        let bytes = std::fs::read(one.join(PACK)).unwrap();
        assert_eq!(bytes, std::fs::read(two.join(PACK)).unwrap());
        // Without `b`, the pack is the others' members, byte for byte.
        let three = scratch("order-3").join("runs");
        for n in ["a", "c"] {
            put(&sealed_run(&three, n, &format!("{{\"x\":\"{n}\"}}\n"))).unwrap();
        }
        let without = std::fs::read(three.join(PACK)).unwrap();
        let pack = load(&one.join(PACK)).unwrap();
        let b = &pack.runs["b"].bytes;
        let at = bytes.windows(b.len()).position(|w| w == &b[..]).unwrap();
        assert_eq!([&bytes[..at], &bytes[at + b.len()..]].concat(), without);
    }

    #[test]
    fn taking_a_run_out_gives_its_files_back_and_an_empty_pack_goes() {
        let runs = scratch("take").join("runs");
        let a = sealed_run(&runs, "a", "{\"epoch\":1}\n");
        put(&a).unwrap();
        tidy(&a).unwrap();
        record::unseal(&a).unwrap();
        assert_eq!(
            std::fs::read_to_string(a.join("metrics.jsonl")).unwrap(),
            "{\"epoch\":1}\n"
        );
        assert!(!runs.join(PACK).exists() && !record::is_packed(&a));
        // Sealed and packed again, then a take interrupted after writing the files:
        // taking again finishes it.
        record::seal(&a).unwrap();
        put(&a).unwrap();
        std::fs::write(a.join("config.json"), "{\"run\":\"a\"}").unwrap();
        take(&a).unwrap();
        assert!(!runs.join(PACK).exists());
        assert_eq!(
            std::fs::read_to_string(a.join("metrics.jsonl")).unwrap(),
            "{\"epoch\":1}\n"
        );
    }

    #[test]
    fn a_pack_holding_another_record_under_the_name_is_refused_and_nothing_goes() {
        let runs = scratch("clash").join("runs");
        let a = sealed_run(&runs, "a", "{\"epoch\":1}\n");
        put(&a).unwrap();
        let again = sealed_run(&runs, "a", "{\"epoch\":2}\n");
        let e = format!("{:#}", put(&again).unwrap_err());
        assert!(e.contains("differs") && e.contains(PACK), "{e}");
        assert!(again.join(SEALED).exists());
        assert_eq!(
            load(&runs.join(PACK)).unwrap().runs["a"].sealed.files["metrics.jsonl"],
            "{\"epoch\":1}\n"
        );
        // The same record again (an interrupted packing): nothing written, the sealed
        // copy goes.
        std::fs::remove_dir_all(&again).unwrap();
        let a = sealed_run(&runs, "a", "{\"epoch\":1}\n");
        assert_eq!(put(&a).unwrap(), Put::Already);
        assert!(!a.join(SEALED).exists());
        // A file changed after packing stops a take, and the pack keeps the run.
        std::fs::write(a.join("metrics.jsonl"), "{\"epoch\":9}\n").unwrap();
        let e = format!("{:#}", take(&a).unwrap_err());
        assert!(e.contains("differs"), "{e}");
        assert!(names(&runs).unwrap() == ["a"]);
    }

    #[test]
    fn a_damaged_pack_is_named() {
        let runs = scratch("damaged").join("runs");
        let a = sealed_run(&runs, "a", "{}\n");
        put(&a).unwrap();
        let mut bytes = std::fs::read(runs.join(PACK)).unwrap();
        bytes.extend_from_slice(b"\x1f\x8b trailing garbage");
        std::fs::write(runs.join(PACK), &bytes).unwrap();
        for e in [
            format!("{:#}", record::text(&a, "config.json").unwrap_err()),
            format!("{:#}", names(&runs).unwrap_err()),
        ] {
            assert!(
                e.contains(PACK) && e.contains("not a pack") && e.contains("member 2"),
                "{e}"
            );
        }
        // A member whose run name is a path.
        let bad = encode(
            "../x",
            &Sealed {
                rbd_run_record: FORMAT,
                files: BTreeMap::new(),
            },
        )
        .unwrap();
        std::fs::write(runs.join(PACK), bad).unwrap();
        assert!(format!("{:#}", names(&runs).unwrap_err()).contains("not a plain file name"));
    }
}
