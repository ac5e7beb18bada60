//! Non-finite numbers in rbd's JSON files. JSON has no NaN or infinity, and serde_json
//! writes them as `null`, which reads back as an error into an `f64` and as "absent"
//! into an `Option<f64>`: a diverged run's files could not be read again. Every float
//! rbd writes to JSON goes through these helpers instead:
//!
//! - a finite number is written as serde_json writes it (so files of finite values,
//!   run ids and checksums are unchanged);
//! - NaN, +∞ and −∞ are written as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`
//!   (JavaScript's names; Python's `float()` reads them);
//! - readers accept a number, one of those strings, or `null`, which older files hold
//!   for a non-finite value and which is read as NaN (the value is lost, not its
//!   non-finiteness). In an `Option<f64>`, `null` stays "absent".
//!
//! CSV and Markdown files write the same three words ([`text`]).

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// The word for a non-finite `x`, or `None` when it is finite.
fn word(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("NaN")
    } else if x == f64::INFINITY {
        Some("Infinity")
    } else if x == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// `x` for a CSV or Markdown file: as Rust prints it when finite, else its word.
pub fn text(x: f64) -> String {
    word(x).map_or_else(|| x.to_string(), str::to_string)
}

/// Parses a word written by [`text`] or serde (`NaN`, `Infinity`, `-Infinity`; also
/// `inf`, `-inf` as Rust prints them).
fn parse_word(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn write<S: Serializer>(x: f64, s: S) -> Result<S::Ok, S::Error> {
    match word(x) {
        Some(w) => s.serialize_str(w),
        None => s.serialize_f64(x),
    }
}

/// A float as read: a number, a word, or `null`.
struct Float(Option<f64>);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Float;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Float, E> {
                Ok(Float(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Float, E> {
                Ok(Float(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Float, E> {
                Ok(Float(Some(v as f64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Float, E> {
                parse_word(v)
                    .map(|x| Float(Some(x)))
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Float, E> {
                Ok(Float(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Float, E> {
                Ok(Float(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Float, D::Error> {
                Float::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

/// `#[serde(with = "crate::nonfinite::float")]` for an `f64`.
pub mod float {
    use super::*;

    /// Writes `x` (a word when non-finite).
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        write(*x, s)
    }

    /// Reads a number, a word, or `null` (NaN).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Float::deserialize(d)?.0.unwrap_or(f64::NAN))
    }
}

/// `#[serde(with = "crate::nonfinite::option")]` for an `Option<f64>` (`null` is
/// `None`); add `default` where the field may be absent.
pub mod option {
    use super::*;

    /// Writes `null` or `x` (a word when non-finite).
    pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            Some(x) => write(*x, s),
            None => s.serialize_none(),
        }
    }

    /// Reads `null` (`None`), a number or a word.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Float::deserialize(d)?.0)
    }
}

/// An `f64` that reads and writes through [`float`], for floats inside collections.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct Item(#[serde(with = "float")] f64);

/// `#[serde(with = "crate::nonfinite::rows")]` for a `Vec<Vec<f64>>`.
pub mod rows {
    use super::*;

    /// Writes every value through [`float`].
    pub fn serialize<S: Serializer>(x: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        let items: Vec<Vec<Item>> = x
            .iter()
            .map(|r| r.iter().map(|&v| Item(v)).collect())
            .collect();
        items.serialize(s)
    }

    /// Reads every value through [`float`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        let items = Vec::<Vec<Item>>::deserialize(d)?;
        Ok(items
            .into_iter()
            .map(|r| r.into_iter().map(|v| v.0).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        #[serde(with = "float")]
        x: f64,
        #[serde(with = "option")]
        y: Option<f64>,
        #[serde(with = "rows")]
        z: Vec<Vec<f64>>,
    }

    fn bits(r: &Row) -> (u64, Option<u64>, Vec<Vec<u64>>) {
        (
            r.x.to_bits(),
            r.y.map(f64::to_bits),
            r.z.iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect())
                .collect(),
        )
    }

    #[test]
    fn every_value_round_trips_and_finite_ones_are_written_as_before() {
        for x in [
            0.1 + 0.2,
            -0.0,
            1e300,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let row = Row {
                x,
                y: Some(x),
                z: vec![vec![x, 1.0], vec![]],
            };
            let text = serde_json::to_string(&row).unwrap();
            let back: Row = serde_json::from_str(&text).unwrap();
            if x.is_nan() {
                assert!(back.x.is_nan() && back.y.unwrap().is_nan() && back.z[0][0].is_nan());
            } else {
                assert_eq!(bits(&back), bits(&row), "{text}");
            }
            if x.is_finite() {
                // The text of a finite value is serde_json's own.
                let plain = serde_json::json!({"x": x, "y": x, "z": [[x, 1.0], []]});
                assert_eq!(text, plain.to_string());
            }
        }
        let text = serde_json::to_string(&Row {
            x: f64::NEG_INFINITY,
            y: None,
            z: vec![vec![f64::NAN]],
        })
        .unwrap();
        assert_eq!(text, r#"{"x":"-Infinity","y":null,"z":[["NaN"]]}"#);
    }

    #[test]
    fn older_nulls_read_as_nan_and_other_words_are_refused() {
        let back: Row = serde_json::from_str(r#"{"x":null,"y":null,"z":[[null]]}"#).unwrap();
        assert!(back.x.is_nan() && back.y.is_none() && back.z[0][0].is_nan());
        let back: Row = serde_json::from_str(r#"{"x":3,"y":"Infinity","z":[]}"#).unwrap();
        assert_eq!((back.x, back.y), (3.0, Some(f64::INFINITY)));
        let e = serde_json::from_str::<Row>(r#"{"x":"lots","y":null,"z":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"NaN\", \"Infinity\" or \"-Infinity\""), "{e}");
        assert_eq!(text(f64::INFINITY), "Infinity");
        assert_eq!(text(0.25), "0.25");
    }
}
