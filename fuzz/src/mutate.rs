//! Byte-level mutations of a valid file: bit flips, truncations, deletions, insertions,
//! duplicated ranges and "interesting" integers written over length fields. Each
//! returns a short description, kept with a finding so it can be read without a
//! debugger.

use crate::rng::Rng;

/// Integers that break length and count fields: zero, one, the signed and unsigned
/// limits of 8, 16, 32 and 64 bits, and off-by-ones around them.
pub const INTERESTING: [u64; 16] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Applies 1 to 4 random byte-level mutations to `data`; returns what was done.
pub fn bytes(rng: &mut Rng, data: &mut Vec<u8>) -> String {
    let n = rng.small(4);
    (0..n)
        .map(|_| one(rng, data))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes `value` (its low `width` bytes, little- or big-endian) over `data` at `at`.
pub fn write_int(data: &mut [u8], at: usize, width: usize, value: u64, big_endian: bool) {
    let le = value.to_le_bytes();
    for i in 0..width {
        if let Some(b) = data.get_mut(at + i) {
            *b = if big_endian { le[width - 1 - i] } else { le[i] };
        }
    }
}

/// A random interesting integer, or a random one near a power of two.
pub fn interesting(rng: &mut Rng) -> u64 {
    if rng.chance(3, 4) {
        *rng.pick(&INTERESTING)
    } else {
        let p = 1u64 << rng.below(64);
        p.wrapping_add(rng.below(3) as u64).wrapping_sub(1)
    }
}

fn one(rng: &mut Rng, data: &mut Vec<u8>) -> String {
    let len = data.len();
    let at = |rng: &mut Rng| if len == 0 { 0 } else { rng.below(len) };
    match rng.below(10) {
        0 if len > 0 => {
            let i = at(rng);
            let bit = rng.below(8);
            data[i] ^= 1 << bit;
            format!("flip bit {bit} of byte {i}")
        }
        1 if len > 0 => {
            let i = at(rng);
            let v = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'-', b'"', 0x1f, 0x8b]);
            data[i] = v;
            format!("byte {i} = {v:#04x}")
        }
        2 => {
            let keep = if rng.chance(1, 2) && len > 0 {
                // Near the end: the most common real-world truncation.
                len - 1 - rng.below(len.min(64))
            } else {
                at(rng)
            };
            data.truncate(keep);
            format!("truncate to {keep} bytes")
        }
        3 if len > 0 => {
            let i = at(rng);
            let n = rng.range(1, (len - i).min(256));
            data.drain(i..i + n);
            format!("delete {n} bytes at {i}")
        }
        4 => {
            let i = if len == 0 { 0 } else { rng.below(len + 1) };
            let n = rng.small(64);
            let junk = rng.bytes(n);
            data.splice(i..i, junk);
            format!("insert {n} random bytes at {i}")
        }
        5 if len > 0 => {
            let i = at(rng);
            let n = rng.range(1, (len - i).min(512));
            let chunk = data[i..i + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, chunk);
            format!("copy {n} bytes from {i} to {to}")
        }
        6 | 7 if len > 0 => {
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let i = at(rng);
            let big = rng.chance(1, 2);
            let v = interesting(rng);
            write_int(data, i, width, v, big);
            let end = if big { "be" } else { "le" };
            format!("u{} {end} {v:#x} at {i}", width * 8)
        }
        8 => {
            let n = rng.small(4096);
            let fill = *rng.pick(&[0u8, 0xff, b' ', b'\n']);
            data.extend(std::iter::repeat_n(fill, n));
            format!("append {n} × {fill:#04x}")
        }
        _ => {
            let n = rng.range(1, 16);
            let tail = rng.bytes(n);
            data.extend_from_slice(&tail);
            format!("append {n} random bytes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_int_orders_bytes() {
        let mut b = [0u8; 6];
        write_int(&mut b, 1, 4, 0x0102_0304, true);
        assert_eq!(b, [0, 1, 2, 3, 4, 0]);
        write_int(&mut b, 1, 4, 0x0102_0304, false);
        assert_eq!(b, [0, 4, 3, 2, 1, 0]);
        // Past the end: written as far as the data goes, no panic.
        write_int(&mut b, 4, 8, u64::MAX, false);
        assert_eq!(b, [0, 4, 3, 2, 0xff, 0xff]);
    }

    #[test]
    fn mutations_change_the_data_and_say_how() {
        let mut rng = Rng::new(5);
        let mut changed = 0;
        for _ in 0..200 {
            let mut d: Vec<u8> = (0..100).collect();
            let what = bytes(&mut rng, &mut d);
            assert!(!what.is_empty());
            changed += (d != (0..100).collect::<Vec<u8>>()) as usize;
        }
        // A mutation can undo another (flip the same bit twice); nearly all change.
        assert!(changed > 190, "{changed}");
    }
}
