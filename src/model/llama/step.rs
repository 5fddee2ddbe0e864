//! One step of the scheduler ([`super::engine`]): drop requests whose callers went away,
//! choose the next token of every running sample, answer the requests that finished, and decode
//! the chosen tokens of all the others together, in one batch.

use super::engine::{decode_err, Active, Engine};
use super::sample::{pick_all, Job, Picked};
use crate::model::{FinishReason, ModelError, Prefill, Response, Sample, TokenLogprob, Usage};

impl Engine<'_> {
    /// Run one step. A failed decode fails every running request (its state is not trusted
    /// again: every cache is dropped).
    pub(super) fn step(&mut self) {
        self.drop_cancelled();
        if let Err(e) = self.choose() {
            self.fail_all(e);
            return;
        }
        self.finish_done();
        if let Err(e) = self.decode_chosen() {
            self.fail_all(e);
        }
    }

    fn drop_cancelled(&mut self) {
        let (gone, keep): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|a| a.task.reply.is_closed());
        self.active = keep;
        for a in gone {
            tracing::debug!("a caller went away: its slots are freed");
            self.release(a.seqs.iter().map(|s| s.slot));
        }
    }

    fn fail_all(&mut self, e: ModelError) {
        let msg = e.to_string();
        for a in std::mem::take(&mut self.active) {
            self.release(a.seqs.iter().map(|s| s.slot));
            let _ = a.task.reply.send(Err(ModelError::Decode(msg.clone())));
        }
        self.reset();
    }

    /// Choose the next token of every running sample, from the last decode's output (or the
    /// logits kept at admission), and apply end-of-generation, stop strings and limits.
    fn choose(&mut self) -> Result<(), ModelError> {
        let vocab = self.model.vocab();
        let ctx = &self.ctx;
        let embeddings = self.embeddings;
        for a in &mut self.active {
            let req = &a.task.req;
            let hook = req.hook.as_ref();
            let mut saves: Vec<(usize, usize, Vec<f32>)> = Vec::new();
            let mut jobs: Vec<Job<'_>> = Vec::new();
            for (i, seq) in a.seqs.iter_mut().enumerate() {
                seq.next = None;
                if seq.done.is_some() {
                    continue;
                }
                let (logits, hidden): (&[f32], Option<&[f32]>) = match &seq.first {
                    Some((l, h)) => (l.as_slice(), h.as_deref()),
                    None => (
                        ctx.get_logits_ith(seq.logit_idx),
                        if embeddings && hook.is_some() {
                            ctx.embeddings_ith(seq.logit_idx).ok()
                        } else {
                            None
                        },
                    ),
                };
                if seq.save_next {
                    saves.push((seq.slot, seq.pos as usize, logits.to_vec()));
                }
                jobs.push(Job {
                    logits,
                    hidden,
                    text: &seq.text,
                    picker: &mut seq.picker,
                    sample: i,
                    index: seq.tokens as usize,
                    out: None,
                });
            }
            pick_all(&mut jobs, hook, req.logprobs);
            let picked: Vec<(usize, Option<Picked>)> =
                jobs.into_iter().map(|j| (j.sample, j.out)).collect();
            for (slot, len, logits) in saves {
                if let Some(s) = self.slots.get_mut(slot) {
                    s.save(len, logits);
                }
            }
            for (i, p) in picked {
                let Some(seq) = a.seqs.get_mut(i) else {
                    return Err(ModelError::Decode(format!("no sample {i}")));
                };
                seq.first = None;
                seq.save_next = false;
                let Some(Picked { token, logprob }) = p else {
                    return Err(ModelError::Decode("the sampler selected no token".into()));
                };
                seq.tokens += 1;
                if vocab.is_eog(token) {
                    seq.done = Some(FinishReason::Eos);
                    continue;
                }
                let piece = vocab.token_to_piece(token, false, None);
                let before = seq.text.len();
                seq.push_bytes(&piece);
                if let Some(lp) = logprob {
                    seq.logprobs.push(TokenLogprob {
                        token: String::from_utf8_lossy(&piece).into_owned(),
                        logprob: lp,
                    });
                }
                let longest = req.stop.iter().map(String::len).max().unwrap_or(0);
                let from = before.saturating_sub(longest);
                let from = (0..=from)
                    .rev()
                    .find(|&b| seq.text.is_char_boundary(b))
                    .unwrap_or(0);
                if let Some(cut) = req
                    .stop
                    .iter()
                    .filter_map(|s| seq.text.get(from..).and_then(|t| t.find(s.as_str())))
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
                seq.next = Some(token);
                seq.save_next = piece.ends_with(b"\n");
            }
        }
        Ok(())
    }

    /// Answer every request all of whose samples are done, and free its slots.
    fn finish_done(&mut self) {
        let (done, running): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|a| a.seqs.iter().all(|s| s.done.is_some()));
        self.active = running;
        for a in done {
            self.release(a.seqs.iter().map(|s| s.slot));
            let req = &a.task.req;
            let generated: u64 = a.seqs.iter().map(|s| u64::from(s.tokens)).sum();
            let samples = a
                .seqs
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
                prompt_tokens: a.prompt_tokens as u64,
                generated_tokens: generated,
                reused_tokens: a.reused as u64,
                calls: 1,
                infra_retries: 0,
            };
            let _ = a.task.reply.send(Ok(Response {
                samples,
                usage,
                wall: a.task.start.elapsed(),
                prefill: req.prefill.as_ref().map(|_| Prefill::Native),
            }));
        }
    }

    /// Decode the chosen tokens of every running sample in one batch.
    fn decode_chosen(&mut self) -> Result<(), ModelError> {
        self.batch.clear();
        // In slot order: llama.cpp forms a micro-batch of one-stream-per-sequence contexts
        // from sequences with increasing, consecutive ids only (see `Engine::choose_slots`).
        let mut order: Vec<(usize, usize, usize)> = Vec::new();
        for (ai, a) in self.active.iter().enumerate() {
            for (si, seq) in a.seqs.iter().enumerate() {
                if seq.next.is_some() {
                    order.push((seq.slot, ai, si));
                }
            }
        }
        order.sort_unstable();
        for (_, ai, si) in order {
            let Some(seq) = self.active.get_mut(ai).and_then(|a| a.seqs.get_mut(si)) else {
                continue;
            };
            let Some(token) = seq.next else { continue };
            self.batch
                .add(token, seq.pos, &[seq.slot as i32], true)
                .map_err(decode_err)?;
            seq.logit_idx = self.batch.n_tokens() - 1;
            seq.pos += 1;
            if let Some(slot) = self.slots.get_mut(seq.slot) {
                slot.cached.push(token);
            }
        }
        if self.batch.n_tokens() == 0 {
            return Ok(());
        }
        self.ctx.decode(&mut self.batch).map_err(decode_err)
    }
}
