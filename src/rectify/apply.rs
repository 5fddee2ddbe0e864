//! Applying a rectifier while decoding: a [`LogitsHook`] that, at every generated token, takes
//! the pilot's top K, asks the network for its corrections from the hidden state, fuses them
//! as the file's objective says (in probability space, `p̃ = p̂ + λ·f`, [`super::train::fuse`],
//! or in logit space, `p̂·e^{λ·f}`, [`super::objective::fuse_logits`]) and writes the fused
//! distribution back as logits (the top K's logits become `ln p̃ + log Σ exp`, every other
//! logit is unchanged, so the softmax of the new logits is the fused distribution).
//!
//! A rectifier trained for the digits of computed results ([`Scope::Results`]) corrects only
//! where the sample's text so far ends after `expr =` or inside the number after it, and
//! leaves every other token as the pilot has it. A continuation of an assistant prefill (the
//! calculator's, backtracking's) sees only its own text, so a result whose `=` ends the prefill
//! is not corrected.
//!
//! λ = 0 leaves the logits untouched (bit-identical output with the hook installed). A step
//! without a hidden state (a backend that gives none) is left untouched by a rectifier that
//! reads it. The hook reads only its own step: each request's samples are decoded with
//! their own hook call per token.
//!
//! Hidden states and the KV cache: the local engine computes hidden states only while a
//! request's hook asks for them, and switching that on or off rebuilds llama.cpp's context,
//! which drops every slot's cached prefix (llama-cpp-2 0.1.160 keeps the context pointer
//! private, so `llama_set_embeddings`, which switches without a rebuild, cannot be called).
//! With the rectifier on the generator every generator call asks for them: the context
//! switches once and stays. It switches back and forth only when calls with and without the
//! hook alternate on one model — an LLM critic on the generator's own model; the model-free
//! critics (`arith`, `ground`) make no calls — and each switch costs the next call its prompt
//! cache.

use std::path::Path;
use std::sync::Arc;

use super::file::RectifierFile;
use super::train::Scope;
use super::RectifyError;
use crate::model::score::top_k;
use crate::model::{LogitsHook, Model, TokenStep, WithHook};

/// A loaded rectifier as a logits hook.
pub struct RectifierHook {
    file: RectifierFile,
    lambda: f32,
}

impl RectifierHook {
    /// The hook of `file` at fusion weight `lambda` (the file's λ when `None`).
    pub fn new(file: RectifierFile, lambda: Option<f32>) -> Self {
        let lambda = lambda.unwrap_or(file.trained.lambda);
        Self { file, lambda }
    }

    /// The fusion weight in use.
    pub fn lambda(&self) -> f32 {
        self.lambda
    }
}

impl LogitsHook for RectifierHook {
    fn apply(&self, step: &mut TokenStep<'_>) {
        if self.lambda == 0.0 {
            return;
        }
        if self.file.trained.scope == Scope::Results && !crate::calc::in_result(step.text) {
            return;
        }
        let uses_hidden = self.file.trained.features.use_hidden;
        let hidden = match (uses_hidden, step.hidden) {
            (true, None) => return,
            (_, h) => h.unwrap_or_default(),
        };
        let logits = &mut *step.logits;
        let k = self.file.k.min(logits.len());
        if k == 0 {
            return;
        }
        let (top, lse) = top_k(logits, k);
        let p: Vec<f32> = top.iter().map(|&(_, l)| (l - lse).exp()).collect();
        let ids: Vec<i32> = top
            .iter()
            .map(|&(i, _)| i32::try_from(i).unwrap_or(-1))
            .collect();
        let y = self.file.trained.corrections(hidden, &p, &ids);
        let (fused, _) = self.file.trained.fuse(&p, &y, self.lambda);
        for (&(i, _), q) in top.iter().zip(&fused) {
            if let Some(l) = logits.get_mut(i as usize) {
                *l = q.ln() + lse;
            }
        }
    }

    fn wants_hidden(&self) -> bool {
        self.file.trained.features.use_hidden
    }
}

/// `model` with the rectifier of the file at `path` on every request (`lambda`: override the
/// file's λ). The file must have been trained for this model (its content fingerprint).
///
/// # Errors
/// [`RectifyError::File`], [`RectifyError::ModelMismatch`], and
/// [`RectifyError::Model`] when the backend exposes no logits and hidden states (API
/// backends: a rectifier cannot run there).
pub fn install(
    model: Arc<dyn Model>,
    path: &Path,
    lambda: Option<f32>,
) -> Result<Arc<dyn Model>, RectifyError> {
    if !model.capabilities().logits_hidden {
        return Err(RectifyError::Model(crate::model::ModelError::Unsupported {
            backend: model.id().key.clone(),
            what: "a logit rectifier (it reads every token's logits and hidden state, which \
                   only the local backend exposes)"
                .into(),
        }));
    }
    let file = RectifierFile::load_for(path, &model.id().key)?;
    Ok(Arc::new(WithHook::new(
        model,
        Arc::new(RectifierHook::new(file, lambda)),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rectify::file::{data_hash, FORMAT};
    use crate::rectify::net::Mlp;
    use crate::rectify::objective::Objective;
    use crate::rectify::train::{Features, Metrics, Trained};

    /// A rectifier whose only correction is a token bias raising token 3 (the pilot's fourth).
    fn hook(scope: Scope) -> RectifierHook {
        let k = 4;
        let file = RectifierFile {
            format: FORMAT,
            model: "m".into(),
            k,
            hidden_dim: 0,
            train_sets: Vec::new(),
            train_tokens: 0,
            data_hash: data_hash([]),
            trained: Trained {
                features: Features {
                    k,
                    use_hidden: false,
                    mean: Vec::new(),
                    std: Vec::new(),
                },
                net: Mlp::new(k, 8, k, 1),
                lambda: 1.0,
                dev: Metrics::default(),
                objective: Objective::Logit,
                token_bias: [(3, 2.0)].into_iter().collect(),
                scope,
            },
            held_out: Vec::new(),
        };
        RectifierHook::new(file, None)
    }

    fn run(h: &RectifierHook, text: &str) -> Vec<f32> {
        let mut logits = vec![3.0f32, 2.5, 1.0, 0.5, 0.0, -1.0];
        h.apply(&mut TokenStep {
            sample: 0,
            index: 7,
            hidden: None,
            text,
            logits: &mut logits,
        });
        logits
    }

    #[test]
    fn a_rectifier_for_results_corrects_only_while_a_result_is_written() {
        let pilot = vec![3.0f32, 2.5, 1.0, 0.5, 0.0, -1.0];
        let (scoped, all) = (hook(Scope::Results), hook(Scope::All));
        for text in ["So 3 + 4 is seven", "x = ", "So 3 + 4 = 7 apples"] {
            assert_eq!(run(&scoped, text), pilot, "{text}");
            assert_ne!(run(&all, text), pilot, "{text}");
        }
        for text in ["So 3 + 4 =", "So 3 + 4 = ", "So 30 + 4 = 3"] {
            let fixed = run(&scoped, text);
            assert_eq!(fixed, run(&all, text), "{text}");
            // Token 3 rose by the bias (its logit + 2, up to rounding); the others are as
            // they were.
            assert!((fixed[3] - 2.5).abs() < 1e-4, "{fixed:?}");
            assert_eq!(fixed[4..], pilot[4..]);
        }
    }
}
