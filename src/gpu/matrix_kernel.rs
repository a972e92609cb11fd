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
    let dev = &g.device;
    let buf_a = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: a,
        usage: wgpu::BufferUsages::STORAGE,
    });
    let buf_b = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: b,
        usage: wgpu::BufferUsages::STORAGE,
    });
    let buf_p = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(&params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let out_bytes = (m * n * 4) as u64;
    let buf_out = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: out_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: out_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipe.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: buf_a.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: buf_b.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: buf_out.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: buf_p.as_entire_binding(),
            },
        ],
    });
    let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipe);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1);
    }
    enc.copy_buffer_to_buffer(&buf_out, 0, &staging, 0, out_bytes);
    g.queue.submit([enc.finish()]);
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    slice.map_async(wgpu::MapMode::Read, move |r| {
        tx.send(r).ok();
    });
    dev.poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| CoreError::Gpu(format!("poll failed: {e}")))?;
    rx.recv()
        .map_err(|_| CoreError::Gpu("readback callback never ran".into()))?
        .map_err(|e| CoreError::Gpu(format!("readback failed: {e}")))?;
    let view = slice
        .get_mapped_range()
        .map_err(|e| CoreError::Gpu(format!("cannot map readback: {e}")))?;
    let out: Vec<u32> = view
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    drop(view);
    staging.unmap();
    Ok(out)
}
