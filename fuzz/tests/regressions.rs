//! The minimal inputs of what the fuzzer found that needs its counting allocator to
//! see (the other regressions are unit tests beside the parser they fixed).

use rbd_fuzz::alloc;
use std::io::Write;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rbd-fuzz-reg-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_small_gzip_declaring_many_labels_reserves_no_more_than_it_can_hold() {
    // Found by rbd-fuzz (idx-gz): a 28-byte gzip whose header declares 2^24 - 1 labels
    // reserved 16 MiB (up to 64 MiB) before reading any data.
    assert!(alloc::installed());
    let dir = scratch("idx-gz");
    let path = dir.join("train-labels-idx1-ubyte.gz");
    let mut header = vec![0, 0, 8, 1];
    header.extend_from_slice(&0x00ff_ffffu32.to_be_bytes());
    let z = gzip(&header);
    std::fs::write(&path, &z).unwrap();
    alloc::reset();
    let e = rbd_datasets::read_idx_labels(&path)
        .unwrap_err()
        .to_string();
    let used = alloc::usage();
    assert!(e.contains("truncated: header says 16777215 labels"), "{e}");
    assert!(
        used.largest <= 1032 * z.len() + (64 << 10),
        "{} bytes allocated for {} input bytes",
        used.largest,
        z.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_gzip_trailer_that_lies_about_its_size_reserves_nothing_extra() {
    // Same bug in read_maybe_gzip: its trailer's size (up to 1 GiB) was reserved.
    let dir = scratch("trailer");
    let path = dir.join("x.gz");
    let mut z = gzip(b"abc");
    let n = z.len();
    z[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &z).unwrap();
    alloc::reset();
    let r = rbd_datasets::read_maybe_gzip(&path);
    let used = alloc::usage();
    assert!(r.is_err(), "the trailer's size does not match");
    assert!(used.largest <= 1032 * z.len() + (64 << 10), "{used:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
