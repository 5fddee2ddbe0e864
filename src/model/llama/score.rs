//! Teacher forcing on the worker thread ([`crate::model::score`]): the prompt and the
//! continuation are decoded in one pass in slot 0 (the engine is idle: a score waits for the
//! running requests), with outputs only at the positions that predict a continuation token
//! (every position with hidden states on: llama.cpp outputs them all in that mode). The
//! prefix slot 0 already holds is not decoded again (like prefix reuse in generation, not
//! bit-exact: llama.cpp's arithmetic depends on the batch shape). Slot 0 keeps the tokens as
//! a prefix cache afterwards, like a finished request.

use std::time::Instant;

use llama_cpp_2::model::LlamaChatMessage;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::context::N_BATCH;
use super::engine::{decode_err, Engine};
use crate::model::score::summarise;
use crate::model::{Input, ModelError, Request, ScoreRequest, Scored, ScoredToken};

/// A score waiting for the engine to be idle.
pub(super) struct ScoreTask {
    pub req: ScoreRequest,
    pub reply: oneshot::Sender<Result<Scored, ModelError>>,
}

impl Engine<'_> {
    /// The token a finished answer ends with, which generation stops on: for chat input, the
    /// first token the chat template writes after an assistant message (`<|im_end|>` for
    /// ChatML) when it ends generation; else the vocabulary's end-of-turn token, else its
    /// end-of-sequence token. (A vocabulary's end-of-sequence token need not be the turn's
    /// end: SmolLM2's is `<|endoftext|>`, its turns end with `<|im_end|>`.)
    fn end_of_turn(&self, input: &Input) -> Result<LlamaToken, ModelError> {
        let vocab = self.model.vocab();
        let from_template = match (input, &self.template) {
            (Input::Chat(_), Some(tmpl)) => {
                const MARK: &str = "\u{1}amend-end\u{1}";
                let msgs = [("user", "x"), ("assistant", MARK)]
                    .into_iter()
                    .map(|(r, c)| LlamaChatMessage::new(r.into(), c.into()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ModelError::InvalidRequest(format!("message text: {e}")))?;
                let text = self
                    .model
                    .apply_chat_template(tmpl, &msgs, false)
                    .map_err(|e| ModelError::InvalidRequest(format!("chat template: {e}")))?;
                text.find(MARK)
                    .and_then(|at| text.get(at + MARK.len()..))
                    .and_then(|after| {
                        vocab
                            .tokenize(after.as_bytes(), false, true)
                            .first()
                            .copied()
                    })
                    .filter(|t| vocab.is_eog(*t))
            }
            _ => None,
        };
        from_template
            .or_else(|| {
                [vocab.eot(), vocab.eos()]
                    .into_iter()
                    .find(|t| t.0 >= 0 && vocab.is_eog(*t))
            })
            .ok_or_else(|| ModelError::Unsupported {
                backend: "this model (neither its chat template nor its vocabulary names \
                          an end-of-turn token)"
                    .into(),
                what: "scoring a closed turn (`close`): score without it".into(),
            })
    }

    /// Score `req` (the engine must be idle: slot 0 is cleared and reused).
    pub(super) fn score(&mut self, req: &ScoreRequest) -> Result<Scored, ModelError> {
        let start = Instant::now();
        let base = match &req.input {
            Input::Chat(m) => Request::chat(m.clone()),
            Input::Raw(p) => Request::raw(p.clone()),
        };
        let prompt = self.tokens(&base)?;
        let mut full = self.tokens(&base.with_prefill(req.continuation.clone()))?;
        if req.close {
            full.push(self.end_of_turn(&req.input)?);
        }
        // The continuation's tokens are the full text's past the prompt's; where the two
        // tokenisations merge a token across the boundary, the merged token is scored too.
        let split = prompt
            .iter()
            .zip(&full)
            .take_while(|(a, b)| a == b)
            .count()
            .max(1);
        let needed = self.shape.needed(full.len(), 1, 0);
        self.ensure_context(needed, req.hidden)?;
        // What slot 0 holds of this text is kept, up to the position that predicts the
        // continuation's first token (a shared system prompt is decoded once per run of
        // scores, not once per score); the rest is decoded.
        let keep = self
            .slots
            .first()
            .map_or(0, |s| {
                s.cached
                    .iter()
                    .zip(&full)
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .min(split.saturating_sub(1));
        self.ctx
            .clear_kv_cache_seq(Some(0), Some(keep as u32), None)
            .map_err(decode_err)?;
        if let Some(s) = self.slots.get_mut(0) {
            s.cached.truncate(keep);
            s.saved.clear();
        }
        let vocab = self.model.vocab();
        let k = req.top_k as usize;
        let mut tokens = Vec::with_capacity(full.len().saturating_sub(split));
        let mut hidden_dim = 0;
        for (c, chunk) in full
            .get(keep..)
            .unwrap_or_default()
            .chunks(N_BATCH as usize)
            .enumerate()
        {
            self.batch.clear();
            let mut wanted: Vec<(i32, LlamaToken)> = Vec::new();
            for (j, tok) in chunk.iter().enumerate() {
                let pos = keep + c * N_BATCH as usize + j;
                let gold = full.get(pos + 1).filter(|_| pos + 1 >= split).copied();
                // With hidden states on llama.cpp outputs every position anyway (and warns
                // when not asked to): ask for them.
                self.batch
                    .add(*tok, pos as i32, &[0], gold.is_some() || req.hidden)
                    .map_err(decode_err)?;
                if let Some(g) = gold {
                    wanted.push((j as i32, g));
                }
            }
            self.ctx.decode(&mut self.batch).map_err(decode_err)?;
            for (idx, gold) in wanted {
                let logits = self.ctx.get_logits_ith(idx);
                let g = usize::try_from(gold.0).unwrap_or(usize::MAX);
                let (top, log_normaliser, rank) = summarise(logits, g, k);
                let hidden = match req.hidden {
                    true => Some(self.ctx.embeddings_ith(idx).map_err(decode_err)?.to_vec()),
                    false => None,
                };
                hidden_dim = hidden.as_ref().map_or(hidden_dim, Vec::len);
                tokens.push(ScoredToken {
                    gold: u32::try_from(gold.0).unwrap_or(u32::MAX),
                    piece: String::from_utf8_lossy(&vocab.token_to_piece(gold, false, None))
                        .into_owned(),
                    gold_logit: logits.get(g).copied().unwrap_or(f32::NEG_INFINITY),
                    rank,
                    log_normaliser,
                    top,
                    hidden,
                });
            }
        }
        if let Some(s) = self.slots.get_mut(0) {
            s.cached = full;
        }
        Ok(Scored {
            tokens,
            prompt_tokens: split as u32,
            hidden_dim,
            wall: start.elapsed(),
        })
    }
}
