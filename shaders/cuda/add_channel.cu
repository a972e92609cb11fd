// y = x + bias[channel] (+ t[image][channel]) over contiguous B x O x HW f32 activations: the
// per-channel bias of a convolution and the UNet's time embedding in one pass (candle's broadcast
// add was 3.6 ms of a DDIM step under ncu). CPU twin: diffusion::fused_norm::add_channel_cpu.
// Built like the other kernels: nvcc -ptx -arch=compute_90 -O3 shaders/cuda/add_channel.cu
// -o shaders/cuda/add_channel.ptx.

extern "C" __global__ void add_channel_f32(
    const float* x, const float* bias, const float* t, float* y, int o, int hw, long total, int has_t) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    long bo = i / hw;
    float v = x[i] + bias[bo % o];
    if (has_t) v += t[bo];
    y[i] = v;
}
