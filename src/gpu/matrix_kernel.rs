//! The host side shared by the distance kernels: upload two row sets and a 4-word uniform, run a
//! 16x16-workgroup kernel that writes an m x n u32 matrix (bindings: 0 a, 1 b, 2 out, 3 params),
//! and read the matrix back.

use crate::error::{CoreError, CoreResult};
use wgpu::util::DeviceExt as _;

use super::Gpu;

/// Largest output block per dispatch, in bytes.
pub(super) const MAX_OUT_BYTES: u64 = 256 << 20;
/// Most workgroups along one dispatch dimension.
pub(super) const MAX_GROUPS: usize = 65535;

/// Compiles the WGSL `source` (entry point `main`).
pub(super) fn compile(g: &Gpu, label: &str, source: &'static str) -> wgpu::ComputePipeline {
    let module = g.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    g.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        })
}

/// One dispatch of `pipe`: `m` rows of `a` against `n` rows of `b` with uniform `params`; returns
/// the m x n matrix the kernel wrote.
#[allow(clippy::too_many_arguments, reason = "the kernel's bindings, sizes and label")]
pub(super) fn run_matrix_kernel(
    g: &Gpu,
    pipe: &wgpu::ComputePipeline,
    label: &str,
    a: &[u8],
    m: usize,
    b: &[u8],
    n: usize,
    params: [u32; 4],
) -> CoreResult<Vec<u32>> {
    let buf_a = storage(g, label, a);
    let buf_b = storage(g, label, b);
    let buf_out = encode_matrix(g, pipe, label, &buf_a, m, &buf_b, n, params, &mut None);
    let mut enc = g
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    let buf_out = buf_out(&mut enc);
    read_back(g, label, enc, &buf_out, (m * n * 4) as u64)
}
