//! IDX images and labels (MNIST's format), plain or gzip: header fields (magic, type,
//! dimension count, counts, rows, columns) set to hostile values, truncations, extra
//! bytes, labels out of range; for gzip also corrupt streams, several members and a
//! stream that decompresses past what its header declares (a bomb).

use super::{gzip, keep_valid, Case, Target, Verdict, GZIP_RATIO};
use crate::mutate;
use crate::rng::Rng;
use rbd_datasets::{read_idx_images, read_idx_labels, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use std::path::Path;

/// IDX files, plain (`idx`) or gzip (`idx-gz`).
pub struct Idx {
    /// Whether the file is gzip-compressed.
    pub gzip: bool,
}

const SIDE: usize = 28;

fn images(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(4);
    let mut b = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n, SIDE, SIDE] {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    let fill = rng.next_u64();
    b.extend((0..n * SIDE * SIDE).map(|i| (fill.rotate_left(i as u32 % 64) ^ i as u64) as u8));
    b
}

fn labels(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(40);
    let mut b = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
    b.extend_from_slice(&(n as u32).to_be_bytes());
    b.extend((0..n).map(|_| rng.below(10) as u8));
    b
}

/// A mutation that knows the header: a field set to a hostile value, the data cut or
/// extended, a label out of range.
fn header_aware(rng: &mut Rng, b: &mut Vec<u8>, is_images: bool) -> String {
    let header = if is_images { 16 } else { 8 };
    match rng.below(6) {
        0 => {
            // Magic: the other kind, another type byte, another dimension count.
            let magic = *rng.pick(&[
                IDX_IMAGES_MAGIC,
                IDX_LABELS_MAGIC,
                0x0000_0903,
                0x0000_0d03,
                0x0000_0800,
                0x0000_08ff,
                0x1f8b_0803,
                0,
            ]);
            mutate::write_int(b, 0, 4, magic as u64, true);
            format!("magic = {magic:#010x}")
        }
        1 | 2 => {
            // A count or a side: hostile values, or one off.
            let fields = if is_images { 3 } else { 1 };
            let f = rng.below(fields);
            let at = 4 + 4 * f;
            let old = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64;
            let v = match rng.below(3) {
                0 => old + 1,
                1 => old.saturating_sub(1),
                _ => mutate::interesting(rng) & 0xffff_ffff,
            };
            mutate::write_int(b, at, 4, v, true);
            format!("header field {f} = {v}")
        }
        3 => {
            let keep = rng.below(b.len() + 1);
            b.truncate(keep);
            format!("truncate to {keep} bytes (header is {header})")
        }
        4 => {
            let n = rng.small(3000);
            b.extend((0..n).map(|i| i as u8));
            format!("{n} extra bytes")
        }
        _ if b.len() > header => {
            let i = rng.range(header, b.len() - 1);
            let v = rng.range(10, 255) as u8;
            b[i] = v;
            format!("data byte {} = {v}", i - header)
        }
        _ => {
            b.truncate(header - 1);
            "cut the last header byte".into()
        }
    }
}

impl Target for Idx {
    fn name(&self) -> &'static str {
        if self.gzip {
            "idx-gz"
        } else {
            "idx"
        }
    }

    fn about(&self) -> &'static str {
        if self.gzip {
            "IDX images and labels, gzip (read_idx_images, read_idx_labels)"
        } else {
            "IDX images and labels, plain (read_idx_images, read_idx_labels)"
        }
    }

    fn generate(&self, rng: &mut Rng) -> Case {
        let is_images = rng.chance(1, 2);
        let mut b = if is_images { images(rng) } else { labels(rng) };
        let original = b.clone();
        let valid = keep_valid(rng);
        let mut what = String::from("valid");
        if !valid {
            what = if rng.chance(2, 3) {
                header_aware(rng, &mut b, is_images)
            } else {
                mutate::bytes(rng, &mut b)
            };
        }
        if self.gzip {
            let (z, how) = gzip_case(rng, &b, valid);
            b = z;
            if !how.is_empty() {
                what = if valid { how } else { format!("{what}; {how}") };
            }
        }
        let name = match (is_images, self.gzip) {
            (true, false) => "train-images-idx3-ubyte",
            (true, true) => "train-images-idx3-ubyte.gz",
            (false, false) => "train-labels-idx1-ubyte",
            (false, true) => "train-labels-idx1-ubyte.gz",
        };
        let valid = valid && what == "valid";
        let mut case = Case::one(name, b, what, valid);
        case.expect.push(("plain".into(), original));
        case
    }

    fn run(&self, case: &Case, dir: &Path) -> Verdict {
        let path = dir.join(&case.named);
        let plain = case.expected("plain").unwrap_or_default();
        if case.named.contains("idx3") {
            Verdict::of(read_idx_images(&path), |im| {
                if (im.rows, im.cols) != (SIDE, SIDE) || im.pixels.len() != im.count * SIDE * SIDE {
                    Verdict::Wrong(format!(
                        "accepted {} images of {}×{} with {} pixel bytes",
                        im.count,
                        im.rows,
                        im.cols,
                        im.pixels.len()
                    ))
                } else if case.valid && im.pixels != plain[16..] {
                    Verdict::Wrong("a valid file read back other pixels".into())
                } else {
                    Verdict::Accepted
                }
            })
        } else {
            Verdict::of(read_idx_labels(&path), |labels| {
                if let Some(l) = labels.iter().find(|&&l| l > 9) {
                    Verdict::Wrong(format!("accepted label {l}"))
                } else if case.valid && labels != plain[8..] {
                    Verdict::Wrong("a valid file read back other labels".into())
                } else {
                    Verdict::Accepted
                }
            })
        }
    }

    fn alloc_bound(&self, input: usize) -> usize {
        // What a file decompresses to, plus the reader's buffers.
        let data = if self.gzip { GZIP_RATIO * input } else { input };
        2 * data + (256 << 10)
    }
}

/// Compresses `plain`, and (unless the case is valid) perhaps breaks the stream: a
/// flipped bit, a cut, a bad trailer, several members, or a bomb appended.
pub(super) fn gzip_case(rng: &mut Rng, plain: &[u8], valid: bool) -> (Vec<u8>, String) {
    let mut z = gzip(plain);
    if valid {
        return (z, String::new());
    }
    let how = match rng.below(8) {
        0 => {
            let i = rng.below(z.len());
            z[i] ^= 1 << rng.below(8);
            format!("gzip: flip a bit of byte {i}")
        }
        1 => {
            let keep = rng.below(z.len());
            z.truncate(keep);
            format!("gzip: cut at {keep} of its bytes")
        }
        2 => {
            // The trailer's size and CRC.
            let n = z.len();
            let v = mutate::interesting(rng);
            mutate::write_int(&mut z, n - 8, 8, v, false);
            format!("gzip: trailer = {v:#x}")
        }
        3 => {
            // A second member (valid gzip: read as one stream).
            let split = rng.below(plain.len() + 1);
            let mut two = gzip(&plain[..split]);
            two.extend(gzip(&plain[split..]));
            z = two;
            format!("gzip: two members split at {split}")
        }
        4 if rng.chance(1, 20) => {
            // A bomb: megabytes of zeros past what the header declares.
            let n = rng.range(1, 8) << 20;
            let mut more = plain.to_vec();
            more.resize(plain.len() + n, 0);
            z = gzip(&more);
            format!("gzip: {n} zero bytes appended before compressing")
        }
        5 => {
            let n = rng.range(1, 30);
            z.extend_from_slice(&rng.bytes(n));
            "gzip: junk after the stream".into()
        }
        _ => String::new(),
    };
    (z, how)
}
