//! `amend bench rectify`: what the logit rectifier costs.
//!
//! - Decoding: greedy requests with the rectifier's full computation at every token vs the
//!   same requests with an identity hook that also asks for hidden states, alternating rounds
//!   in one run (tokens/s; target ratio ≥ 0.95). The rectifier is the one shipped with amend
//!   (`--rectifier default`) when the model is the one it was trained for, else one of the
//!   same shape (K = 32, 64 hidden units, no token bias) with seeded random weights. It runs
//!   on a copy of each step's logits, so both sides decode
//!   the same text (a rectifier that changed the text would change the lengths, and decode
//!   speed falls with context length); the copy makes its side slower, not faster.
//! - The prompt phase of hidden-state mode: a long prompt with one new token, hidden states
//!   off vs on (llama.cpp then outputs every prompt position), prefix reuse off.
//! - Collection: teacher-forced tokens per second with hidden states and top-32.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::median;
use crate::model::llama::{self, LocalModel};
use crate::model::{
    Input, LogitsHook, Message, Model, ModelError, Request, ScoreRequest, TokenStep,
};
use crate::rectify::apply::RectifierHook;
use crate::rectify::file::{data_hash, RectifierFile, DEFAULT, FORMAT};
use crate::rectify::net::Mlp;
use crate::rectify::train::{Features, Metrics, Trained};

/// Result of [`rectify`].
#[derive(Debug, Clone, Serialize)]
pub struct RectifyReport {
    /// Candidates the rectifier corrects.
    pub k: usize,
    /// The hidden state's width.
    pub hidden_dim: usize,
    /// Rounds per side (medians reported).
    pub rounds: usize,
    /// `shipped` (the `--rectifier default` file) or `random` (its shape, seeded weights).
    pub rectifier: String,
    /// Generated tokens/s with an identity hook (hidden states on).
    pub identity_tok_s: f64,
    /// Generated tokens/s with the rectifier computed at every token.
    pub rectifier_tok_s: f64,
    /// rectifier / identity (target ≥ 0.95).
    pub ratio: f64,
    /// Tokens of the long prompt.
    pub prompt_tokens: u64,
    /// Its prompt phase with hidden states off, s.
    pub prompt_plain_s: f64,
    /// With hidden states on, s.
    pub prompt_hidden_s: f64,
    /// hidden / plain.
    pub prompt_hidden_ratio: f64,
    /// Teacher-forced tokens per second (hidden states and top-32 kept).
    pub collect_tok_s: f64,
}

/// The rectifier applied to a copy of the logits.
struct Dry(RectifierHook);

impl LogitsHook for Dry {
    fn apply(&self, step: &mut TokenStep<'_>) {
        let mut scratch = step.logits.to_vec();
        let mut copy = TokenStep {
            sample: step.sample,
            index: step.index,
            hidden: step.hidden,
            text: step.text,
            logits: &mut scratch,
        };
        self.0.apply(&mut copy);
        std::hint::black_box(&scratch);
    }
}

struct Identity;

impl LogitsHook for Identity {
    fn apply(&self, _step: &mut TokenStep<'_>) {}
}

const QUESTIONS: &[&str] = &[
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "A box holds 6 eggs. How many eggs are in 5 boxes?",
    "Sara had 20 stickers and gave 8 away. How many are left?",
    "A train travels 60 km each hour for 3 hours. How far does it go?",
];

fn random_rectifier(model: &str, dim: usize) -> RectifierFile {
    let k = 32;
    RectifierFile {
        format: FORMAT,
        model: model.into(),
        k,
        hidden_dim: dim,
        train_sets: Vec::new(),
        train_tokens: 0,
        data_hash: data_hash([]),
        trained: Trained {
            features: Features {
                k,
                use_hidden: true,
                mean: vec![0.0; dim],
                std: vec![1.0; dim],
            },
            net: Mlp::new(dim + k, 64, k, 7),
            lambda: 1.0,
            dev: Metrics::default(),
            objective: Default::default(),
            token_bias: Default::default(),
            scope: Default::default(),
        },
        held_out: Vec::new(),
    }
}

/// Run the benchmark on the model at `path`.
///
/// # Errors
/// [`ModelError`] when the model cannot be loaded or decoded.
pub async fn rectify(
    path: &Path,
    threads: u32,
    rounds: usize,
) -> Result<RectifyReport, ModelError> {
    let m = LocalModel::load(
        path,
        llama::Options {
            n_ctx: 2048,
            n_seq: 1,
            threads,
            ..llama::Options::default()
        },
    )
    .await?;
    let ask = |q: &str| Request::chat(vec![Message::user(q)]).with_max_tokens(96);
    let probe = m
        .score(ScoreRequest {
            input: Input::Chat(vec![Message::user("Hi")]),
            continuation: "Hello there.".into(),
            top_k: 32,
            hidden: true,
            close: false,
        })
        .await?;
    let (file, which) = match RectifierFile::load_for(Path::new(DEFAULT), &m.id().key) {
        Ok(f) if f.hidden_dim == probe.hidden_dim => (f, "shipped"),
        _ => (random_rectifier(&m.id().key, probe.hidden_dim), "random"),
    };
    let rect: Arc<dyn LogitsHook> = Arc::new(Dry(RectifierHook::new(file, None)));
    let ident: Arc<dyn LogitsHook> = Arc::new(Identity);
    // Warm-up (the context switches to hidden states once).
    m.generate(ask("Hi").with_hook(ident.clone())).await?;
    let (mut id_rates, mut rect_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        for (hook, out) in [(&ident, &mut id_rates), (&rect, &mut rect_rates)] {
            let (mut tokens, mut secs) = (0u64, 0.0f64);
            for q in QUESTIONS {
                let t = Instant::now();
                let r = m.generate(ask(q).with_hook(hook.clone())).await?;
                secs += t.elapsed().as_secs_f64();
                tokens += r.usage.generated_tokens;
            }
            out.push(tokens as f64 / secs.max(1e-9));
        }
    }
    let identity_tok_s = median(id_rates);
    let rectifier_tok_s = median(rect_rates);
    // The prompt phase: hidden states on (the context is in that mode now), then off.
    let long = QUESTIONS.repeat(24).join(" ");
    let once = |hook: Option<Arc<dyn LogitsHook>>| {
        let mut r = Request::chat(vec![Message::user(long.clone())])
            .with_max_tokens(1)
            .with_prefix_reuse(false);
        if let Some(h) = hook {
            r = r.with_hook(h);
        }
        r
    };
    let mut prompt_tokens = 0;
    let time = |hook: Option<Arc<dyn LogitsHook>>| {
        let m = &m;
        let req = once(hook);
        async move {
            let t = Instant::now();
            let r = m.generate(req).await?;
            Ok::<_, ModelError>((t.elapsed().as_secs_f64(), r.usage.prompt_tokens))
        }
    };
    let mut hidden = Vec::new();
    for _ in 0..rounds.max(1) {
        let (s, p) = time(Some(ident.clone())).await?;
        hidden.push(s);
        prompt_tokens = p;
    }
    time(None).await?; // the switch back to plain (a context rebuild) is not timed
    let mut plain = Vec::new();
    for _ in 0..rounds.max(1) {
        plain.push(time(None).await?.0);
    }
    let (prompt_plain_s, prompt_hidden_s) = (median(plain), median(hidden));
    // Collection throughput.
    let gold =
        "Tom starts with 3 apples.\nHe buys 4 more, so he has 3 + 4 = 7 apples.\nThe answer is 7.";
    let (mut n, t) = (0usize, Instant::now());
    for q in QUESTIONS.iter().cycle().take(4 * rounds.max(1)) {
        let s = m
            .score(ScoreRequest {
                input: Input::Chat(vec![Message::user(*q)]),
                continuation: gold.into(),
                top_k: 32,
                hidden: true,
                close: true,
            })
            .await?;
        n += s.tokens.len();
    }
    let collect_tok_s = n as f64 / t.elapsed().as_secs_f64().max(1e-9);
    Ok(RectifyReport {
        k: 32,
        hidden_dim: probe.hidden_dim,
        rounds: rounds.max(1),
        rectifier: which.into(),
        identity_tok_s,
        rectifier_tok_s,
        ratio: rectifier_tok_s / identity_tok_s.max(1e-9),
        prompt_tokens,
        prompt_plain_s,
        prompt_hidden_s,
        prompt_hidden_ratio: prompt_hidden_s / prompt_plain_s.max(1e-9),
        collect_tok_s,
    })
}
