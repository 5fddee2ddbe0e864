//! The local backend's scheduler, run on the worker thread: continuous batching over slots.
//!
//! The context has `n_seq` KV sequences, the *slots*. A request with `n` samples takes `n` free
//! slots; its prompt is decoded once, in the slot whose cached tokens share the longest prefix
//! with it (only the new tokens are decoded; at least the last one, for logits), and copied to
//! the others. Slots are chosen to keep the running ones consecutive, because llama.cpp puts
//! only consecutive sequence ids in one micro-batch when each sequence has its own KV stream
//! (a running set {0, 3, 5} decodes as three batches of one); a longer shared prefix elsewhere
//! wins only when it saves more work than that ([`super::slot::choose`]). From then on every decode step advances all running samples of all admitted
//! requests together, one token each, in one batch: a request that arrives while others decode
//! is admitted between two steps and joins the next batch. Each sample has its own sampling
//! settings (its request's), stop strings, logits hook and seed. A finished request frees its
//! slots at once; a request whose caller went away (a dropped future) frees them at the next
//! step. See [`super`] for the queue in front of the slots.
//!
//! A free slot keeps the tokens it holds (the prompt and what its sample generated) as a
//! prefix cache, and the next-token logits after each newline of them, until it is given to
//! another request (the least recently used free slot goes first). So a strategy keeps several
//! candidate continuations of one prefix alive across calls by drawing them as the `n` samples
//! of one request; a later request whose prompt extends the chosen candidate finds it in the
//! slot that decoded it and decodes only what is new (nothing at all when it re-opens the
//! candidate at a line boundary: the saved logits are used). Requests made in between may
//! evict it; sending the continuation next keeps it.
//!
//! Concurrency needs one KV stream per slot (the split layout, [`crate::model::KvLayout`]).
//! With a unified cache (models whose split streams would not fit the memory budget) the
//! slots share one cache and requests are admitted one at a time. Growing the context or
//! switching hidden states on rebuilds it, so a request that needs either waits until the
//! running ones are done. Prefix reuse and batching are not bit-exact: llama.cpp's arithmetic
//! depends on the shape of each batch, so a greedy near-tie may come out differently when other
//! requests share the batch.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::context::{new_context, Shape, N_BATCH};
use super::sample::Picker;
pub(super) use super::slot::{Active, Job, Seq, Slot, SlotView, Task};
use super::{threads, Options};
use crate::model::{FinishReason, Grammar, Input, ModelError, Request};

/// Whether a waiting request can be admitted now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Readiness {
    /// Admit it.
    Now,
    /// Wait for running requests to finish (slots, a context rebuild, a unified cache).
    Later,
}

pub(super) struct Engine<'m> {
    pub model: &'m LlamaModel,
    pub ctx: LlamaContext<'m>,
    pub(super) template: Option<LlamaChatTemplate>,
    pub shape: Shape,
    max_ctx: u32,
    threads: i32,
    /// The context computes hidden states (llama.cpp then outputs every prompt token, which
    /// costs prompt speed), so it is on only while requests carry a hook that wants them.
    pub embeddings: bool,
    pub slots: Vec<Slot>,
    pub active: Vec<Active>,
    pub clock: u64,
    pub batch: LlamaBatch<'static>,
}

pub(super) fn decode_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Decode(e.to_string())
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Does this token's text end a line?
pub(super) fn ends_line(vocab: &llama_cpp_2::vocab::LlamaVocab<'_>, tok: LlamaToken) -> bool {
    vocab.token_to_piece(tok, false, None).ends_with(b"\n")
}

fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ u64::from(std::process::id()).rotate_left(32)
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
            shape,
            max_ctx,
            threads,
            embeddings: false,
            slots: (0..n_seq).map(|_| Slot::default()).collect(),
            active: Vec::new(),
            clock: 0,
            batch: LlamaBatch::new(N_BATCH.max(n_seq) as usize, n_seq as i32),
        })
    }

    /// No request is running.
    pub(super) fn idle(&self) -> bool {
        self.active.is_empty()
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

    pub(super) fn tokens(&self, req: &Request) -> Result<Vec<LlamaToken>, ModelError> {
        let text = self.render(req)?;
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        if tokens.is_empty() {
            return Err(ModelError::InvalidRequest("the prompt is empty".into()));
        }
        Ok(tokens)
    }

    /// Can `req` be admitted while the running requests go on? (When nothing runs, always:
    /// admission then grows or rebuilds the context as needed.)
    pub(super) fn readiness(&self, req: &Request) -> Readiness {
        if self.idle() {
            return Readiness::Now;
        }
        let n = req.n.max(1) as usize;
        let free = self.slots.iter().filter(|s| !s.busy).count();
        let wants_hidden = req.hook.as_ref().is_some_and(|h| h.wants_hidden());
        // A prompt's length is known only once rendered; a request that might not fit the
        // current context waits until it can be grown.
        let fits = self.tokens(req).is_ok_and(|t| {
            self.shape.needed(t.len(), n, req.max_tokens as usize) <= self.shape.n_ctx as usize
        });
        if self.shape.split && free >= n && wants_hidden == self.embeddings && fits {
            Readiness::Now
        } else {
            Readiness::Later
        }
    }

    /// Make sure `needed` KV cells (per slot when split) fit, growing the context when
    /// allowed, and that the context computes hidden states exactly when `embeddings` asks.
    /// Only called when nothing runs: a rebuild drops every slot's cache.
    pub(super) fn ensure_context(
        &mut self,
        needed: usize,
        embeddings: bool,
    ) -> Result<(), ModelError> {
        if needed <= self.shape.n_ctx as usize {
            if embeddings != self.embeddings {
                self.ctx = new_context(self.model, self.shape, self.threads, embeddings)?;
                self.embeddings = embeddings;
                self.clear_slots();
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
        self.clear_slots();
        Ok(())
    }

    fn clear_slots(&mut self) {
        for s in &mut self.slots {
            s.cached.clear();
            s.saved.clear();
        }
    }

    /// Forget every cache (after a failed decode, whose state is not trusted again).
    pub(super) fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        self.clear_slots();
    }

    /// Free `slots` (their caches stay, as prefix caches).
    pub(super) fn release(&mut self, slots: impl IntoIterator<Item = usize>) {
        self.clock += 1;
        for s in slots {
            if let Some(slot) = self.slots.get_mut(s) {
                slot.busy = false;
                slot.used = self.clock;
            }
        }
    }

    /// Admit a request (its [`Engine::readiness`] is `Now`): take its slots, decode its
    /// prompt, and add it to the running ones. A failure is the request's own: it is answered
    /// with the error and the others go on.
    pub(super) fn admit(&mut self, task: Task) {
        match self.prefill(&task.req) {
            Ok((seqs, prompt_tokens, reused)) => self.active.push(Active {
                task,
                seqs,
                prompt_tokens,
                reused,
            }),
            Err(e) => {
                let _ = task.reply.send(Err(e));
            }
        }
    }

    /// Copy every running sample's next-token logits (and hidden state) out of the context's
    /// output, where the next decode would overwrite them.
    fn stash_outputs(&mut self) {
        let embeddings = self.embeddings;
        for a in &mut self.active {
            let wants_hidden = embeddings && a.task.req.hook.is_some();
            for seq in &mut a.seqs {
                if seq.first.is_some() || seq.done.is_some() || seq.tokens == 0 {
                    continue;
                }
                let logits = self.ctx.get_logits_ith(seq.logit_idx).to_vec();
                let hidden = wants_hidden
                    .then(|| {
                        self.ctx
                            .embeddings_ith(seq.logit_idx)
                            .ok()
                            .map(<[f32]>::to_vec)
                    })
                    .flatten();
                seq.first = Some((logits, hidden));
            }
        }
    }

    /// Pick `n` free slots for `tokens` (see [`super::slot::choose`]).
    fn choose_slots(
        &self,
        tokens: &[LlamaToken],
        n: usize,
        reuse: bool,
        max_tokens: usize,
    ) -> Vec<(usize, usize)> {
        let view: Vec<SlotView> = self
            .slots
            .iter()
            .map(|s| SlotView {
                busy: s.busy,
                common: if reuse {
                    common_prefix(&s.cached, tokens)
                } else {
                    0
                },
                used: s.used,
            })
            .collect();
        super::slot::choose(&view, tokens.len(), n, max_tokens)
    }

    /// The request's grammar as llama.cpp's grammar sampler (a JSON schema converted by
    /// llama.cpp's converter); each sample gets its own copy.
    fn grammar(&self, req: &Request) -> Result<Option<LlamaSampler>, ModelError> {
        let gbnf = match &req.grammar {
            None => return Ok(None),
            Some(Grammar::Gbnf(g)) => g.clone(),
            Some(Grammar::JsonSchema(schema)) => {
                llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
                    ModelError::InvalidRequest(format!(
                        "the JSON schema cannot be turned into a grammar ({e}); llama.cpp's \
                         converter supports types, properties, required, enum, const, \
                         arrays, anyOf/oneOf and string formats"
                    ))
                })?
            }
        };
        LlamaSampler::grammar(self.model, &gbnf, "root")
            .map(Some)
            .map_err(|e| {
                ModelError::InvalidRequest(format!(
                    "the grammar does not parse ({e}); it must be llama.cpp GBNF with a \
                     `root` rule"
                ))
            })
    }

    fn prefill(&mut self, req: &Request) -> Result<(Vec<Seq>, usize, usize), ModelError> {
        let tokens = self.tokens(req)?;
        let grammar = self.grammar(req)?;
        let n = req.n.max(1) as usize;
        if n > self.slots.len() {
            return Err(ModelError::InvalidRequest(format!(
                "n = {n} exceeds the {} slots of this model",
                self.slots.len()
            )));
        }
        let want_hidden = req.hook.as_ref().is_some_and(|h| h.wants_hidden());
        if self.idle() {
            let needed = self.shape.needed(tokens.len(), n, req.max_tokens as usize);
            self.ensure_context(needed, want_hidden)?;
        }
        let chosen = self.choose_slots(&tokens, n, req.reuse_prefix, req.max_tokens as usize);
        if chosen.len() < n {
            return Err(ModelError::Decode("not enough free slots".into()));
        }
        let result = self.fill(req, &tokens, &chosen, want_hidden, grammar.as_ref());
        if result.is_err() {
            // What a failed decode left in these sequences is not trusted again.
            for &(s, _) in &chosen {
                let _ = self.ctx.clear_kv_cache_seq(Some(s as u32), None, None);
                if let Some(slot) = self.slots.get_mut(s) {
                    slot.cached.clear();
                    slot.saved.clear();
                }
            }
            self.release(chosen.iter().map(|c| c.0));
        }
        result
    }

    /// Decode the prompt in the first of `chosen` (after the prefix it already holds), copy
    /// it to the others, and make one sample per slot.
    fn fill(
        &mut self,
        req: &Request,
        tokens: &[LlamaToken],
        chosen: &[(usize, usize)],
        want_hidden: bool,
        grammar: Option<&LlamaSampler>,
    ) -> Result<(Vec<Seq>, usize, usize), ModelError> {
        // This prompt's decode overwrites the context's output: keep the running samples'
        // next-token logits first.
        self.stash_outputs();
        let (primary, common) = chosen.first().copied().unwrap_or((0, 0));
        // A prompt that ends exactly at a saved line boundary needs no decoding at all.
        let resume = self
            .slots
            .get(primary)
            .filter(|_| !want_hidden && common == tokens.len())
            .and_then(|s| s.saved.iter().find(|(l, _)| *l == tokens.len()))
            .map(|(_, v)| v.clone());
        let keep = if resume.is_some() {
            tokens.len()
        } else {
            common.min(tokens.len() - 1)
        };
        self.clock += 1;
        for &(s, _) in chosen.iter().skip(1) {
            self.ctx
                .clear_kv_cache_seq(Some(s as u32), None, None)
                .map_err(decode_err)?;
            if let Some(slot) = self.slots.get_mut(s) {
                slot.cached.clear();
                slot.saved.clear();
            }
        }
        if !self
            .ctx
            .clear_kv_cache_seq(Some(primary as u32), Some(keep as u32), None)
            .map_err(decode_err)?
        {
            return Err(ModelError::Decode("could not truncate the KV cache".into()));
        }
        let vocab = self.model.vocab();
        let mut first_logits = resume;
        let mut first_hidden = None;
        {
            let Some(slot) = self.slots.get_mut(primary) else {
                return Err(ModelError::Decode(format!("no slot {primary}")));
            };
            slot.cached.truncate(keep);
            slot.saved.retain(|(l, _)| *l <= keep);
            slot.busy = true;
            slot.used = self.clock;
        }
        let new = tokens.get(keep..).unwrap_or_default();
        let mut last_idx = 0;
        let mut saves: Vec<(usize, Vec<f32>)> = Vec::new();
        for (c, chunk) in new.chunks(N_BATCH as usize).enumerate() {
            self.batch.clear();
            let mut boundaries = Vec::new();
            for (j, tok) in chunk.iter().enumerate() {
                let pos = keep + c * N_BATCH as usize + j;
                let is_last = pos + 1 == tokens.len();
                let boundary = !is_last && ends_line(&vocab, *tok);
                if boundary {
                    boundaries.push((j as i32, pos + 1));
                }
                // With hidden states on llama.cpp outputs every position anyway (and warns
                // when not asked to): ask for them.
                let output = is_last || boundary || self.embeddings;
                self.batch
                    .add(*tok, pos as i32, &[primary as i32], output)
                    .map_err(decode_err)?;
            }
            self.ctx.decode(&mut self.batch).map_err(decode_err)?;
            last_idx = self.batch.n_tokens() - 1;
            for (idx, len) in boundaries {
                saves.push((len, self.ctx.get_logits_ith(idx).to_vec()));
            }
        }
        if !new.is_empty() {
            let logits = self.ctx.get_logits_ith(last_idx).to_vec();
            if tokens.last().is_some_and(|t| ends_line(&vocab, *t)) {
                saves.push((tokens.len(), logits.clone()));
            }
            if self.embeddings && want_hidden {
                first_hidden = self.ctx.embeddings_ith(last_idx).ok().map(<[f32]>::to_vec);
            }
            first_logits = Some(logits);
        }
        if let Some(slot) = self.slots.get_mut(primary) {
            slot.cached.extend_from_slice(new);
            for (len, l) in saves {
                slot.save(len, l);
            }
        }
        for &(s, _) in chosen.iter().skip(1) {
            self.ctx
                .kv_cache_seq_cp(primary as i32, s as i32, None, None)
                .map_err(decode_err)?;
            if let Some(slot) = self.slots.get_mut(s) {
                slot.cached = tokens.to_vec();
                slot.busy = true;
                slot.used = self.clock;
            }
        }
        let first_logits =
            first_logits.ok_or_else(|| ModelError::Decode("no logits after the prompt".into()))?;
        let seed = req.seed.unwrap_or_else(rand_seed);
        let seqs = chosen
            .iter()
            .enumerate()
            .map(|(i, &(slot, _))| Seq {
                slot,
                picker: Picker::new(req.temperature, req.top_p, seed.wrapping_add(i as u64))
                    .with_grammar(grammar.cloned()),
                text: String::new(),
                pending: Vec::new(),
                tokens: 0,
                pos: tokens.len() as i32,
                logit_idx: 0,
                first: Some((first_logits.clone(), first_hidden.clone())),
                next: None,
                save_next: false,
                done: (req.max_tokens == 0).then_some(FinishReason::Length),
                logprobs: Vec::new(),
            })
            .collect();
        Ok((seqs, tokens.len(), keep))
    }
}
