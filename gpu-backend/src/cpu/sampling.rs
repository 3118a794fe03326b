//! Choosing the next token from logits with vLLM's semantics: repetition penalty over the
//! prompt and the output so far (divide positive logits, multiply negative ones), then greedy
//! when the temperature is (near) 0, else temperature, top-k, top-p and a draw.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// vLLM's `_SAMPLING_EPS`: temperatures below it mean greedy.
const GREEDY_BELOW: f64 = 1e-5;

#[derive(Debug, Clone, Copy)]
pub struct SamplingParams {
    pub temperature: f64,
    pub top_p: f64,
    /// -1 (or 0) for all tokens.
    pub top_k: i32,
    pub repetition_penalty: f64,
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// Whether each token id has appeared in the prompt or the output.
    seen: Vec<bool>,
}

impl Sampler {
    /// A seed makes the draws repeatable, as vLLM's per-request `seed`.
    pub fn new(params: SamplingParams, seed: Option<u64>, vocab: usize, prompt: &[u32]) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let mut sampler = Self {
            params,
            rng,
            seen: vec![false; vocab],
        };
        for &id in prompt {
            sampler.saw(id);
        }
        sampler
    }

    fn saw(&mut self, id: u32) {
        if let Some(seen) = self.seen.get_mut(id as usize) {
            *seen = true;
        }
    }

    /// Picks the next token and remembers it for the repetition penalty.
    pub fn next(&mut self, logits: &mut [f32]) -> u32 {
        self.penalize(logits);
        let id = if self.params.temperature < GREEDY_BELOW {
            argmax(logits)
        } else {
            self.draw(logits)
        };
        self.saw(id);
        id
    }

    fn penalize(&self, logits: &mut [f32]) {
        let penalty = self.params.repetition_penalty as f32;
        if (penalty - 1.0).abs() < f32::EPSILON {
            return;
        }
        for (logit, _) in logits.iter_mut().zip(&self.seen).filter(|(_, seen)| **seen) {
            *logit = if *logit > 0.0 {
                *logit / penalty
            } else {
                *logit * penalty
            };
        }
    }

    fn draw(&mut self, logits: &[f32]) -> u32 {
        let candidates = truncated_distribution(logits, &self.params);
        let mut left = self.rng.random::<f64>();
        for &(id, p) in &candidates {
            if left < p {
                return id;
            }
            left -= p;
        }
        // Rounding left a sliver: the last candidate takes it.
        candidates.last().map_or(0, |&(id, _)| id)
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &logit) in logits.iter().enumerate() {
        if logit > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Tokens whose mass is summed first when looking for top-p's head, then eight times as many
/// until the head reaches p: the head is almost always a few dozen tokens of a vocabulary of
/// 250,880, which sorting whole took 12 ms a token.
const TOP_P_FIRST_HEAD: usize = 64;

/// The ids of the k largest logits, in no order. A heap of the k largest so far: almost every
/// logit is below its least and costs one comparison (`select_nth_unstable` over all the ids
/// took about four times as long).
fn top_k_ids(logits: &[f32], k: usize) -> Vec<u32> {
    let mut heap: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(k + 1);
    for (id, &logit) in logits.iter().enumerate() {
        let ranked = Ranked(logit, id as u32);
        if heap.len() < k {
            heap.push(Reverse(ranked));
        } else if let Some(mut least) = heap.peek_mut()
            && ranked > least.0
        {
            *least = Reverse(ranked);
        }
    }
    heap.into_iter().map(|Reverse(Ranked(_, id))| id).collect()
}

/// A logit and its token id, ordered by the logit (`total_cmp`), then the id.
#[derive(Clone, Copy)]
struct Ranked(f32, u32);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// The tokens that may be drawn, with probabilities that sum to 1: softmax(logits /
/// temperature) cut to the top k, then to the smallest head whose mass reaches top_p (at least
/// one token). Most likely first wherever anything is cut; with neither cut, in id order (a
/// draw needs no order). Selection rather than a sort of the vocabulary: with the defaults
/// (top-k 50, top-p 0.9) 0.59 ms a token against 11.8 (`cargo bench -p gpu-backend --bench
/// sampling`).
pub fn truncated_distribution(logits: &[f32], params: &SamplingParams) -> Vec<(u32, f64)> {
    let temperature = params.temperature.max(GREEDY_BELOW);
    let k = usize::try_from(params.top_k).unwrap_or(0);
    let ids = if k > 0 && k < logits.len() {
        top_k_ids(logits, k)
    } else {
        (0..logits.len() as u32).collect()
    };
    let scaled = |id: u32| f64::from(logits[id as usize]) / temperature;
    let max = ids
        .iter()
        .map(|&id| scaled(id))
        .fold(f64::NEG_INFINITY, f64::max);
    let mut ranked: Vec<(u32, f64)> = ids
        .into_iter()
        .map(|id| (id, (scaled(id) - max).exp()))
        .collect();
    let total: f64 = ranked.iter().map(|&(_, w)| w).sum();
    for (_, w) in &mut ranked {
        *w /= total;
    }
    let most_likely_first = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1);
    if params.top_p < 1.0 {
        // The smallest head whose mass reaches p lies inside any head whose mass does.
        let mut head = ranked.len().min(TOP_P_FIRST_HEAD);
        loop {
            if head < ranked.len() {
                ranked.select_nth_unstable_by(head - 1, most_likely_first);
            }
            let mass: f64 = ranked[..head].iter().map(|&(_, p)| p).sum();
            if mass >= params.top_p || head == ranked.len() {
                break;
            }
            head = (head * 8).min(ranked.len());
        }
        ranked.truncate(head);
        ranked.sort_unstable_by(most_likely_first);
        let mut mass = 0.0;
        let keep = ranked
            .iter()
            .position(|&(_, p)| {
                mass += p;
                mass >= params.top_p
            })
            .map_or(ranked.len(), |i| i + 1);
        ranked.truncate(keep.max(1));
        let kept: f64 = ranked.iter().map(|&(_, p)| p).sum();
        for (_, p) in &mut ranked {
            *p /= kept;
        }
    } else if k > 0 {
        ranked.sort_unstable_by(most_likely_first);
    }
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f64, top_p: f64, top_k: i32) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p,
            top_k,
            repetition_penalty: 1.0,
        }
    }

    /// Logits whose softmax is 0.4, 0.3, 0.2, 0.1 (tokens 0..4).
    fn four() -> Vec<f32> {
        [0.4f32, 0.3, 0.2, 0.1].iter().map(|p| p.ln()).collect()
    }

    fn frequencies(params: SamplingParams, logits: &[f32], draws: usize) -> Vec<f64> {
        let mut sampler = Sampler::new(params, Some(7), logits.len(), &[]);
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..draws {
            counts[sampler.draw(logits) as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut sampler = Sampler::new(params(0.0, 1.0, -1), None, 4, &[]);
        assert_eq!(sampler.next(&mut four()), 0);
    }

    #[test]
    fn top_k_never_draws_outside_the_k_most_likely() {
        let f = frequencies(params(1.0, 1.0, 2), &four(), 20_000);
        assert_eq!((f[2], f[3]), (0.0, 0.0));
        // Renormalised: 0.4/0.7 and 0.3/0.7, within 3 standard errors (~0.011).
        assert!((f[0] - 4.0 / 7.0).abs() < 0.011, "{f:?}");
        assert!((f[1] - 3.0 / 7.0).abs() < 0.011, "{f:?}");
    }

    #[test]
    fn top_p_keeps_the_smallest_head_reaching_p() {
        // 0.4 + 0.3 = 0.7 >= 0.65: tokens 0 and 1 only.
        let f = frequencies(params(1.0, 0.65, -1), &four(), 20_000);
        assert_eq!((f[2], f[3]), (0.0, 0.0));
        assert!((f[0] - 4.0 / 7.0).abs() < 0.011, "{f:?}");
        // A tiny p still leaves one token.
        let f = frequencies(params(1.0, 0.01, -1), &four(), 1_000);
        assert_eq!(f[0], 1.0);
    }

    #[test]
    fn sampling_follows_softmax_without_truncation() {
        let f = frequencies(params(1.0, 1.0, -1), &four(), 40_000);
        for (got, want) in f.iter().zip([0.4, 0.3, 0.2, 0.1]) {
            // 3 standard errors at n = 40,000: at most 0.0074.
            assert!((got - want).abs() < 0.0075, "{f:?}");
        }
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let sharp = truncated_distribution(&four(), &params(0.5, 1.0, -1));
        let flat = truncated_distribution(&four(), &params(2.0, 1.0, -1));
        // p^(1/T) renormalised.
        let z: f64 = [0.4f64, 0.3, 0.2, 0.1].iter().map(|p| p * p).sum();
        // Logits are f32: agreement to f32 precision.
        assert!((sharp[0].1 - 0.16 / z).abs() < 1e-6, "{sharp:?}");
        assert!(flat[0].1 < 0.4 && flat[3].1 > 0.1);
    }

    /// The definition, by sorting everything: what the selections must give.
    fn sorted_distribution(logits: &[f32], params: &SamplingParams) -> Vec<(u32, f64)> {
        let mut ranked: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, f64::from(l) / params.temperature))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        if params.top_k > 0 {
            ranked.truncate(params.top_k as usize);
        }
        let max = ranked[0].1;
        let total: f64 = ranked.iter().map(|&(_, l)| (l - max).exp()).sum();
        let mut mass = 0.0;
        let mut kept = Vec::new();
        for &(id, l) in &ranked {
            let p = (l - max).exp() / total;
            kept.push((id, p));
            mass += p;
            if mass >= params.top_p {
                break;
            }
        }
        let sum: f64 = kept.iter().map(|&(_, p)| p).sum();
        kept.iter().map(|&(id, p)| (id, p / sum)).collect()
    }

    #[test]
    fn selection_gives_what_sorting_the_vocabulary_gives() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let logits: Vec<f32> = (0..50_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 30.0 - 15.0
            })
            .collect();
        for (temperature, top_p, top_k) in [
            (0.7, 0.9, 50),
            (1.0, 0.5, 3),
            (1.5, 0.99, 1000),
            (0.7, 0.9, -1),
            (0.1, 0.5, -1),
            (1.0, 1.0, 7),
        ] {
            let p = params(temperature, top_p, top_k);
            let got = truncated_distribution(&logits, &p);
            let want = sorted_distribution(&logits, &p);
            assert_eq!(got.len(), want.len(), "{temperature} {top_p} {top_k}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0, "{temperature} {top_p} {top_k}");
                assert!((g.1 - w.1).abs() < 1e-12, "{g:?} {w:?}");
            }
        }
        // Nothing cut: every token, summing to 1.
        let all = truncated_distribution(&logits, &params(0.7, 1.0, -1));
        assert_eq!(all.len(), logits.len());
        assert!((all.iter().map(|&(_, p)| p).sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let draw = |seed| {
            let mut s = Sampler::new(params(1.0, 0.9, 3), Some(seed), 4, &[]);
            (0..32).map(|_| s.next(&mut four())).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn repetition_penalty_pushes_seen_tokens_down_both_ways() {
        let mut sampler = Sampler::new(
            SamplingParams {
                repetition_penalty: 2.0,
                ..params(0.0, 1.0, -1)
            },
            None,
            3,
            &[0, 1],
        );
        let mut logits = vec![3.0f32, -1.0, 1.0];
        sampler.penalize(&mut logits);
        assert_eq!(logits, vec![1.5, -2.0, 1.0]);
        // Greedy now prefers token 0 (1.5) over 2 (1.0); with penalty 4 it would not.
        assert_eq!(sampler.next(&mut [3.0, -1.0, 1.0]), 0);
    }
}
