//! The memorized synthetic rows of a tabular model beside their nearest training rows ("twins"),
//! as the CLI (`rote tab-memorization`), the report's Tabular section and the Tabular view show
//! them. The rule is Fang et al.'s d(NN₁)/d(NN₂) < 1/3 (`memorization.rs`).

use std::path::{Path, PathBuf};

use super::memorization::{DistanceRule, MemorizationRatio, Nearest, THRESHOLD, nearest_two, summarize};
use super::table::MixedTable;
use super::train::{TabularCard, load_card, load_table, tabular_dir};
use crate::error::{CoreError, CoreResult};

/// One memorized synthetic row and its nearest training row.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Twin {
    /// Index of the synthetic row in its CSV.
    pub synthetic_row: usize,
    /// Index of the training row in the source table.
    pub training_row: usize,
    /// Whether the training row was planted as a duplicate.
    pub planted: bool,
    /// d(NN₁) / d(NN₂).
    pub ratio: f64,
    /// The synthetic row's cells, as written.
    pub synthetic: Vec<String>,
    /// The training row's cells.
    pub training: Vec<String>,
}

impl Twin {
    /// How many cells are equal in the two rows.
    pub fn equal_cells(&self) -> usize {
        self.synthetic
            .iter()
            .zip(&self.training)
            .filter(|(a, b)| a == b)
            .count()
    }
}

/// The memorized rows of one set of synthetic rows.
#[derive(Clone, Debug)]
pub struct Twins {
    /// Column names.
    pub header: Vec<String>,
    /// The distance used.
    pub rule: DistanceRule,
    /// The ratio, its threshold sweep and the median DCR.
    pub summary: MemorizationRatio,
    /// Number of synthetic rows measured.
    pub n_synthetic: usize,
    /// Every memorized row, closest (smallest d₁/d₂) first.
    pub rows: Vec<Twin>,
}

/// The study's tabular models (folders with a `card.json`), sorted by name.
pub fn list_models(study: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(tabular_dir(study)) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("card.json").is_file())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    dirs.sort();
    dirs
}

/// The model's training rows (its membership manifest) from its data set, after checking that the
/// data set is the one it was trained on.
pub fn training_rows(model: &Path, card: &TabularCard) -> CoreResult<MixedTable> {
    let data = load_table(&card.config.data, card.config.target.as_deref())?;
    if data.hash != card.data_hash {
        return Err(CoreError::format(
            model.join("card.json"),
            format!(
                "the card's data set hash {} differs from {}'s ({}); the data changed since training",
                card.data_hash, card.config.data, data.hash
            ),
        ));
    }
    Ok(MixedTable::from_data(&data, &card.members))
}

/// Measures `samples` (default: the model's final `samples.csv`) against the model's training rows.
pub fn memorized_twins(
    model: &Path,
    samples: Option<&Path>,
    rule: DistanceRule,
) -> CoreResult<(TabularCard, Twins)> {
    let card = load_card(model)?;
    let real = training_rows(model, &card)?;
    let path = samples.map_or_else(|| model.join("samples.csv"), Path::to_path_buf);
    let syn = MixedTable::read_csv(&path, &card.codec.schema)?;
    let pairs = nearest_two(&real, &syn, rule);
    let twins = twins_of(&card, &real, &syn, rule, &pairs);
    Ok((card, twins))
}

/// The memorized rows among `pairs`, closest first.
pub fn twins_of(
    card: &TabularCard,
    real: &MixedTable,
    syn: &MixedTable,
    rule: DistanceRule,
    pairs: &[Nearest],
) -> Twins {
    let mut ranked: Vec<&Nearest> = pairs.iter().filter(|p| p.memorized(THRESHOLD)).collect();
    ranked.sort_by(|a, b| {
        a.ratio()
            .total_cmp(&b.ratio())
            .then(a.synthetic.cmp(&b.synthetic))
    });
    let rows = ranked
        .iter()
        .map(|p| {
            let source = card.members.get(p.first).copied().unwrap_or(p.first);
            Twin {
                synthetic_row: p.synthetic,
                training_row: source,
                planted: card.planted.contains(&source),
                ratio: p.ratio(),
                synthetic: syn.row_strings(p.synthetic),
                training: real.row_strings(p.first),
            }
        })
        .collect();
    Twins {
        header: real.header(),
        rule,
        summary: summarize(rule, pairs),
        n_synthetic: syn.n_rows(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

    use super::*;

    #[test]
    fn equal_cells_counts_matching_strings() {
        let t = Twin {
            synthetic_row: 0,
            training_row: 3,
            planted: false,
            ratio: 0.1,
            synthetic: vec!["39".into(), "State-gov".into(), "Male".into()],
            training: vec!["39".into(), "Private".into(), "Male".into()],
        };
        assert_eq!(t.equal_cells(), 2);
    }
}
