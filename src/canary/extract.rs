//! Extracting a secret without enumerating the space (Carlini et al. 2019, *The Secret Sharer*,
//! section 4 of the spec): a shortest-path search over the slot's digits, where appending digit
//! `c` costs `-log2 Pr(c | context, digits so far)`, so a complete path costs the slot's
//! log-perplexity `Px`. All costs are non-negative, so Dijkstra's (uniform-cost) search pops
//! complete fillings in increasing log-perplexity: the first is the model's most likely secret and
//! the k-th has rank k. It runs on any [`SlotModel`] (the LSTM steps a kept state, a transformer
//! re-reads the filling after its cached context). Expansions are batched (up to `batch` partial
//! nodes per model call); a complete node is only emitted while it is the cheapest in the queue,
//! so the order stays exact. A node budget bounds the work ("not found within budget" instead of
//! hanging on a low-exposure secret). Beam search (width w) is offered as the cheap approximation.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::model::SlotModel;
use super::secrets::Canary;
use crate::error::{CoreError, CoreResult};
use crate::job::JobCtx;

/// Search algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SearchMethod {
    /// Exact: candidates in increasing log-perplexity.
    Dijkstra,
    /// Keep the `beam` cheapest partial fillings per digit (may miss the optimum).
    Beam,
}

/// Search settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchOptions {
    /// Algorithm.
    pub method: SearchMethod,
    /// Most node expansions (each is one LSTM step and one read-out for one partial filling).
    pub budget: usize,
    /// Partial fillings expanded per forward step.
    pub batch: usize,
    /// Beam width.
    pub beam: usize,
    /// Complete candidates to report.
    pub candidates: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            method: SearchMethod::Dijkstra,
            budget: 50_000,
            batch: 64,
            beam: 64,
            candidates: 10,
        }
    }
}

/// One complete filling found by the search.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    /// The digits.
    pub secret: String,
    /// Log-perplexity in bits.
    pub bits: f64,
    /// Node expansions done when it was emitted.
    pub expanded: usize,
}

/// What the search found.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchResult {
    /// The prefix searched after.
    pub prefix: String,
    /// Slot length.
    pub digits: usize,
    /// Candidates in the order found (increasing bits for Dijkstra).
    pub candidates: Vec<Candidate>,
    /// Node expansions.
    pub expanded: usize,
    /// The budget ran out before `candidates` were found.
    pub out_of_budget: bool,
    /// Seconds.
    pub seconds: f64,
}

/// Live view of a running search.
pub struct SearchEvent<'a> {
    /// Expansions so far.
    pub expanded: usize,
    /// The cheapest partial filling in the queue (what the search is "typing").
    pub frontier: String,
    /// Its cost in bits.
    pub frontier_bits: f64,
    /// Complete candidates so far.
    pub candidates: &'a [Candidate],
}

struct Node<M> {
    cost: f64,
    /// The filling so far (never empty: the root is expanded when the search starts).
    digits: Vec<u8>,
    /// What the model kept of the parent's computation (the parent has not seen the last digit).
    base: Arc<M>,
}

impl<M> PartialEq for Node<M> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<M> Eq for Node<M> {}
impl<M> PartialOrd for Node<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Node<M> {
    /// Reversed, so the max-heap pops the cheapest (ties: the lexicographically smaller filling).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .cost
            .total_cmp(&self.cost)
            .then_with(|| other.digits.cmp(&self.digits))
    }
}

fn text_of(d: &[u8]) -> String {
    d.iter().map(|&x| char::from(b'0' + x)).collect()
}

/// The ten children of a node of cost `cost` and filling `digits` with next-digit costs `bits`.
fn push_children<M>(out: &mut Vec<Node<M>>, cost: f64, digits: &[u8], bits: &[f32; 10], base: &Arc<M>) {
    for (d, &c) in bits.iter().enumerate() {
        let mut next = digits.to_vec();
        next.push(d as u8);
        out.push(Node {
            cost: cost + f64::from(c),
            digits: next,
            base: base.clone(),
        });
    }
}

/// The ten children of every node of `nodes` (one batched expansion for all of them).
fn children<S: SlotModel>(
    model: &S,
    root: &S::Batch,
    nodes: &[Node<S::Memo>],
) -> CoreResult<Vec<Node<S::Memo>>> {
    let req: Vec<(&S::Memo, &[u8])> = nodes
        .iter()
        .map(|n| (n.base.as_ref(), n.digits.as_slice()))
        .collect();
    let expanded = model.expand(root, &req)?;
    let mut out = Vec::with_capacity(nodes.len() * 10);
    for (n, (memo, bits)) in nodes.iter().zip(expanded) {
        push_children(&mut out, n.cost, &n.digits, &bits, &Arc::new(memo));
    }
    Ok(out)
}

/// Searches the `digits`-digit slot after `prefix` (the model's context for it: a line break
/// and the prefix for the LSTM). `on_event` is called after every forward step. Cancellable.
pub fn search_secret<S: SlotModel>(
    model: &S,
    prefix: &str,
    digits: usize,
    opts: &SearchOptions,
    on_event: &mut dyn FnMut(&SearchEvent<'_>),
    ctx: &JobCtx<'_>,
) -> CoreResult<SearchResult> {
    if digits == 0 || digits > 18 {
        return Err(CoreError::Invalid(format!("--digits {digits}: 1 to 18 allowed")));
    }
    if opts.batch == 0 || opts.candidates == 0 || (opts.method == SearchMethod::Beam && opts.beam == 0) {
        return Err(CoreError::Invalid(
            "--batch, --candidates and --beam must be positive".into(),
        ));
    }
    let t0 = std::time::Instant::now();
    let mut result = SearchResult {
        prefix: prefix.to_string(),
        digits,
        candidates: Vec::new(),
        expanded: 0,
        out_of_budget: false,
        seconds: 0.0,
    };
    if opts.budget == 0 {
        result.out_of_budget = true;
        return Ok(result);
    }
    // The root's expansion is the context's forward pass.
    let (root, first) = model.start(prefix)?;
    let memo = Arc::new(model.root_memo(&root)?);
    let mut level1 = Vec::with_capacity(10);
    push_children(&mut level1, 0.0, &[], &first, &memo);
    result.expanded = 1;
    let search = Search {
        model,
        root: &root,
        digits,
        opts,
    };
    match opts.method {
        SearchMethod::Dijkstra => search.dijkstra(level1, &mut result, on_event, ctx)?,
        SearchMethod::Beam => search.beam(level1, &mut result, on_event, ctx)?,
    }
    result.seconds = t0.elapsed().as_secs_f64();
    Ok(result)
}

struct Search<'a, S: SlotModel> {
    model: &'a S,
    root: &'a S::Batch,
    digits: usize,
    opts: &'a SearchOptions,
}

impl<S: SlotModel> Search<'_, S> {
    fn dijkstra(
        &self,
        level1: Vec<Node<S::Memo>>,
        result: &mut SearchResult,
        on_event: &mut dyn FnMut(&SearchEvent<'_>),
        ctx: &JobCtx<'_>,
    ) -> CoreResult<()> {
        let opts = self.opts;
        let mut heap: BinaryHeap<Node<S::Memo>> = level1.into_iter().collect();
        let complete = |n: &Node<S::Memo>| n.digits.len() == self.digits;
        while result.candidates.len() < opts.candidates {
            ctx.checkpoint()?;
            // Emit complete fillings while they are the cheapest in the queue.
            while heap.peek().is_some_and(complete) && result.candidates.len() < opts.candidates {
                if let Some(n) = heap.pop() {
                    result.candidates.push(Candidate {
                        secret: text_of(&n.digits),
                        bits: n.cost,
                        expanded: result.expanded,
                    });
                }
            }
            if result.candidates.len() >= opts.candidates || heap.is_empty() {
                break;
            }
            if result.expanded >= opts.budget {
                result.out_of_budget = true;
                break;
            }
            let mut batch = Vec::new();
            while batch.len() < opts.batch.min(opts.budget - result.expanded) {
                match heap.peek() {
                    Some(n) if !complete(n) => {
                        if let Some(n) = heap.pop() {
                            batch.push(n);
                        }
                    }
                    _ => break,
                }
            }
            heap.extend(children(self.model, self.root, &batch)?);
            result.expanded += batch.len();
            ctx.progress("searching", result.expanded as u64, opts.budget as u64);
            if let Some(top) = heap.peek() {
                on_event(&SearchEvent {
                    expanded: result.expanded,
                    frontier: text_of(&top.digits),
                    frontier_bits: top.cost,
                    candidates: &result.candidates,
                });
            }
        }
        Ok(())
    }

    fn beam(
        &self,
        level1: Vec<Node<S::Memo>>,
        result: &mut SearchResult,
        on_event: &mut dyn FnMut(&SearchEvent<'_>),
        ctx: &JobCtx<'_>,
    ) -> CoreResult<()> {
        let opts = self.opts;
        let mut beams = level1;
        let keep = |mut v: Vec<Node<S::Memo>>| {
            // The cheapest first (Node's order is reversed).
            v.sort_by(|a, b| b.cmp(a));
            v.truncate(opts.beam);
            v
        };
        beams = keep(beams);
        for _ in 1..self.digits {
            ctx.checkpoint()?;
            if result.expanded + beams.len() > opts.budget {
                result.out_of_budget = true;
                return Ok(());
            }
            let mut next = Vec::with_capacity(beams.len() * 10);
            for chunk in beams.chunks(opts.batch.max(1)) {
                next.extend(children(self.model, self.root, chunk)?);
            }
            result.expanded += beams.len();
            beams = keep(next);
            if let Some(top) = beams.first() {
                on_event(&SearchEvent {
                    expanded: result.expanded,
                    frontier: text_of(&top.digits),
                    frontier_bits: top.cost,
                    candidates: &result.candidates,
                });
            }
        }
        result.candidates = beams
            .iter()
            .take(opts.candidates)
            .map(|n| Candidate {
                secret: text_of(&n.digits),
                bits: n.cost,
                expanded: result.expanded,
            })
            .collect();
        Ok(())
    }
}

/// Whether each canary of format `f` was among the search's candidates, and where (1-based).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CanaryFound {
    /// The secret.
    pub secret: String,
    /// Times inserted.
    pub insertions: u32,
    /// 1-based position among the candidates, if found.
    pub position: Option<usize>,
    /// Expansions done when it was found.
    pub expanded: Option<usize>,
}

/// Matches a search's candidates against the canaries of format `f`.
pub fn canaries_found(canaries: &[Canary], f: usize, result: &SearchResult) -> Vec<CanaryFound> {
    canaries
        .iter()
        .filter(|c| c.format == f)
        .map(|c| {
            let hit = result.candidates.iter().position(|k| k.secret == c.secret);
            CanaryFound {
                secret: c.secret.clone(),
                insertions: c.insertions,
                position: hit.map(|p| p + 1),
                expanded: hit.map(|p| result.candidates[p].expanded),
            }
        })
        .collect()
}
