//! The process-wide wgpu device for compute (separate from eframe's render device). Only Vulkan,
//! Metal and DX12 adapters are used: GL adapters allow no storage buffers in compute. The device
//! asks for the adapter's own limits, so large data sets fit in one binding where the card allows.

use std::sync::{Arc, OnceLock};

/// A compute device.
pub struct Gpu {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What it is.
    pub info: GpuInfo,
}

/// A description of the adapter, for the Settings view and JSON output.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GpuInfo {
    /// Adapter name ("llvmpipe (LLVM 15.0.6, 256 bits)", "NVIDIA H100 ...").
    pub name: String,
    /// Backend ("Vulkan").
    pub backend: String,
    /// Device type ("Cpu" for lavapipe, "DiscreteGpu").
    pub device_type: String,
    /// Largest storage buffer binding in bytes.
    pub max_storage_binding: u64,
    /// Largest buffer in bytes.
    pub max_buffer: u64,
}

static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();

fn create() -> Result<Arc<Gpu>, String> {
    if std::env::var("ROTE_GPU").is_ok_and(|v| v == "off" || v == "0") {
        return Err("GPU compute disabled by ROTE_GPU=off".into());
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..wgpu::RequestAdapterOptions::default()
    }))
    .map_err(|e| format!("no Vulkan/Metal/DX12 adapter: {e}"))?;
    let limits = adapter.limits();
    let ai = adapter.get_info();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("rote compute"),
        required_features: wgpu::Features::empty(),
        required_limits: limits.clone(),
        experimental_features: wgpu::ExperimentalFeatures::default(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| format!("cannot open device on {}: {e}", ai.name))?;
    let info = GpuInfo {
        name: ai.name.clone(),
        backend: format!("{:?}", ai.backend),
        device_type: format!("{:?}", ai.device_type),
        max_storage_binding: limits.max_storage_buffer_binding_size,
        max_buffer: limits.max_buffer_size,
    };
    log::info!(
        "wgpu compute on {} ({}, {})",
        info.name,
        info.backend,
        info.device_type
    );
    Ok(Arc::new(Gpu { device, queue, info }))
}

/// The compute device, created on first use; `Err` says why there is none (jobs then use the CPU
/// twins and say so).
pub fn gpu() -> Result<Arc<Gpu>, String> {
    GPU.get_or_init(create).clone()
}

/// The adapter description, or why there is none.
pub fn gpu_info() -> Result<GpuInfo, String> {
    gpu().map(|g| g.info.clone())
}
