//! The command-line interface. Every subcommand calls the same core entry points as the GUI and
//! prints one JSON object on stdout with `--json`, human text otherwise. Progress goes to stderr.

mod bench;
mod bench_all;
mod bench_args;
mod bench_peers;
mod canary;
mod commands;
mod defences;
mod diffusion;
mod diffusion_single;
mod dp;
mod fairness;
mod gpt;
mod icl;
mod import;
mod invert;
mod invert_onnx;
mod lm;
mod lm_dataset_test;
mod lm_measure;
mod lm_probe;
mod mat;
mod present;
mod progress;
mod report;
mod sample;
mod sharpness;
mod ssl;
mod tabular;
mod zoo;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::model::Family;
use crate::train::OptimizerKind;
use crate::train::zoo::MlpInit;

pub use bench_args::BenchWhich;
pub use commands::run_command;
pub use progress::CliSink;

/// rote: see what a model memorized from its training data.
#[derive(Debug, Parser)]
#[command(name = "rote", version, about)]
pub struct Cli {
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log more on stderr (e.g. every tensor that differs between a card and its weights).
    #[arg(long, short, global = true)]
    pub verbose: bool,

    /// Study folder to open in the GUI (default: the demo study, written on first launch).
    #[arg(long)]
    pub study: Option<PathBuf>,

    /// What to do; without a command the GUI opens.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the bundled data sets.
    Datasets,

    /// Train a classifier and add it to a study.
    Train(TrainArgs),

    /// Nearest neighbours of one image by pixel distance.
    Nn {
        /// Data set: bundled name or path.
        #[arg(long)]
        data: String,
        /// Image index.
        #[arg(long)]
        index: usize,
        /// Number of neighbours.
        #[arg(long, default_value_t = 8)]
        k: usize,
        /// Search the training split only (default: the whole data set).
        #[arg(long)]
        train_only: bool,
        /// Force the CPU twin instead of the GPU kernel.
        #[arg(long)]
        cpu: bool,
    },

    /// Train (or resume, grow, shard) a zoo of models on random subsets, for memorization and MIA.
    Zoo(ZooArgs),

    /// Memorization and influence estimates (Feldman-Zhang) from a study's zoo.
    Memorization {
        /// Study folder.
        study: PathBuf,
        /// Zoo id (default: the study's only zoo).
        #[arg(long)]
        zoo: Option<String>,
        /// mem threshold for high-influence pairs.
        #[arg(long, default_value_t = 0.25)]
        mem_thr: f32,
        /// Influence threshold for high-influence pairs.
        #[arg(long, default_value_t = 0.15)]
        infl_thr: f32,
        /// Also count pairs of different classes.
        #[arg(long)]
        any_class: bool,
        /// Compare mem with another implementation's: a 1-D NPY vector with one value per
        /// data-set row (NaN where it has none); prints Pearson and Spearman over the training
        /// candidates. E.g. the official Feldman-Zhang script's mem on the same --subsets.
        #[arg(long)]
        compare: Option<PathBuf>,
    },

    /// Membership inference from a study's zoo (leave-one-model-out).
    Mia {
        /// Study folder.
        study: PathBuf,
        /// Zoo id (default: the study's only zoo).
        #[arg(long)]
        zoo: Option<String>,
        /// Attack: loss, lira (online), lira-offline or rmia.
        #[arg(long, default_value = "lira")]
        attack: String,
        /// LiRA: one variance for all samples.
        #[arg(long)]
        fix_variance: bool,
        /// RMIA: offline (OUT reference models only, with the a-correction).
        #[arg(long)]
        offline: bool,
        /// Target models (the first N of the zoo).
        #[arg(long, default_value_t = 64)]
        targets: usize,
    },

    /// List the models of a study.
    Models {
        /// Study folder.
        study: PathBuf,
    },

    /// Write the demo study.
    Demo {
        /// Retrain every demo model from scratch instead of copying the shipped weights.
        #[arg(long)]
        rebuild: bool,
        /// With --rebuild: also retrain the demo zoo (64 MLPs; minutes) and its results.
        #[arg(long, requires = "rebuild")]
        zoo: bool,
        /// With --rebuild: also train the demo diffusion models (kept when already in --out) and
        /// run their extraction and inpainting attacks.
        #[arg(long, requires = "rebuild")]
        diffusion: bool,
        /// With --rebuild: also train the demo SSL encoder pair (kept when already in --out) and
        /// measure its LayerMem and UnitMem.
        #[arg(long, requires = "rebuild")]
        ssl: bool,
        /// With --rebuild: also train the demo character LM with canaries (kept when already in
        /// --out) and measure its exposure.
        #[arg(long, requires = "rebuild")]
        lm: bool,
        /// With --rebuild: also train the demo GPT (gpt-demo: GPT-2 in the Hugging Face layout
        /// with planted passages and canaries; about 20 minutes on two cores).
        #[arg(long, requires = "rebuild")]
        gpt: bool,
        /// With --rebuild: also replace the shipped files in assets/demo/.
        #[arg(long, requires = "rebuild")]
        update_assets: bool,
        /// Study folder to write.
        #[arg(long)]
        out: PathBuf,
    },

    /// Sample a diffusion model and find generations that copy training images.
    Extract(diffusion::ExtractArgs),

    /// Final samples of a diffusers UNet2DModel folder as an f32 NPY array (N x C x H x W).
    Sample(sample::SampleArgs),

    /// Inpainting attack: complete half-hidden training images with IN and OUT models.
    Inpaint(diffusion::InpaintArgs),

    /// Membership inference on a family of diffusion models from the loss at chosen timesteps.
    MiaDiffusion(diffusion::MiaDiffusionArgs),

    /// Import a diffusers UNet2DModel into a study with its training images.
    ImportDiffusers(import::ImportDiffusersArgs),

    /// Sharpness of a diffusion model's training images (Jeon et al.): memorized ones are peaks.
    Sharpness(sharpness::SharpnessArgs),

    /// Model inversion: reconstruct each person's face from a face classifier (MI-FACE).
    Invert(invert::InvertArgs),

    /// Train a SimCLR encoder pair: f on shared + candidate images, g on shared + independent
    /// (Wang et al.); --plant-outliers puts atypical images among the candidates.
    SslPair(ssl::SslPairArgs),

    /// LayerMem, delta LayerMem and UnitMem of an SSL encoder pair (per layer, candidate, unit).
    Layermem(ssl::LayerMemArgs),

    /// UnitMem and ClassMem of a supervised MLP's hidden units (compare with an SSL encoder's).
    Unitmem(ssl::UnitMemArgs),

    /// Train a character LSTM (default) or, with --arch gpt, a GPT-2 saved as a Hugging Face
    /// folder, on a corpus slice with inserted canaries (and planted passages for gpt).
    TrainLm(canary::TrainLmArgs),

    /// Exposure of every canary of a character LM: exact rank, skew-normal, TF Privacy.
    Exposure(canary::ExposureArgs),

    /// Search a character LM for the most likely secret after a prefix (Dijkstra or beam).
    ExtractSecret(canary::ExtractSecretArgs),

    /// Per-token log-probabilities (natural log) of a text under a Hugging Face causal LM
    /// (GPT-2, GPT-NeoX/Pythia, Llama/SmolLM2, Qwen2) read from its folder.
    LmScore(lm::LmScoreArgs),
    /// Greedy or sampled continuations of a prompt under a Hugging Face causal LM (with the KV
    /// cache), each with its ln p: type the start of a passage and see whether the model goes on
    /// verbatim.
    LmGenerate(lm::LmGenerateArgs),

    /// Verbatim extraction from a Hugging Face causal LM: greedy k-token prefix -> m-token
    /// continuation (exact, token match, longest span) and (n, p)-extraction, over the planted
    /// passages of its card (by insertion count) or --texts.
    LmExtract(lm_measure::LmExtractArgs),

    /// Membership inference on a Hugging Face causal LM (LOSS, zlib, Min-K%, Min-K%++, reference):
    /// AUC with a bootstrap interval and TPR at low FPR, planted vs held-out passages of its card
    /// or --members vs --nonmembers.
    LmMia(lm_measure::LmMiaArgs),

    /// Dataset-level membership (MemHunter-style): did the model train on a whole set of texts?
    /// A one-sided Mann–Whitney test of per-sample scores, suspect vs reference, with a control of
    /// two reference halves and the samples needed; without files, the card's planted passages vs
    /// its held-out ones.
    LmDatasetTest(lm_dataset_test::LmDatasetTestArgs),

    /// Where memorized tokens live: per-layer linear probes on residual-stream and MLP
    /// activations (memorized vs confidence-matched never-seen tokens, grouped by sequence), the
    /// logit-only baseline, and the intervention that projects the best probe's direction out.
    LmProbe(lm_probe::LmProbeArgs),

    /// The (ε, δ) of DP-SGD (Poisson-subsampled Gaussian) from the Rényi-DP accountant, or with
    /// --epsilon the noise multiplier that reaches a target ε.
    DpEpsilon(dp::DpEpsilonArgs),

    /// What a defence changes: the study's zoos side by side, each DP-SGD (or other defended)
    /// variant under its baseline: test accuracy, LiRA AUC and TPR at 0.1% FPR, the audited ε
    /// lower bound beside the accountant's ε, mean mem, planted-mislabel recall. With --baseline
    /// Z --dp-epsilon E it first trains Z's DP-SGD variant.
    Defences(defences::DefencesArgs),

    /// Memorization-aware training (Bayat et al., ICLR 2025) against plain ERM on coloured digits
    /// (colour = label for 90% of training, 50% of test): XRM twins give held-out logits, MAT
    /// trains on CE(f(x) + shift, y); average and worst-group accuracy, per group.
    Mat(mat::MatArgs),

    /// Group fairness of a classifier's predictions (Pepin et al.): statistical parity, equal
    /// opportunity and equalized odds differences, first group minus second, from a predictions
    /// CSV (index, split, group, y_true, y_pred).
    Fairness(fairness::FairnessArgs),

    /// Train a TabDDPM-style diffusion model on a table (bundled Adult or a CSV), optionally with
    /// TabCutMix or TabCutMixPlus, measuring the memorization ratio (Fang et al.) at epoch
    /// checkpoints; writes STUDY/tabular/ID (card, weights, synthetic rows as CSV).
    TrainTabular(tabular::TrainTabularArgs),

    /// The memorization ratio of a tabular model's synthetic rows (d(NN1)/d(NN2) < 1/3) per
    /// checkpoint, the memorized rows beside their training twins, TSTR accuracy and quality.
    TabMemorization(tabular::TabMemorizationArgs),

    /// In-context learning kinetics (Nguyen & Reddy): train a one-layer attention model on K
    /// items for several K and report generalization (new items, query in context) and
    /// memorization (training items, query absent) per K, with the threshold K*.
    Icl(icl::IclArgs),

    /// Write a study's results as an HTML page with PNG galleries and every table as CSV.
    Report {
        /// Study folder.
        study: PathBuf,
        /// Report folder (created if missing; an older report's files are replaced).
        #[arg(long)]
        out: PathBuf,
    },

    /// Present the demo story full screen, or export it (--export DIR) as a PNG, an animated
    /// GIF and an APNG per step with an index.html that plays them in order.
    Present(present::PresentArgs),

    /// Render a view of the GUI headlessly into a PNG.
    Screenshot {
        /// View: data, models, memorization, influence, privacy, extraction, inpainting, inversion, layers, exposure,
        /// text or settings (also inpainting-batch, privacy-diffusion, layers-drill).
        #[arg(long)]
        view: String,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Study to show (default: a fresh demo study in a temporary folder).
        #[arg(long)]
        study: Option<PathBuf>,
        /// Width in points.
        #[arg(long, default_value_t = 1280.0)]
        width: f32,
        /// Height in points.
        #[arg(long, default_value_t = 800.0)]
        height: f32,
        /// Data view: sort the gallery descending by the first score column starting with this
        /// (e.g. "loss" shows the demo model's hardest samples first).
        #[arg(long)]
        sort: Option<String>,
    },

    /// Benchmarks (print figures; see docs/performance.md).
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        which: BenchWhich,
    },
}

/// What `rote train` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainFamily {
    /// Multi-layer perceptron classifier.
    Mlp,
    /// Convolutional classifier.
    Cnn,
    /// Softmax regression (one linear layer on normalised pixels).
    Softmax,
    /// Denoising diffusion model (UNet) for extraction and inpainting attacks.
    Ddpm,
}

/// Options of `rote train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Model family.
    #[arg(long, value_enum)]
    pub family: TrainFamily,
    /// Data set: bundled name or path.
    #[arg(long)]
    pub data: String,
    /// Study folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Epochs.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Seed for subset, initialisation and batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fraction of the training split to train on.
    #[arg(long, default_value_t = 1.0)]
    pub subset_ratio: f64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adamw)]
    pub optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Momentum (SGD).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Model id (default: family-data-seed).
    #[arg(long)]
    pub id: Option<String>,
    /// DDPM: images drawn (seeded) from the training split (0 = all).
    #[arg(long, default_value_t = 256, help_heading = "Diffusion (--family ddpm)")]
    pub images: usize,
    /// DDPM: pool images planted as duplicates.
    #[arg(long, default_value_t = 0, help_heading = "Diffusion (--family ddpm)")]
    pub plant_duplicates: usize,
    /// DDPM: copies of each planted duplicate in the training list.
    #[arg(long, default_value_t = 16, help_heading = "Diffusion (--family ddpm)")]
    pub dup_factor: usize,
    /// DDPM: deduplicate the training list before training (a defence, Carlini et al. 2023):
    /// near-duplicate images (tiled l2, RMS difference in the worst tile at most
    /// --dedup-threshold of the range) and repeated copies are kept once; the card records the
    /// clusters.
    #[arg(long, help_heading = "Diffusion (--family ddpm)")]
    pub dedup: bool,
    /// DDPM: the --dedup threshold.
    #[arg(long, default_value_t = crate::defence::dedup::DEFAULT_THRESHOLD, help_heading = "Diffusion (--family ddpm)")]
    pub dedup_threshold: f64,
    /// DDPM: optimiser steps.
    #[arg(long, default_value_t = 4000, help_heading = "Diffusion (--family ddpm)")]
    pub steps: usize,
    /// DDPM: UNet base width (about 0.7M parameters at 32, 2.7M at 64).
    #[arg(long, default_value_t = 32, help_heading = "Diffusion (--family ddpm)")]
    pub base: usize,
    /// DDPM: noise schedule.
    #[arg(long, value_enum, default_value_t = crate::diffusion::ScheduleKind::Linear, help_heading = "Diffusion (--family ddpm)")]
    pub schedule: crate::diffusion::ScheduleKind,
    /// DDPM: diffusion steps T.
    #[arg(long, default_value_t = 1000, help_heading = "Diffusion (--family ddpm)")]
    pub t_max: usize,
    /// DDPM: train a family of K models on random subsets (--subset-ratio, 0.5 when left at 1):
    /// at 0.5 models 2j and 2j+1 get complementary halves (IN/OUT pairs).
    #[arg(long, default_value_t = 1, help_heading = "Diffusion (--family ddpm)")]
    pub models: usize,
    /// DDPM: retrain models that already exist in the study.
    #[arg(long, help_heading = "Diffusion (--family ddpm)")]
    pub force: bool,
}

/// Options of `rote zoo`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ZooArgs {
    /// `merge`: join shard zoos into one.
    #[command(subcommand)]
    pub merge: Option<ZooMerge>,
    /// Model family (MLPs train batched; CNNs one after another).
    #[arg(long, value_enum, default_value_t = Family::Mlp)]
    pub family: Family,
    /// Data set: bundled name or path.
    #[arg(long)]
    pub data: Option<String>,
    /// Number of models (a zoo with fewer is grown to this many; default 64, or every row of
    /// --subsets).
    #[arg(long)]
    pub models: Option<u32>,
    /// Fraction of the training split each model trains on (ignored with --subsets).
    #[arg(long, default_value_t = 0.7)]
    pub subset_ratio: f64,
    /// Train on given subsets: an integer K x m NPY matrix of data-set row indices (any NPY integer
    /// type); model k trains on exactly row k's rows, every row any subset names is a training
    /// candidate and the rest is the test set. The matrix is copied into the zoo and its SHA-256
    /// recorded in zoo.json. E.g. the official Feldman-Zhang estimator's 32 MNIST subsets.
    #[arg(long)]
    pub subsets: Option<PathBuf>,
    /// MLP initialisation: glorot-normal (the official Feldman-Zhang JAX script's: Glorot-normal
    /// weights, N(0, 0.01^2) biases, pixels / 255; its mem agrees with the official script's at
    /// Pearson 0.97 on the same subsets) or uniform (PyTorch's nn.Linear default on standardised
    /// inputs; 0.94; zoos made before this option).
    #[arg(long, value_enum, default_value_t = MlpInit::GlorotNormal)]
    pub init: MlpInit,
    /// Epochs per model. Models must be trained to convergence (spec pitfall): on MNIST-10k a
    /// 70% subset is 44 steps per epoch, so 40 epochs (1760 steps) lets the MLP fit planted
    /// mislabels (p_in 0.999; 20 epochs: 0.95, 10: 0.76). The Feldman-Zhang JAX demo used 10
    /// epochs of full MNIST (3280 steps); pass --epochs 10 for its recipe.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Study folder (created if missing).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Zoo seed (each model's seed derives from it and the model index).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Flip the labels of this fraction of the training split (recorded in zoo.json).
    #[arg(long, default_value_t = 0.0)]
    pub plant_mislabel: f64,
    /// Seed for the planted labels.
    #[arg(long, default_value_t = 0)]
    pub plant_seed: u64,
    /// Train only models with index = I mod N ("I/N").
    #[arg(long)]
    pub shard: Option<String>,
    /// Zoo id (default: zoo-<family>-<data>).
    #[arg(long)]
    pub id: Option<String>,
    /// Models trained together per batched group.
    #[arg(long, default_value_t = 32)]
    pub group: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Optimiser (the Feldman-Zhang recipe is SGD, momentum 0.9, lr 0.1).
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    pub optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// DP-SGD.
    #[command(flatten)]
    pub dp: zoo::DpTrainArgs,
    /// Adversarial training and DeMem.
    #[command(flatten)]
    pub adv: zoo::AdvTrainArgs,
}

/// `rote zoo merge`.
#[derive(Debug, Subcommand)]
pub enum ZooMerge {
    /// Join the zoos of shard studies into one study.
    Merge {
        /// Study to merge into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Zoo id (default: the only zoo of the first shard study).
        #[arg(long)]
        id: Option<String>,
        /// Shard study folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
}
