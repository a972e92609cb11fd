//! The shared / candidate / independent split of Wang et al. (the spec's S_S, S_C, S_I, scaled
//! down): encoder f trains on S_S and S_C, encoder g on S_S and S_I, and memorization is measured
//! on S_C. Planted outliers replace some candidates with images of another data set (e.g.
//! Fashion-MNIST items among MNIST digits); only f sees them.

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;

use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};

/// Which encoder of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The candidate encoder: trained on S_S and S_C.
    F,
    /// The independent encoder: trained on S_S and S_I.
    G,
}

impl Role {
    /// "f" or "g".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F => "f",
            Self::G => "g",
        }
    }
}

/// A candidate replaced by an image of the outlier data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Planted {
    /// Position in the candidate list.
    pub slot: u32,
    /// Index of the replacing image in the outlier data set.
    pub outlier_index: u32,
}

/// The split, recorded in both encoders' cards.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SslSplit {
    /// S_S: main data-set indices both encoders train on.
    pub shared: Vec<u32>,
    /// S_C: main data-set indices only f trains on (planted slots replaced, see `planted`).
    pub candidates: Vec<u32>,
    /// S_I: main data-set indices only g trains on.
    pub independent: Vec<u32>,
    /// Candidates replaced by outlier images.
    pub planted: Vec<Planted>,
    /// Name of the outlier data set (empty when nothing is planted).
    pub outlier_data: String,
}

/// One training or measurement image: its stable id (seeds its augmentations) and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleRef {
    /// Main data-set index.
    Main(u32),
    /// Outlier data-set index.
    Outlier(u32),
}

impl SampleRef {
    /// Stable id: the main index, or 2^40 + the outlier index.
    pub fn id(self) -> u64 {
        match self {
            Self::Main(i) => u64::from(i),
            Self::Outlier(i) => (1u64 << 40) + u64::from(i),
        }
    }
}

/// How to draw the split.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitConfig {
    /// Images drawn (seeded) from the main data set's training split.
    pub images: usize,
    /// Fraction of them in S_C (the same number goes to S_I; the rest is S_S).
    pub candidate_frac: f64,
    /// Candidates replaced by outliers.
    pub plant_outliers: usize,
    /// Outlier data set (bundled name or path, same image shape).
    pub outlier_data: String,
    /// Seed of the draw.
    pub seed: u64,
}

fn rng(seed: u64, stream: u64) -> rand_chacha::ChaCha8Rng {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Draws the split from `main` (and the planted images from `outliers`).
pub fn draw_split(cfg: &SplitConfig, main: &Dataset, outliers: Option<&Dataset>) -> CoreResult<SslSplit> {
    let mut pool = main.train_indices();
    pool.shuffle(&mut rng(cfg.seed, 11));
    if cfg.images < 10 || cfg.images > pool.len() {
        return Err(CoreError::Invalid(format!(
            "--images must be between 10 and {} (the training split of '{}'), got {}",
            pool.len(),
            main.name,
            cfg.images
        )));
    }
    if !(cfg.candidate_frac > 0.0 && cfg.candidate_frac < 0.5) {
        return Err(CoreError::Invalid(format!(
            "the candidate fraction must be in (0, 0.5), got {}",
            cfg.candidate_frac
        )));
    }
    pool.truncate(cfg.images);
    let nc = ((cfg.images as f64) * cfg.candidate_frac).round().max(1.0) as usize;
    let as_u32 = |v: &[usize]| -> Vec<u32> { v.iter().map(|&i| i as u32).collect() };
    let candidates = as_u32(&pool[..nc]);
    let independent = as_u32(&pool[nc..2 * nc]);
    let mut shared = as_u32(&pool[2 * nc..]);
    shared.sort_unstable();
    if cfg.plant_outliers > nc {
        return Err(CoreError::Invalid(format!(
            "cannot plant {} outliers among {nc} candidates",
            cfg.plant_outliers
        )));
    }
    let mut planted = Vec::new();
    if cfg.plant_outliers > 0 {
        let Some(out) = outliers else {
            return Err(CoreError::Invalid(
                "planting outliers needs an outlier data set".into(),
            ));
        };
        if [out.c, out.h, out.w] != [main.c, main.h, main.w] {
            return Err(CoreError::Mismatch(format!(
                "outlier data set '{}' has images {:?} but '{}' has {:?}",
                out.name,
                [out.c, out.h, out.w],
                main.name,
                [main.c, main.h, main.w]
            )));
        }
        let mut slots: Vec<u32> = (0..nc as u32).collect();
        slots.shuffle(&mut rng(cfg.seed, 12));
        let mut donors = out.train_indices();
        donors.shuffle(&mut rng(cfg.seed, 13));
        for (k, &slot) in slots.iter().take(cfg.plant_outliers).enumerate() {
            let Some(&d) = donors.get(k) else { break };
            planted.push(Planted {
                slot,
                outlier_index: d as u32,
            });
        }
        planted.sort_by_key(|p| p.slot);
    }
    let split = SslSplit {
        shared,
        candidates,
        independent,
        planted,
        outlier_data: if cfg.plant_outliers > 0 {
            cfg.outlier_data.clone()
        } else {
            String::new()
        },
    };
    check_split(&split)?;
    Ok(split)
}

impl SslSplit {
    /// The candidates as samples (planted slots point at the outlier data set).
    pub fn candidate_refs(&self) -> Vec<SampleRef> {
        let mut refs: Vec<SampleRef> = self.candidates.iter().map(|&i| SampleRef::Main(i)).collect();
        for p in &self.planted {
            if let Some(r) = refs.get_mut(p.slot as usize) {
                *r = SampleRef::Outlier(p.outlier_index);
            }
        }
        refs
    }

    /// Positions of the planted outliers in the candidate list.
    pub fn planted_slots(&self) -> Vec<usize> {
        self.planted.iter().map(|p| p.slot as usize).collect()
    }

    /// What encoder `role` trains on.
    pub fn train_refs(&self, role: Role) -> Vec<SampleRef> {
        let mut refs: Vec<SampleRef> = self.shared.iter().map(|&i| SampleRef::Main(i)).collect();
        match role {
            Role::F => refs.extend(self.candidate_refs()),
            Role::G => refs.extend(self.independent.iter().map(|&i| SampleRef::Main(i))),
        }
        refs
    }
}

/// Verifies the split: S_S, S_C and S_I are disjoint, g's training set holds no candidate (nor
/// planted outlier) and f's holds no independent sample.
pub fn check_split(split: &SslSplit) -> CoreResult<()> {
    use std::collections::HashSet;
    let s: HashSet<u32> = split.shared.iter().copied().collect();
    let c: HashSet<u32> = split.candidates.iter().copied().collect();
    let i: HashSet<u32> = split.independent.iter().copied().collect();
    let dup = s.len() != split.shared.len()
        || c.len() != split.candidates.len()
        || i.len() != split.independent.len();
    if dup || !s.is_disjoint(&c) || !s.is_disjoint(&i) || !c.is_disjoint(&i) {
        return Err(CoreError::Invalid(
            "the SSL split is not three disjoint sets".into(),
        ));
    }
    let g: HashSet<u64> = split.train_refs(Role::G).iter().map(|r| r.id()).collect();
    let f: HashSet<u64> = split.train_refs(Role::F).iter().map(|r| r.id()).collect();
    let cand: HashSet<u64> = split.candidate_refs().iter().map(|r| r.id()).collect();
    let indep: HashSet<u64> = split.independent.iter().map(|&x| u64::from(x)).collect();
    if !g.is_disjoint(&cand) || !f.is_disjoint(&indep) {
        return Err(CoreError::Invalid(
            "g would train on a candidate or f on an independent sample".into(),
        ));
    }
    Ok(())
}

/// Pixels of `refs` as one flat f32 buffer in [0, 1].
pub fn images01(refs: &[SampleRef], main: &Dataset, outliers: Option<&Dataset>) -> CoreResult<Vec<f32>> {
    let mut out = Vec::with_capacity(refs.len() * main.image_len());
    for r in refs {
        let (ds, i) = match *r {
            SampleRef::Main(i) => (main, i),
            SampleRef::Outlier(i) => (
                outliers.ok_or_else(|| CoreError::Invalid("the outlier data set is not loaded".into()))?,
                i,
            ),
        };
        let img = ds
            .image_f32(i as usize)
            .ok_or_else(|| CoreError::Invalid(format!("image {i} is outside data set '{}'", ds.name)))?;
        out.extend(img);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_and_g_never_sees_candidates() {
        let main = crate::data::load("digits8x8").unwrap();
        let cfg = SplitConfig {
            images: 200,
            candidate_frac: 0.1,
            plant_outliers: 5,
            outlier_data: "digits8x8".into(),
            seed: 3,
        };
        let split = draw_split(&cfg, &main, Some(&main)).unwrap();
        assert_eq!(split.candidates.len(), 20);
        assert_eq!(split.independent.len(), 20);
        assert_eq!(split.shared.len(), 160);
        assert_eq!(split.planted.len(), 5);
        check_split(&split).unwrap();
        let g = split.train_refs(Role::G);
        assert!(g.iter().all(|r| !split.candidate_refs().contains(r)));
        assert_eq!(split.train_refs(Role::F).len(), 180);
        assert_eq!(split, draw_split(&cfg, &main, Some(&main)).unwrap());
        // A corrupted split is refused.
        let mut bad = split.clone();
        bad.independent[0] = bad.candidates[0];
        assert!(check_split(&bad).is_err());
    }
}
