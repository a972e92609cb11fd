//! Unit tests of the extraction scorer and the clique search.

use super::cliques::{BK_MAX_VERTICES, Graph, find_cliques};
use super::*;
use crate::gpu::Backend;

const SHAPE: [usize; 3] = [3, 16, 16];
const DIM: usize = 3 * 16 * 16;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn image(&mut self) -> Vec<u8> {
        (0..DIM).map(|_| (self.next() >> 23) as u8).collect()
    }

    /// `img` with every pixel moved by up to ±`amp` levels.
    fn noisy(&mut self, img: &[u8], amp: i32) -> Vec<u8> {
        img.iter()
            .map(|&p| {
                let e = (self.next() % (2 * amp as u64 + 1)) as i32 - amp;
                (i32::from(p) + e).clamp(0, 255) as u8
            })
            .collect()
    }
}

/// 115 training rows: images 0..5 planted 4 times each (rows 0..5 and 100..115 hold copies),
/// all others unique.
fn planted_train(rng: &mut Rng) -> (Vec<Vec<u8>>, Vec<usize>, Vec<usize>) {
    let mut train: Vec<Vec<u8>> = (0..100).map(|_| rng.image()).collect();
    let mut dup_rows: Vec<usize> = (0..5).collect();
    for _ in 0..3 {
        for i in 0..5 {
            dup_rows.push(train.len());
            train.push(train[i].clone());
        }
    }
    let singles: Vec<usize> = (5..100).collect();
    (train, dup_rows, singles)
}

#[test]
fn planted_copies_are_extracted_and_fresh_images_are_not() {
    let mut rng = Rng(42);
    let (train, dup_rows, singles) = planted_train(&mut rng);
    let mut gens: Vec<Vec<u8>> = vec![
        train[0].clone(),         // 0: exact copy of duplicated image 0
        train[100].clone(),       // 1: exact copy of another copy of image 0
        rng.noisy(&train[1], 4),  // 2: noisy copy of duplicated image 1
        rng.noisy(&train[50], 3), // 3: noisy copy of singleton 50
        train[60].clone(),        // 4: exact copy of singleton 60
    ];
    for _ in 0..25 {
        gens.push(rng.image()); // 5..30: fresh images
    }
    let flat_train = train.concat();
    let flat_gens = gens.concat();
    let truth = PlantedTruth {
        duplicated: Some(&dup_rows),
        singletons: Some(&singles),
    };
    for distance in [Distance::L2, Distance::Tiled] {
        let cfg = ExtractionConfig {
            distance,
            cliques: None,
            ..ExtractionConfig::default()
        };
        let rep = extraction_report(&flat_gens, &flat_train, SHAPE, &cfg, &truth, false, None).unwrap();
        let extracted: Vec<usize> = rep
            .rows
            .iter()
            .filter(|r| r.extracted)
            .map(|r| r.generation)
            .collect();
        assert_eq!(extracted, vec![0, 1, 2, 3, 4], "{distance:?}");
        for r in &rep.rows[..5] {
            assert!(r.rel_l2 < 1.0 / 3.0, "{r:?}");
        }
        for r in &rep.rows[5..] {
            assert!(r.rel_l2 > 1.0 / 3.0, "{r:?}");
            assert!(r.eidetic_k.is_none());
        }
        let nearest: Vec<usize> = rep.rows[..5].iter().map(|r| r.nearest).collect();
        assert_eq!(nearest, vec![0, 0, 1, 50, 60]);
        assert_eq!(rep.rows[0].rel_l2, 0.0);
        assert_eq!(rep.rows[0].l2, 0.0);
        assert_eq!(rep.rows[0].nearest_copies, 4);
        assert_eq!(rep.rows[3].nearest_copies, 1);
        // Eidetic k counts the copies of the extracted image.
        assert_eq!(rep.rows[0].eidetic_k, Some(4));
        assert_eq!(rep.rows[2].eidetic_k, Some(4));
        assert_eq!(rep.rows[3].eidetic_k, Some(1));
        let s = &rep.summary;
        assert_eq!(s.n_samples, 30);
        assert_eq!(s.n_train, 115);
        assert_eq!(s.n_train_unique, 100);
        assert_eq!(s.n_extracted, 5);
        assert_eq!(s.unique_train_extracted, 4);
        assert_eq!(s.n_planted_dup_images, Some(5));
        assert_eq!(s.planted_dup_extracted_frac, Some(2.0 / 5.0));
        assert_eq!(s.n_singletons, Some(95));
        assert_eq!(s.singleton_extracted_frac, Some(2.0 / 95.0));
        let img0 = &rep.extracted[0];
        assert_eq!(
            (img0.train_index, img0.copies, img0.generations.clone()),
            (0, 4, vec![0, 1])
        );
        assert_eq!(img0.best_generation, 0);
        assert_eq!(
            rep.extracted.iter().map(|e| e.train_index).collect::<Vec<_>>(),
            vec![0, 1, 50, 60]
        );
        // The report round-trips through JSON.
        let json = serde_json::to_string(&rep).unwrap();
        let back: ExtractionReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rep);
    }
}

#[test]
fn absolute_criterion_and_normalisation() {
    let mut rng = Rng(7);
    let train: Vec<Vec<u8>> = (0..20).map(|_| rng.image()).collect();
    // A generation that differs from train[3] by exactly 51 levels (0.2) in every pixel.
    let shifted: Vec<u8> = train[3]
        .iter()
        .map(|&p| if p < 128 { p + 51 } else { p - 51 })
        .collect();
    let gens = [shifted, rng.image()].concat();
    let cfg = ExtractionConfig {
        criterion: Criterion::Absolute,
        delta: 0.25,
        cliques: None,
        ..ExtractionConfig::default()
    };
    let (rows, backend) = score_generations(&gens, &train.concat(), SHAPE, &cfg, false, None).unwrap();
    assert_eq!(backend, Backend::Cpu);
    assert_eq!(rows[0].nearest, 3);
    assert!((rows[0].l2 - 0.2).abs() < 1e-6, "{}", rows[0].l2);
    assert!((rows[0].tiled_l2 - 0.2).abs() < 1e-6, "{}", rows[0].tiled_l2);
    assert_eq!(rows[0].score, rows[0].l2);
    assert!(rows[0].extracted && !rows[1].extracted);
    // Eidetic radius is δ: only train[3] itself lies within 0.25 of train[3].
    assert_eq!(rows[0].eidetic_k, Some(1));
    // The denominator uses at most the distinct images there are.
    let cfg = ExtractionConfig {
        n_neighbours: 1000,
        cliques: None,
        ..ExtractionConfig::default()
    };
    assert_eq!(
        score_generations(&gens, &train.concat(), SHAPE, &cfg, false, None)
            .unwrap()
            .0
            .len(),
        2
    );
}

#[test]
fn tiled_distance_sees_a_local_difference_plain_l2_dilutes() {
    let mut rng = Rng(3);
    let base = rng.image();
    let mut gen_img = base.clone();
    // Change one 4x4 tile of channel 0 completely: plain l2 stays small, tiled l2 does not.
    for y in 0..4 {
        for x in 0..4 {
            gen_img[y * 16 + x] = 255 - base[y * 16 + x];
        }
    }
    let (rows, _) = score_generations(
        &gen_img,
        &base,
        SHAPE,
        &ExtractionConfig {
            criterion: Criterion::Absolute,
            delta: 0.2,
            ..ExtractionConfig::default()
        },
        false,
        None,
    )
    .unwrap();
    assert!(rows[0].l2 < 0.2 && rows[0].extracted, "{:?}", rows[0]);
    assert!(rows[0].tiled_l2 > 2.0 * rows[0].l2, "{:?}", rows[0]);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let img = vec![0u8; DIM];
    let cfg = ExtractionConfig::default();
    assert!(matches!(
        score_generations(&img[..DIM - 1], &img, SHAPE, &cfg, false, None),
        Err(CoreError::Mismatch(_))
    ));
    assert!(matches!(
        score_generations(&img, &[], SHAPE, &cfg, false, None),
        Err(CoreError::Invalid(_))
    ));
    let bad_grid = ExtractionConfig {
        grid: 5,
        ..ExtractionConfig::default()
    };
    let err = score_generations(&img, &img, SHAPE, &bad_grid, false, None).unwrap_err();
    assert!(err.to_string().contains("divisible by 5"), "{err}");
    let truth_rows = [7usize];
    let truth = PlantedTruth {
        duplicated: Some(&truth_rows),
        singletons: None,
    };
    assert!(extraction_report(&img, &img, SHAPE, &cfg, &truth, false, None).is_err());
}

#[test]
fn cancellation_stops_scoring() {
    let cancel = crate::job::CancelToken::new();
    cancel.cancel();
    let sink = crate::job::NullSink;
    let ctx = JobCtx::new(&cancel, &sink);
    let img = vec![0u8; DIM];
    let err =
        score_generations(&img, &img, SHAPE, &ExtractionConfig::default(), false, Some(&ctx)).unwrap_err();
    assert!(err.is_cancelled());
}

#[test]
fn cliques_find_the_planted_group_and_nothing_else() {
    let mut rng = Rng(11);
    let train: Vec<Vec<u8>> = (0..30).map(|_| rng.image()).collect();
    let base = rng.image(); // not in the training set
    let small = rng.image();
    let mut gens: Vec<Vec<u8>> = (0..20).map(|_| rng.image()).collect();
    let mut planted = Vec::new();
    for k in 0..12usize {
        planted.push(gens.len());
        gens.push(rng.noisy(&base, 3));
        if k.is_multiple_of(3) {
            gens.push(rng.image());
        }
    }
    // A near-identical group below k_min, and copies of a training image below k_min.
    for _ in 0..5 {
        gens.push(rng.noisy(&small, 3));
    }
    for _ in 0..3 {
        gens.push(rng.noisy(&train[4], 2));
    }
    let flat = gens.concat();
    let cc = CliqueConfig::default();
    let (found, _) = cliques(&flat, SHAPE, &cc, None, false, None).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].members, planted);
    assert_eq!(found[0].size, 12);
    assert_eq!(found[0].method, CliqueMethod::BronKerbosch);
    assert!(found[0].max_tiled_l2 <= cc.delta_gen as f32 && found[0].max_tiled_l2 > 0.0);
    assert!(found[0].nearest_train.is_none());
    // With scores: the clique is not an extraction (its image is not in the training set).
    let cfg = ExtractionConfig {
        cliques: Some(CliqueConfig { k_min: 3, ..cc }),
        ..ExtractionConfig::default()
    };
    let rep = extraction_report(
        &flat,
        &train.concat(),
        SHAPE,
        &cfg,
        &PlantedTruth::default(),
        false,
        None,
    )
    .unwrap();
    assert_eq!(rep.summary.n_extracted, 3);
    assert_eq!(
        rep.cliques.iter().map(|c| c.size).collect::<Vec<_>>(),
        vec![12, 5, 3]
    );
    assert_eq!(rep.cliques[0].members_extracted, Some(0));
    let copies = &rep.cliques[2];
    assert_eq!(copies.nearest_train, Some(4));
    assert_eq!(copies.members_extracted, Some(3));
    assert!(copies.nearest_rel_l2.unwrap() < 1.0 / 3.0);
}

fn graph_from_edges(n: usize, edges: &[(usize, usize)]) -> Graph {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges {
        adj[a].push((b, 1));
        adj[b].push((a, 1));
    }
    for a in &mut adj {
        a.sort_unstable();
        a.dedup();
    }
    Graph { adj }
}

#[test]
fn exact_and_greedy_cliques_on_a_known_graph() {
    // Vertices 0..6 form a 6-clique, 6..10 a 4-clique; a path 10-11-12-13 and bridge 5-6.
    let mut edges = Vec::new();
    for a in 0..6 {
        for b in a + 1..6 {
            edges.push((a, b));
        }
    }
    for a in 6..10 {
        for b in a + 1..10 {
            edges.push((a, b));
        }
    }
    edges.extend([(5, 6), (10, 11), (11, 12), (12, 13), (0, 7)]);
    let g = graph_from_edges(14, &edges);
    let exact = find_cliques(&g, 4, BK_MAX_VERTICES);
    assert_eq!(
        exact,
        vec![
            ((0..6).collect::<Vec<_>>(), CliqueMethod::BronKerbosch),
            ((6..10).collect(), CliqueMethod::BronKerbosch)
        ]
    );
    let greedy = find_cliques(&g, 4, 0);
    assert_eq!(
        greedy,
        vec![
            ((0..6).collect::<Vec<_>>(), CliqueMethod::Greedy),
            ((6..10).collect(), CliqueMethod::Greedy)
        ]
    );
    // A 5-cycle has no triangle.
    let cycle = graph_from_edges(5, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]);
    assert!(find_cliques(&cycle, 3, BK_MAX_VERTICES).is_empty());
}
