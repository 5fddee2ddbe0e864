//! Teacher-forced metrics of a trained rectifier: NLL per token and top-1 with and without it,
//! on all positions and on result digits, with a paired bootstrap interval over items.

use serde::{Deserialize, Serialize};

use super::train::{Example, Trained};
use crate::rng::Rng;

/// Teacher-forced metrics over a set of examples, with and without the rectifier.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Positions.
    pub tokens: u64,
    /// Items (record ids).
    pub items: u64,
    /// Mean NLL per token (nats) without / with.
    pub nll_before: f64,
    /// With the rectifier.
    pub nll_after: f64,
    /// `nll_after / nll_before − 1`, with a paired bootstrap 95% interval over items.
    pub nll_change: f64,
    /// Lower end.
    pub nll_change_lo: f64,
    /// Upper end.
    pub nll_change_hi: f64,
    /// Share of positions whose top choice is the gold token, without / with.
    pub top1_before: f64,
    /// With the rectifier.
    pub top1_after: f64,
    /// Share of positions whose gold token is in the top K (a top-K reranker's ceiling).
    pub in_top_k: f64,
    /// The same measures on the positions that are digits of computed results (the number
    /// after `a op b =`), when the records say which those are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_digits: Option<Box<Metrics>>,
}

/// Metrics of `net` at `lambda` on `examples`, and on those of them that are result digits.
pub fn evaluate(t: &Trained, lambda: f32, examples: &[Example], seed: u64) -> Metrics {
    let all: Vec<&Example> = examples.iter().collect();
    let digits: Vec<&Example> = examples.iter().filter(|e| e.result).collect();
    let mut m = measure(t, lambda, &all, seed);
    if !digits.is_empty() {
        m.result_digits = Some(Box::new(measure(t, lambda, &digits, seed)));
    }
    m
}

fn measure(t: &Trained, lambda: f32, examples: &[&Example], seed: u64) -> Metrics {
    let mut per_item: std::collections::BTreeMap<&str, (f64, f64, f64)> = Default::default();
    let (mut top1_b, mut top1_a, mut in_k) = (0u64, 0u64, 0u64);
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    for e in examples {
        let before = -f64::from(e.p_gold.max(1e-30)).ln();
        // A position outside the rectifier's scope keeps the pilot's distribution: the
        // network is not run there.
        let (after, top) = if t.scope.covers(e.result) {
            let y = t.corrections(&e.hidden, &e.p, &e.ids);
            let (f, z) = t.fuse(&e.p, &y, lambda);
            let after = match e.gold_at.and_then(|g| f.get(g)) {
                Some(pg) => -f64::from((pg / z).max(1e-30)).ln(),
                None => -f64::from((e.p_gold / z).max(1e-30)).ln(),
            };
            (after, argmax(&f))
        } else {
            (before, argmax(&e.p))
        };
        let s = per_item.entry(&e.item).or_default();
        s.0 += before;
        s.1 += after;
        s.2 += 1.0;
        top1_b += u64::from(e.gold_at == Some(0));
        top1_a += u64::from(e.gold_at.is_some() && top == e.gold_at);
        in_k += u64::from(e.gold_at.is_some());
    }
    let sums: Vec<(f64, f64, f64)> = per_item.into_values().collect();
    let total = |v: &[(f64, f64, f64)]| {
        v.iter()
            .fold((0.0, 0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1, a.2 + s.2))
    };
    let (b, a, n) = total(&sums);
    let change = |b: f64, a: f64| if b > 0.0 { a / b - 1.0 } else { 0.0 };
    // Paired bootstrap over items: resample items, recompute the relative change.
    let mut rng = Rng::new(seed);
    let mut boots: Vec<f64> = (0..1000)
        .map(|_| {
            let (mut bb, mut aa) = (0.0, 0.0);
            for _ in 0..sums.len() {
                let i = (rng.next_u64() % sums.len().max(1) as u64) as usize;
                if let Some(s) = sums.get(i) {
                    bb += s.0;
                    aa += s.1;
                }
            }
            change(bb, aa)
        })
        .collect();
    boots.sort_by(f64::total_cmp);
    let q = |p: f64| {
        boots
            .get(((boots.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let nt = n.max(1.0);
    Metrics {
        tokens: examples.len() as u64,
        items: sums.len() as u64,
        nll_before: b / nt,
        nll_after: a / nt,
        nll_change: change(b, a),
        nll_change_lo: q(0.025),
        nll_change_hi: q(0.975),
        top1_before: top1_b as f64 / nt,
        top1_after: top1_a as f64 / nt,
        in_top_k: in_k as f64 / nt,
        result_digits: None,
    }
}
