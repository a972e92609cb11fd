//! The binary record of one zoo model (`models/mNNNNN.bin`): magic, model index, sample count,
//! membership bits, correctness bits, then loss and margin as little-endian f32s.

use std::path::Path;

use candle_core::Tensor;

use super::batched_mlp::{BatchedMlp, stacked_scores};
use crate::data::Dataset;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// One model's record.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooModel {
    /// Model index in the zoo.
    pub index: u32,
    /// Trained on sample i.
    pub member: Vec<bool>,
    /// Predicted sample i's (possibly planted) label.
    pub correct: Vec<bool>,
    /// Cross-entropy on sample i.
    pub loss: Vec<f32>,
    /// True-class logit minus the largest other logit.
    pub margin: Vec<f32>,
    /// Accuracy on the test split under PGD (adversarially trained zoos only).
    pub robust_accuracy: Option<f32>,
}

const MAGIC: &[u8; 8] = b"ROTEZOO1";
/// Tag of the optional trailer: the robust accuracy as one f32.
const ROBUST: &[u8; 4] = b"RBA1";

fn pack_bits(v: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; v.len().div_ceil(8)];
    for (i, &b) in v.iter().enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

fn unpack_bits(bytes: &[u8], n: usize) -> Vec<bool> {
    (0..n).map(|i| bytes[i / 8] >> (i % 8) & 1 == 1).collect()
}

impl ZooModel {
    /// Binary form: magic, index u32, n u32, member bits, correct bits, loss f32s, margin f32s,
    /// and for an adversarially trained model `RBA1` and its robust accuracy as an f32.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.member.len();
        let mut out = Vec::with_capacity(16 + 2 * n.div_ceil(8) + 8 * n);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend(pack_bits(&self.member));
        out.extend(pack_bits(&self.correct));
        for v in self.loss.iter().chain(&self.margin) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(r) = self.robust_accuracy {
            out.extend_from_slice(ROBUST);
            out.extend_from_slice(&r.to_le_bytes());
        }
        out
    }

    /// Parses [`ZooModel::to_bytes`], checking sizes.
    pub fn from_bytes(path: &Path, bytes: &[u8], n_expected: usize) -> CoreResult<Self> {
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(CoreError::format(path, "not a rote zoo model record"));
        }
        let index = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let n = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
        if n != n_expected {
            return Err(CoreError::format(
                path,
                format!("record for {n} samples, the zoo has {n_expected}"),
            ));
        }
        let nb = n.div_ceil(8);
        let base = 16 + 2 * nb + 8 * n;
        let (bytes, robust_accuracy) = match bytes.get(base..) {
            Some([a, b, c, d, e, f, g, h]) if [*a, *b, *c, *d] == *ROBUST => {
                (&bytes[..base], Some(f32::from_le_bytes([*e, *f, *g, *h])))
            }
            _ => (bytes, None),
        };
        if bytes.len() != base {
            return Err(CoreError::format(
                path,
                format!(
                    "{} zoo record: {} bytes, a record of {n} samples has {}",
                    if bytes.len() < 16 + 2 * nb + 8 * n {
                        "truncated"
                    } else {
                        "overlong"
                    },
                    bytes.len(),
                    16 + 2 * nb + 8 * n
                ),
            ));
        }
        let member = unpack_bits(&bytes[16..16 + nb], n);
        let correct = unpack_bits(&bytes[16 + nb..16 + 2 * nb], n);
        let floats: Vec<f32> = bytes[16 + 2 * nb..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (loss, margin) = floats.split_at(n);
        Ok(Self {
            index,
            member,
            correct,
            loss: loss.to_vec(),
            margin: margin.to_vec(),
            robust_accuracy,
        })
    }
}

/// The records of trained stacked MLPs `net` (model j is zoo model `models[j]`, trained on rows
/// `subsets[j]`): loss, margin and correctness on every sample of `ds` (inputs `x` (n, d) in
/// [0, 1], labels `y` (n,)), in chunks broadcast to all K models.
pub(super) fn signals(
    net: &BatchedMlp,
    x: &Tensor,
    y: &Tensor,
    ds: &Dataset,
    models: &[u32],
    subsets: &[Vec<usize>],
    ctx: &JobCtx<'_>,
) -> CoreResult<Vec<ZooModel>> {
    let k = models.len();
    let d = ds.image_len();
    let chunk = 256;
    let mut loss = vec![vec![0f32; ds.n]; k];
    let mut margin = vec![vec![0f32; ds.n]; k];
    let mut correct = vec![vec![false; ds.n]; k];
    for lo in (0..ds.n).step_by(chunk) {
        ctx.checkpoint()?;
        let hi = (lo + chunk).min(ds.n);
        let xb = x
            .narrow(0, lo, hi - lo)?
            .unsqueeze(0)?
            .broadcast_as((k, hi - lo, d))?
            .contiguous()?;
        let logits = net.forward(&xb)?;
        let (l, mg, c) = stacked_scores(&logits, &y.narrow(0, lo, hi - lo)?)?;
        for j in 0..k {
            let row = j * (hi - lo)..(j + 1) * (hi - lo);
            loss[j][lo..hi].copy_from_slice(&l[row.clone()]);
            margin[j][lo..hi].copy_from_slice(&mg[row.clone()]);
            correct[j][lo..hi].copy_from_slice(&c[row]);
        }
    }
    Ok(models
        .iter()
        .enumerate()
        .map(|(j, &index)| {
            let mut member = vec![false; ds.n];
            for &i in &subsets[j] {
                member[i] = true;
            }
            ZooModel {
                index,
                member,
                correct: std::mem::take(&mut correct[j]),
                loss: std::mem::take(&mut loss[j]),
                margin: std::mem::take(&mut margin[j]),
                robust_accuracy: None,
            }
        })
        .collect())
}
