//! The `rote bench` subcommands' arguments (run by `bench.rs`, peers in `bench_peers.rs`).

use std::path::PathBuf;

use clap::Subcommand;

use crate::model::Family;

/// Benchmarks.
#[derive(Clone, Debug, Subcommand)]
pub enum BenchWhich {
    /// The suite the PyTorch peers mirror (benches/peers/): zoo, DDIM, MI-FACE, DDPM training
    /// (28x28 and 8x8), tiled-l2 and nearest neighbours, exposure, training, tabular, DP zoo, LM
    /// scoring; one JSON line each with --json. On the GPU the
    /// peers' sizes (zoo 256 x 10 epochs, DDIM 256 x 50 steps, 10k x 10k searches), smaller on
    /// the CPU. With PEERS_PYTHON set to a Python that has torch (and transformers for the LM
    /// row), each benchmark's PyTorch peer runs right after it with the same sizes and the two
    /// figures are printed side by side with their ratio.
    All {
        /// cpu or cuda (candle models; the wgpu kernels use the adapter either way).
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// wgpu kernel vs CPU twin: nearest neighbours on MNIST-10k.
    Nn {
        /// Queries.
        #[arg(long, default_value_t = 10_000)]
        m: usize,
        /// References.
        #[arg(long, default_value_t = 10_000)]
        n: usize,
    },
    /// Zoo training: batched stacked MLPs vs the same models one by one.
    Zoo {
        /// Models.
        #[arg(long, default_value_t = 16)]
        models: u32,
        /// Epochs.
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// cpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Skip the one-by-one comparison.
        #[arg(long)]
        batched_only: bool,
    },
    /// DP-SGD zoo training vs the same zoo without DP, in one run (CPU; fixed σ and clipping
    /// norm): model-epochs/s of both and the DP cost. Peer: benches/peers/opacus_zoo.py (Opacus).
    DpZoo {
        /// Models.
        #[arg(long, default_value_t = 16)]
        models: u32,
        /// Epochs (DP-SGD: the same number of steps).
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// Data set.
        #[arg(long, default_value = "mnist10k")]
        data: String,
        /// Noise multiplier σ of the DP run.
        #[arg(long, default_value_t = 1.0)]
        dp_noise: f64,
        /// Per-sample clipping norm C of the DP run.
        #[arg(long, default_value_t = 1.0)]
        dp_clip: f64,
    },
    /// DDIM sampling speed of a UNet (fresh weights; speed does not depend on them).
    Ddim {
        /// Images.
        #[arg(long, default_value_t = 256)]
        samples: usize,
        /// DDIM steps.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// UNet base width.
        #[arg(long, default_value_t = 32)]
        base: usize,
        /// Image side (grey square images).
        #[arg(long, default_value_t = 28)]
        side: usize,
        /// cpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// DDPM training speed (images per second through forward and backward).
    DdpmTrain {
        /// Data set.
        #[arg(long, default_value = "mnist10k")]
        data: String,
        /// UNet base width.
        #[arg(long, default_value_t = 32)]
        base: usize,
        /// Optimiser steps.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Batch size.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// cpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Tiled-l2 distance matrix (4x4 tiles) on MNIST-10k: wgpu vs CPU twin.
    Tiled {
        /// Queries.
        #[arg(long, default_value_t = 10_000)]
        m: usize,
        /// References.
        #[arg(long, default_value_t = 10_000)]
        n: usize,
    },
    /// LayerMem and UnitMem seconds per candidate on the demo SSL encoder pair.
    Layermem {
        /// LayerMem draws per candidate.
        #[arg(long, default_value_t = 5)]
        augmentations: usize,
        /// UnitMem draws per candidate.
        #[arg(long, default_value_t = 10)]
        unit_augmentations: usize,
    },
    /// MI-FACE gradient steps per second on a softmax-regression model of orl-faces.
    Invert {
        /// Gradient steps (every step inverts all 40 people at once).
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// cpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Exact-rank candidates per second (Secret Sharer exposure) on the demo character LM.
    Exposure {
        /// Slot digits (the space is 10^digits).
        #[arg(long, default_value_t = 6)]
        digits: usize,
        /// Use an untrained LM of this many LSTM units instead of the demo LM (speed only).
        #[arg(long)]
        hidden: Option<usize>,
        /// References scored for the estimates' rate.
        #[arg(long, default_value_t = 65_536)]
        references: usize,
        /// cpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Tokens scored per second by a causal LM (every position's log-probability, as the
    /// membership scores need): a Hugging Face folder, or a GPT-2-small-shaped model with random
    /// weights. Peer: benches/peers/lm_score.py (transformers).
    Lm {
        /// Hugging Face model folder (default: GPT-2-small-shaped, random weights).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Sequences per pass.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Tokens per sequence.
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Timed passes (after one untimed).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// cpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// A diffusers UNet2DModel folder: DDIM sampling and the sharpness of the samples (peer:
    /// benches/peers/diffusers_bench.py).
    Diffusers {
        /// The diffusers folder.
        model: PathBuf,
        /// Images sampled.
        #[arg(long, default_value_t = 4)]
        samples: usize,
        /// DDIM steps.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Samples whose sharpness is timed.
        #[arg(long, default_value_t = 4)]
        images: usize,
        /// Lanczos iterations per image.
        #[arg(long, default_value_t = 12)]
        iterations: usize,
        /// cpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// GUI responsiveness: the window on a 60k-image data set (Fashion-MNIST from
    /// $ROTE_FASHION_MNIST, else generated) while a training job runs and the gallery scrolls:
    /// p50/p95/p99 frame times and peak RSS (needs the gui feature and a display).
    Frames {
        /// Images of the generated data set.
        #[arg(long, default_value_t = 60_000)]
        images: usize,
        /// Seconds measured.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Run no training job (to see its share).
        #[arg(long)]
        no_job: bool,
        /// Select no images (no neighbour searches).
        #[arg(long)]
        no_select: bool,
        /// Do not scroll the gallery.
        #[arg(long)]
        no_scroll: bool,
    },
    /// Tabular diffusion on Adult: training rows/s, sampling, and the memorization-ratio search
    /// (every synthetic row against every training row).
    Tabular {
        /// Training rows (0 = the whole train split, 26,049).
        #[arg(long, default_value_t = 0)]
        rows: usize,
        /// Epochs.
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// Synthetic rows drawn and searched.
        #[arg(long, default_value_t = 2000)]
        samples: usize,
    },
    /// In-context learning kinetics: the default `rote icl` sweep (one seed); its wall time and
    /// training sequences per second.
    Icl {
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Train the runs one after another instead of side by side.
        #[arg(long)]
        sequential: bool,
    },
    /// MLP/CNN training time per epoch on MNIST-10k.
    Train {
        /// Family.
        #[arg(long, value_enum, default_value_t = Family::Mlp)]
        family: Family,
        /// Epochs.
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// cpu or cuda.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}
