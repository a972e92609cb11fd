//! Saving and loading weights (`weights.safetensors`) with every check a user needs: the card
//! must match the data set, the tensors must match the architecture, and nothing may be NaN. A
//! PyTorch pickle is recognised and refused (rote never runs code from a model file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::header::{Problem, summarise};
use super::{Classifier, ModelCard};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::study::write_atomic;

/// A model ready to run, with its card.
pub struct LoadedModel {
    /// The model.
    pub model: Classifier,
    /// Its parameters (for gradients w.r.t. weights, or saving again).
    pub varmap: VarMap,
    /// Its card.
    pub card: ModelCard,
    /// Its folder.
    pub dir: PathBuf,
}

/// Writes a var map as safetensors, atomically.
pub fn save_weights(varmap: &VarMap, path: &Path) -> CoreResult<()> {
    save_weights_as(varmap, path, DType::F32)
}

/// Writes a var map as safetensors in `dtype` (f16 halves shipped assets), atomically.
pub fn save_weights_as(varmap: &VarMap, path: &Path, dtype: DType) -> CoreResult<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
    let tensors: HashMap<String, Tensor> = data
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(dtype)?)))
        .collect::<candle_core::Result<_>>()?;
    drop(data);
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| CoreError::format(path, format!("cannot serialise weights: {e}")))?;
    write_atomic(path, &bytes)
}

/// Refuses a file whose first bytes are a PyTorch pickle, with the advice to convert it.
pub(crate) fn sniff_pickle(path: &Path) -> CoreResult<()> {
    let mut head = [0u8; 4];
    let n = {
        use std::io::Read as _;
        let mut f = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
        f.read(&mut head).map_err(|e| CoreError::io(path, e))?
    };
    refuse_pickle(path, head.get(..n).unwrap_or(&head))
}

/// Refuses a file whose first bytes are a PyTorch pickle (zip archive or pickle protocol 2-5).
pub(super) fn refuse_pickle(path: &Path, head: &[u8]) -> CoreResult<()> {
    let is_zip = head.starts_with(b"PK\x03\x04");
    let is_pickle = matches!(head, [0x80, 2..=5, ..]);
    if is_zip || is_pickle {
        return Err(CoreError::format(
            path,
            "this is a PyTorch pickle (.pt/.pth); rote never loads pickles because they can run code. \
             Convert it in Python with safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')",
        ));
    }
    Ok(())
}

/// Loads `weights.safetensors` into the architecture of `card`, checking names, shapes and values.
pub fn load_weights(card: &ModelCard, path: &Path, device: &Device) -> CoreResult<(Classifier, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = Classifier::new(&card.spec, vb)?;
    fill_varmap(&varmap, path, card.spec.family.as_str(), device)?;
    Ok((model, varmap))
}

/// Fills the variables of an already built architecture (`arch` names it in errors) from a
/// safetensors file (f32 or f16), checking that every name and shape matches and that no value is
/// NaN or infinite. Refuses PyTorch pickles.
pub fn fill_varmap(varmap: &VarMap, path: &Path, arch: &str, device: &Device) -> CoreResult<()> {
    sniff_pickle(path)?;
    let loaded = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| CoreError::format(path, format!("not a readable safetensors file: {e}")))?;
    fill_from_tensors(varmap, path, arch, device, loaded)
}

/// [`fill_varmap`] from the bytes of a weights file; `path` only names the file in errors.
pub fn fill_varmap_from_bytes(
    varmap: &VarMap,
    path: &Path,
    bytes: &[u8],
    arch: &str,
    device: &Device,
) -> CoreResult<()> {
    refuse_pickle(path, bytes)?;
    let loaded = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| CoreError::format(path, format!("not a readable safetensors file: {e}")))?;
    fill_from_tensors(varmap, path, arch, device, loaded)
}

fn fill_from_tensors(
    varmap: &VarMap,
    path: &Path,
    arch: &str,
    device: &Device,
    loaded: HashMap<String, Tensor>,
) -> CoreResult<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
    let mut problems = Vec::new();
    let mut expected: Vec<&String> = data.keys().collect();
    expected.sort();
    for name in &expected {
        let var = &data[*name];
        match loaded.get(*name) {
            None => problems.push(Problem::Missing((*name).clone())),
            Some(t) if t.dims() != var.dims() => problems.push(Problem::Shape {
                name: (*name).clone(),
                found: t.dims().to_vec(),
                needed: var.dims().to_vec(),
            }),
            Some(t) => {
                let t = t.to_dtype(DType::F32)?;
                let finite = t.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| v.is_finite());
                if finite {
                    var.set(&t.to_device(device)?)?;
                } else {
                    problems.push(Problem::Other(format!(
                        "tensor '{name}' contains NaN or infinite values"
                    )));
                }
            }
        }
    }
    let mut extra: Vec<&String> = loaded.keys().filter(|k| !data.contains_key(*k)).collect();
    extra.sort();
    for k in extra {
        problems.push(Problem::Unexpected(k.clone()));
    }
    drop(data);
    if !problems.is_empty() {
        return Err(CoreError::format(path, summarise(&problems, arch, None)));
    }
    Ok(())
}

/// Loads a model folder (`card.json` + `weights.safetensors`). When `dataset` is given, its hash and
/// shape must match what the card says the model was trained on.
pub fn load_model(dir: &Path, dataset: Option<&Dataset>, device: &Device) -> CoreResult<LoadedModel> {
    check_model_folder(dir)?;
    let card_path = dir.join("card.json");
    let card = ModelCard::load(&card_path)?;
    let weights = dir.join("weights.safetensors");
    super::header::check_weights(&card.spec, &card_path, &weights)?;
    if let Some(ds) = dataset {
        check_dataset(&card, ds)?;
    }
    let (model, varmap) = load_weights(&card, &weights, device)?;
    Ok(LoadedModel {
        model,
        varmap,
        card,
        dir: dir.to_path_buf(),
    })
}

/// Explains any disagreement between a card and a data set.
pub fn check_dataset(card: &ModelCard, ds: &Dataset) -> CoreResult<()> {
    let input = [ds.c, ds.h, ds.w];
    if card.spec.input != input {
        return Err(CoreError::Mismatch(format!(
            "model '{}' takes {:?} (C, H, W) images but data set '{}' ({}) has {:?}",
            card.id, card.spec.input, ds.name, ds.source, input
        )));
    }
    if card.spec.n_classes != ds.n_classes() {
        return Err(CoreError::Mismatch(format!(
            "model '{}' has {} classes but data set '{}' ({}) has {}",
            card.id,
            card.spec.n_classes,
            ds.name,
            ds.source,
            ds.n_classes()
        )));
    }
    if card.dataset.hash != ds.hash {
        return Err(CoreError::Mismatch(format!(
            "model '{}' was trained on '{}' (hash {}, {} images) but data set '{}' ({}) has hash {} ({} images): \
             different images or labels, so its membership records do not apply",
            card.id, card.dataset.name, card.dataset.hash, card.dataset.n, ds.name, ds.source, ds.hash, ds.n
        )));
    }
    Ok(())
}

/// Whether the first bytes of a file are a PyTorch pickle: a zip archive (`torch.save` since
/// PyTorch 1.6) or a raw pickle of protocol 2 to 5.
pub(crate) fn looks_like_pickle(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || matches!(head, [0x80, 2..=5, ..])
}

/// The first (up to) 4 bytes of `path`.
fn file_head(path: &Path) -> CoreResult<Vec<u8>> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(4);
    std::fs::File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut head))
        .map_err(|e| CoreError::io(path, e))?;
    Ok(head)
}

/// Checks what was given as a model folder before its card is read: a PyTorch file given instead
/// of the folder, or a folder that holds a PyTorch file and no `weights.safetensors`, is refused
/// with the advice to convert it; any other file is named as not being a folder.
pub fn check_model_folder(dir: &Path) -> CoreResult<()> {
    if dir.is_file() {
        sniff_pickle(dir)?;
        return Err(CoreError::format(
            dir,
            "is a file, not a model folder (expected a folder holding card.json and weights.safetensors)",
        ));
    }
    if dir.is_dir() && !dir.join("weights.safetensors").exists() {
        let mut torch: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| CoreError::io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension().is_some_and(|x| {
                        matches!(
                            x.to_string_lossy().to_ascii_lowercase().as_str(),
                            "pt" | "pth" | "bin" | "ckpt" | "pkl" | "pickle" | "tar"
                        )
                    })
            })
            .collect();
        torch.sort();
        for p in torch {
            sniff_pickle(&p)?;
        }
    }
    Ok(())
}

/// Refuses a data file that is a PyTorch pickle, with the formats to save it as instead.
pub(crate) fn refuse_pickled_data(path: &Path) -> CoreResult<()> {
    if looks_like_pickle(&file_head(path)?) {
        return Err(CoreError::format(
            path,
            "is a PyTorch pickle (torch.save); rote never loads pickles because they can run code. \
             Save the images with numpy.save as an .npy array (labels in <name>-labels.npy) or as \
             PNG files in one folder per class",
        ));
    }
    Ok(())
}
