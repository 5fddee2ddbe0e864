//! Verifier-guided step search: the solution is written one step (line) at a time. At each
//! step every kept path asks for `k` sampled next lines (temperature `temperature`, one
//! batched request continuing the path as an assistant prefill); the verifier (a critic:
//! by default the model-free chain `arith,ground`) judges every distinct candidate in the
//! context of the path, the flagged ones are dropped (each one a located mistake, recorded),
//! and the accepted ones are ranked ([`Rank`]); the best `beam` paths go on. A path ends with
//! a line that states the final answer ("The answer is …", `####`, `\boxed{}`), at the end of
//! generation, at the token limit or after `max_steps` steps; the best finished path is the
//! solution.
//!
//! When the verifier flags every candidate of a path, `k` more are drawn at temperature 1;
//! when it flags those too, the best-ranked candidate is taken anyway and the path is marked
//! *forced*: a critic reports only the first mistake of a text, so the rest of that path is
//! ranked but no longer verified (the trace says so).
//!
//! Only suffixes are decoded: a candidate's request is its path as a prefill, so on the local
//! backend the problem and the accepted steps are in the KV cache, and the chosen candidate is
//! continued in the slot that sampled it (see `model::llama::engine`). A greedy candidate
//! (option `greedy`, off by default) is a second request on the same path, which may take over
//! the slot of one of the candidates. The search's calls record how many prompt tokens each
//! decoded; the tests hold that to the newline that ends the chosen line.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::record::{note_mistake, Found};
use super::{finish, judge, Attempt, Finished, Solution, Strategy, StrategyError};
use crate::answer::{self, Source};
use crate::critic::Critic;
use crate::model::{FinishReason, Request, Sample};
use crate::run::{Context, Ledger, Located, OptionError, Problem};
use crate::steps;

/// Most tokens of one step (a line).
pub const STEP_TOKENS: u32 = 128;

/// Step search: how the candidates of each step are ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rank {
    /// By the mean log-probability of the path's tokens (needs a backend with log-probs).
    #[default]
    Logprob,
    /// By how many candidates' greedy rollouts (one to the end per accepted candidate) reach
    /// the answer this candidate's rollout reaches, then by log-probability.
    Rollout,
}

/// Settings of the step search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchOptions {
    /// Candidates sampled per step and path.
    pub k: u32,
    /// Paths kept after each step.
    pub beam: usize,
    /// How candidates are ranked.
    pub rank: Rank,
    /// Most steps per path.
    pub max_steps: usize,
    /// Sampling temperature of the candidates.
    pub temperature: f32,
    /// The greedy next line is one of the `k` candidates (the other `k - 1` sampled), so the
    /// search keeps to the greedy path wherever the verifier accepts it and the ranking
    /// prefers it. It costs one more call per step, and the greedy line's KV slot may be
    /// taken over by the sampled ones (its tokens are then decoded again when it is chosen).
    pub greedy: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            k: 4,
            beam: 1,
            rank: Rank::Logprob,
            max_steps: 16,
            temperature: 0.7,
            greedy: false,
        }
    }
}

impl SearchOptions {
    pub(super) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The step search (see the [module docs](self)).
pub struct Search {
    /// Judges each candidate step in the context of its path.
    pub verifier: Box<dyn Critic>,
    /// K, the beam, the ranking, the step limit, the temperature.
    pub options: SearchOptions,
}

/// A partial solution.
#[derive(Debug, Clone, Default)]
struct Path {
    /// The text so far (what follows the solve prompt).
    text: String,
    /// Sum of its tokens' log-probs, and how many tokens.
    logprob: f64,
    tokens: u32,
    /// It has ended (a final-answer line, end of generation, a limit).
    done: bool,
    /// A step was taken although the verifier flagged it.
    forced: bool,
    /// Votes of its latest step's rollout ([`Rank::Rollout`]).
    votes: usize,
}

impl Path {
    /// Better paths first: more rollout votes, then higher mean log-prob.
    fn best_first(a: &Path, b: &Path) -> std::cmp::Ordering {
        let (va, la) = a.score();
        let (vb, lb) = b.score();
        vb.cmp(&va).then(lb.total_cmp(&la))
    }

    fn score(&self) -> (usize, f64) {
        let mean = match self.tokens {
            0 => 0.0,
            n => self.logprob / f64::from(n),
        };
        (self.votes, mean)
    }
}

/// One candidate next line of a path.
struct Cand {
    text: String,
    finish: FinishReason,
    logprob: f64,
    tokens: u32,
    /// Copies drawn (identical lines are one candidate).
    copies: u32,
}

/// Does this line state the final answer (not just end in a number)?
pub(super) fn states_answer(line: &str) -> bool {
    matches!(
        answer::extract(line),
        Some((_, Source::Hashes | Source::Boxed | Source::Phrase))
    )
}

fn add_samples(cands: &mut Vec<Cand>, samples: Vec<Sample>) {
    for s in samples {
        let lp: f64 = s
            .logprobs
            .as_ref()
            .map(|l| l.iter().map(|t| f64::from(t.logprob)).sum())
            .unwrap_or(0.0);
        match cands.iter_mut().find(|c| c.text.trim() == s.text.trim()) {
            Some(c) => c.copies += 1,
            None => cands.push(Cand {
                text: s.text,
                finish: s.finish,
                logprob: lp,
                tokens: s.tokens,
                copies: 1,
            }),
        }
    }
}

impl Search {
    /// The request of the next line of `path`.
    fn step_request(
        &self,
        cx: &Context,
        problem: &Problem<'_>,
        path: &Path,
    ) -> Result<Request, StrategyError> {
        let left = cx.max_tokens().saturating_sub(path.tokens).min(STEP_TOKENS);
        let req = cx
            .solve_request(problem)?
            .with_stop(["\n"])
            .with_max_tokens(left.max(1))
            .with_logprobs(cx.model().capabilities().logprobs);
        Ok(match path.text.is_empty() {
            true => req,
            false => req.with_prefill(path.text.clone()),
        })
    }

    /// `base` sampled `n` times: at the search's temperature in round 0, at T = 1 after.
    fn sampled(
        &self,
        base: &Request,
        seed: u64,
        depth: usize,
        path: usize,
        round: u32,
        n: u32,
    ) -> Request {
        let o = self.options;
        base.clone()
            .with_sampling(if round == 0 { o.temperature } else { 1.0 }, 1.0)
            .with_seed(
                seed.wrapping_add(
                    (depth as u64) * 7919 + (path as u64) * 104_729 + u64::from(round),
                ),
            )
            .with_n(n)
    }

    /// The greedy rollout of `text` to the end: its answer.
    async fn rollout(
        &self,
        cx: &Context,
        ledger: &mut Ledger,
        problem: &Problem<'_>,
        text: &str,
        tokens: u32,
    ) -> Result<Option<Option<String>>, StrategyError> {
        let left = cx.max_tokens().saturating_sub(tokens).max(1);
        let req = cx
            .solve_request(problem)?
            .with_prefill(text.to_string())
            .with_max_tokens(left);
        Ok(cx
            .call(ledger, req)
            .await?
            .map(|r| answer::extract_str(&format!("{text}{}", r.text()))))
    }
}

#[async_trait]
impl Strategy for Search {
    fn name(&self) -> &str {
        "search"
    }

    fn first_is_greedy(&self) -> bool {
        false
    }

    async fn solve(&self, cx: &Context, problem: &Problem<'_>) -> Result<Solution, StrategyError> {
        let o = self.options;
        if o.rank == Rank::Logprob && !cx.model().capabilities().logprobs {
            return Err(OptionError::new(
                "rank",
                "= logprob needs a model with log-probabilities; use rank = rollout",
            )
            .into());
        }
        let mut ledger = Ledger::new(cx.budget());
        let mut located = Vec::new();
        let mut budget_stop = None;
        let mut paths = vec![Path::default()];
        let mut finished: Vec<Path> = Vec::new();
        let seed = super::problem_seed(problem);
        let mut forced_steps = 0usize;
        'steps: for depth in 0..o.max_steps {
            let mut children: Vec<Path> = Vec::new();
            let mut events = Vec::new();
            for (pi, path) in paths.iter().enumerate() {
                let base = self.step_request(cx, problem, path)?;
                let mut cands = Vec::new();
                let mut tries = 0u32;
                let mut kept: Vec<Path> = Vec::new();
                let mut flagged: Vec<(Path, String)> = Vec::new();
                let mut seen = 0usize;
                let mut judged = Vec::new();
                // k samples (the greedy line and k - 1 samples, with `greedy`); k more at
                // T = 1 when every one is flagged.
                if o.greedy {
                    let Some(r) = cx.call(&mut ledger, base.clone()).await? else {
                        budget_stop = ledger.stop(format!("step {depth} not sampled"));
                        break 'steps;
                    };
                    add_samples(&mut cands, r.samples);
                    tries += 1;
                }
                for round in 0..2u32 {
                    let n = match (o.greedy, round) {
                        (true, 0) => o.k.saturating_sub(1),
                        _ => o.k,
                    };
                    if n > 0 {
                        let req = self.sampled(&base, seed, depth, pi, round, n);
                        let Some(r) = cx.call(&mut ledger, req).await? else {
                            budget_stop = ledger.stop(format!("step {depth} not sampled"));
                            break 'steps;
                        };
                        add_samples(&mut cands, r.samples);
                        tries += 1;
                    }
                    for c in cands.iter().skip(seen) {
                        let child = Path {
                            text: format!(
                                "{}{}{}",
                                path.text,
                                c.text,
                                if c.finish == FinishReason::Stop {
                                    "\n"
                                } else {
                                    ""
                                }
                            ),
                            logprob: path.logprob + c.logprob,
                            tokens: path.tokens + c.tokens,
                            done: c.finish != FinishReason::Stop
                                || states_answer(&c.text)
                                || depth + 1 == o.max_steps,
                            forced: path.forced,
                            votes: 0,
                        };
                        if c.text.trim().is_empty() || path.forced {
                            judged.push(json!({"text": c.text, "copies": c.copies, "logprob": c.logprob, "kept": true, "why": if path.forced {"path forced"} else {"blank line"}}));
                            kept.push(child);
                            continue;
                        }
                        let all = steps::split(&child.text);
                        let Some(v) =
                            judge(cx, &mut ledger, self.verifier.as_ref(), problem, &all, None)
                                .await?
                        else {
                            budget_stop = ledger.stop(format!("step {depth} not verified"));
                            break 'steps;
                        };
                        match v.located() {
                            None => {
                                judged.push(json!({"text": c.text, "copies": c.copies, "logprob": c.logprob, "kept": true}));
                                kept.push(child);
                            }
                            Some(k) => {
                                judged.push(json!({"text": c.text, "copies": c.copies, "logprob": c.logprob, "kept": false, "why": v.rationale}));
                                let step = all.get(k).cloned().unwrap_or_default();
                                located.push(Located::new(
                                    k,
                                    &step,
                                    self.verifier.name(),
                                    &v.rationale,
                                ));
                                note_mistake(
                                    cx,
                                    problem,
                                    &ledger,
                                    Found {
                                        attempt: &child.text,
                                        steps: all,
                                        step: k,
                                        critic: self.verifier.name(),
                                        rationale: &v.rationale,
                                        revised: None,
                                        correction: None,
                                        kept: false,
                                        detail: json!({"search_step": depth, "dropped": true}),
                                    },
                                )
                                .await;
                                flagged.push((child, v.rationale));
                            }
                        }
                    }
                    seen = cands.len();
                    if !kept.is_empty() {
                        break;
                    }
                }
                if kept.is_empty() {
                    // Every candidate flagged: the best of them goes on, unverified from here.
                    if let Some((mut best, _)) = flagged
                        .into_iter()
                        .max_by(|a, b| a.0.score().1.total_cmp(&b.0.score().1))
                    {
                        best.forced = true;
                        forced_steps += 1;
                        kept.push(best);
                    }
                }
                events.push(json!({"path": pi, "calls": tries, "candidates": judged}));
                children.extend(kept);
            }
            if o.rank == Rank::Rollout && children.len() > 1 {
                let mut answers = Vec::with_capacity(children.len());
                for c in &children {
                    let a = match c.done {
                        true => Some(answer::extract_str(&c.text)),
                        false => {
                            self.rollout(cx, &mut ledger, problem, &c.text, c.tokens)
                                .await?
                        }
                    };
                    let Some(a) = a else {
                        budget_stop = ledger.stop(format!("rollouts of step {depth} cut short"));
                        break;
                    };
                    answers.push(a);
                }
                for (i, c) in children.iter_mut().enumerate() {
                    let mine = answers.get(i).cloned().flatten();
                    c.votes = answers
                        .iter()
                        .filter(|a| mine.is_some() && **a == mine)
                        .count();
                }
            }
            children.sort_by(Path::best_first);
            let (done, live): (Vec<Path>, Vec<Path>) = children.into_iter().partition(|p| p.done);
            finished.extend(done);
            let room = o.beam.saturating_sub(finished.len());
            paths = live.into_iter().take(room).collect();
            cx.record(
                "search_step",
                json!({"step": depth, "paths": events, "kept": paths.iter().map(|p| p.text.clone()).collect::<Vec<_>>(), "finished": finished.len()}),
            );
            if paths.is_empty() || budget_stop.is_some() {
                break;
            }
        }
        finished.sort_by(Path::best_first);
        let best = finished
            .into_iter()
            .next()
            .or_else(|| paths.into_iter().next());
        let attempts: Vec<Attempt> = best
            .iter()
            .map(|p| Attempt::new(p.text.trim_end()))
            .collect();
        let answer = attempts.first().and_then(|a| a.answer.clone());
        Ok(finish(
            cx,
            self.name(),
            &ledger,
            Finished {
                attempts,
                answer,
                budget_stop,
                located,
                detail: json!({"verifier": self.verifier.name(), "options": o, "forced_steps": forced_steps, "forced": best.as_ref().is_some_and(|p| p.forced)}),
                survivors: None,
            },
        ))
    }
}
