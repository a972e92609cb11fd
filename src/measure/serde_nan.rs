//! Serde for `Vec<f32>` that may hold NaN ("no value"): JSON has no NaN, so NaN is written as
//! `null` and read back from `null`. Use with `#[serde(with = "crate::measure::serde_nan")]`.

use serde::{Deserialize as _, Deserializer, Serializer};

/// Writes NaN as null.
pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| if x.is_nan() { None } else { Some(*x) }))
}

/// Reads null as NaN.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let v: Vec<Option<f32>> = Vec::deserialize(d)?;
    Ok(v.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect())
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct T {
        #[serde(with = "super")]
        v: Vec<f32>,
    }

    #[test]
    fn nan_round_trips_through_null() {
        let text = serde_json::to_string(&T {
            v: vec![1.5, f32::NAN],
        })
        .unwrap();
        assert_eq!(text, r#"{"v":[1.5,null]}"#);
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(back.v[0], 1.5);
        assert!(back.v[1].is_nan());
    }
}
