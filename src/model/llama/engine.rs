//! The decode loop of the local backend, run on the worker thread.
//!
//! Invariant: `cached[i]` is the token at position `i` of sequence 0 in the KV cache, for every
//! `i < cached.len()`; sequences `1..n_seq` are empty between requests. A new prompt keeps the
//! longest common prefix with `cached` (at least one token is always decoded so that there are
//! logits to sample from), drops the rest, and decodes only the new tokens. For `n > 1` the
//! prompt is copied to sequences `1..n` and all samples advance together, one batch per step.
//! With a split layout (see [`crate::model::KvLayout`]) each sequence has its own KV stream of
//! `n_ctx` cells (the copy is a buffer copy, and a batch step attends only to each sequence's
//! own cells); otherwise the sequences share one unified cache of `n_ctx` cells (the copy is
//! metadata only, but every sample's attention spans all samples' cells). Sample 0 runs on
//! sequence 0, so its text stays cached for the next turn of a conversation.

use std::sync::Arc;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::context::{new_context, Shape, N_BATCH};
use super::sample::{pick_all, Job, Picked, Picker};
use super::{threads, Options};
use crate::model::{
    FinishReason, Input, LogitsHook, ModelError, Request, Response, Sample, TokenLogprob, Usage,
};

pub(super) struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: Option<LlamaChatTemplate>,
    cached: Vec<LlamaToken>,
    /// Next-token logits right after each newline of `cached` (key: the prefix length they
    /// follow), so a request that re-opens a solution at a step boundary starts sampling
    /// from them and decodes no token of the kept prefix again (backtracking).
    saved: Vec<(usize, Vec<f32>)>,
    /// Cells, sequences and KV layout of the current context.
    shape: Shape,
    max_ctx: u32,
    threads: i32,
    /// The context computes hidden states (llama.cpp then outputs every prompt token, which
    /// costs prompt speed), so it is on only while requests carry a hook that wants them.
    embeddings: bool,
}

fn decode_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Decode(e.to_string())
}

struct Seq {
    id: i32,
    picker: Picker,
    text: String,
    pending: Vec<u8>,
    tokens: u32,
    pos: i32,
    logit_idx: i32,
    done: Option<FinishReason>,
    logprobs: Vec<TokenLogprob>,
}

impl Seq {
    /// Append a token's bytes, keeping `text` valid UTF-8 across split characters.
    fn push_bytes(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                self.text.push_str(s);
                self.pending.clear();
            }
            Err(e) if e.error_len().is_none() => {
                // An incomplete character at the end: emit the valid part, keep the rest.
                let valid = e.valid_up_to();
                if let Ok(s) = std::str::from_utf8(self.pending.get(..valid).unwrap_or_default()) {
                    self.text.push_str(s);
                }
                self.pending.drain(..valid);
            }
            Err(_) => {
                self.text.push_str(&String::from_utf8_lossy(&self.pending));
                self.pending.clear();
            }
        }
    }

    fn finish_text(&mut self) {
        if !self.pending.is_empty() {
            self.text.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<'m> Engine<'m> {
    pub(super) fn new(model: &'m LlamaModel, opts: &Options) -> Result<Self, ModelError> {
        let train = model.n_ctx_train().max(512);
        let max_ctx = if opts.max_ctx == 0 {
            train
        } else {
            opts.max_ctx.min(train)
        };
        let n_ctx = opts.n_ctx.clamp(256, max_ctx);
        let n_seq = opts.n_seq.max(1);
        let threads = threads(opts.threads);
        let shape = Shape::new(model, n_ctx, max_ctx, n_seq, opts.kv);
        let ctx = new_context(model, shape, threads, false)?;
        Ok(Self {
            model,
            ctx,
            template: model.chat_template(None).ok(),
            cached: Vec::new(),
            saved: Vec::new(),
            shape,
            max_ctx,
            threads,
            embeddings: false,
        })
    }

    fn render(&self, req: &Request) -> Result<String, ModelError> {
        let mut text = match &req.input {
            Input::Raw(p) => p.clone(),
            Input::Chat(messages) => {
                let tmpl = self
                    .template
                    .as_ref()
                    .ok_or_else(|| ModelError::Unsupported {
                        backend: "this GGUF model".into(),
                        what: "chat input (the file has no chat template; use a raw prompt)".into(),
                    })?;
                let msgs = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.as_str().into(), m.content.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ModelError::InvalidRequest(format!("message text: {e}")))?;
                self.model
                    .apply_chat_template(tmpl, &msgs, true)
                    .map_err(|e| ModelError::InvalidRequest(format!("chat template: {e}")))?
            }
        };
        if let Some(prefill) = &req.prefill {
            text.push_str(prefill);
        }
        Ok(text)
    }

    /// Make sure `needed` KV cells (per sequence when split) fit, growing the context when
    /// allowed, and that the context computes hidden states exactly when `embeddings` asks.
    fn ensure_context(&mut self, needed: usize, embeddings: bool) -> Result<(), ModelError> {
        if needed <= self.shape.n_ctx as usize {
            if embeddings != self.embeddings {
                self.ctx = new_context(self.model, self.shape, self.threads, embeddings)?;
                self.embeddings = embeddings;
                self.cached.clear();
                self.saved.clear();
            }
            return Ok(());
        }
        if needed > self.max_ctx as usize {
            return Err(ModelError::ContextOverflow {
                needed,
                max: self.max_ctx as usize,
            });
        }
        let grown = (needed as u32).div_ceil(512) * 512;
        let n_ctx = grown.min(self.max_ctx);
        tracing::debug!(from = self.shape.n_ctx, to = n_ctx, "growing the context");
        let shape = Shape {
            n_ctx,
            ..self.shape
        };
        self.ctx = new_context(self.model, shape, self.threads, embeddings)?;
        self.shape = shape;
        self.embeddings = embeddings;
        self.cached.clear();
        self.saved.clear();
        Ok(())
    }

    fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
        self.saved.clear();
    }

    pub(super) fn generate(
        &mut self,
        req: &Request,
        reply: &oneshot::Sender<Result<Response, ModelError>>,
    ) -> Result<Response, ModelError> {
        let start = std::time::Instant::now();
        let result = self.generate_inner(req, reply);
        if result.is_err() {
            // Whatever state a failed decode left behind is not trusted again.
            self.reset();
        }
        result.map(|(samples, usage)| Response {
            samples,
            usage,
            wall: start.elapsed(),
            prefill: req.prefill.as_ref().map(|_| crate::model::Prefill::Native),
        })
    }

    fn generate_inner(
        &mut self,
        req: &Request,
        reply: &oneshot::Sender<Result<Response, ModelError>>,
    ) -> Result<(Vec<Sample>, Usage), ModelError> {
        let text = self.render(req)?;
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(text.as_bytes(), true, true);
        if tokens.is_empty() {
            return Err(ModelError::InvalidRequest("the prompt is empty".into()));
        }
        let n = req.n.max(1) as usize;
        let want_hidden = req.hook.as_ref().is_some_and(|h| h.wants_hidden());
        let needed = self.shape.needed(tokens.len(), n, req.max_tokens as usize);
        self.ensure_context(needed, want_hidden)?;

        // Keep the shared prefix; always decode at least the last prompt token.
        let common = if req.reuse_prefix {
            common_prefix(&self.cached, &tokens)
        } else {
            0
        };
        // A prompt that ends exactly at a saved step boundary needs no decoding at all.
        let resume = (!want_hidden && common == tokens.len())
            .then(|| self.saved.iter().find(|(l, _)| *l == tokens.len()))
            .flatten()
            .map(|(_, v)| v.clone());
        let keep = if resume.is_some() {
            tokens.len()
        } else {
            common.min(tokens.len() - 1)
        };
        for s in 1..self.shape.n_seq as i32 {
            self.ctx
                .clear_kv_cache_seq(Some(s as u32), None, None)
                .map_err(decode_err)?;
        }
        if keep == 0 {
            self.ctx.clear_kv_cache();
        } else if !self
            .ctx
            .clear_kv_cache_seq(Some(0), Some(keep as u32), None)
            .map_err(decode_err)?
        {
            self.ctx.clear_kv_cache();
            return Err(ModelError::Decode("could not truncate the KV cache".into()));
        }
        self.cached.truncate(keep);
        self.saved.retain(|(l, _)| *l <= keep);

        let mut batch = LlamaBatch::new(
            N_BATCH.max(self.shape.n_seq) as usize,
            self.shape.n_seq as i32,
        );
        let mut last_idx = 0;
        let new = tokens.get(keep..).unwrap_or_default();
        for (c, chunk) in new.chunks(N_BATCH as usize).enumerate() {
            batch.clear();
            let mut boundaries = Vec::new();
            for (j, tok) in chunk.iter().enumerate() {
                let pos = keep + c * N_BATCH as usize + j;
                let is_last = pos + 1 == tokens.len();
                let boundary = !is_last && ends_line(&vocab, *tok);
                if boundary {
                    boundaries.push((j as i32, pos + 1));
                }
                batch
                    .add(*tok, pos as i32, &[0], is_last || boundary)
                    .map_err(decode_err)?;
            }
            self.ctx.decode(&mut batch).map_err(decode_err)?;
            last_idx = batch.n_tokens() - 1;
            for (idx, len) in boundaries {
                let logits = self.ctx.get_logits_ith(idx).to_vec();
                self.save(len, logits);
            }
        }
        if tokens
            .last()
            .is_some_and(|t| !new.is_empty() && ends_line(&vocab, *t))
        {
            let logits = self.ctx.get_logits_ith(last_idx).to_vec();
            self.save(tokens.len(), logits);
        }
        self.cached.extend_from_slice(new);
        for s in 1..n as i32 {
            self.ctx
                .kv_cache_seq_cp(0, s, None, None)
                .map_err(decode_err)?;
        }

        let seed = req.seed.unwrap_or_else(rand_seed);
        let base = (seed ^ (seed >> 32)) as u32;
        let mut seqs: Vec<Seq> = (0..n)
            .map(|i| Seq {
                id: i as i32,
                picker: Picker::new(req.temperature, req.top_p, base.wrapping_add(i as u32)),
                text: String::new(),
                pending: Vec::new(),
                tokens: 0,
                pos: tokens.len() as i32,
                logit_idx: last_idx,
                done: (req.max_tokens == 0).then_some(FinishReason::Length),
                logprobs: Vec::new(),
            })
            .collect();
        let hook: Option<&Arc<dyn LogitsHook>> = req.hook.as_ref();
        let mut first = resume;
        let mut save_next = false;
        loop {
            if reply.is_closed() {
                return Err(ModelError::InvalidRequest("cancelled by the caller".into()));
            }
            let mut jobs: Vec<Job<'_>> = Vec::new();
            for (i, seq) in seqs.iter_mut().enumerate() {
                if seq.done.is_some() {
                    continue;
                }
                let hidden = if self.embeddings && hook.is_some() {
                    self.ctx.embeddings_ith(seq.logit_idx).ok()
                } else {
                    None
                };
                let logits = match &first {
                    Some(v) => v.as_slice(),
                    None => self.ctx.get_logits_ith(seq.logit_idx),
                };
                if seq.id == 0 && save_next {
                    self.saved.push((self.cached.len(), logits.to_vec()));
                }
                jobs.push(Job {
                    logits,
                    hidden,
                    picker: &mut seq.picker,
                    sample: i,
                    index: seq.tokens as usize,
                    out: None,
                });
            }
            pick_all(&mut jobs, hook, req.logprobs);
            let picked: Vec<(usize, Option<Picked>)> =
                jobs.into_iter().map(|j| (j.sample, j.out)).collect();
            first = None;
            save_next = false;
            self.trim_saved();
            batch.clear();
            for (i, p) in picked {
                let Some(seq) = seqs.get_mut(i) else {
                    return Err(ModelError::Decode(format!("no sequence {i} in the batch")));
                };
                let Some(Picked {
                    token: tok,
                    logprob,
                }) = p
                else {
                    return Err(ModelError::Decode("the sampler selected no token".into()));
                };
                seq.tokens += 1;
                if vocab.is_eog(tok) {
                    seq.done = Some(FinishReason::Eos);
                    continue;
                }
                let piece = vocab.token_to_piece(tok, false, None);
                let before = seq.text.len();
                seq.push_bytes(&piece);
                if let Some(lp) = logprob {
                    seq.logprobs.push(TokenLogprob {
                        token: String::from_utf8_lossy(&piece).into_owned(),
                        logprob: lp,
                    });
                }
                let from =
                    before.saturating_sub(req.stop.iter().map(String::len).max().unwrap_or(0));
                let from = (0..=from)
                    .rev()
                    .find(|&b| seq.text.is_char_boundary(b))
                    .unwrap_or(0);
                if let Some(cut) = req
                    .stop
                    .iter()
                    .filter_map(|s| seq.text[from..].find(s.as_str()))
                    .min()
                {
                    seq.text.truncate(from + cut);
                    seq.done = Some(FinishReason::Stop);
                    continue;
                }
                if seq.tokens >= req.max_tokens {
                    seq.done = Some(FinishReason::Length);
                    continue;
                }
                batch
                    .add(tok, seq.pos, &[seq.id], true)
                    .map_err(decode_err)?;
                seq.logit_idx = batch.n_tokens() - 1;
                seq.pos += 1;
                if seq.id == 0 {
                    self.cached.push(tok);
                    save_next = piece.ends_with(b"\n");
                }
            }
            if batch.n_tokens() == 0 {
                break;
            }
            self.ctx.decode(&mut batch).map_err(decode_err)?;
        }
        for s in 1..n as i32 {
            self.ctx
                .clear_kv_cache_seq(Some(s as u32), None, None)
                .map_err(decode_err)?;
        }

        let generated: u64 = seqs.iter().map(|s| u64::from(s.tokens)).sum();
        let samples = seqs
            .into_iter()
            .map(|mut s| {
                s.finish_text();
                Sample {
                    text: s.text,
                    finish: s.done.unwrap_or(FinishReason::Length),
                    tokens: s.tokens,
                    logprobs: req.logprobs.then_some(s.logprobs),
                }
            })
            .collect();
        let usage = Usage {
            prompt_tokens: tokens.len() as u64,
            generated_tokens: generated,
            reused_tokens: keep as u64,
            calls: 1,
            infra_retries: 0,
        };
        Ok((samples, usage))
    }
}

/// Most saved step-boundary logits kept (each is one vocabulary of f32).
const MAX_SAVED: usize = 128;

impl Engine<'_> {
    fn save(&mut self, len: usize, logits: Vec<f32>) {
        self.saved.retain(|(l, _)| *l != len);
        self.saved.push((len, logits));
        self.trim_saved();
    }

    fn trim_saved(&mut self) {
        if self.saved.len() > MAX_SAVED {
            let extra = self.saved.len() - MAX_SAVED;
            self.saved.drain(..extra);
        }
    }
}

/// Does this token's text end a line?
fn ends_line(vocab: &llama_cpp_2::vocab::LlamaVocab<'_>, tok: LlamaToken) -> bool {
    vocab.token_to_piece(tok, false, None).ends_with(b"\n")
}

fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ u64::from(std::process::id()).rotate_left(32)
}
