//! The CIFAR-10 archive's unpacker, reached directly (`unpack_cifar_archive`) on small
//! archives in the official layout (1 or 2 records per batch). Headers are written by
//! hand, so members can be what no tar writer emits: `..` and absolute paths, symlinks,
//! hard links, devices and fifos under the layout's names, size fields past the data or
//! past any file (octal and base-256), repeated members, wrong checksums, GNU long names
//! and pax headers that rename a member. The oracle: nothing is written but the layout's
//! files, nothing leaves the case directory, and an accepted archive's files hold the
//! bytes of a member of that name.

use super::{gzip, keep_valid, Case, Target, Verdict, GZIP_RATIO};
use crate::mutate;
use crate::rng::Rng;
use rbd_datasets::{unpack_cifar_archive, CIFAR_RECORD, CIFAR_TEST_FILE, CIFAR_TRAIN_FILES};
use std::path::Path;

/// `unpack_cifar_archive` on a generated `cifar-10-binary.tar.gz`.
pub struct CifarArchive;

const PREFIX: &str = "cifar-10-batches-bin/";
const SMALL: [&str; 2] = ["batches.meta.txt", "readme.html"];
const ARCHIVE: &str = "cifar-10-binary.tar.gz";
/// An absolute path an escaping member aims at; it must never appear.
const ABSOLUTE_ESCAPE: &str = "/tmp/rbd-fuzz-escaped-absolute";

/// One tar member, as its header will say.
#[derive(Clone, Debug)]
struct Member {
    name: Vec<u8>,
    kind: u8,
    link: Vec<u8>,
    data: Vec<u8>,
    /// A size field other than the data's length: (value, base-256).
    size: Option<(u64, bool)>,
    bad_checksum: bool,
}

impl Member {
    fn file(name: &str, data: Vec<u8>) -> Member {
        Member {
            name: name.as_bytes().to_vec(),
            kind: b'0',
            link: Vec::new(),
            data,
            size: None,
            bad_checksum: false,
        }
    }

    fn special(name: &str, kind: u8, link: &str) -> Member {
        Member {
            kind,
            link: link.as_bytes().to_vec(),
            ..Member::file(name, Vec::new())
        }
    }

    /// The 512-byte ustar header.
    fn header(&self) -> [u8; 512] {
        let mut h = [0u8; 512];
        let name = &self.name[..self.name.len().min(100)];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0001750\0");
        h[116..124].copy_from_slice(b"0001750\0");
        let (size, base256) = self.size.unwrap_or((self.data.len() as u64, false));
        if base256 {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        } else {
            let text = format!("{:011o}\0", size.min(0o777_7777_7777));
            h[124..136].copy_from_slice(text.as_bytes());
        }
        h[136..148].copy_from_slice(b"14410162000\0");
        h[156] = self.kind;
        let link = &self.link[..self.link.len().min(100)];
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let sum = if self.bad_checksum { sum + 1 } else { sum };
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }
}

/// The tar stream of `members`, with the two zero blocks that end it.
fn tar(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        out.extend_from_slice(&m.header());
        out.extend_from_slice(&m.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn layout_names() -> Vec<&'static str> {
    CIFAR_TRAIN_FILES
        .iter()
        .copied()
        .chain([CIFAR_TEST_FILE])
        .collect()
}

/// A batch of `records` records whose label bytes are valid.
fn batch(records: usize, file: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(records * CIFAR_RECORD);
    for r in 0..records {
        b.push(((r + file) % 10) as u8);
        b.extend((0..CIFAR_RECORD - 1).map(|i| (i + r * 31 + file * 7) as u8));
    }
    b
}

/// The official layout, members in a random order.
fn official(rng: &mut Rng, records: usize) -> Vec<Member> {
    let dot = if rng.chance(1, 4) { "./" } else { "" };
    let mut members = vec![Member::special(&format!("{dot}{PREFIX}"), b'5', "")];
    let mut files: Vec<Member> = layout_names()
        .iter()
        .enumerate()
        .map(|(i, n)| Member::file(&format!("{dot}{PREFIX}{n}"), batch(records, i)))
        .collect();
    files.push(Member::file(
        &format!("{dot}{PREFIX}batches.meta.txt"),
        b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n".to_vec(),
    ));
    if rng.chance(1, 2) {
        files.push(Member::file(
            &format!("{dot}{PREFIX}readme.html"),
            b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=https://www.cs.toronto.edu/~kriz/cifar.html\">\n".to_vec(),
        ));
    }
    for i in (1..files.len()).rev() {
        let j = rng.below(i + 1);
        files.swap(i, j);
    }
    members.extend(files);
    members
}

/// A structural mutation of the member list; returns what was done.
fn structural(rng: &mut Rng, members: &mut Vec<Member>, records: usize) -> String {
    let layout = layout_names();
    let target = *rng.pick(&layout);
    let at = 1 + rng.below(members.len() - 1);
    match rng.below(12) {
        0 => {
            let name = *rng.pick(&[
                "../escaped",
                "cifar-10-batches-bin/../../escaped",
                "cifar-10-batches-bin/../escaped",
                ABSOLUTE_ESCAPE,
                "cifar-10-batches-bin/../data_batch_1.bin",
                "cifar-10-batches-bin/sub/../data_batch_1.bin",
                "cifar-10-batches-bin//data_batch_1.bin",
                "cifar-10-batches-bin/./data_batch_1.bin",
                "cifar-10-batches-bin/data_batch_1.bin/",
                "/cifar-10-batches-bin/data_batch_1.bin",
            ]);
            members.insert(at, Member::file(name, batch(records, 9)));
            format!("add a member named {name}")
        }
        1 => {
            let kind = *rng.pick(b"1234567SZ");
            let link = *rng.pick(&[
                "/etc/passwd",
                "../../escaped",
                "cifar-10-batches-bin/test_batch.bin",
                ABSOLUTE_ESCAPE,
            ]);
            let name = format!("{PREFIX}{target}");
            if let Some(m) = members
                .iter_mut()
                .find(|m| m.name.ends_with(target.as_bytes()))
            {
                *m = Member::special(&name, kind, link);
            }
            format!("{name} becomes type '{}' -> {link}", kind as char)
        }
        2 => {
            // The size field promises more than the data holds.
            let m = &mut members[at];
            let (v, base256) = if rng.chance(1, 2) {
                (m.data.len() as u64 + rng.range(1, 5000) as u64, false)
            } else {
                (mutate::interesting(rng), rng.chance(1, 2))
            };
            m.size = Some((v, base256));
            format!(
                "size field of {} = {v} ({})",
                String::from_utf8_lossy(&m.name),
                if base256 { "base-256" } else { "octal" }
            )
        }
        3 => {
            // A member larger than its file may be.
            let extra = if rng.chance(1, 8) {
                (1 << 20) + rng.range(1, 100)
            } else {
                rng.range(1, 3 * CIFAR_RECORD)
            };
            let m = &mut members[at];
            m.data.extend(std::iter::repeat_n(1u8, extra));
            format!(
                "{} has {extra} bytes more",
                String::from_utf8_lossy(&m.name)
            )
        }
        4 => {
            let mut dup = members[at].clone();
            if rng.chance(1, 2) && !dup.data.is_empty() {
                dup.data[0] = 7;
            }
            let name = String::from_utf8_lossy(&dup.name).into_owned();
            members.insert(rng.range(at, members.len()), dup);
            format!("{name} appears twice")
        }
        5 => {
            let m = members.remove(at);
            format!("remove {}", String::from_utf8_lossy(&m.name))
        }
        6 => {
            members[at].bad_checksum = true;
            format!(
                "bad header checksum on {}",
                String::from_utf8_lossy(&members[at].name)
            )
        }
        7 => {
            // A GNU long name renames the next member.
            let to = rng
                .pick(&[
                    format!("{PREFIX}{target}"),
                    "../../escaped".to_string(),
                    format!("{PREFIX}{}", "x".repeat(300)),
                    format!("{PREFIX}../{target}"),
                ])
                .clone();
            let mut long = Member::file("././@LongLink", to.as_bytes().to_vec());
            long.data.push(0);
            long.kind = b'L';
            members.insert(at, long);
            format!("GNU long name {to} for the next member")
        }
        8 => {
            // A pax header renames or resizes the next member.
            let (key, value) = rng
                .pick(&[
                    ("path", format!("{PREFIX}{target}")),
                    ("path", "../escaped".to_string()),
                    ("path", ABSOLUTE_ESCAPE.to_string()),
                    ("size", "99999999999999999999".to_string()),
                    ("size", "-1".to_string()),
                    ("linkpath", "/etc/passwd".to_string()),
                ])
                .clone();
            let record = pax_record(key, &value);
            let mut pax = Member::file("PaxHeaders/x", record);
            pax.kind = b'x';
            members.insert(at, pax);
            format!("pax {key}={value} for the next member")
        }
        9 => {
            let mut name = format!("{PREFIX}{target}").into_bytes();
            name.push(0xff);
            members.insert(at, Member::file("", batch(records, 3)));
            members[at].name = name;
            format!("a member named {PREFIX}{target} + byte 0xff")
        }
        10 => {
            let m = &mut members[at];
            let keep = rng.below(m.data.len() + 1);
            m.data.truncate(keep);
            format!("{} cut to {keep} bytes", String::from_utf8_lossy(&m.name))
        }
        _ => {
            let m = members.remove(at);
            members.push(m);
            "a member moved to the end".into()
        }
    }
}

/// What each layout member of `members` holds as the tar stream says it: `member:NAME`
/// with its bytes, or `unknown:NAME` where a size field or a pax size makes it other
/// than its data. A GNU long name or a pax path renames the member after it.
fn expected_members(members: &[Member]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rename: Option<Vec<u8>> = None;
    let mut resized = false;
    // A member whose size field was changed makes the reader skip into what follows or
    // read its data as headers (a swallowed GNU long name renames nothing): from there
    // on, no member is known.
    let mut lost = false;
    for m in members {
        if lost {
            let name = String::from_utf8_lossy(&m.name);
            if let Some(n) = name.trim_start_matches("./").strip_prefix(PREFIX) {
                out.push((format!("unknown:{n}"), Vec::new()));
            }
            continue;
        }
        match m.kind {
            b'L' => {
                rename = Some(m.data.strip_suffix(&[0]).unwrap_or(&m.data).to_vec());
                continue;
            }
            b'x' => {
                let record = String::from_utf8_lossy(&m.data);
                if let Some((_, rest)) = record.split_once(' ') {
                    match rest.trim_end().split_once('=') {
                        Some(("path", p)) => rename = Some(p.as_bytes().to_vec()),
                        Some(("size", _)) => resized = true,
                        _ => {}
                    }
                }
                continue;
            }
            _ => {}
        }
        lost = m.size.is_some();
        let raw = rename.take().unwrap_or_else(|| m.name.clone());
        let name = String::from_utf8_lossy(&raw);
        let Some(n) = name.trim_start_matches("./").strip_prefix(PREFIX) else {
            resized = false;
            continue;
        };
        // The data as written, padded to its 512-byte block.
        let mut block = m.data.clone();
        block.resize(m.data.len().div_ceil(512) * 512, 0);
        match m.size {
            _ if resized || lost => out.push((format!("unknown:{n}"), Vec::new())),
            Some((size, _)) if size as usize <= block.len() => {
                out.push((format!("member:{n}"), block[..size as usize].to_vec()))
            }
            Some(_) => out.push((format!("unknown:{n}"), Vec::new())),
            None => out.push((format!("member:{n}"), m.data.clone())),
        }
        resized = false;
    }
    out
}

/// One pax record: `LEN key=value\n`, LEN counting itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

impl Target for CifarArchive {
    fn name(&self) -> &'static str {
        "cifar-tar"
    }

    fn about(&self) -> &'static str {
        "the CIFAR-10 archive's tar.gz unpacker (unpack_cifar_archive)"
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let records = rng.range(1, 2);
        let mut members = official(rng, records);
        let valid = keep_valid(rng);
        let mut what = vec![];
        let mut byte_level = false;
        if !valid {
            for _ in 0..rng.small(3) {
                what.push(structural(rng, &mut members, records));
            }
        }
        let mut stream = tar(&members);
        if !valid && rng.chance(1, 5) {
            what.push(format!("tar: {}", mutate::bytes(rng, &mut stream)));
            byte_level = true;
        }
        if !valid && rng.chance(1, 10) {
            let keep = rng.below(stream.len());
            stream.truncate(keep);
            what.push(format!("tar cut at {keep}"));
        }
        let mut z = gzip(&stream);
        if !valid && rng.chance(1, 10) {
            what.push(format!("gzip: {}", mutate::bytes(rng, &mut z)));
            byte_level = true;
        }
        let what = if valid {
            "valid".into()
        } else {
            what.join("; ")
        };
        let mut case = Case::one(ARCHIVE, z, what, valid);
        case.expect.push(("records".into(), vec![records as u8]));
        if !byte_level {
            case.expect.push(("checked".into(), Vec::new()));
            case.expect.extend(expected_members(&members));
        }
        case
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        let records = case.expected("records").map_or(1, |r| r[0] as usize);
        let into = dir.join("into");
        if let Err(e) = std::fs::create_dir(&into) {
            return Verdict::Wrong(format!("cannot make {}: {e}", into.display()));
        }
        let archive = dir.join(ARCHIVE);
        let origin = archive.display().to_string();
        let result = unpack_cifar_archive(&archive, &origin, &into, records);
        // Whatever the outcome, nothing but the layout's files may exist.
        if let Some(stray) = stray_files(dir) {
            return Verdict::Wrong(stray);
        }
        Verdict::of(result, |out| {
            let mut names: Vec<String> = match std::fs::read_dir(&out) {
                Ok(d) => d
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(e) => return Verdict::Wrong(format!("{}: {e}", out.display())),
            };
            names.sort();
            let checked = case.expected("checked").is_some();
            for name in &names {
                let got = std::fs::read(out.join(name)).unwrap_or_default();
                let key = format!("member:{name}");
                let members: Vec<&[u8]> = case
                    .expect
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| v.as_slice())
                    .collect();
                let unknown = case.expected(&format!("unknown:{name}")).is_some();
                if checked && !unknown && !members.contains(&got.as_slice()) {
                    return Verdict::Wrong(format!(
                        "unpacked {name} ({} bytes) is no member of that name",
                        got.len()
                    ));
                }
            }
            Verdict::Accepted
        })
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // The unpacker streams; only tar's long names and pax headers are held whole,
        // and they are at most what the archive decompresses to.
        2 * GZIP_RATIO * input + (512 << 10)
    }
}

/// A path under `dir` that the unpacker may not have made, or a symbolic link, if any;
/// also the escape targets outside it.
fn stray_files(dir: &Path) -> Option<String> {
    let allowed_dirs = ["into", "into/cifar-10-batches-bin"];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).ok()?;
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(dir).ok()?.to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).ok()?;
            if meta.file_type().is_symlink() {
                return Some(format!("made a symbolic link {rel}"));
            }
            if meta.is_dir() {
                if !allowed_dirs.contains(&rel.as_str()) {
                    return Some(format!("made a directory {rel}"));
                }
                stack.push(path);
                continue;
            }
            let ok = rel == ARCHIVE
                || rel
                    .strip_prefix("into/cifar-10-batches-bin/")
                    .is_some_and(|n| layout_names().contains(&n) || SMALL.contains(&n));
            if !ok || !meta.is_file() {
                return Some(format!("wrote {rel} outside the layout"));
            }
        }
    }
    for escaped in [
        dir.join("escaped"),
        dir.parent().map(|p| p.join("escaped")).unwrap_or_default(),
        Path::new(ABSOLUTE_ESCAPE).to_path_buf(),
    ] {
        if escaped.exists() {
            return Some(format!("wrote {} outside", escaped.display()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_back_by_the_tar_crate() {
        let mut m = Member::file("cifar-10-batches-bin/x", b"abc".to_vec());
        m.size = Some((3, true));
        let stream = tar(&[m, Member::special("l", b'2', "/etc/passwd")]);
        let mut a = ::tar::Archive::new(stream.as_slice());
        let mut entries = a.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("cifar-10-batches-bin/x"));
        assert_eq!(e.header().size().unwrap(), 3);
        let l = entries.next().unwrap().unwrap();
        assert!(l.header().entry_type().is_symlink());
        assert_eq!(
            l.link_name().unwrap().unwrap().to_str(),
            Some("/etc/passwd")
        );
    }

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record("path", "a"), b"9 path=a\n");
        let long = pax_record("path", &"x".repeat(95));
        assert_eq!(long.len(), 105);
        assert!(long.starts_with(b"105 "));
    }
}
