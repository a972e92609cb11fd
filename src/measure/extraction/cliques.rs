//! Groups of near-identical generations: the d_tile ≤ δ_gen graph, k-core pruning, exact maximum
//! cliques by Bron–Kerbosch with pivoting and greedy expansion for large components (see the
//! [module docs](super)).

use std::collections::{BTreeMap, BTreeSet};

use super::score::{Metric, block_rows, count_rows};
use super::{Clique, CliqueConfig, CliqueMethod, Distance, GenerationScore};
use crate::error::{CoreError, CoreResult};
use crate::gpu::Backend;
use crate::job::JobCtx;

/// Components up to this size get an exact maximum clique.
pub(super) const BK_MAX_VERTICES: usize = 500;
/// Recursive calls allowed per Bron–Kerbosch search before falling back to greedy.
const BK_MAX_STEPS: usize = 200_000;
/// Seeds tried by the greedy expansion.
const GREEDY_SEEDS: usize = 64;

/// The generation graph: sorted (neighbour, exact tiled squared distance) lists.
pub(super) struct Graph {
    pub(super) adj: Vec<Vec<(usize, u32)>>,
}

impl Graph {
    fn weight(&self, u: usize, v: usize) -> Option<u32> {
        let a = &self.adj[u];
        a.binary_search_by_key(&v, |&(j, _)| j).ok().map(|i| a[i].1)
    }

    fn adjacent(&self, u: usize, v: usize) -> bool {
        self.weight(u, v).is_some()
    }
}

fn bron_kerbosch(
    r: &mut Vec<usize>,
    p: Vec<usize>,
    x: Vec<usize>,
    adj: &[Vec<bool>],
    best: &mut Vec<usize>,
    steps: &mut usize,
) -> bool {
    *steps += 1;
    if *steps > BK_MAX_STEPS {
        return false;
    }
    if p.is_empty() {
        if x.is_empty() && r.len() > best.len() {
            best.clone_from(r);
        }
        return true;
    }
    if r.len() + p.len() <= best.len() {
        return true;
    }
    let pivot = p
        .iter()
        .chain(&x)
        .copied()
        .max_by_key(|&u| (p.iter().filter(|&&v| adj[u][v]).count(), std::cmp::Reverse(u)))
        .unwrap_or(p[0]);
    let mut p = p;
    let mut x = x;
    let cands: Vec<usize> = p.iter().copied().filter(|&v| !adj[pivot][v]).collect();
    for v in cands {
        r.push(v);
        let np: Vec<usize> = p.iter().copied().filter(|&w| adj[v][w]).collect();
        let nx: Vec<usize> = x.iter().copied().filter(|&w| adj[v][w]).collect();
        let ok = bron_kerbosch(r, np, nx, adj, best, steps);
        r.pop();
        if !ok {
            return false;
        }
        p.retain(|&w| w != v);
        x.push(v);
    }
    true
}

/// Exact maximum clique among `vs` (global ids), or `None` when the step budget ran out.
fn max_clique_exact(g: &Graph, vs: &[usize]) -> Option<Vec<usize>> {
    let adj: Vec<Vec<bool>> = vs
        .iter()
        .map(|&u| vs.iter().map(|&v| u != v && g.adjacent(u, v)).collect())
        .collect();
    let mut best = Vec::new();
    let mut steps = 0;
    let ok = bron_kerbosch(
        &mut Vec::new(),
        (0..vs.len()).collect(),
        Vec::new(),
        &adj,
        &mut best,
        &mut steps,
    );
    ok.then(|| best.into_iter().map(|i| vs[i]).collect())
}

/// Greedy clique expansion among `vs`: from each of the best-connected seeds, add vertices in
/// order of degree while they stay adjacent to all; keep the largest.
fn max_clique_greedy(g: &Graph, vs: &[usize]) -> Vec<usize> {
    let inside: BTreeSet<usize> = vs.iter().copied().collect();
    let deg = |u: usize| g.adj[u].iter().filter(|(v, _)| inside.contains(v)).count();
    let mut order: Vec<(usize, usize)> = vs.iter().map(|&u| (deg(u), u)).collect();
    order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut best: Vec<usize> = Vec::new();
    for &(d, seed) in order.iter().take(GREEDY_SEEDS) {
        if d < best.len() {
            break;
        }
        let mut clique = vec![seed];
        for &(_, v) in &order {
            if v != seed && clique.iter().all(|&c| g.adjacent(c, v)) {
                clique.push(v);
            }
        }
        if clique.len() > best.len() {
            best = clique;
        }
    }
    best
}

/// Disjoint cliques of at least `k_min` vertices (see the [module docs](super)), with how each was
/// found.
pub(super) fn find_cliques(g: &Graph, k_min: usize, bk_max: usize) -> Vec<(Vec<usize>, CliqueMethod)> {
    let n = g.adj.len();
    // k-core pruning: a vertex in a k_min-clique has at least k_min - 1 neighbours.
    let mut alive = vec![true; n];
    let mut deg: Vec<usize> = g.adj.iter().map(Vec::len).collect();
    let mut stack: Vec<usize> = (0..n).filter(|&u| deg[u] + 1 < k_min).collect();
    while let Some(u) = stack.pop() {
        if !alive[u] {
            continue;
        }
        alive[u] = false;
        for &(v, _) in &g.adj[u] {
            if alive[v] {
                deg[v] -= 1;
                if deg[v] + 1 < k_min {
                    stack.push(v);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut seen = vec![false; n];
    for s in 0..n {
        if !alive[s] || seen[s] {
            continue;
        }
        let mut comp = vec![s];
        seen[s] = true;
        let mut i = 0;
        while i < comp.len() {
            for &(v, _) in &g.adj[comp[i]] {
                if alive[v] && !seen[v] {
                    seen[v] = true;
                    comp.push(v);
                }
            }
            i += 1;
        }
        comp.sort_unstable();
        while comp.len() >= k_min {
            let exact = if comp.len() <= bk_max {
                max_clique_exact(g, &comp)
            } else {
                None
            };
            let (mut clique, method) = match exact {
                Some(c) => (c, CliqueMethod::BronKerbosch),
                None => (max_clique_greedy(g, &comp), CliqueMethod::Greedy),
            };
            if clique.len() < k_min {
                break;
            }
            clique.sort_unstable();
            comp.retain(|v| clique.binary_search(v).is_err());
            out.push((clique, method));
        }
    }
    out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    out
}

/// Groups of near-identical generations (N x C x H x W u8 pixels back to back): disjoint cliques
/// of at least `cfg.k_min` generations whose pairwise normalised tiled distances are all ≤
/// `cfg.delta_gen` (see the [module docs](super)). With `scores` (from
/// [`score_generations`](super::score_generations) on the same generations) each clique names the
/// training image most of its members are nearest to.
pub fn cliques(
    generations: &[u8],
    shape: [usize; 3],
    cfg: &CliqueConfig,
    scores: Option<&[GenerationScore]>,
    prefer_gpu: bool,
    ctx: Option<&JobCtx<'_>>,
) -> CoreResult<(Vec<Clique>, Backend)> {
    if cfg.k_min < 2 {
        return Err(CoreError::Invalid(format!(
            "k_min must be at least 2, not {}",
            cfg.k_min
        )));
    }
    if !(cfg.delta_gen.is_finite() && cfg.delta_gen >= 0.0) {
        return Err(CoreError::Invalid(format!(
            "delta_gen must be ≥ 0, not {}",
            cfg.delta_gen
        )));
    }
    let metric = Metric::new(Distance::Tiled, shape, cfg.grid)?;
    let dim = metric.dim;
    let n = count_rows(generations, dim, "generations", shape)?;
    if let Some(s) = scores
        && s.len() != n
    {
        return Err(CoreError::Mismatch(format!(
            "{} scores for {n} generations",
            s.len()
        )));
    }
    let mut backend = Backend::Cpu;
    let mut adj: Vec<Vec<(usize, u32)>> = vec![Vec::new(); n];
    if n > 0 {
        let all = metric.pack(generations)?;
        let block = block_rows(n);
        for (bi, chunk) in generations.chunks(block * dim).enumerate() {
            if let Some(ctx) = ctx {
                ctx.checkpoint()?;
                ctx.progress("extraction: generation cliques", (bi * block) as u64, n as u64);
            }
            let (mat, used) = metric.matrix(chunk, &all, prefer_gpu)?;
            backend = used;
            for (r, drow) in mat.chunks_exact(n).enumerate() {
                let i = bi * block + r;
                adj[i] = drow
                    .iter()
                    .enumerate()
                    .filter(|&(j, &v)| j != i && metric.norm(v) <= cfg.delta_gen)
                    .map(|(j, &v)| (j, v))
                    .collect();
            }
        }
    }
    let g = Graph { adj };
    let out = find_cliques(&g, cfg.k_min, BK_MAX_VERTICES)
        .into_iter()
        .map(|(members, method)| clique_summary(&g, &metric, members, method, scores))
        .collect();
    Ok((out, backend))
}

fn clique_summary(
    g: &Graph,
    metric: &Metric,
    members: Vec<usize>,
    method: CliqueMethod,
    scores: Option<&[GenerationScore]>,
) -> Clique {
    let mut max_sq = 0u32;
    for (a, &u) in members.iter().enumerate() {
        for &v in &members[a + 1..] {
            max_sq = max_sq.max(g.weight(u, v).unwrap_or(0));
        }
    }
    let mut c = Clique {
        size: members.len(),
        max_tiled_l2: metric.norm(max_sq) as f32,
        method,
        nearest_train: None,
        nearest_copies: None,
        nearest_rel_l2: None,
        nearest_l2: None,
        members_extracted: None,
        members,
    };
    if let Some(scores) = scores {
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for &m in &c.members {
            *votes.entry(scores[m].nearest).or_default() += 1;
        }
        // Most votes; the BTreeMap order makes ties go to the smaller index.
        let top = votes
            .iter()
            .fold(None::<(usize, usize)>, |best, (&t, &k)| match best {
                Some((_, bk)) if bk >= k => best,
                _ => Some((t, k)),
            })
            .map(|(t, _)| t);
        if let Some(t) = top {
            let hits: Vec<&GenerationScore> = c
                .members
                .iter()
                .map(|&m| &scores[m])
                .filter(|s| s.nearest == t)
                .collect();
            c.nearest_train = Some(t);
            c.nearest_copies = hits.first().map(|s| s.nearest_copies);
            c.nearest_rel_l2 = hits.iter().map(|s| s.rel_l2).reduce(f32::min);
            c.nearest_l2 = hits.iter().map(|s| s.l2).reduce(f32::min);
        }
        c.members_extracted = Some(c.members.iter().filter(|&&m| scores[m].extracted).count());
    }
    c
}
