//! The host side shared by the distance kernels (pairwise and tiled l2): upload two row sets and a
//! 4-word uniform, run a 16x16-workgroup kernel that writes an m x n u32 matrix (bindings: 0 a,
//! 1 b, 2 out, 3 params), and read the matrix back, or keep it on the device and run
//! `shaders/topk_rows.wgsl` on it so that only rows x k (distance, column) pairs come back
//! (`super::topk_rows::matrix_top_k_gpu`).

use crate::error::{CoreError, CoreResult};
use wgpu::util::DeviceExt as _;

use super::Gpu;

/// Largest output block per dispatch, in bytes.
pub(super) const MAX_OUT_BYTES: u64 = 256 << 20;
/// Most workgroups along one dispatch dimension.
pub(super) const MAX_GROUPS: usize = 65535;

/// Compiles the WGSL `source` (entry point `main`).
pub(super) fn compile(
    g: &Gpu,
    label: &str,
    source: impl Into<std::borrow::Cow<'static, str>>,
) -> wgpu::ComputePipeline {
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
    let mut enc = g
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    let buf_out = encode_matrix(g, &mut enc, pipe, label, &buf_a, m, &buf_b, n, params);
    read_back(g, label, enc, &buf_out, (m * n * 4) as u64)
}

/// A read-only storage buffer holding `bytes`.
pub(super) fn storage(g: &Gpu, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytes,
        usage: wgpu::BufferUsages::STORAGE,
    })
}

/// A bind group for a kernel with the usual layout (0 and 1 read, 2 written, 3 uniform `params`);
/// the uniform buffer comes back with it.
fn bind_four(
    g: &Gpu,
    pipe: &wgpu::ComputePipeline,
    label: &str,
    bufs: [&wgpu::Buffer; 3],
    params: &[u32],
) -> (wgpu::BindGroup, wgpu::Buffer) {
    let buf_p = g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(params),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let bind = g.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipe.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: bufs[0].as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: bufs[1].as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: bufs[2].as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: buf_p.as_entire_binding(),
            },
        ],
    });
    (bind, buf_p)
}

/// Records one dispatch of the 16x16 matrix kernel `pipe` (`m` rows of `buf_a` against `n` rows
/// of `buf_b`) into `enc`; returns the m x n output buffer, which stays on the device.
#[allow(clippy::too_many_arguments, reason = "the kernel's bindings, sizes and label")]
pub(super) fn encode_matrix(
    g: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    pipe: &wgpu::ComputePipeline,
    label: &str,
    buf_a: &wgpu::Buffer,
    m: usize,
    buf_b: &wgpu::Buffer,
    n: usize,
    params: [u32; 4],
) -> wgpu::Buffer {
    let buf_out = g.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (m * n * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let (bind, _uniform) = bind_four(g, pipe, label, [buf_a, buf_b, &buf_out], &params);
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipe);
    pass.set_bind_group(0, &bind, &[]);
    pass.dispatch_workgroups(n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1);
    drop(pass);
    buf_out
}

/// Records one dispatch of `shaders/topk_rows.wgsl` (`pipe`) over the `rows` x `cols` matrix in
/// `dist` (one workgroup per row, so `rows` <= [`MAX_GROUPS`]), skipping global column `skip[r]`
/// in row r (u32::MAX: none), with global columns `col0 + j`; returns the rows x k x 2 output.
#[allow(clippy::too_many_arguments, reason = "the kernel's bindings and sizes")]
pub(super) fn encode_top_k(
    g: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    pipe: &wgpu::ComputePipeline,
    dist: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    skip: &[u32],
    k: usize,
    col0: usize,
) -> wgpu::Buffer {
    let label = "topk_rows";
    let buf_skip = storage(g, label, bytemuck::cast_slice(skip));
    let buf_out = g.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (rows * k * 8) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let params = [rows as u32, cols as u32, k as u32, col0 as u32];
    let (bind, _uniform) = bind_four(g, pipe, label, [dist, &buf_skip, &buf_out], &params);
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipe);
    pass.set_bind_group(0, &bind, &[]);
    pass.dispatch_workgroups(rows as u32, 1, 1);
    drop(pass);
    buf_out
}

/// Copies the first `bytes` of `src` to a staging buffer at the end of `enc`, submits, waits, and
/// returns them as u32 words.
pub(super) fn read_back(
    g: &Gpu,
    label: &str,
    mut enc: wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    bytes: u64,
) -> CoreResult<Vec<u32>> {
    let dev = &g.device;
    let staging = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    enc.copy_buffer_to_buffer(src, 0, &staging, 0, bytes);
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
