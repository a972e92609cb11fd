//! The layouts the CPU convolutions' GEMMs read and write (`cpu_kernels.rs`): the im2col of
//! a group of images as channel-major columns (9C x n·HW, row c*9 + dy*3 + dx, column
//! i*HW + y*W + x), images side by side channel-major (C x n·HW), and channel-major results back
//! to batch-major images with the bias and time embedding added. Every output is written once,
//! into memory handed over unfilled. Tested in `cpu_kernels_tests.rs` against `im2col.rs`'s
//! batch-major columns and candle's conv2d.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use candle_core::WithDType;

use crate::cpu_slices::written;

/// im2col of `b` images into channel-major columns (layout in the module docs).
pub(super) fn im2col_cm<T: WithDType>(src: &[T], b: usize, c: usize, h: usize, w: usize) -> Vec<T> {
    written(9 * c * b * h * w, |out| im2col_into(src, out, b, c, h, w))
}

/// Planes of at least this many pixels take [`im2col_flat`], smaller ones [`im2col_masked`].
const FLAT_IM2COL_PIXELS: usize = 256;

/// [`im2col_cm`] into unfilled memory of exactly 9·c·b·h·w values, every value written once.
fn im2col_into<T: WithDType>(src: &[T], out: &mut [MaybeUninit<T>], b: usize, c: usize, h: usize, w: usize) {
    if h * w == 0 || b == 0 {
        return;
    }
    if h * w >= FLAT_IM2COL_PIXELS {
        im2col_flat(src, out, b, c, h, w);
    } else {
        im2col_masked(src, out, b, c, h, w);
    }
}

/// [`im2col_into`] for large planes: per row of the columns and image, one flat copy of the
/// plane shifted between zeros, then the pixels that wrapped around a row's end (first or last
/// column) back to zero. This and the other loops here are compiled for AVX-512, AVX2 and the
/// baseline, chosen at run time (`multiversion`).
#[multiversion::multiversion(targets = "simd")]
fn im2col_flat<T: WithDType>(src: &[T], out: &mut [MaybeUninit<T>], b: usize, c: usize, h: usize, w: usize) {
    let hw = h * w;
    for (r, row) in out.chunks_exact_mut(b * hw).enumerate() {
        let (ci, k) = (r / 9, r % 9);
        let (dy, dx) = (k / 3, k % 3);
        // Output pixel i reads input pixel i + off of the same plane.
        let off = (dy * w + dx) as isize - (w + 1) as isize;
        let lo = (if dy == 0 { w } else { 0 }).max((-off).max(0) as usize).min(hw);
        let hi = (if dy == 2 { hw.saturating_sub(w) } else { hw })
            .min((hw as isize - off).max(0) as usize)
            .max(lo);
        let s = (lo as isize + off).max(0) as usize;
        for (bi, dst) in row.chunks_exact_mut(hw).enumerate() {
            let plane = &src[(bi * c + ci) * hw..(bi * c + ci + 1) * hw];
            let (head, rest) = dst.split_at_mut(lo);
            let (mid, tail) = rest.split_at_mut(hi - lo);
            head.iter_mut().chain(tail.iter_mut()).for_each(|d| {
                d.write(T::zero());
            });
            if hi > lo {
                mid.write_copy_of_slice(&plane[s..s + (hi - lo)]);
            }
            if dx != 1 {
                let col = if dx == 0 { 0 } else { w - 1 };
                for y in 0..h {
                    dst[y * w + col].write(T::zero());
                }
            }
        }
    }
}

/// [`im2col_into`] for small planes: each plane goes once into a scratch row with w + 1 zeros on
/// either side; then each of the nine offsets is one pass that reads the scratch shifted and
/// keeps a pixel where the offset stays inside the image (a mask per offset, the same for every
/// plane). The passes are selects that vectorise, where [`im2col_flat`]'s copies become a library
/// call each (on 8x8 images, a fifth of DDIM's time; this is twice as fast there).
#[multiversion::multiversion(targets = "simd")]
fn im2col_masked<T: WithDType>(
    src: &[T],
    out: &mut [MaybeUninit<T>],
    b: usize,
    c: usize,
    h: usize,
    w: usize,
) {
    let hw = h * w;
    let guard = w + 1;
    // inside[k * hw + i]: output pixel i's source under offset k (dy, dx) lies in the image.
    let mut inside = vec![false; 9 * hw];
    for (k, mask) in inside.chunks_exact_mut(hw).enumerate() {
        let (dy, dx) = (k / 3, k % 3);
        for (i, m) in mask.iter_mut().enumerate() {
            let (y, x) = (i / w + dy, i % w + dx);
            *m = (1..=h).contains(&y) && (1..=w).contains(&x);
        }
    }
    let mut scratch = vec![T::zero(); hw + 2 * guard];
    for ci in 0..c {
        for bi in 0..b {
            scratch[guard..guard + hw].copy_from_slice(&src[(bi * c + ci) * hw..(bi * c + ci + 1) * hw]);
            for (k, mask) in inside.chunks_exact(hw).enumerate() {
                // Pixel i reads scratch[guard + i + off], off = (dy - 1) * w + dx - 1.
                let start = (k / 3) * w + k % 3;
                let shifted = &scratch[start..start + hw];
                let dst = &mut out[((ci * 9 + k) * b + bi) * hw..((ci * 9 + k) * b + bi + 1) * hw];
                for ((d, &v), &keep) in dst.iter_mut().zip(shifted).zip(mask) {
                    d.write(if keep { v } else { T::zero() });
                }
            }
        }
    }
}

/// `b` images of `c` x `hw` side by side: c x (b·hw); one image is that already (borrowed).
pub(super) fn to_channel_major<T: WithDType>(src: &[T], b: usize, c: usize, hw: usize) -> Cow<'_, [T]> {
    if b == 1 {
        return Cow::Borrowed(&src[..c * hw]);
    }
    let mut out = Vec::with_capacity(b * c * hw);
    for ci in 0..c {
        for bi in 0..b {
            out.extend_from_slice(&src[(bi * c + ci) * hw..(bi * c + ci + 1) * hw]);
        }
    }
    Cow::Owned(out)
}

/// Channel-major `ycm` (o x n·hw) into the n images `y` (n x o x hw), plus `bt[i][o]`: writes
/// every value of `y` (whose memory the caller hands over unfilled).
#[multiversion::multiversion(targets = "simd")]
pub(super) fn to_batch_major_plus<T: WithDType>(
    ycm: &[T],
    y: &mut [MaybeUninit<T>],
    bt: &[T],
    o: usize,
    hw: usize,
) {
    let nhw = ycm.len() / o.max(1);
    for (i, img) in y.chunks_exact_mut(o * hw).enumerate() {
        for (oi, dst) in img.chunks_exact_mut(hw).enumerate() {
            let add = bt[i * o + oi];
            let src = &ycm[oi * nhw + i * hw..oi * nhw + (i + 1) * hw];
            for (d, &s) in dst.iter_mut().zip(src) {
                d.write(s + add);
            }
        }
    }
}
