//! Denoising diffusion models (DDPM, Ho et al. 2020) and the attacks on them: extraction of
//! training images (Carlini et al. 2023), the inpainting attack (RePaint, Lugmayr et al. 2022),
//! and membership inference from the loss at chosen timesteps.

pub mod attack;
pub mod bench;
mod cpu_columns;
mod cpu_kernels;
pub mod denoiser;
mod diffusers_config;
pub mod diffusers_sched;
pub mod diffusers_unet;
pub mod extract;
mod fused_norm;
mod group_norm_grad;
mod im2col;
pub mod import;
pub mod inpaint;
pub mod mia;
pub mod model;
mod resample;
pub mod sample;
pub mod schedule;
pub mod sharpness;
pub mod train;
pub mod unet;

pub use denoiser::{Denoiser, DiffusersModel};
pub use model::{Ddpm, DiffusionCard, diffusion_dir, list_models};
pub use schedule::{Schedule, ScheduleKind};
pub use train::{DdpmTrainConfig, ModelPlan, plan_models, train_into_study, train_one};
pub use unet::{UNet, UNetConfig};
