//! `rote layermem`: LayerMem, ΔLayerMem and UnitMem of an encoder pair, written atomically to
//! `STUDY/results/layermem/<f>-<g>.json`.

use std::path::{Path, PathBuf};

use super::card::SslEncoder;
use super::measure::{AlignForm, Probe, align_losses, unit_activations};
use super::split::{Role, check_split, images01};
use super::stats::{MuMinus, Norm, mean, normalise, outlier_ratio, unit_mem};
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Options of a LayerMem/UnitMem measurement.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LayerMemConfig {
    /// LayerMem augmentations per candidate (reference code: 5).
    pub augmentations: usize,
    /// UnitMem augmentations per candidate (reference code: 10).
    pub unit_augmentations: usize,
    /// Normalisation of the per-candidate differences.
    pub norm: Norm,
    /// μ_-max of UnitMem.
    pub mu_minus: MuMinus,
    /// Views compared by L_align.
    pub align: AlignForm,
    /// Seed of the measurement draws (per candidate and draw, identical for f and g).
    pub seed: u64,
    /// `cpu` or `cuda`.
    pub device: String,
}

impl Default for LayerMemConfig {
    fn default() -> Self {
        Self {
            augmentations: 5,
            unit_augmentations: 10,
            norm: Norm::Range,
            mu_minus: MuMinus::Median,
            align: AlignForm::CleanVsAug,
            seed: 0,
            device: "cpu".into(),
        }
    }
}

/// UnitMem of every unit of one layer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LayerUnits {
    /// Layer name.
    pub layer: String,
    /// UnitMem per unit (null for a dead unit).
    pub unitmem: Vec<Option<f32>>,
    /// Candidate position (in `candidates`) with the highest mean activation, per unit.
    pub argmax: Vec<u32>,
    /// Mean UnitMem over the live units.
    pub mean: Option<f64>,
    /// Units that never fire on the candidates.
    pub dead: usize,
    /// Units whose most-activating candidate is a planted outlier.
    pub units_on_planted: usize,
}

/// Planted outliers against the rest, final layer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct OutlierSummary {
    /// Candidate positions of the planted outliers.
    pub planted: Vec<usize>,
    /// Mean final-layer LayerMem (under `norm`) of the planted outliers / of the rest; null
    /// unless both means are positive (a ratio of two negative means would read as a large
    /// "memorization" ratio). With `range` (division only) this equals `ratio_raw`.
    pub ratio: Option<f64>,
    /// The same ratio on the raw, unnormalised differences L_align(g) - L_align(f) (null unless
    /// both means are positive).
    pub ratio_raw: Option<f64>,
    /// The same ratio after min-max normalisation (both means in [0, 1]).
    pub ratio_minmax: Option<f64>,
    /// Mean raw final-layer difference of the planted outliers.
    pub mean_raw_planted: Option<f64>,
    /// Mean raw final-layer difference of the rest.
    pub mean_raw_rest: Option<f64>,
}

/// The JSON report.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LayerMemReport {
    /// Candidate encoder id.
    pub f: String,
    /// Independent encoder id.
    pub g: String,
    /// Options used.
    pub config: LayerMemConfig,
    /// Layer names, input side first (post-ReLU outputs; see the encoder's module doc).
    pub layers: Vec<String>,
    /// Main data-set index of each candidate (planted slots keep the index they replaced).
    pub candidates: Vec<u32>,
    /// Mean LayerMem per layer (under `config.norm`).
    pub layermem_mean: Vec<f64>,
    /// ΔLayerMem per layer (the first layer's is its LayerMem).
    pub delta_layermem_mean: Vec<f64>,
    /// Mean raw difference L_align(g) - L_align(f) per layer.
    pub raw_mean: Vec<f64>,
    /// Mean LayerMem per layer over planted outliers only (empty without planted ones).
    pub layermem_mean_planted: Vec<f64>,
    /// Mean LayerMem per layer over the other candidates.
    pub layermem_mean_rest: Vec<f64>,
    /// LayerMem [layer][candidate] (under `config.norm`), for a layers x candidates heatmap.
    pub layermem: Vec<Vec<f32>>,
    /// L_align of f [layer][candidate].
    pub align_f: Vec<Vec<f32>>,
    /// L_align of g [layer][candidate].
    pub align_g: Vec<Vec<f32>>,
    /// UnitMem of f per layer.
    pub unitmem_f: Vec<LayerUnits>,
    /// UnitMem of g per layer (g never saw the candidates: a baseline).
    pub unitmem_g: Vec<LayerUnits>,
    /// Mean UnitMem of f per layer.
    pub unitmem_mean_f: Vec<Option<f64>>,
    /// ClassMem of f per layer and unit (class selectivity over the candidates' labels; planted
    /// outliers left out), for the UnitMem-vs-ClassMem comparison with supervised models.
    #[serde(default)]
    pub classmem_f: Vec<Vec<Option<f32>>>,
    /// Mean ClassMem of f per layer.
    #[serde(default)]
    pub classmem_mean_f: Vec<Option<f64>>,
    /// Planted outliers vs the rest.
    pub outliers: OutlierSummary,
    /// Seconds per candidate for LayerMem (both encoders, all draws).
    pub seconds_per_candidate_layermem: f64,
    /// Seconds per candidate for UnitMem (both encoders, all draws).
    pub seconds_per_candidate_unitmem: f64,
}

/// Checks that `f` and `g` form a pair: roles, identical split, recipe and architecture.
pub fn check_pair(f: &SslEncoder, g: &SslEncoder) -> CoreResult<()> {
    let (a, b) = (&f.card, &g.card);
    let why = if a.role != Role::F || b.role != Role::G {
        Some(format!(
            "--f must be a candidate (f) encoder and --g an independent (g) one, got {} and {}",
            a.role.as_str(),
            b.role.as_str()
        ))
    } else if a.split != b.split {
        Some("the two encoders were trained on different splits".into())
    } else if a.recipe != b.recipe || a.arch != b.arch {
        Some("the two encoders differ in recipe or architecture".into())
    } else if a.dataset.hash != b.dataset.hash {
        Some("the two encoders were trained on different data sets".into())
    } else {
        None
    };
    match why {
        Some(w) => Err(CoreError::Mismatch(format!("'{}' and '{}': {w}", a.id, b.id))),
        None => check_split(&a.split),
    }
}

fn units_of(layer: &str, mu: &[Vec<f32>], mu_minus: MuMinus, planted: &[usize]) -> LayerUnits {
    let units = mu.first().map_or(0, Vec::len);
    let (mut unitmem, mut argmax) = (Vec::with_capacity(units), Vec::with_capacity(units));
    for u in 0..units {
        let col: Vec<f32> = mu.iter().map(|row| row[u]).collect();
        let (v, arg) = unit_mem(&col, mu_minus);
        unitmem.push(v);
        argmax.push(arg as u32);
    }
    let live: Vec<f64> = unitmem.iter().flatten().map(|&v| f64::from(v)).collect();
    LayerUnits {
        layer: layer.to_string(),
        dead: units - live.len(),
        mean: (!live.is_empty()).then(|| mean(&live)),
        units_on_planted: argmax
            .iter()
            .zip(&unitmem)
            .filter(|(a, v)| v.is_some() && planted.contains(&(**a as usize)))
            .count(),
        unitmem,
        argmax,
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The ratio of `values`' planted mean to the rest's, only when both are positive.
fn positive_ratio(values: &[f64], planted: &[usize]) -> Option<f64> {
    let inside: Vec<f64> = planted.iter().filter_map(|&i| values.get(i).copied()).collect();
    let rest: Vec<f64> = values
        .iter()
        .enumerate()
        .filter(|(i, _)| !planted.contains(i))
        .map(|(_, &v)| v)
        .collect();
    (mean(&inside) > 0.0 && mean(&rest) > 0.0)
        .then(|| outlier_ratio(values, planted))
        .and_then(finite)
}

fn to_f32(m: &[Vec<f64>]) -> Vec<Vec<f32>> {
    m.iter().map(|r| r.iter().map(|&v| v as f32).collect()).collect()
}

/// Measures the pair in folders `f_dir` and `g_dir`.
pub fn layermem(
    f_dir: &Path,
    g_dir: &Path,
    cfg: &LayerMemConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<LayerMemReport> {
    let device = crate::model::device(&cfg.device)?;
    let f = SslEncoder::load(f_dir, &device)?;
    let g = SslEncoder::load(g_dir, &device)?;
    check_pair(&f, &g)?;
    if cfg.augmentations == 0 || cfg.unit_augmentations == 0 {
        return Err(CoreError::Invalid(
            "--augmentations and --unit-augmentations must be positive".into(),
        ));
    }
    let card = &f.card;
    let main = crate::data::load(&card.dataset.name)?;
    if main.hash != card.dataset.hash {
        return Err(CoreError::Mismatch(format!(
            "data set '{}' changed since '{}' was trained (hash {} vs {})",
            main.name, card.id, main.hash, card.dataset.hash
        )));
    }
    let outliers = match &card.outlier_dataset {
        Some(r) => Some(crate::data::load(&r.name)?),
        None => None,
    };
    let refs = card.split.candidate_refs();
    let pixels = images01(&refs, &main, outliers.as_ref())?;
    let probe = Probe {
        pixels: &pixels,
        refs: &refs,
        shape: [main.c, main.h, main.w],
        aug: &card.recipe.aug,
        seed: cfg.seed,
        chunk: 32,
    };
    let n = refs.len().max(1) as f64;
    let t0 = std::time::Instant::now();
    let align = align_losses(&[&f, &g], &probe, cfg.augmentations, cfg.align, &device, ctx)?;
    let lm_secs = t0.elapsed().as_secs_f64() / n;
    let t1 = std::time::Instant::now();
    let mu_f = unit_activations(&f, &probe, cfg.unit_augmentations, &device, ctx)?;
    let mu_g = unit_activations(&g, &probe, cfg.unit_augmentations, &device, ctx)?;
    let um_secs = t1.elapsed().as_secs_f64() / n;

    let planted = card.split.planted_slots();
    let layers = card.layers.clone();
    let raw: Vec<Vec<f64>> = (0..layers.len())
        .map(|l| {
            align[1][l]
                .iter()
                .zip(&align[0][l])
                .map(|(gv, fv)| gv - fv)
                .collect()
        })
        .collect();
    let normed: Vec<Vec<f64>> = raw.iter().map(|d| normalise(d, cfg.norm)).collect();
    let layermem_mean: Vec<f64> = normed.iter().map(|v| mean(v)).collect();
    let delta: Vec<f64> = layermem_mean
        .iter()
        .enumerate()
        .map(|(l, &m)| if l == 0 { m } else { m - layermem_mean[l - 1] })
        .collect();
    let split_mean = |v: &Vec<f64>, inside: bool| -> f64 {
        let xs: Vec<f64> = v
            .iter()
            .enumerate()
            .filter(|(i, _)| planted.contains(i) == inside)
            .map(|(_, &x)| x)
            .collect();
        mean(&xs)
    };
    let last = raw.last().cloned().unwrap_or_default();
    let outliers_summary = OutlierSummary {
        planted: planted.clone(),
        ratio: positive_ratio(normed.last().map_or(&[][..], Vec::as_slice), &planted),
        ratio_raw: positive_ratio(&last, &planted),
        ratio_minmax: finite(outlier_ratio(&normalise(&last, Norm::Minmax), &planted)),
        mean_raw_planted: finite(split_mean(&last, true)),
        mean_raw_rest: finite(split_mean(&last, false)),
    };
    let unitmem_f: Vec<LayerUnits> = layers
        .iter()
        .zip(&mu_f)
        .map(|(l, m)| units_of(l, m, cfg.mu_minus, &planted))
        .collect();
    let labels: Vec<Option<u16>> = refs
        .iter()
        .map(|r| match *r {
            super::split::SampleRef::Main(i) => main.labels.get(i as usize).copied(),
            super::split::SampleRef::Outlier(_) => None,
        })
        .collect();
    let class_f: Vec<super::supervised::SupervisedUnits> = layers
        .iter()
        .zip(&mu_f)
        .map(|(l, m)| super::supervised::layer_units(l, m, &labels, cfg.mu_minus))
        .collect();
    let unitmem_g: Vec<LayerUnits> = layers
        .iter()
        .zip(&mu_g)
        .map(|(l, m)| units_of(l, m, cfg.mu_minus, &planted))
        .collect();
    Ok(LayerMemReport {
        f: f.card.id.clone(),
        g: g.card.id.clone(),
        config: cfg.clone(),
        candidates: card.split.candidates.clone(),
        raw_mean: raw.iter().map(|v| mean(v)).collect(),
        layermem_mean_planted: if planted.is_empty() {
            Vec::new()
        } else {
            normed.iter().map(|v| split_mean(v, true)).collect()
        },
        layermem_mean_rest: normed.iter().map(|v| split_mean(v, false)).collect(),
        layermem: to_f32(&normed),
        align_f: to_f32(&align[0]),
        align_g: to_f32(&align[1]),
        unitmem_mean_f: unitmem_f.iter().map(|u| u.mean).collect(),
        classmem_f: class_f.iter().map(|u| u.classmem.clone()).collect(),
        classmem_mean_f: class_f.iter().map(|u| u.classmem_mean).collect(),
        unitmem_f,
        unitmem_g,
        layers,
        layermem_mean,
        delta_layermem_mean: delta,
        outliers: outliers_summary,
        seconds_per_candidate_layermem: lm_secs,
        seconds_per_candidate_unitmem: um_secs,
    })
}

/// `STUDY/results/layermem/<f>-<g>.json` for encoders stored in `STUDY/ssl/`.
pub fn report_path(f_dir: &Path, report: &LayerMemReport) -> PathBuf {
    let study = f_dir.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    study
        .join("results")
        .join("layermem")
        .join(format!("{}-{}.json", report.f, report.g))
}

/// Measures and writes the report; returns it and its path.
pub fn layermem_into_study(
    f_dir: &Path,
    g_dir: &Path,
    cfg: &LayerMemConfig,
    ctx: &JobCtx<'_>,
) -> CoreResult<(LayerMemReport, PathBuf)> {
    let report = layermem(f_dir, g_dir, cfg, ctx)?;
    let path = report_path(f_dir, &report);
    crate::study::write_json_atomic(&path, &report)?;
    Ok((report, path))
}
