//! The passes over a vocabulary's logits the sampler (and a logit rectifier's
//! [`super::score::top_k`]) makes at every step, eight lanes at a time (`wide`'s `f32x8`,
//! which compiles to AVX2 with this crate's target features): the maximum, the first index
//! holding it, and sums of `exp((l − max) · scale)`.
//!
//! These passes touch every logit (49k for the default model) once per sample per step on
//! the engine thread, so their speed is decoding speed: the scalar versions (`f64::exp` per
//! logit) cost ~0.9 ms per top-p choice, 15% of a batched step of 8 sequences.
//!
//! NaN logits are ignored by the maximum; a −∞ logit weighs exactly 0.

// Without the local backend only the rectifier's passes (`max`, `sum_exp`) are used.
#![cfg_attr(not(feature = "local"), allow(dead_code))]

use wide::{f32x8, i32x8};

/// Lanes summed in `f32` before the partial sum is added to the `f64` total: short enough
/// that `f32` rounding stays near its 6e-8 relative step.
const BLOCK: usize = 64;

fn lanes(chunk: &[f32]) -> f32x8 {
    let mut a = [0.0f32; 8];
    a.copy_from_slice(chunk);
    f32x8::from(a)
}

/// `exp(x)` for `x ≤ 0` in each lane (`x < −87`, −∞ included, gives exactly 0): the usual
/// range reduction `x = n·ln 2 + f`, `|f| ≤ ln 2 / 2`, a degree-6 Taylor polynomial for
/// `e^f` (truncation error `< f⁷/7! ≈ 1.3e-7`), and `2^n` written into the exponent bits.
/// Without the overflow, subnormal and NaN handling of a general `exp`, which these
/// arguments (logits minus their maximum) never need: half the cost of `f32x8::exp`.
fn exp_nonpositive(x: f32x8) -> f32x8 {
    let tiny = x.simd_lt(f32x8::splat(-87.0));
    let x = x.max(f32x8::splat(-87.0));
    let n = (x * f32x8::LOG2_E).round();
    // ln 2 split in two so that n·LN2_HI is exact in f32.
    let f = n.mul_neg_add(f32x8::splat(0.693_359_4), x);
    let f = n.mul_neg_add(f32x8::splat(-2.121_944_4e-4), f);
    let mut p = f32x8::splat(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul_add(f, f32x8::splat(c));
    }
    // n ∈ [−126, 0]: n + 127 is a normal exponent.
    let bits: i32x8 = (n.round_int() + i32x8::splat(127)) << 23u32;
    let two_n: f32x8 = wide::bytemuck::cast(bits);
    tiny.select(f32x8::ZERO, p * two_n)
}

/// The largest logit (−∞ for an empty or all-NaN slice).
pub(crate) fn max(logits: &[f32]) -> f32 {
    let mut chunks = logits.chunks_exact(8);
    let mut acc = f32x8::splat(f32::NEG_INFINITY);
    for c in &mut chunks {
        acc = acc.max(lanes(c));
    }
    let head = acc.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max);
    chunks.remainder().iter().copied().fold(head, f32::max)
}

/// The first index holding the largest logit (`None` when there is none: an empty or all-NaN
/// slice).
pub(crate) fn argmax(logits: &[f32]) -> Option<usize> {
    let m = max(logits);
    logits.iter().position(|&l| l == m)
}

/// `Σ exp((l − max) · scale)` over `logits`, accumulated in `f64` (`scale` is `1/T`; 1 for the
/// softmax normaliser). With `weights`, each term is also written there (index for index).
pub(crate) fn sum_exp(
    logits: &[f32],
    max: f32,
    scale: f32,
    mut weights: Option<&mut Vec<f32>>,
) -> f64 {
    if let Some(w) = weights.as_deref_mut() {
        w.clear();
        w.reserve(logits.len());
    }
    let shift = f32x8::splat(max);
    let s = f32x8::splat(scale);
    let mut total = 0.0f64;
    let mut blocks = logits.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut acc = f32x8::ZERO;
        for c in block.chunks_exact(8) {
            let e = exp_nonpositive((lanes(c) - shift) * s);
            if let Some(w) = weights.as_deref_mut() {
                w.extend_from_slice(&e.to_array());
            }
            acc += e;
        }
        total += f64::from(acc.reduce_add());
    }
    for &l in blocks.remainder() {
        let e = ((l - max) * scale).exp();
        if let Some(w) = weights.as_deref_mut() {
            w.push(e);
        }
        total += f64::from(e);
    }
    total
}

/// The indices of the logits `≥ floor`, in order, into `out` (cleared first). A −∞ logit is
/// never included.
pub(crate) fn at_least(logits: &[f32], floor: f32, out: &mut Vec<u32>) {
    out.clear();
    let f = f32x8::splat(floor);
    let mut chunks = logits.chunks_exact(8);
    let mut base = 0u32;
    for c in &mut chunks {
        let mut mask = lanes(c).simd_ge(f).to_bitmask();
        while mask != 0 {
            out.push(base + mask.trailing_zeros());
            mask &= mask - 1;
        }
        base += 8;
    }
    for (k, &l) in chunks.remainder().iter().enumerate() {
        if l >= floor {
            out.push(base + k as u32);
        }
    }
    if floor == f32::NEG_INFINITY {
        out.retain(|&i| {
            logits
                .get(i as usize)
                .is_some_and(|&l| l > f32::NEG_INFINITY)
        });
    }
}

/// `log softmax(logits)[idx]` (−∞ when `idx` is out of range or nothing is finite).
pub(crate) fn log_softmax_at(logits: &[f32], idx: usize) -> f32 {
    let m = max(logits);
    log_softmax_with(logits, idx, m, sum_exp(logits, m, 1.0, None))
}

/// [`log_softmax_at`] given the logits' maximum `m` and normaliser `z = Σ exp(l − m)`.
pub(crate) fn log_softmax_with(logits: &[f32], idx: usize, m: f32, z: f64) -> f32 {
    match logits.get(idx) {
        Some(&l) if m.is_finite() && z > 0.0 => (f64::from(l - m) - z.ln()) as f32,
        _ => f32::NEG_INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn logits(seed: u64, n: usize, spread: f64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * spread) as f32)
            .collect()
    }

    #[test]
    fn the_lane_passes_agree_with_the_scalar_definitions() {
        for (case, n) in [0usize, 1, 7, 8, 9, 63, 64, 65, 1000, 49_152]
            .into_iter()
            .enumerate()
        {
            for spread in [0.5, 10.0, 60.0] {
                let mut l = logits(case as u64, n, spread);
                if n > 3 {
                    l[2] = f32::NEG_INFINITY;
                }
                let want_max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(max(&l), want_max, "n {n}");
                let want_arg = l.iter().position(|&x| x == want_max);
                assert_eq!(argmax(&l), want_arg, "n {n}");
                for scale in [1.0f32, 1.25] {
                    let want: f64 = l
                        .iter()
                        .map(|&x| ((f64::from(x) - f64::from(want_max)) * f64::from(scale)).exp())
                        .sum();
                    let mut w = Vec::new();
                    let got = sum_exp(&l, want_max, scale, Some(&mut w));
                    assert_eq!(w.len(), n);
                    if n > 3 {
                        assert_eq!(w[2], 0.0, "a -inf logit weighs exactly 0");
                    }
                    let tol = 1e-6 * want.max(1e-30);
                    assert!(
                        (got - want).abs() <= tol,
                        "n {n} spread {spread}: {got} vs {want}"
                    );
                    assert!(
                        (w.iter().map(|&x| f64::from(x)).sum::<f64>() - want).abs()
                            <= 1e-5 * want.max(1e-30)
                    );
                }
            }
        }
        // The indices at or above a floor, -inf never among them.
        let l = logits(3, 1001, 20.0);
        for floor in [f32::NEG_INFINITY, 0.0, 10.0, 19.0, 25.0] {
            let mut m = l.clone();
            m[5] = f32::NEG_INFINITY;
            let mut got = Vec::new();
            at_least(&m, floor, &mut got);
            let want: Vec<u32> = (0..m.len() as u32)
                .filter(|&i| m[i as usize] >= floor && m[i as usize] > f32::NEG_INFINITY)
                .collect();
            assert_eq!(got, want, "floor {floor}");
        }
        // The first of equal maxima; NaN ignored.
        let l = [1.0, f32::NAN, 3.0, 2.0, 3.0, 0.0, 0.0, 0.0, 3.0, f32::NAN];
        assert_eq!(argmax(&l), Some(2));
        assert_eq!(argmax(&[f32::NAN; 9]), None);
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn log_softmax_matches_the_definition() {
        let l = [0.0f32, 3.0, 1.0, 2.9];
        let z: f64 = l.iter().map(|&x| f64::from(x - 3.0).exp()).sum();
        let want = (f64::from(1.0f32 - 3.0) - z.ln()) as f32;
        assert!((log_softmax_at(&l, 2) - want).abs() < 1e-6);
        assert_eq!(log_softmax_at(&l, 9), f32::NEG_INFINITY);
    }
}
