//! Structure-aware mutations of JSON documents: a valid document is parsed into a tree
//! that keeps members in order and numbers as text, so a mutation can write what
//! `serde_json` itself never writes: duplicated keys, `NaN`, `Infinity`, `1e999`,
//! integers past `u64::MAX`. One node is picked and removed, retyped, duplicated,
//! renamed or given a hostile value; the tree is written back compact or pretty.

use crate::rng::Rng;

/// A JSON value whose numbers are raw text and whose objects may repeat a key.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number token as written (possibly not valid JSON: `NaN`, `Infinity`).
    Num(String),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, members in order (a key may repeat).
    Obj(Vec<(String, Json)>),
}

/// Number tokens that break numeric fields: non-finite spellings, out-of-range
/// integers, negative zero, fractions where integers belong.
pub const HOSTILE_NUMBERS: [&str; 22] = [
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e999",
    "-1e999",
    "1e-400",
    "-0",
    "-0.0",
    "0",
    "-1",
    "0.5",
    "1e18",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1.7976931348623157e308",
    "340282366920938463463374607431768211456",
    "00",
];

/// Strings that break text fields: empty, path escapes, control characters, numbers
/// and non-finite spellings as text, a long one.
fn hostile_string(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => String::new(),
        1 => "../../escaped".into(),
        2 => "/absolute/path".into(),
        3 => "a\u{0}b".into(),
        4 => "NaN".into(),
        5 => "inf".into(),
        6 => "2^-3".into(),
        7 => "x".repeat(rng.range(1000, 70_000)),
        8 => "\u{202e}ünïcödé\u{1F600}".into(),
        9 => "-1".into(),
        10 => " ".into(),
        _ => "unknown-value".into(),
    }
}

impl Json {
    /// Converts a parsed document.
    pub fn from_value(v: &serde_json::Value) -> Json {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Num(n.to_string()),
            serde_json::Value::String(s) => Json::Str(s.clone()),
            serde_json::Value::Array(a) => Json::Arr(a.iter().map(Json::from_value).collect()),
            serde_json::Value::Object(o) => Json::Obj(
                o.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Parses `text` (valid JSON).
    pub fn parse(text: &str) -> Json {
        Json::from_value(&serde_json::from_str(text).expect("a generator writes valid JSON"))
    }

    /// Writes the value compact (`pretty = false`) or indented by two spaces.
    pub fn write(&self, pretty: bool) -> String {
        let mut out = String::new();
        self.write_into(&mut out, pretty, 0);
        out
    }

    fn write_into(&self, out: &mut String, pretty: bool, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if pretty {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', 2 * depth));
            }
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => out.push_str(&quote(s)),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write_into(out, pretty, depth + 1);
                }
                if !items.is_empty() {
                    newline(out, depth);
                }
                out.push(']');
            }
            Json::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    out.push_str(&quote(k));
                    out.push_str(if pretty { ": " } else { ":" });
                    v.write_into(out, pretty, depth + 1);
                }
                if !members.is_empty() {
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }

    /// The number of nodes (this one included).
    fn count(&self) -> usize {
        1 + match self {
            Json::Arr(items) => items.iter().map(Json::count).sum(),
            Json::Obj(members) => members.iter().map(|(_, v)| v.count()).sum(),
            _ => 0,
        }
    }

    /// Applies 1 to 3 structure-aware mutations; returns what was done.
    pub fn mutate(&mut self, rng: &mut Rng) -> String {
        let n = rng.small(3);
        (0..n)
            .map(|_| {
                let target = rng.below(self.count());
                let mut index = target;
                self.mutate_at(rng, &mut index, "$")
                    .unwrap_or_else(|| "no change".into())
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Mutates the `index`-th node in pre-order (the root is node 0). A node inside an
    /// array or object may be removed, duplicated or renamed by its parent.
    fn mutate_at(&mut self, rng: &mut Rng, index: &mut usize, path: &str) -> Option<String> {
        if *index == 0 {
            return Some(self.replace(rng, path));
        }
        *index -= 1;
        match self {
            Json::Arr(items) => {
                for i in 0..items.len() {
                    let size = items[i].count();
                    if *index < size {
                        let at = format!("{path}[{i}]");
                        if *index == 0 && rng.chance(1, 3) {
                            return Some(match rng.below(3) {
                                0 => {
                                    items.remove(i);
                                    format!("remove {at}")
                                }
                                1 => {
                                    // Many copies only of small items: a bounded input.
                                    let many = if items[i].count() <= 3 { 10_000 } else { 10 };
                                    let copies = *rng.pick(&[1usize, 2, many]);
                                    let item = items[i].clone();
                                    items.splice(i..i, std::iter::repeat_n(item, copies));
                                    format!("repeat {at} {copies} more times")
                                }
                                _ => {
                                    items.clear();
                                    format!("empty the array holding {at}")
                                }
                            });
                        }
                        return items[i].mutate_at(rng, index, &at);
                    }
                    *index -= size;
                }
                None
            }
            Json::Obj(members) => {
                for i in 0..members.len() {
                    let size = members[i].1.count();
                    if *index < size {
                        let at = format!("{path}.{}", members[i].0);
                        if *index == 0 && rng.chance(1, 2) {
                            return Some(match rng.below(4) {
                                0 => {
                                    members.remove(i);
                                    format!("remove {at}")
                                }
                                1 => {
                                    let mut dup = members[i].clone();
                                    let how = dup.1.replace(rng, &at);
                                    let before = rng.chance(1, 2);
                                    members.insert(if before { i } else { i + 1 }, dup);
                                    format!("duplicate key {at} ({how})")
                                }
                                2 => {
                                    let key = &mut members[i].0;
                                    let new = match rng.below(3) {
                                        0 => key.to_uppercase(),
                                        1 => format!("{key}_x"),
                                        _ => String::new(),
                                    };
                                    *key = new.clone();
                                    format!("rename {at} to '{new}'")
                                }
                                _ => {
                                    let junk = (hostile_string(rng), Json::Num("1".into()));
                                    members.insert(i, junk);
                                    format!("add an unknown key before {at}")
                                }
                            });
                        }
                        return members[i].1.mutate_at(rng, index, &at);
                    }
                    *index -= size;
                }
                None
            }
            _ => None,
        }
    }

    /// Replaces this node with a hostile value, usually of a related kind.
    fn replace(&mut self, rng: &mut Rng, path: &str) -> String {
        let new = match (&*self, rng.below(4)) {
            // Numbers most often stay numbers, with a hostile spelling.
            (Json::Num(_), 0..=2) => Json::Num((*rng.pick(&HOSTILE_NUMBERS)).into()),
            (Json::Str(_), 0 | 1) => Json::Str(hostile_string(rng)),
            _ => match rng.below(8) {
                0 => Json::Null,
                1 => Json::Bool(rng.chance(1, 2)),
                2 | 3 => Json::Num((*rng.pick(&HOSTILE_NUMBERS)).into()),
                4 => Json::Str(hostile_string(rng)),
                5 => Json::Arr(Vec::new()),
                6 => Json::Arr(vec![self.clone()]),
                _ => Json::Obj(Vec::new()),
            },
        };
        let shown = new.write(false);
        let shown: String = shown.chars().take(40).collect();
        *self = new;
        format!("{path} = {shown}")
    }
}

/// `s` as a JSON string literal.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// A structure-aware mutation of the JSON text `valid`, or (one time in four) a
/// byte-level one; returns the mutated text and what was done.
pub fn mutate_text(rng: &mut Rng, valid: &str, pretty: bool) -> (Vec<u8>, String) {
    if rng.chance(1, 4) {
        let mut bytes = valid.as_bytes().to_vec();
        let what = crate::mutate::bytes(rng, &mut bytes);
        return (bytes, what);
    }
    let mut tree = Json::parse(valid);
    let what = tree.mutate(rng);
    (tree.write(pretty).into_bytes(), what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_back_what_it_parsed() {
        let text = r#"{"a":[1,2.5,{"b":null}],"c":"x\"y","d":true}"#;
        let tree = Json::parse(text);
        assert_eq!(tree.write(false), text);
        let pretty = tree.write(true);
        let back: serde_json::Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }

    #[test]
    fn writes_duplicate_keys_and_non_finite_tokens() {
        let tree = Json::Obj(vec![
            ("k".into(), Json::Num("NaN".into())),
            ("k".into(), Json::Num("1e999".into())),
        ]);
        assert_eq!(tree.write(false), r#"{"k":NaN,"k":1e999}"#);
    }

    #[test]
    fn mutations_reach_every_depth() {
        let text = r#"{"a":{"b":{"c":[1,2,3]}}}"#;
        let mut rng = Rng::new(11);
        let mut deep = 0;
        for _ in 0..300 {
            let mut t = Json::parse(text);
            let what = t.mutate(&mut rng);
            deep += what.contains("$.a.b.c") as usize;
            assert_ne!(what, "no change");
        }
        assert!(deep > 20, "{deep}");
    }
}
