//! The CIFAR-10 archive's unpacker reached directly, on archives of 1 record per batch,
//! with the minimal inputs of what `rbd-fuzz --parser cifar-tar` found.

mod common;

use common::*;
use rbd_datasets::*;

/// Unpacks `archive` (1 record per batch) into a fresh directory; the error's text.
fn unpack(tag: &str, archive: &[u8]) -> (TempDir, Result<std::path::PathBuf, String>) {
    let dir = TempDir::new(tag);
    let path = dir.join("cifar-10-binary.tar.gz");
    write(&path, archive);
    let into = dir.join("into");
    std::fs::create_dir(&into).unwrap();
    let origin = path.display().to_string();
    let r = unpack_cifar_archive(&path, &origin, &into, 1).map_err(|e| e.to_string());
    (dir, r)
}

#[test]
fn the_official_layout_unpacks_at_any_record_count() {
    let (dir, r) = unpack("unpack-ok", &cifar_archive(1));
    let out = r.unwrap();
    assert_eq!(out, dir.join("into").join(CIFAR_BATCHES_DIR));
    let mut expected: Vec<&str> = CIFAR_FILES.to_vec();
    expected.push("batches.meta.txt");
    expected.sort();
    assert_eq!(listing(&out), expected);
    assert_eq!(
        std::fs::read(out.join("data_batch_3.bin")).unwrap(),
        marked_batch(3, 1)
    );
}

#[test]
fn a_repeated_member_is_refused_naming_the_archive() {
    // Found by the fuzzer: the second copy failed with "File exists (os error 17)" on a
    // scratch path, naming neither the archive nor the member.
    let batch = marked_batch(1, 1);
    let archive = tar_gz(&[
        ("cifar-10-batches-bin/data_batch_1.bin", &batch),
        ("cifar-10-batches-bin/data_batch_1.bin", &batch),
    ]);
    let (dir, r) = unpack("unpack-twice", &archive);
    let e = r.unwrap_err();
    let archive = dir.join("cifar-10-binary.tar.gz").display().to_string();
    assert!(e.starts_with(&archive), "{e}");
    assert!(
        e.contains("cifar-10-batches-bin/data_batch_1.bin appears twice"),
        "{e}"
    );
}

#[test]
fn a_metadata_file_over_its_limit_is_refused_not_cut() {
    // Found by the fuzzer: a readme.html of 1 MiB + 1 byte was silently cut to that
    // length and the archive accepted.
    let big = vec![b'x'; (1 << 20) + 1];
    let mut members = vec![("cifar-10-batches-bin/readme.html", big.as_slice())];
    let batches: Vec<Vec<u8>> = (1..=6).map(|f| marked_batch(f, 1)).collect();
    let names: Vec<String> = CIFAR_FILES
        .iter()
        .map(|f| format!("cifar-10-batches-bin/{f}"))
        .collect();
    for (n, b) in names.iter().zip(&batches) {
        members.push((n, b));
    }
    let (_dir, r) = unpack("unpack-big", &tar_gz(&members));
    let e = r.unwrap_err();
    assert!(
        e.contains("cifar-10-batches-bin/readme.html is larger than the 1048576 bytes"),
        "{e}"
    );
    // A batch one byte too long says so too, rather than giving a wrong length.
    let mut long = marked_batch(1, 1);
    long.push(0);
    let (_dir, r) = unpack(
        "unpack-long",
        &tar_gz(&[("cifar-10-batches-bin/data_batch_1.bin", &long)]),
    );
    let e = r.unwrap_err();
    assert!(
        e.contains("data_batch_1.bin is larger than the 3073 bytes"),
        "{e}"
    );
}

#[test]
fn a_member_renamed_by_an_extension_header_is_refused() {
    // Found by `rbd-fuzz --parser cifar-tar` (10^6 cases, seed 1; cases 182, 187573 and
    // 16 more): a pax `path` record (cut, or beside a GNU long name) renamed a member,
    // and the unpacker wrote under one name the bytes another reader gives another.
    // The archive has plain ustar names only, so any extension header is refused.
    let batch = marked_batch(3, 1);
    let mut members: Vec<(String, Vec<u8>)> = vec![(
        "cifar-10-batches-bin/batches.meta.txt".into(),
        b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n".to_vec(),
    )];
    for (f, name) in CIFAR_FILES.iter().enumerate() {
        members.push((
            format!("cifar-10-batches-bin/{name}"),
            marked_batch(f as u8 + 1, 1),
        ));
    }
    let pax = b"44 path=cifar-10-batches-bin/test_batch.bin\n".to_vec();
    let at = members
        .iter()
        .position(|(n, _)| n.ends_with("data_batch_3.bin"))
        .unwrap();
    members.insert(at, ("PaxHeaders/x".to_string(), pax));
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, data) in &members {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(if path.starts_with("PaxHeaders") {
            tar::EntryType::XHeader
        } else {
            tar::EntryType::Regular
        });
        header.set_path(path).unwrap();
        header.set_cksum();
        builder.append(&header, data.as_slice()).unwrap();
    }
    let archive = builder.into_inner().unwrap().finish().unwrap();
    let (_dir, r) = unpack("unpack-pax", &archive);
    let e = r.unwrap_err();
    assert!(
        e.contains("PaxHeaders/x: an extension header (pax or GNU long name)"),
        "{e}"
    );
    // Without the extension header the same members unpack, the batch under its name.
    members.remove(at);
    let plain: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let (_dir, r) = unpack("unpack-nopax", &tar_gz(&plain));
    assert_eq!(
        std::fs::read(r.unwrap().join("data_batch_3.bin")).unwrap(),
        batch
    );
}
