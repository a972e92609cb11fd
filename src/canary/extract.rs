//! Extracting a secret without enumerating the space (Secret Sharer, section 4 of the spec):
//! a shortest-path search over the slot's digits, where appending digit `c` costs
//! `-log2 Pr(c | context, digits so far)`. All costs are non-negative, so Dijkstra's (uniform-cost)
//! search pops complete fillings in increasing log-perplexity: the first is the model's most
//! likely secret and the k-th has rank k. Expansions are batched (up to `batch` partial nodes per
//! forward step); a complete node is only emitted while it is the cheapest in the queue, so the
//! order stays exact. A node budget bounds the work ("not found within budget" instead of
//! hanging on a low-exposure secret). Beam search (width w) is offered as the cheap approximation.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use candle_core::{DType, Tensor};
use candle_nn::rnn::LSTMState;

use super::card::CanaryLm;
use super::lm::{CharLm, HostState};
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

struct Node {
    cost: f64,
    digits: Vec<u8>,
    /// Digit not yet fed to the LSTM (None only for the root, whose state is final).
    pending: Option<u8>,
    base: Arc<HostState>,
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Node {}
impl PartialOrd for Node {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Node {
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

/// Expands `nodes`: feeds their pending digits and returns, per node, the state after it and the
/// ten digit costs in bits.
fn expand(lm: &CanaryLm, nodes: &[Node], ids: &[u32; 10]) -> CoreResult<Vec<(Arc<HostState>, [f64; 10])>> {
    let dev = &lm.device;
    let rows: Vec<&HostState> = nodes.iter().map(|n| n.base.as_ref()).collect();
    let base = lm.net.state_from_rows(&rows, dev)?;
    let state: LSTMState = if nodes.iter().all(|n| n.pending.is_none()) {
        base
    } else if nodes.iter().all(|n| n.pending.is_some()) {
        let input: Vec<u32> = nodes
            .iter()
            .map(|n| ids[n.pending.map_or(0, usize::from)])
            .collect();
        lm.net.step(&Tensor::new(input, dev)?, &base)?
    } else {
        return Err(CoreError::Invalid(
            "search: the root was batched with other nodes".into(),
        ));
    };
    let digit_ids = Tensor::new(&ids[..], dev)?;
    let lp = lm.net.next_log_probs(&state)?.index_select(&digit_ids, 1)?;
    let bits = (lp * (-std::f64::consts::LOG2_E))?
        .to_dtype(DType::F64)?
        .to_vec2::<f64>()?;
    let states = CharLm::state_rows(&state)?;
    Ok(states
        .into_iter()
        .zip(bits)
        .map(|(s, b)| {
            let mut c = [0.0; 10];
            c.copy_from_slice(&b);
            (Arc::new(s), c)
        })
        .collect())
}

/// The ten children of every node of `nodes` (one forward step for all of them).
fn children(lm: &CanaryLm, nodes: &[Node], ids: &[u32; 10]) -> CoreResult<Vec<Node>> {
    let mut out = Vec::with_capacity(nodes.len() * 10);
    for (n, (state, costs)) in nodes.iter().zip(expand(lm, nodes, ids)?) {
        for (d, c) in costs.iter().enumerate() {
            let mut digits = n.digits.clone();
            digits.push(d as u8);
            out.push(Node {
                cost: n.cost + c,
                digits,
                pending: Some(d as u8),
                base: state.clone(),
            });
        }
    }
    Ok(out)
}

/// Searches the `digits`-digit slot after a line break and `prefix`. `on_event` is called after
/// every forward step. Cancellable.
pub fn search_secret(
    lm: &CanaryLm,
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
    let ids = lm.card.digit_ids()?;
    let context = lm.card.encode(&format!("\n{prefix}"))?;
    let (state, _) = lm.net.run_prefix(&context, &lm.device)?;
    let root = Node {
        cost: 0.0,
        digits: Vec::new(),
        pending: None,
        base: Arc::new(CharLm::state_rows(&state)?.swap_remove(0)),
    };
    let mut result = SearchResult {
        prefix: prefix.to_string(),
        digits,
        candidates: Vec::new(),
        expanded: 0,
        out_of_budget: false,
        seconds: 0.0,
    };
    match opts.method {
        SearchMethod::Dijkstra => dijkstra(lm, root, digits, &ids, opts, &mut result, on_event, ctx)?,
        SearchMethod::Beam => beam(lm, root, digits, &ids, opts, &mut result, on_event, ctx)?,
    }
    result.seconds = t0.elapsed().as_secs_f64();
    Ok(result)
}

#[allow(clippy::too_many_arguments)]
fn dijkstra(
    lm: &CanaryLm,
    root: Node,
    digits: usize,
    ids: &[u32; 10],
    opts: &SearchOptions,
    result: &mut SearchResult,
    on_event: &mut dyn FnMut(&SearchEvent<'_>),
    ctx: &JobCtx<'_>,
) -> CoreResult<()> {
    let mut heap = BinaryHeap::new();
    heap.push(root);
    let complete = |n: &Node| n.digits.len() == digits;
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
                Some(n) if !complete(n) && (n.pending.is_some() || batch.is_empty()) => {
                    if let Some(n) = heap.pop() {
                        let root = n.pending.is_none();
                        batch.push(n);
                        if root {
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
        heap.extend(children(lm, &batch, ids)?);
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

#[allow(clippy::too_many_arguments)]
fn beam(
    lm: &CanaryLm,
    root: Node,
    digits: usize,
    ids: &[u32; 10],
    opts: &SearchOptions,
    result: &mut SearchResult,
    on_event: &mut dyn FnMut(&SearchEvent<'_>),
    ctx: &JobCtx<'_>,
) -> CoreResult<()> {
    let mut beams = vec![root];
    for _ in 0..digits {
        ctx.checkpoint()?;
        if result.expanded + beams.len() > opts.budget {
            result.out_of_budget = true;
            return Ok(());
        }
        let mut next = Vec::with_capacity(beams.len() * 10);
        for chunk in beams.chunks(opts.batch.max(1)) {
            next.extend(children(lm, chunk, ids)?);
        }
        result.expanded += beams.len();
        // The cheapest first (Node's order is reversed).
        next.sort_by(|a, b| b.cmp(a));
        next.truncate(opts.beam);
        beams = next;
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

/// Matches a search's candidates against the card's canaries of format `f`.
pub fn canaries_found(lm: &CanaryLm, f: usize, result: &SearchResult) -> Vec<CanaryFound> {
    lm.card
        .canaries
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
