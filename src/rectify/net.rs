//! The rectifier's network: a two-layer perceptron (ReLU) with hand-written gradients, checked
//! against finite differences in the tests, and the Adam optimiser. Small on purpose: it reads
//! one hidden state (576 numbers for the default model) and the pilot's top-K probabilities,
//! and writes K corrections; a crate with autograd would cost far more to build than these
//! hundred lines.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// A two-layer perceptron `y = W2 · relu(W1 · x + b1) + b2`, weights row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    /// Input width.
    pub d_in: usize,
    /// Hidden width.
    pub d_hidden: usize,
    /// Output width.
    pub d_out: usize,
    /// `d_hidden × d_in`.
    pub w1: Vec<f32>,
    /// `d_hidden`.
    pub b1: Vec<f32>,
    /// `d_out × d_hidden`.
    pub w2: Vec<f32>,
    /// `d_out`.
    pub b2: Vec<f32>,
}

fn uniform(rng: &mut Rng) -> f32 {
    ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) as f32
}

impl Mlp {
    /// He-uniform first layer, a zero second layer: the rectifier starts as exactly no
    /// correction (a near-zero one, ±0.01 per weight, already put ~0.05 on each of the top K
    /// candidates, many times the probability of most of them: a first epoch at step size
    /// 1e-5, where the weights barely move, averaged 2.0 nats/token against the pilot's 1.17).
    /// Deterministic for a seed.
    pub fn new(d_in: usize, d_hidden: usize, d_out: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let a1 = (6.0 / d_in.max(1) as f32).sqrt();
        let w1 = (0..d_hidden * d_in)
            .map(|_| (2.0 * uniform(&mut rng) - 1.0) * a1)
            .collect();
        let w2 = vec![0.0; d_out * d_hidden];
        Self {
            d_in,
            d_hidden,
            d_out,
            w1,
            b1: vec![0.0; d_hidden],
            w2,
            b2: vec![0.0; d_out],
        }
    }

    /// The same shape, all zero (a gradient accumulator).
    pub fn zeros_like(&self) -> Self {
        Self {
            w1: vec![0.0; self.w1.len()],
            b1: vec![0.0; self.b1.len()],
            w2: vec![0.0; self.w2.len()],
            b2: vec![0.0; self.b2.len()],
            ..self.clone()
        }
    }

    /// The parameters, in a fixed order.
    pub fn params_mut(&mut self) -> [&mut Vec<f32>; 4] {
        [&mut self.w1, &mut self.b1, &mut self.w2, &mut self.b2]
    }

    /// Forward pass: `h = relu(W1 x + b1)`, `y = W2 h + b2` (`x` shorter than `d_in` reads
    /// as zero-padded).
    pub fn forward(&self, x: &[f32], h: &mut Vec<f32>, y: &mut Vec<f32>) {
        h.clear();
        for (row, b) in self.w1.chunks_exact(self.d_in.max(1)).zip(&self.b1) {
            let z: f32 = row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b;
            h.push(z.max(0.0));
        }
        y.clear();
        for (row, b) in self.w2.chunks_exact(self.d_hidden.max(1)).zip(&self.b2) {
            y.push(row.iter().zip(h.iter()).map(|(w, h)| w * h).sum::<f32>() + b);
        }
    }

    /// The loss `mean_i (y_i − t_i)²` of one example, its gradient added into `g` (scaled by
    /// `scale`, e.g. 1/batch). `h` and `y` are the forward pass's.
    pub fn backward(
        &self,
        x: &[f32],
        h: &[f32],
        y: &[f32],
        t: &[f32],
        scale: f32,
        g: &mut Mlp,
    ) -> f32 {
        let k = y.len().max(1) as f32;
        let mut loss = 0.0;
        let dy: Vec<f32> = y
            .iter()
            .zip(t)
            .map(|(yi, ti)| {
                let d = yi - ti;
                loss += d * d / k;
                2.0 * d / k * scale
            })
            .collect();
        self.backward_from(x, h, &dy, g);
        loss
    }

    /// Add into `g` the gradient of a loss whose gradient with respect to the output is `dy`
    /// (already scaled). `x` and `h` are the forward pass's.
    pub fn backward_from(&self, x: &[f32], h: &[f32], dy: &[f32], g: &mut Mlp) {
        let mut dh = vec![0.0f32; self.d_hidden];
        let rows = self.w2.chunks_exact(self.d_hidden.max(1));
        let grows = g.w2.chunks_exact_mut(self.d_hidden.max(1));
        for (((dyi, row), grow), gb) in dy.iter().zip(rows).zip(grows).zip(&mut g.b2) {
            *gb += dyi;
            for ((gw, hj), (w, dhj)) in grow.iter_mut().zip(h).zip(row.iter().zip(&mut dh)) {
                *gw += dyi * hj;
                *dhj += dyi * w;
            }
        }
        let grows = g.w1.chunks_exact_mut(self.d_in.max(1));
        for (((dhj, hj), grow), gb) in dh.iter().zip(h).zip(grows).zip(&mut g.b1) {
            if *hj <= 0.0 {
                continue;
            }
            *gb += dhj;
            for (gw, xk) in grow.iter_mut().zip(x) {
                *gw += dhj * xk;
            }
        }
    }
}

/// Adam (Kingma & Ba) over an [`Mlp`]'s parameters.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Step size.
    pub lr: f32,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter 2019) on the weight matrices, not
    /// the biases: each step also moves every weight by `−lr · weight_decay · w`.
    pub weight_decay: f32,
    m: Mlp,
    v: Mlp,
    t: i32,
}

impl Adam {
    /// Adam for `net` with step size `lr` (β = 0.9, 0.999).
    pub fn new(net: &Mlp, lr: f32) -> Self {
        Self {
            lr,
            weight_decay: 0.0,
            m: net.zeros_like(),
            v: net.zeros_like(),
            t: 0,
        }
    }

    /// One step along gradient `g`.
    pub fn step(&mut self, net: &mut Mlp, g: &mut Mlp) {
        self.t += 1;
        let c = corrections(self.t);
        let lr = self.lr;
        // params_mut's order: w1, b1, w2, b2.
        for (i, (((p, g), m), v)) in net
            .params_mut()
            .into_iter()
            .zip(g.params_mut())
            .zip(self.m.params_mut())
            .zip(self.v.params_mut())
            .enumerate()
        {
            let decay = if i % 2 == 0 { self.weight_decay } else { 0.0 };
            for (((p, g), m), v) in p
                .iter_mut()
                .zip(g.iter())
                .zip(m.iter_mut())
                .zip(v.iter_mut())
            {
                adam_update(p, *g, m, v, lr, c, decay);
            }
        }
    }
}

const B1: f32 = 0.9;
const B2: f32 = 0.999;

/// Adam's bias corrections `(1 − β1^t, 1 − β2^t)` at step `t`.
pub(super) fn corrections(t: i32) -> (f32, f32) {
    (1.0 - B1.powi(t), 1.0 - B2.powi(t))
}

/// One AdamW update of parameter `p` with gradient `g` and moments `m`, `v` (β = 0.9, 0.999;
/// `c` from [`corrections`]; decoupled weight decay `decay`).
pub(super) fn adam_update(
    p: &mut f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
    lr: f32,
    (c1, c2): (f32, f32),
    decay: f32,
) {
    *m = B1 * *m + (1.0 - B1) * g;
    *v = B2 * *v + (1.0 - B2) * g * g;
    *p -= lr * ((*m / c1) / ((*v / c2).sqrt() + 1e-8) + decay * *p);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(net: &Mlp, x: &[f32], t: &[f32]) -> f64 {
        let (mut h, mut y) = (Vec::new(), Vec::new());
        net.forward(x, &mut h, &mut y);
        y.iter()
            .zip(t)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / y.len() as f64
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut net = Mlp::new(5, 4, 3, 7);
        // A second layer large enough that its gradient is not tiny.
        for w in &mut net.w2 {
            *w *= 50.0;
        }
        let x = [0.3f32, -1.2, 0.8, 0.05, 1.7];
        let t = [0.5f32, -0.25, 0.1];
        let (mut h, mut y) = (Vec::new(), Vec::new());
        net.forward(&x, &mut h, &mut y);
        let mut g = net.zeros_like();
        net.backward(&x, &h, &y, &t, 1.0, &mut g);
        let eps = 1e-3f32;
        let mut checked = 0;
        for which in 0..4 {
            let n = net.clone().params_mut()[which].len();
            for i in 0..n {
                let mut plus = net.clone();
                let mut minus = net.clone();
                plus.params_mut()[which][i] += eps;
                minus.params_mut()[which][i] -= eps;
                let numeric = (loss(&plus, &x, &t) - loss(&minus, &x, &t)) / (2.0 * f64::from(eps));
                let analytic = f64::from(g.clone().params_mut()[which][i]);
                assert!(
                    (numeric - analytic).abs() <= 1e-3 + 1e-2 * numeric.abs(),
                    "param {which}[{i}]: numeric {numeric}, analytic {analytic}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 5 * 4 + 4 + 4 * 3 + 3);
    }

    #[test]
    fn adam_fits_a_small_regression_and_is_deterministic() {
        let run = || {
            let mut net = Mlp::new(2, 8, 1, 3);
            let mut opt = Adam::new(&net, 0.02);
            let data: Vec<([f32; 2], f32)> = (0..32)
                .map(|i| {
                    let a = (i % 8) as f32 / 4.0 - 1.0;
                    let b = (i / 8) as f32 / 2.0 - 1.0;
                    ([a, b], a.abs() + 0.5 * b)
                })
                .collect();
            let (mut h, mut y) = (Vec::new(), Vec::new());
            let mut last = f32::MAX;
            for _ in 0..400 {
                let mut g = net.zeros_like();
                let mut total = 0.0;
                for (x, t) in &data {
                    net.forward(x, &mut h, &mut y);
                    total += net.backward(x, &h, &y, &[*t], 1.0 / 32.0, &mut g);
                }
                opt.step(&mut net, &mut g);
                last = total / 32.0;
            }
            (net, last)
        };
        let (a, loss_a) = run();
        let (b, _) = run();
        assert_eq!(a, b, "same seed, same weights");
        assert!(loss_a < 0.01, "loss {loss_a}");
    }
}
