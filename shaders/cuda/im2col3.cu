// im2col for 3x3, padding-1, stride-1 convolutions, the layout of diffusion::im2col (its CPU twin):
// input B x C x H x W, output B x 9C x HW with row (dy*3 + dx)*C + c holding
// input[c][y + dy - 1][x + dx - 1] (zero outside the image). One thread per output element;
// consecutive threads write consecutive pixels of a row and read neighbouring input pixels, so
// both sides coalesce (candle's CUDA im2col was 55% of a DDIM step's GPU time under ncu).
// Built like group_norm_silu.cu: nvcc -ptx -arch=compute_90 -O3 shaders/cuda/im2col3.cu
// -o shaders/cuda/im2col3.ptx.

extern "C" __global__ void im2col3_f32(const float* x, float* cols, int c, int h, int w, long total) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= total) return;
    int hw = h * w;
    int p = (int)(i % hw);
    long r = i / hw;
    int row = (int)(r % (9L * c));
    long b = r / (9L * c);
    int k = row / c, ci = row % c;
    int y = p / w + k / 3 - 1, xx = p % w + k % 3 - 1;
    float v = 0.0f;
    if (y >= 0 && y < h && xx >= 0 && xx < w) v = x[((b * c + ci) * h + y) * w + xx];
    cols[i] = v;
}
