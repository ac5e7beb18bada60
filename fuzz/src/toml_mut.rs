//! Structure-aware mutations of TOML documents (manifests): one node of the parsed
//! table is removed, retyped or given a hostile value (`nan`, `inf`, `-0.0`, the
//! integer limits, `../` paths, empty and long strings) and the table written back; or
//! lines are duplicated (repeated keys, repeated `[[run]]` blocks), dropped, swapped or
//! cut, which the writer could never produce.

use crate::rng::Rng;
use toml::Value;

/// A hostile replacement for a TOML value.
fn hostile(rng: &mut Rng, old: &Value) -> Value {
    match (old, rng.below(3)) {
        (Value::Integer(_), 0 | 1) => {
            Value::Integer(*rng.pick(&[0, -1, i64::MAX, i64::MIN, 1 << 40, 1 << 62, 4_294_967_296]))
        }
        (Value::Float(_), 0 | 1) => Value::Float(*rng.pick(&[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            -0.5,
            0.0,
            1e308,
            5e-324,
        ])),
        (Value::String(_), 0 | 1) => Value::String(
            match rng.below(9) {
                0 => "",
                1 => "../escaped",
                2 => "../../../outside",
                3 => "/absolute",
                4 => "a/b",
                5 => "nan",
                6 => "2^99999",
                7 => ".",
                _ => "x\u{0}y",
            }
            .into(),
        ),
        _ => match rng.below(7) {
            0 => Value::Integer(*rng.pick(&[0, -1, i64::MAX, i64::MIN])),
            1 => Value::Float(*rng.pick(&[f64::NAN, f64::INFINITY, -1.5])),
            2 => Value::String(String::new()),
            3 => Value::Boolean(rng.chance(1, 2)),
            4 => Value::Array(Vec::new()),
            5 => Value::Array(vec![old.clone()]),
            _ => Value::Table(toml::Table::new()),
        },
    }
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Table(t) => t.values().map(count).sum(),
        _ => 0,
    }
}

/// Mutates the `index`-th node in pre-order below `v` (which itself is not a target).
fn mutate_below(rng: &mut Rng, v: &mut Value, index: &mut usize, path: &str) -> Option<String> {
    match v {
        Value::Array(items) => {
            for i in 0..items.len() {
                let size = count(&items[i]);
                if *index < size {
                    let at = format!("{path}[{i}]");
                    if *index == 0 {
                        if rng.chance(1, 3) {
                            items.remove(i);
                            return Some(format!("remove {at}"));
                        }
                        let new = hostile(rng, &items[i]);
                        let what = format!("{at} = {new}");
                        items[i] = new;
                        return Some(what);
                    }
                    *index -= 1;
                    return mutate_below(rng, &mut items[i], index, &at);
                }
                *index -= size;
            }
            None
        }
        Value::Table(t) => {
            let keys: Vec<String> = t.keys().cloned().collect();
            for k in keys {
                let size = count(&t[&k]);
                if *index < size {
                    let at = format!("{path}.{k}");
                    if *index == 0 {
                        return Some(match rng.below(4) {
                            0 => {
                                t.remove(&k);
                                format!("remove {at}")
                            }
                            1 => {
                                let v = t.remove(&k).expect("present");
                                t.insert(format!("{k}_x"), v);
                                format!("rename {at} to {k}_x")
                            }
                            _ => {
                                let new = hostile(rng, &t[&k]);
                                let what = format!("{at} = {new}");
                                t.insert(k, new);
                                what
                            }
                        });
                    }
                    *index -= 1;
                    return mutate_below(rng, t.get_mut(&k).expect("present"), index, &at);
                }
                *index -= size;
            }
            None
        }
        _ => None,
    }
}

/// Line-level edits that no TOML writer makes.
fn mutate_lines(rng: &mut Rng, text: &str) -> (String, String) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return ("x = ".into(), "a lone key without a value".into());
    }
    let i = rng.below(lines.len());
    let what = match rng.below(6) {
        0 => {
            let l = lines[i].clone();
            lines.insert(i, l);
            format!("duplicate line {}", i + 1)
        }
        1 => {
            lines.remove(i);
            format!("delete line {}", i + 1)
        }
        2 => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
            format!("swap lines {} and {}", i + 1, j + 1)
        }
        3 => {
            let cut = rng.below(lines[i].len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|&c| lines[i].is_char_boundary(c))
                .unwrap_or(0);
            lines[i].truncate(cut);
            format!("cut line {} at {cut}", i + 1)
        }
        4 => {
            // Repeat a whole [[run]] block: a run id appears twice.
            let starts: Vec<usize> = (0..lines.len())
                .filter(|&j| lines[j].trim() == "[[run]]")
                .collect();
            if starts.is_empty() {
                lines.insert(i, lines[i].clone());
                format!("duplicate line {}", i + 1)
            } else {
                let s = *rng.pick(&starts);
                let e = (s + 1..lines.len())
                    .find(|&j| lines[j].trim_start().starts_with('['))
                    .unwrap_or(lines.len());
                let block: Vec<String> = lines[s..e].to_vec();
                lines.splice(e..e, block);
                format!("repeat the [[run]] block at line {}", s + 1)
            }
        }
        _ => {
            let junk = *rng.pick(&[
                "seeds = 18446744073709551616",
                "epochs = -1",
                "name = \"../x\"",
                "[[run]]",
                "[defaults]",
                "x = nan",
                "= 1",
                "\"unterminated = 1",
            ]);
            lines.insert(i, junk.to_string());
            format!("insert '{junk}' at line {}", i + 1)
        }
    };
    let mut out = lines.join("\n");
    out.push('\n');
    (out, what)
}

/// A mutation of the valid TOML document `valid`: structure-aware (half the time),
/// line-level or byte-level; returns the mutated text and what was done.
pub fn mutate_text(rng: &mut Rng, valid: &str) -> (Vec<u8>, String) {
    match rng.below(8) {
        0..=3 => {
            let mut root = Value::Table(valid.parse::<toml::Table>().expect("valid TOML"));
            let n = rng.small(3);
            let mut done = Vec::new();
            for _ in 0..n {
                let mut index = rng.below(count(&root) - 1);
                done.extend(mutate_below(rng, &mut root, &mut index, "$"));
            }
            match toml::to_string(&root) {
                Ok(text) => (text.into_bytes(), done.join("; ")),
                // A value TOML cannot write in this place: fall back to line edits.
                Err(_) => {
                    let (t, w) = mutate_lines(rng, valid);
                    (t.into_bytes(), w)
                }
            }
        }
        4..=6 => {
            let (t, w) = mutate_lines(rng, valid);
            (t.into_bytes(), w)
        }
        _ => {
            let mut bytes = valid.as_bytes().to_vec();
            let what = crate::mutate::bytes(rng, &mut bytes);
            (bytes, what)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_mutations_stay_toml_and_change_it() {
        let text = "name = \"a\"\nseeds = 3\n[[run]]\nid = \"r\"\nlr = 0.5\n";
        let mut rng = Rng::new(2);
        let (mut parsed, mut changed) = (0, 0);
        for _ in 0..200 {
            let (out, what) = mutate_text(&mut rng, text);
            assert!(!what.is_empty());
            let out = String::from_utf8_lossy(&out);
            parsed += out.parse::<toml::Table>().is_ok() as usize;
            changed += (out != text) as usize;
        }
        assert!(parsed > 40 && parsed < 200, "{parsed}");
        assert!(changed > 180, "{changed}");
    }
}
