//! What training minimises, and how the corrections are fused with the pilot's distribution:
//! the paper's RMSE on `ℓ = onehot(gold) − p̂` (fused in probability space), as an ablation the
//! cross-entropy of that fused distribution, or corrections to the top K's logits trained on
//! the cross-entropy of the resulting distribution (fused in logit space).

use serde::{Deserialize, Serialize};

use super::train::{fuse, Example};

/// The training objective.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Mean squared error between the network's output and `ℓ = onehot(gold) − p̂` on the
    /// top K (Transformer Copilot's objective; the network learns the correction, and λ
    /// scales it at inference).
    #[default]
    Rmse,
    /// The negative log-likelihood of the gold token under the fused distribution
    /// `p̃ = p̂ + λ_train·y` (renormalised, as [`fuse`] applies it), with λ_train = 1: the
    /// quantity the held-out metrics report, trained for directly. λ is still chosen on the
    /// development set afterwards.
    CrossEntropy,
    /// Corrections to the logits of the top K, `p̃ ∝ p̂·e^{λ·y}` on the top K and the rest of
    /// the vocabulary unchanged ([`fuse_logits`]), trained on the negative log-likelihood of
    /// the gold token under that distribution at λ = 1. Not the paper's fusion: a log-linear
    /// correction cannot push a candidate below zero, so the likelihood trains without the
    /// floor that stalls [`Objective::CrossEntropy`]. λ is chosen on the development set.
    Logit,
}

impl Objective {
    /// The fusion this objective trains for: `p̂ + λ·y` ([`super::train::fuse`]) or
    /// `p̂·e^{λ·y}` ([`fuse_logits`]). Both return the top K's unnormalised fused masses and
    /// the normaliser over the whole vocabulary.
    pub fn fuse(self, p: &[f32], y: &[f32], lambda: f32) -> (Vec<f32>, f32) {
        match self {
            Objective::Rmse | Objective::CrossEntropy => fuse(p, y, lambda),
            Objective::Logit => fuse_logits(p, y, lambda),
        }
    }
}

/// `p̂·e^{λ·y}` on the top K (the exponent clamped to ±30), and the normaliser over the whole
/// vocabulary (the mass outside the top K unchanged): adding `λ·y` to the top K's logits.
pub fn fuse_logits(p: &[f32], y: &[f32], lambda: f32) -> (Vec<f32>, f32) {
    fuse_each(p, y, |p, y| p * (lambda * y).clamp(-30.0, 30.0).exp())
}

/// Each top-K probability and its correction through `each`, and the normaliser over the whole
/// vocabulary (the mass outside the top K unchanged): what both fusions share.
pub(super) fn fuse_each(p: &[f32], y: &[f32], each: impl Fn(f32, f32) -> f32) -> (Vec<f32>, f32) {
    let rest = (1.0 - p.iter().sum::<f32>()).max(0.0);
    let fused: Vec<f32> = p.iter().zip(y).map(|(p, y)| each(*p, *y)).collect();
    let z = fused.iter().sum::<f32>() + rest;
    (fused, z)
}

/// `−ln` of the gold token's share of the fused distribution (`f` the fused top K, `z` the
/// normaliser); a gold token outside the top K keeps the pilot's mass.
fn gold_nll(e: &Example, f: &[f32], z: f32) -> f32 {
    let gold = match e.gold_at.and_then(|g| f.get(g)) {
        Some(fg) => *fg,
        None => e.p_gold,
    };
    -((gold / z).max(1e-30)).ln()
}

/// The logit objective's loss for one example with network output `y` (the NLL of the gold
/// token under [`fuse_logits`] at λ = 1), its gradient with respect to `y` in `dy` (times
/// `scale`): `∂L/∂y_i = q_i − [i = g]`, `q` the fused distribution on the top K.
pub fn logit_nll(e: &Example, y: &[f32], scale: f32, dy: &mut Vec<f32>) -> f32 {
    let (f, z) = fuse_logits(&e.p, y, 1.0);
    let z = z.max(1e-12);
    dy.clear();
    dy.extend(f.iter().enumerate().map(|(i, fi)| {
        let gold = f32::from(u8::from(e.gold_at == Some(i)));
        (fi / z - gold) * scale
    }));
    gold_nll(e, &f, z)
}

impl std::str::FromStr for Objective {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rmse" => Ok(Objective::Rmse),
            "cross-entropy" | "ce" => Ok(Objective::CrossEntropy),
            "logit" => Ok(Objective::Logit),
            other => Err(format!(
                "unknown objective `{other}`: use `rmse`, `cross-entropy` or `logit`"
            )),
        }
    }
}

/// The cross-entropy objective's loss for one example with network output `y`, and its
/// gradient with respect to `y` in `dy` (times `scale`).
///
/// With `f_i = max(p_i + y_i, 1e-9)` on the top K and `Z = Σ f + rest` (the mass outside the
/// top K, unchanged): `L = −ln(f_g / Z)` when the gold token is candidate `g`, else
/// `L = −ln(p_gold / Z)`; `∂L/∂y_i = 1/Z − [i = g]/f_g` where the floor is not active.
///
/// Where the floor is active the loss is flat in `y_i`, so a gold candidate pushed below zero
/// (costing `−ln 1e-9 ≈ 20.7` nats) would get no gradient back: a floored gold candidate gets
/// a straight-through gradient, `1/Z − 1/max(f_g, 1e-3)` (bounded), and a floored other
/// candidate none.
pub fn fused_nll(e: &Example, y: &[f32], scale: f32, dy: &mut Vec<f32>) -> f32 {
    let (f, z) = fuse(&e.p, y, 1.0);
    let z = z.max(1e-12);
    dy.clear();
    dy.extend(
        e.p.iter()
            .zip(y)
            .zip(&f)
            .enumerate()
            .map(|(i, ((p, yi), fi))| {
                let gold = e.gold_at == Some(i);
                let floored = p + yi <= 1e-9;
                match (gold, floored) {
                    (false, true) => 0.0,
                    (false, false) => scale / z,
                    (true, false) => (1.0 / z - 1.0 / fi) * scale,
                    (true, true) => (1.0 / z - 1.0 / fi.max(1e-3)) * scale,
                }
            }),
    );
    gold_nll(e, &f, z)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(gold_at: Option<usize>) -> Example {
        Example {
            item: "i".into(),
            hidden: vec![],
            p: vec![0.4, 0.25, 0.1, 0.05],
            ids: vec![10, 11, 12, 13],
            gold_at,
            p_gold: gold_at.map_or(0.02, |g| [0.4, 0.25, 0.1, 0.05][g]),
            result: false,
        }
    }

    type Loss = fn(&Example, &[f32], f32, &mut Vec<f32>) -> f32;

    /// `loss`'s analytic gradient at `y` against central differences, for gold candidates
    /// `golds` and a gold token outside the top K.
    fn check_gradient(loss: Loss, y: [f32; 4], golds: [usize; 2]) {
        for gold_at in [Some(golds[0]), Some(golds[1]), None] {
            let e = example(gold_at);
            let mut dy = Vec::new();
            let l0 = loss(&e, &y, 1.0, &mut dy);
            assert!(l0.is_finite() && l0 > 0.0);
            let eps = 1e-3f32;
            for i in 0..y.len() {
                let (mut a, mut b) = (y, y);
                a[i] += eps;
                b[i] -= eps;
                let mut scratch = Vec::new();
                let numeric = (loss(&e, &a, 1.0, &mut scratch) - loss(&e, &b, 1.0, &mut scratch))
                    / (2.0 * eps);
                assert!(
                    (numeric - dy[i]).abs() <= 2e-3 + 1e-2 * numeric.abs(),
                    "gold {gold_at:?}, y[{i}]: numeric {numeric}, analytic {}",
                    dy[i]
                );
            }
        }
    }

    #[test]
    fn the_fused_nll_gradient_matches_finite_differences() {
        check_gradient(fused_nll, [0.05, -0.1, 0.2, -0.03], [0, 2]);
    }

    #[test]
    fn the_logit_nll_gradient_matches_finite_differences() {
        check_gradient(logit_nll, [0.5, -1.0, 2.0, -0.3], [0, 3]);
        // At zero output it is the pilot's NLL.
        let l = logit_nll(&example(Some(1)), &[0.0; 4], 1.0, &mut Vec::new());
        assert!((l - (-(0.25f32).ln())).abs() < 1e-5, "{l}");
    }

    #[test]
    fn at_zero_output_the_loss_is_the_pilots_nll_and_the_floor_has_no_gradient() {
        let e = example(Some(1));
        let mut dy = Vec::new();
        let l = fused_nll(&e, &[0.0; 4], 1.0, &mut dy);
        assert!((l - (-(0.25f32).ln())).abs() < 1e-5, "{l}");
        // Pushing candidate 0 below zero floors it: its gradient is 0.
        fused_nll(&e, &[-1.0, 0.0, 0.0, 0.0], 1.0, &mut dy);
        assert_eq!(dy[0], 0.0);
        // A floored gold candidate is pushed back up, with a bounded gradient.
        fused_nll(&e, &[0.0, -1.0, 0.0, 0.0], 1.0, &mut dy);
        assert!(dy[1] < 0.0 && dy[1] >= -1e3, "{}", dy[1]);
        assert_eq!(
            "cross-entropy".parse::<Objective>(),
            Ok(Objective::CrossEntropy)
        );
        assert!("mse".parse::<Objective>().is_err());
        assert_eq!("logit".parse::<Objective>(), Ok(Objective::Logit));
    }
}
