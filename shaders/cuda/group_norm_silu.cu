// GroupNorm (+ optional SiLU) over contiguous N x C x H x W f32 activations, fused into one
// kernel for the DDPM UNet's sampling pass on CUDA (candle's GroupNorm is about 11 kernels).
// One block per (image, group): the group's elements are contiguous. Two-pass statistics (mean,
// then the mean squared deviation), like candle_nn::GroupNorm, so the numbers agree to rounding.
// Built to PTX by benches/gpu/build-cuda-here.sh's nvcc: nvcc -ptx -arch=compute_90
// shaders/cuda/group_norm_silu.cu -o shaders/cuda/group_norm_silu.ptx (the PTX is committed; the
// driver compiles it at first use). CPU twin: diffusion::fused_norm::group_norm_silu_cpu.

__device__ float block_sum(float v, float* sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < nw) ? sh[threadIdx.x] : 0.0f;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

extern "C" __global__ void group_norm_silu_f32(
    const float* x, const float* w, const float* b, float* y,
    int channels, int hw, int groups, float eps, int silu) {
    __shared__ float sh[32];
    int g = blockIdx.x % groups;
    long img = blockIdx.x / groups;
    int cpg = channels / groups;
    long n = (long)cpg * hw;
    long base = (img * channels + (long)g * cpg) * hw;
    float s = 0.0f;
    for (long i = threadIdx.x; i < n; i += blockDim.x) s += x[base + i];
    float mean = block_sum(s, sh) / (float)n;
    float v = 0.0f;
    for (long i = threadIdx.x; i < n; i += blockDim.x) {
        float d = x[base + i] - mean;
        v += d * d;
    }
    float rstd = rsqrtf(block_sum(v, sh) / (float)n + eps);
    for (long i = threadIdx.x; i < n; i += blockDim.x) {
        int c = g * cpg + (int)(i / hw);
        float o = (x[base + i] - mean) * rstd * w[c] + b[c];
        if (silu) o = o / (1.0f + __expf(-o));
        y[base + i] = o;
    }
}
