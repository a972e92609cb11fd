//! The WGSL kernels against their CPU twins on a real adapter (lavapipe in CI). A missing adapter
//! fails under CI (it is a setup bug there) and skips with a message elsewhere.

#![allow(clippy::unwrap_used, reason = "tests unwrap freely")]

use rote::gpu::{
    MAX_TOP_K, PackedImages, SkipColumn, TiledImages, gpu, nearest_neighbours, pairwise_sq_l2_cpu,
    pairwise_sq_l2_gpu, pairwise_top_k_cpu, pairwise_top_k_gpu, pairwise_top_k_gpu_tiled, tiled_sq_l2,
    tiled_sq_l2_cpu, tiled_sq_l2_gpu, tiled_top_k, tiled_top_k_cpu, tiled_top_k_gpu, tiled_top_k_gpu_tiled,
};

fn adapter() -> Option<std::sync::Arc<rote::gpu::Gpu>> {
    match gpu() {
        Ok(g) => Some(g),
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide a Vulkan adapter (lavapipe): {why}"
            );
            eprintln!("skipping GPU parity: {why}");
            None
        }
    }
}

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

#[test]
fn pairwise_kernel_matches_cpu_twin_exactly_on_odd_sizes() {
    let Some(g) = adapter() else { return };
    // Sizes that are not multiples of the 16x16 tile nor of 4 bytes, and extreme values.
    for (m, n, len) in [(1, 1, 1), (17, 33, 785), (40, 7, 3072), (5, 300, 61)] {
        let mut a = random_rows(m, len, 1 + m as u64);
        let b = random_rows(n, len, 99 + n as u64);
        a[0].iter_mut().for_each(|v| *v = 255);
        let ar: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
        let br: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
        let (pa, pb) = (PackedImages::from_rows(&ar), PackedImages::from_rows(&br));
        let cpu = pairwise_sq_l2_cpu(&pa, &pb);
        let gpu_out = pairwise_sq_l2_gpu(&g, &pa, &pb).unwrap();
        assert_eq!(cpu, gpu_out, "m={m} n={n} len={len} on {}", g.info.name);
    }
}

/// Rows of `len` pixels taking only `levels` distinct values: distances collide a lot.
fn few_valued_rows(rows: usize, len: usize, levels: u8, seed: u64) -> Vec<Vec<u8>> {
    random_rows(rows, len, seed)
        .into_iter()
        .map(|r| r.into_iter().map(|v| v % levels).collect())
        .collect()
}

fn pack(rows: &[Vec<u8>]) -> PackedImages {
    let r: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
    PackedImages::from_rows(&r)
}

#[test]
fn top_k_kernel_matches_cpu_twin_with_ties_and_self_skip() {
    let Some(g) = adapter() else { return };
    // n not a multiple of the 64-thread workgroup; n below k; few distinct distances.
    for (m, n, len, levels) in [(1, 1, 3, 2), (9, 7, 5, 3), (33, 129, 6, 3), (20, 1000, 9, 2)] {
        // The queries are references 2..2 + m (where n allows), so self-matches exist.
        let b = few_valued_rows(n, len, levels, 11 + n as u64);
        let mut a = few_valued_rows(m, len, levels, 5 + m as u64);
        for (i, q) in a.iter_mut().enumerate() {
            if let Some(r) = b.get(i + 2) {
                q.clone_from(r);
            }
        }
        let (pa, pb) = (pack(&a), pack(&b));
        let per_row: Vec<Option<usize>> = (0..m).map(|i| (i % 3 != 1).then_some(i * 7 % n)).collect();
        for k in [1, 10, 32, 33, MAX_TOP_K] {
            for skip in [
                SkipColumn::None,
                SkipColumn::Diagonal(2),
                SkipColumn::Diagonal(0),
                SkipColumn::PerRow(&per_row),
            ] {
                let cpu = pairwise_top_k_cpu(&pa, &pb, k, skip);
                let on_gpu = pairwise_top_k_gpu(&g, &pa, &pb, k, skip).unwrap();
                assert_eq!(cpu, on_gpu, "m={m} n={n} k={k} skip={skip:?} on {}", g.info.name);
                for (i, row) in on_gpu.iter().enumerate() {
                    let skipped = skip.column(i).is_some_and(|c| c < n);
                    assert_eq!(row.len(), k.min(n - usize::from(skipped)), "row {i}");
                    assert!(row.iter().all(|&(j, _)| Some(j) != skip.column(i)));
                }
            }
        }
        // The data really tie, and the self-skip really matters.
        let top = pairwise_top_k_cpu(&pa, &pb, 10, SkipColumn::None);
        if n >= 100 {
            assert!(top.iter().any(|r| r.windows(2).any(|w| w[0].1 == w[1].1)));
            assert!(top.iter().take(m.min(n - 2)).all(|r| r[0].1 == 0));
            assert_ne!(top, pairwise_top_k_cpu(&pa, &pb, 10, SkipColumn::Diagonal(2)));
        }
    }
}

#[test]
fn top_k_kernel_matches_cpu_twin_across_row_and_column_tiles() {
    let Some(g) = adapter() else { return };
    let (m, n) = (70, 300);
    let b = few_valued_rows(n, 7, 3, 21);
    let a: Vec<Vec<u8>> = b[..m].to_vec();
    let (pa, pb) = (pack(&a), pack(&b));
    for (k, max_rows, max_cols) in [
        (10, 16, 64),
        (10, 9, 100),
        (1, 13, 37),
        (32, 64, 29),
        (MAX_TOP_K, 64, 29),
    ] {
        for skip in [
            SkipColumn::None,
            SkipColumn::Diagonal(0),
            SkipColumn::Diagonal(250),
        ] {
            let cpu = pairwise_top_k_cpu(&pa, &pb, k, skip);
            let tiled = pairwise_top_k_gpu_tiled(&g, &pa, &pb, k, skip, max_rows, max_cols).unwrap();
            assert_eq!(
                cpu, tiled,
                "k={k} tiles {max_rows}x{max_cols} skip={skip:?} on {}",
                g.info.name
            );
        }
    }
    // k beyond the device lists is refused, not truncated.
    assert!(pairwise_top_k_gpu(&g, &pa, &pb, MAX_TOP_K + 1, SkipColumn::None).is_err());
}

#[test]
fn neighbours_on_mnist_agree_between_backends() {
    let Some(_) = adapter() else { return };
    let ds = rote::data::load("mnist10k").unwrap();
    let queries: Vec<usize> = (0..ds.n).step_by(97).collect();
    let refs: Vec<usize> = (0..ds.n).collect();
    let (g, backend) = nearest_neighbours(&ds, &queries, &refs, 10, true, None).unwrap();
    let (c, cpu_backend) = nearest_neighbours(&ds, &queries, &refs, 10, false, None).unwrap();
    assert!(backend.to_string().starts_with("wgpu"), "{backend}");
    assert_eq!(cpu_backend.to_string(), "cpu");
    assert_eq!(g, c);
    // Neighbours of a digit are mostly the same digit: a sanity check of the distances.
    let same: usize = queries
        .iter()
        .zip(&g)
        .map(|(&q, nb)| nb.iter().filter(|n| ds.labels[n.index] == ds.labels[q]).count())
        .sum();
    assert!(same as f64 / (queries.len() * 10) as f64 > 0.85);
}

#[test]
fn tiled_kernel_matches_cpu_twin_exactly_on_odd_sizes() {
    let Some(g) = adapter() else { return };
    // m and n not multiples of 16; tiles whose byte length is not a multiple of 4 (1x7x7 = 49 px)
    // and a word count per row not a multiple of the 16-word staging tile.
    for (m, n, shape, grid) in [
        (1, 1, [1, 28, 28], 4),
        (17, 33, [3, 32, 32], 4),
        (5, 300, [1, 28, 28], 4),
        (40, 7, [3, 32, 32], 4),
        (19, 21, [1, 28, 28], 7),
        (3, 18, [3, 32, 32], 2),
        (9, 10, [2, 6, 10], 2),
    ] {
        let len = shape.iter().product::<usize>();
        let mut a = random_rows(m, len, 3 + m as u64);
        let b = random_rows(n, len, 77 + n as u64);
        a[0].iter_mut().for_each(|v| *v = 255);
        let ar: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
        let br: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
        let (pa, pb) = (PackedImages::from_rows(&ar), PackedImages::from_rows(&br));
        let cpu = tiled_sq_l2_cpu(&pa, &pb, shape, grid).unwrap();
        let gpu_out = tiled_sq_l2_gpu(&g, &pa, &pb, shape, grid).unwrap();
        assert_eq!(
            cpu, gpu_out,
            "m={m} n={n} shape={shape:?} grid={grid} on {}",
            g.info.name
        );
        // The dispatcher says which backend it used.
        let (via, backend) = tiled_sq_l2(&pa, &pb, shape, grid, true).unwrap();
        assert!(backend.to_string().starts_with("wgpu"), "{backend}");
        assert_eq!(via, cpu);
    }
}

#[test]
fn extraction_scores_agree_between_backends() {
    use rote::measure::extraction::{Distance, ExtractionConfig, PlantedTruth, extraction_report};
    let Some(_) = adapter() else { return };
    let shape = [3, 32, 32];
    let train = random_rows(70, 3 * 32 * 32, 5);
    let mut gens = random_rows(23, 3 * 32 * 32, 6);
    gens[3] = train[9].clone();
    gens[8] = train[40].clone();
    for distance in [Distance::L2, Distance::Tiled] {
        let cfg = ExtractionConfig {
            distance,
            ..ExtractionConfig::default()
        };
        let run = |prefer_gpu| {
            extraction_report(
                &gens.concat(),
                &train.concat(),
                shape,
                &cfg,
                &PlantedTruth::default(),
                prefer_gpu,
                None,
            )
            .unwrap()
        };
        let (on_gpu, on_cpu) = (run(true), run(false));
        assert!(on_gpu.backend.starts_with("wgpu"), "{}", on_gpu.backend);
        assert_eq!(on_cpu.backend, "cpu");
        assert_eq!(on_gpu.rows, on_cpu.rows);
        assert_eq!(on_gpu.summary, on_cpu.summary);
        assert_eq!(on_gpu.summary.unique_train_extracted, 2);
    }
}

/// Tiled images whose pixels take only `levels` values, so tiled distances tie a lot; the
/// queries are references `offset..offset + m` (where they exist) so self-matches exist too.
fn tied_tiled(
    m: usize,
    n: usize,
    shape: [usize; 3],
    grid: usize,
    levels: u8,
    offset: usize,
    seed: u64,
) -> (TiledImages, TiledImages) {
    let len = shape.iter().product::<usize>();
    let b = few_valued_rows(n, len, levels, seed);
    let mut a = few_valued_rows(m, len, levels, seed + 1);
    for (i, q) in a.iter_mut().enumerate() {
        if let Some(r) = b.get(i + offset) {
            q.clone_from(r);
        }
    }
    (
        TiledImages::from_flat(&a.concat(), shape, grid).unwrap(),
        TiledImages::from_flat(&b.concat(), shape, grid).unwrap(),
    )
}

#[test]
fn tiled_top_k_matches_cpu_twin_with_ties_and_self_skip() {
    let Some(g) = adapter() else { return };
    // Odd tile sizes (1x7x7 = 49 px, 2x3x5 = 30 px), n below and above the 64-thread workgroup
    // and below k; two or three pixel levels, so many equal tiled distances.
    for (m, n, shape, grid, levels) in [
        (1, 1, [1, 28, 28], 4, 2),
        (9, 7, [2, 6, 10], 2, 2),
        (33, 129, [1, 28, 28], 4, 2),
        (20, 500, [3, 8, 8], 4, 3),
    ] {
        let (a, b) = tied_tiled(m, n, shape, grid, levels, 2, 40 + n as u64);
        let per_row: Vec<Option<usize>> = (0..m).map(|i| (i % 3 != 1).then_some(i * 7 % n)).collect();
        for k in [1, 10, 33] {
            for skip in [
                SkipColumn::None,
                SkipColumn::Diagonal(2),
                SkipColumn::PerRow(&per_row),
            ] {
                let cpu = tiled_top_k_cpu(&a, &b, k, skip).unwrap();
                let on_gpu = tiled_top_k_gpu(&g, &a, &b, k, skip).unwrap();
                assert_eq!(
                    cpu, on_gpu,
                    "m={m} n={n} shape={shape:?} grid={grid} k={k} skip={skip:?} on {}",
                    g.info.name
                );
                for (i, row) in on_gpu.iter().enumerate() {
                    let skipped = skip.column(i).is_some_and(|c| c < n);
                    assert_eq!(row.len(), k.min(n - usize::from(skipped)), "row {i}");
                    assert!(row.iter().all(|&(j, _)| Some(j) != skip.column(i)));
                }
                // The dispatcher gives the same lists and says where it ran.
                let (via, backend) = tiled_top_k(&a, &b, k, skip, true).unwrap();
                assert!(backend.to_string().starts_with("wgpu"), "{backend}");
                assert_eq!(via, cpu);
            }
        }
        // The twin is the full matrix's row selection, the data really tie (so the smaller index
        // must win), and the self-skip really matters.
        let full = tiled_sq_l2_cpu_packed_rows(&a, &b);
        let top = tiled_top_k_cpu(&a, &b, 10, SkipColumn::None).unwrap();
        for (i, row) in top.iter().enumerate() {
            for w in row.windows(2) {
                assert!(
                    w[0].1 < w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0),
                    "row {i}"
                );
            }
            let kth = row.last().unwrap().1;
            let below = full[i].iter().filter(|&&d| d < kth).count();
            assert!(below < row.len(), "row {i}");
        }
        if n >= 100 {
            assert!(top.iter().any(|r| r.windows(2).any(|w| w[0].1 == w[1].1)));
            assert!(top.iter().all(|r| r[0].1 == 0));
            assert_ne!(top, tiled_top_k_cpu(&a, &b, 10, SkipColumn::Diagonal(2)).unwrap());
        }
    }
    // Mismatched geometries and k beyond the device lists are refused.
    let (a, b) = tied_tiled(3, 5, [1, 8, 8], 2, 2, 0, 1);
    let (_, other) = tied_tiled(3, 5, [1, 8, 8], 4, 2, 0, 1);
    assert!(tiled_top_k_gpu(&g, &a, &other, 1, SkipColumn::None).is_err());
    assert!(tiled_top_k_gpu(&g, &a, &b, MAX_TOP_K + 1, SkipColumn::None).is_err());
}

fn tiled_sq_l2_cpu_packed_rows(a: &TiledImages, b: &TiledImages) -> Vec<Vec<u32>> {
    rote::gpu::tiled_sq_l2_cpu_packed(a, b)
        .unwrap()
        .chunks(b.rows)
        .map(<[u32]>::to_vec)
        .collect()
}

#[test]
fn tiled_top_k_matches_cpu_twin_across_row_and_column_tiles() {
    let Some(g) = adapter() else { return };
    let (m, n) = (70, 300);
    let (a, b) = tied_tiled(m, n, [1, 8, 8], 2, 2, 0, 9);
    for (k, max_rows, max_cols) in [(10, 16, 64), (10, 9, 100), (1, 13, 37), (10, 70, 7)] {
        for skip in [
            SkipColumn::None,
            SkipColumn::Diagonal(0),
            SkipColumn::Diagonal(250),
        ] {
            let cpu = tiled_top_k_cpu(&a, &b, k, skip).unwrap();
            let tiled = tiled_top_k_gpu_tiled(&g, &a, &b, k, skip, max_rows, max_cols).unwrap();
            assert_eq!(
                cpu, tiled,
                "k={k} tiles {max_rows}x{max_cols} skip={skip:?} on {}",
                g.info.name
            );
        }
    }
}

#[test]
fn extraction_scores_agree_between_backends_with_ties_and_duplicates() {
    use rote::measure::extraction::{Criterion, Distance, ExtractionConfig, PlantedTruth, extraction_report};
    let Some(_) = adapter() else { return };
    let shape = [1, 8, 8];
    // Two pixel levels: many equal distances among the nearest images; duplicated training rows
    // and generations that copy training rows.
    let mut train = few_valued_rows(120, 64, 2, 31);
    for i in 0..10 {
        train[100 + i] = train[3 * i].clone();
    }
    let mut gens = few_valued_rows(41, 64, 2, 32);
    gens[0] = train[5].clone();
    gens[7] = train[3].clone();
    gens[20] = train[110].clone();
    for distance in [Distance::L2, Distance::Tiled] {
        for (n_neighbours, criterion) in [
            (1, Criterion::Relative),
            (10, Criterion::Relative),
            (50, Criterion::Absolute),
            (MAX_TOP_K + 1, Criterion::Relative),
        ] {
            let cfg = ExtractionConfig {
                distance,
                grid: 2,
                n_neighbours,
                criterion,
                ..ExtractionConfig::default()
            };
            let run = |prefer_gpu| {
                extraction_report(
                    &gens.concat(),
                    &train.concat(),
                    shape,
                    &cfg,
                    &PlantedTruth::default(),
                    prefer_gpu,
                    None,
                )
                .unwrap()
            };
            let (on_gpu, on_cpu) = (run(true), run(false));
            assert!(on_gpu.backend.starts_with("wgpu"), "{}", on_gpu.backend);
            assert_eq!(on_cpu.backend, "cpu");
            assert_eq!(on_gpu.rows, on_cpu.rows, "{distance:?} n={n_neighbours}");
            assert_eq!(on_gpu.summary, on_cpu.summary, "{distance:?} n={n_neighbours}");
            assert!(on_cpu.rows.iter().filter(|r| r.l2 == 0.0).count() >= 3);
        }
    }
}
