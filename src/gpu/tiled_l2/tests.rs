//! Tests of the tiled distance: the CPU twin against direct per-tile sums, the worst tile, clear
//! errors and empty inputs.

use super::*;
use crate::error::CoreError;

fn random_rows(rows: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut s = seed;
    (0..rows)
        .map(|_| {
            (0..len)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (s >> 56) as u8
                })
                .collect()
        })
        .collect()
}

fn pack(rows: &[Vec<u8>]) -> PackedImages {
    let r: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
    PackedImages::from_rows(&r)
}

#[test]
fn cpu_twin_matches_direct_per_tile_sums_on_odd_shapes() {
    for (shape, grid) in [
        ([1, 28, 28], 4),
        ([3, 32, 32], 4),
        ([3, 32, 32], 8),
        ([2, 6, 10], 2),
        ([1, 5, 3], 1),
    ] {
        let len = shape.iter().product::<usize>();
        let mut a = random_rows(5, len, 7);
        let b = random_rows(9, len, 11);
        a[0].iter_mut().for_each(|v| *v = 255);
        let d = tiled_sq_l2_cpu(&pack(&a), &pack(&b), shape, grid).unwrap();
        for (i, x) in a.iter().enumerate() {
            for (j, y) in b.iter().enumerate() {
                assert_eq!(
                    d[i * 9 + j],
                    tiled_sq_l2_pair(x, y, shape, grid).unwrap(),
                    "{shape:?} g={grid}"
                );
            }
        }
        // One tile of the whole image is plain squared l2.
        if grid == 1 {
            let plain = crate::gpu::pairwise_sq_l2_cpu(&pack(&a), &pack(&b));
            assert_eq!(d, plain);
        }
    }
}

#[test]
fn tiled_distance_is_the_worst_tile() {
    // 1x8x8 image, 2x2 grid of 4x4 tiles: a difference confined to the bottom-right tile.
    let a = vec![0u8; 64];
    let mut b = a.clone();
    b[7 * 8 + 7] = 10; // bottom-right tile
    b[5 * 8 + 4] = 3; // bottom-right tile
    b[0] = 4; // top-left tile
    let d = tiled_sq_l2_pair(&a, &b, [1, 8, 8], 2).unwrap();
    assert_eq!(d, 100 + 9);
    let cpu = tiled_sq_l2_cpu(&pack(&[a]), &pack(&[b]), [1, 8, 8], 2).unwrap();
    assert_eq!(cpu, vec![109]);
}

#[test]
fn indivisible_shapes_and_mismatches_are_clear_errors() {
    let a = pack(&random_rows(2, 3 * 30 * 30, 1));
    let err = tiled_sq_l2_cpu(&a, &a, [3, 30, 30], 4).unwrap_err();
    assert!(matches!(err, CoreError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("divisible by 4"), "{err}");
    assert!(tiled_sq_l2(&a, &a, [3, 30, 30], 0, false).is_err());
    // Wrong shape for the rows.
    assert!(matches!(
        tiled_sq_l2_cpu(&a, &a, [3, 32, 32], 4),
        Err(CoreError::Mismatch(_))
    ));
    // Tiles too large for exact u32 sums.
    assert!(tile_geometry([3, 256, 256], 1).is_err());
    assert!(tile_geometry([3, 256, 256], 2).is_ok());
}

#[test]
fn empty_inputs_give_empty_matrices() {
    let a = pack(&random_rows(3, 16, 1));
    let empty = PackedImages {
        rows: 0,
        row_bytes: 16,
        data: Vec::new(),
    };
    assert!(tiled_sq_l2_cpu(&a, &empty, [1, 4, 4], 2).unwrap().is_empty());
    assert!(tiled_sq_l2_cpu(&empty, &a, [1, 4, 4], 2).unwrap().is_empty());
}
