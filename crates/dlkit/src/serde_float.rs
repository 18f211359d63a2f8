//! Serde adapters that keep non-finite floats in JSON (which has no NaN or ∞): they are written
//! as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` and read back from those strings or from
//! numbers. Use with `#[serde(with = "crate::serde_float")]` (and `serde_float::option`,
//! `serde_float::vec`) on the fields of records that a diverging run can fill with NaN.

use serde::{Deserialize, Deserializer, Serializer};

/// A float as JSON sees it: a number, or one of the three strings.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Json {
    Number(f64),
    Text(String),
}

fn to_json(v: f64) -> Json {
    if v.is_finite() {
        Json::Number(v)
    } else if v.is_nan() {
        Json::Text("NaN".into())
    } else if v > 0.0 {
        Json::Text("Infinity".into())
    } else {
        Json::Text("-Infinity".into())
    }
}

fn from_json<E: serde::de::Error>(j: Json) -> Result<f64, E> {
    match j {
        Json::Number(v) => Ok(v),
        Json::Text(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => Err(E::custom(format!("expected a number, \"NaN\" or \"±Infinity\", got \"{other}\""))),
        },
    }
}

/// Serialize one float.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&to_json(*v), s)
}

/// Deserialize one float.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    from_json(Json::deserialize(d)?)
}

/// The same for `Option<f64>` (`null` stays `None`).
pub mod option {
    use super::*;

    /// Serialize an optional float.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&v.map(to_json), s)
    }

    /// Deserialize an optional float.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<Json>::deserialize(d)?.map(from_json).transpose()
    }
}

/// The same for `Vec<f64>`.
pub mod vec {
    use super::*;

    /// Serialize a list of floats.
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&v.iter().map(|x| to_json(*x)).collect::<Vec<_>>(), s)
    }

    /// Deserialize a list of floats.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Json>::deserialize(d)?.into_iter().map(from_json).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_finite_floats_round_trip_through_json() {
        #[derive(serde::Serialize, serde::Deserialize, Debug)]
        struct R {
            #[serde(with = "crate::serde_float")]
            a: f64,
            #[serde(with = "crate::serde_float::option")]
            b: Option<f64>,
            #[serde(with = "crate::serde_float::vec")]
            c: Vec<f64>,
        }
        let r = R { a: f64::NAN, b: Some(f64::INFINITY), c: vec![1.5, f64::NEG_INFINITY] };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"a":"NaN","b":"Infinity","c":[1.5,"-Infinity"]}"#);
        let back: R = serde_json::from_str(&text).unwrap();
        assert!(back.a.is_nan() && back.b == Some(f64::INFINITY) && back.c[1] == f64::NEG_INFINITY);
        let none: R = serde_json::from_str(r#"{"a":2,"b":null,"c":[]}"#).unwrap();
        assert_eq!((none.a, none.b), (2.0, None));
        assert!(serde_json::from_str::<R>(r#"{"a":"big","b":null,"c":[]}"#).is_err());
    }
}
