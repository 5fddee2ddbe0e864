//! Training the rectifier on token records (`amend rectify train`).
//!
//! Each record with a gold token gives one example: the input is the hidden state
//! (standardised per dimension on the training split; left out in the bias-only ablation)
//! followed by the pilot's top-K probabilities `p̂`; the target, as in Transformer Copilot, is
//! `ℓ = onehot(gold) − p̂` restricted to the top K; the loss is the mean squared error. At
//! inference the corrections are fused in probability space, `p̃ = p̂ + λ·f(x)` on the top K
//! (floored at a tiny positive value), the rest of the vocabulary unchanged, renormalised
//! ([`fuse`]). The ablations: the cross-entropy of that fused distribution, and corrections to
//! the top K's logits trained on their cross-entropy ([`Objective::Logit`], fused as
//! `p̂·e^{λ·f(x)}`); with `--token-bias` a learned bias per candidate token joins the
//! network's output ([`super::bias`]). Records are split into training and development sets by
//! item (never one item on both sides); the epoch with the lowest development loss is kept,
//! and λ is chosen on the development set by NLL.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::bias::{add_sparse, BiasTrainer};
pub use super::measure::{evaluate, Metrics};
use super::net::{Adam, Mlp};
use super::objective::{fused_nll, logit_nll, Objective};
use crate::mistakes::TokenRecord;
use crate::rng::Rng;

/// One position.
#[derive(Debug, Clone)]
pub struct Example {
    /// The item (record id) it belongs to.
    pub item: String,
    /// The hidden state.
    pub hidden: Vec<f32>,
    /// The pilot's probabilities of its top K.
    pub p: Vec<f32>,
    /// The top K's token ids (same order as `p`).
    pub ids: Vec<i32>,
    /// Where the gold token is among the top K.
    pub gold_at: Option<usize>,
    /// The gold token's probability under the pilot.
    pub p_gold: f32,
    /// The token is a digit of a computed result (the number after `a op b =`).
    pub result: bool,
}

impl Example {
    /// The example of a record (`None` without a gold token, a normaliser, or K candidates).
    pub fn from_record(r: &TokenRecord, k: usize) -> Option<Self> {
        let (gold, lse, gl) = (r.gold?, r.log_normaliser?, r.gold_logit?);
        if r.top.len() < k || r.hidden.is_empty() {
            return None;
        }
        let top = r.top.get(..k)?;
        Some(Self {
            item: r.mistake.clone(),
            hidden: r.hidden.clone(),
            p: top.iter().map(|(_, l)| (l - lse).exp()).collect(),
            ids: top.iter().map(|(id, _)| *id).collect(),
            gold_at: top.iter().position(|(id, _)| *id == gold),
            p_gold: (gl - lse).exp(),
            result: r.result == Some(true),
        })
    }

    fn target(&self) -> Vec<f32> {
        self.p
            .iter()
            .enumerate()
            .map(|(i, p)| f32::from(u8::from(self.gold_at == Some(i))) - p)
            .collect()
    }
}

/// How examples become network inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// Candidates per position.
    pub k: usize,
    /// The hidden state is an input (false: the bias-only ablation, `p̂` alone).
    pub use_hidden: bool,
    /// Per-dimension mean of the hidden state on the training split.
    pub mean: Vec<f32>,
    /// Per-dimension standard deviation (floored).
    pub std: Vec<f32>,
}

impl Features {
    fn fit(train: &[Example], k: usize, use_hidden: bool) -> Self {
        let d = train.first().map_or(0, |e| e.hidden.len());
        let (mut mean, mut sq) = (vec![0.0f64; d], vec![0.0f64; d]);
        for e in train {
            for ((m, s), x) in mean.iter_mut().zip(&mut sq).zip(&e.hidden) {
                *m += f64::from(*x);
                *s += f64::from(*x) * f64::from(*x);
            }
        }
        let n = train.len().max(1) as f64;
        let mean: Vec<f32> = mean.iter().map(|m| (m / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - f64::from(*m).powi(2)).max(0.0).sqrt() as f32).max(1e-3))
            .collect();
        Self {
            k,
            use_hidden,
            mean,
            std,
        }
    }

    /// The network input of a hidden state and top-K probabilities.
    pub fn input(&self, hidden: &[f32], p: &[f32], out: &mut Vec<f32>) {
        out.clear();
        if self.use_hidden {
            out.extend(
                hidden
                    .iter()
                    .zip(self.mean.iter().zip(&self.std))
                    .map(|(x, (m, s))| (x - m) / s),
            );
        }
        out.extend_from_slice(p);
    }

    /// Input width.
    pub fn width(&self) -> usize {
        if self.use_hidden {
            self.mean.len() + self.k
        } else {
            self.k
        }
    }
}

/// `p̂ + λ·y` on the top K (floored at 1e-9), and the normaliser over the whole vocabulary
/// (the mass outside the top K unchanged).
pub fn fuse(p: &[f32], y: &[f32], lambda: f32) -> (Vec<f32>, f32) {
    super::objective::fuse_each(p, y, |p, y| (p + lambda * y).max(1e-9))
}

/// Where a rectifier corrects the pilot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every position (files written before the option).
    #[default]
    All,
    /// The digits of computed results only: trained and measured on the positions whose
    /// token is a digit of the number after `a op b =`; while decoding, applied where the
    /// text so far ends after such an `=` or inside the number that follows it
    /// ([`crate::calc::in_result`], which also takes the position after the number's last
    /// digit, where the pilot decides whether the number goes on); every other position is
    /// left as the pilot has it.
    Results,
}

impl Scope {
    fn is_all(&self) -> bool {
        *self == Scope::All
    }

    /// Whether a position is in this scope (`result`: its token is a digit of a computed
    /// result): what training, the development split and the held-out metrics all keep.
    pub fn covers(self, result: bool) -> bool {
        self == Scope::All || result
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Scope::All),
            "results" => Ok(Scope::Results),
            other => Err(format!("unknown scope `{other}`: use `all` or `results`")),
        }
    }
}

/// The trained network with what it needs to be applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trained {
    /// Input features.
    pub features: Features,
    /// The network.
    pub net: Mlp,
    /// The fusion weight chosen on the development set.
    pub lambda: f32,
    /// Development-set metrics at that λ.
    pub dev: Metrics,
    /// What training minimised, which also says how corrections are fused (files written
    /// before the option read as `rmse`).
    #[serde(default)]
    pub objective: Objective,
    /// A bias per candidate token added to its correction (`--token-bias`; empty: none, as in
    /// files written before the option).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub token_bias: BTreeMap<i32, f32>,
    /// Where the corrections apply (files written before the option read as `all`).
    #[serde(default, skip_serializing_if = "Scope::is_all")]
    pub scope: Scope,
}

impl Trained {
    /// The corrections for one position: the network's, plus each candidate's token bias.
    /// `ids` are the top K's token ids.
    pub fn corrections(&self, hidden: &[f32], p: &[f32], ids: &[i32]) -> Vec<f32> {
        let (mut x, mut h, mut y) = (Vec::new(), Vec::new(), Vec::new());
        self.features.input(hidden, p, &mut x);
        self.net.forward(&x, &mut h, &mut y);
        add_sparse(&self.token_bias, ids, &mut y);
        y
    }

    /// The fused top K (unnormalised) and the normaliser, as this rectifier's objective fuses.
    pub fn fuse(&self, p: &[f32], y: &[f32], lambda: f32) -> (Vec<f32>, f32) {
        self.objective.fuse(p, y, lambda)
    }
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    /// Candidates per position.
    pub k: usize,
    /// Hidden width of the network.
    pub width: usize,
    /// Passes over the training split.
    pub epochs: usize,
    /// Adam step size.
    pub lr: f32,
    /// Examples per step.
    pub batch: usize,
    /// Seed (initialisation, shuffling, the split, the bootstrap).
    pub seed: u64,
    /// Use the hidden state (false: the bias-only ablation).
    pub use_hidden: bool,
    /// Share of items held out for development.
    pub dev_share: f64,
    /// Decoupled weight decay on the network's weights (0: none).
    pub weight_decay: f32,
    /// Also train on the token records the mistake log wrote (source `located`, see
    /// `crate::strategy::log_slip_tokens`) for the model, beside the named collections.
    pub located: bool,
    /// What training minimises.
    pub objective: Objective,
    /// Learn a bias per candidate token beside the network (see [`super::bias`]).
    pub token_bias: bool,
    /// Where the rectifier applies: with [`Scope::Results`] it is trained, and λ chosen, on
    /// the result-digit positions of the training and development splits only.
    pub scope: Scope,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            k: 32,
            width: 64,
            epochs: 8,
            lr: 1e-3,
            batch: 64,
            seed: 2026,
            use_hidden: true,
            dev_share: 0.1,
            weight_decay: 0.0,
            located: false,
            objective: Objective::Rmse,
            token_bias: false,
            scope: Scope::All,
        }
    }
}

/// Is `item` in the development split? (A hash of the id: stable across runs and machines.)
pub fn is_dev(item: &str, share: f64, seed: u64) -> bool {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for b in item.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's high bits barely move between ids that differ in their last digits: mix them
    // (splitmix64's finaliser) before reading a fraction from them.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64 <= share
}

/// Reused buffers of [`example_loss`]: input, hidden layer, output, output gradient.
#[derive(Default)]
struct Bufs(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

/// One example's loss under `objective`, its gradient (times `scale`) added into `g` and,
/// with a token bias, into `bias`.
#[allow(clippy::too_many_arguments)]
fn example_loss(
    features: &Features,
    objective: Objective,
    net: &Mlp,
    bias: Option<&mut BiasTrainer>,
    e: &Example,
    scale: f32,
    g: &mut Mlp,
    Bufs(x, h, y, dy): &mut Bufs,
) -> f32 {
    features.input(&e.hidden, &e.p, x);
    net.forward(x, h, y);
    if let Some(b) = bias.as_deref() {
        b.add_to(&e.ids, y);
    }
    let loss = match objective {
        Objective::Rmse => {
            let k = y.len().max(1) as f32;
            let mut loss = 0.0;
            dy.clear();
            for (yi, ti) in y.iter().zip(e.target()) {
                let d = yi - ti;
                loss += d * d / k;
                dy.push(2.0 * d / k * scale);
            }
            loss
        }
        Objective::CrossEntropy => fused_nll(e, y, scale, dy),
        Objective::Logit => logit_nll(e, y, scale, dy),
    };
    net.backward_from(x, h, dy, g);
    if let Some(b) = bias {
        b.accumulate(&e.ids, dy);
    }
    loss
}

/// Train on `train`, keep the epoch with the lowest loss on `dev`, choose λ on `dev`.
/// `progress(epoch, train loss, dev loss)` after each epoch.
pub fn train(
    train: &[Example],
    dev: &[Example],
    opts: TrainOptions,
    mut progress: impl FnMut(usize, f64, f64),
) -> Trained {
    let scoped: (Vec<Example>, Vec<Example>);
    let (train, dev) = match opts.scope {
        Scope::All => (train, dev),
        scope => {
            let kept = |v: &[Example]| {
                v.iter()
                    .filter(|e| scope.covers(e.result))
                    .cloned()
                    .collect()
            };
            scoped = (kept(train), kept(dev));
            (scoped.0.as_slice(), scoped.1.as_slice())
        }
    };
    let features = Features::fit(train, opts.k, opts.use_hidden);
    let mut net = Mlp::new(features.width(), opts.width, opts.k, opts.seed);
    let mut adam = Adam::new(&net, opts.lr);
    adam.weight_decay = opts.weight_decay;
    let vocab = train
        .iter()
        .flat_map(|e| e.ids.iter())
        .filter_map(|id| usize::try_from(*id).ok())
        .max()
        .map_or(0, |m| m + 1);
    let gold = train
        .iter()
        .filter_map(|e| e.gold_at.and_then(|g| e.ids.get(g)).copied());
    let mut bias = opts.token_bias.then(|| BiasTrainer::new(vocab, gold));
    let mut rng = Rng::new(opts.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut bufs = Bufs::default();
    let objective = opts.objective;
    let dev_loss = |net: &Mlp, bias: Option<&BiasTrainer>| {
        let mut bufs = Bufs::default();
        let mut g = net.zeros_like();
        // A scratch copy: the development pass must not accumulate into the trained bias.
        let mut scratch = bias.cloned();
        let mut total = 0.0f64;
        for e in dev {
            total += f64::from(example_loss(
                &features,
                objective,
                net,
                scratch.as_mut(),
                e,
                0.0,
                &mut g,
                &mut bufs,
            ));
        }
        total / dev.len().max(1) as f64
    };
    let mut best = (dev_loss(&net, bias.as_ref()), net.clone(), bias.clone());
    for epoch in 0..opts.epochs {
        // Fisher-Yates with the seeded stream.
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut total = 0.0f64;
        for chunk in order.chunks(opts.batch.max(1)) {
            let mut g = net.zeros_like();
            let scale = 1.0 / chunk.len() as f32;
            for e in chunk.iter().filter_map(|&i| train.get(i)) {
                total += f64::from(example_loss(
                    &features,
                    objective,
                    &net,
                    bias.as_mut(),
                    e,
                    scale,
                    &mut g,
                    &mut bufs,
                )) * f64::from(scale);
            }
            adam.step(&mut net, &mut g);
            if let Some(b) = bias.as_mut() {
                b.step(opts.lr, opts.weight_decay);
            }
        }
        let batches = order.len().div_ceil(opts.batch.max(1)).max(1) as f64;
        let d = dev_loss(&net, bias.as_ref());
        progress(epoch + 1, total / batches, d);
        if d < best.0 {
            best = (d, net.clone(), bias.clone());
        }
    }
    let mut t = Trained {
        features,
        net: best.1,
        lambda: 0.0,
        dev: Metrics::default(),
        objective,
        token_bias: best.2.map(|b| b.sparse()).unwrap_or_default(),
        scope: opts.scope,
    };
    let mut chosen = (f64::INFINITY, 0.0f32, Metrics::default());
    for lambda in [
        0.0f32, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0,
    ] {
        let m = evaluate(&t, lambda, dev, opts.seed);
        if m.nll_after < chosen.0 {
            chosen = (m.nll_after, lambda, m);
        }
    }
    t.lambda = chosen.1;
    t.dev = chosen.2;
    t
}

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
