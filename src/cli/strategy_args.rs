//! The flags of the correction strategies, turned into the library's options.

use clap::Args;

use amend::critic::Spec as CriticSpec;
use amend::strategy::{Accept, Rank, ResampleUntil, RiseMode, Select};

/// The library's strategy defaults: the flags' defaults are these, so the CLI and a library
/// caller get the same.
fn defaults() -> amend::strategy::Options {
    amend::strategy::Options::default()
}

/// Settings of the correction strategies.
#[derive(Debug, Clone, Args)]
pub struct StrategyArgs {
    /// Self-consistency: samples.
    #[arg(long, default_value_t = defaults().samples)]
    pub samples: u32,
    /// Self-consistency and search: sampling temperature.
    #[arg(long, default_value_t = defaults().temperature)]
    pub temperature: f32,
    /// Self-consistency: `majority` of all samples; `verified`: the majority of the samples
    /// --verifier (default: the critic) does not flag (of all when it flags every one);
    /// `anchored`: the greedy pass, and the verified majority of samples only when it is flagged.
    #[arg(long, value_enum, default_value_t)]
    pub select: Select,
    /// RISE: turns.
    #[arg(long, default_value_t = defaults().turns)]
    pub turns: usize,
    /// RISE: previous attempts kept in the conversation.
    #[arg(long, default_value_t = defaults().window)]
    pub window: usize,
    /// RISE: oracle, majority or critic.
    #[arg(long, value_enum, default_value_t = defaults().rise_mode)]
    pub rise_mode: RiseMode,
    /// Cap on the tokens (decoded prompt + generated) one solve may spend.
    #[arg(long)]
    pub max_tokens_total: Option<u64>,
    /// Cap on the model calls one solve may make.
    #[arg(long)]
    pub max_calls: Option<u64>,
    /// Cap on the wall-clock seconds one solve may take (a call still running is cancelled;
    /// the best answer so far is kept).
    #[arg(long)]
    pub deadline: Option<f64>,
    /// Critiques an `llm` critic draws and votes over.
    #[arg(long, default_value_t = defaults().critic_votes)]
    pub critic_votes: u32,
    /// Backtrack: most backtracks per solve.
    #[arg(long, default_value_t = defaults().max_backtracks)]
    pub max_backtracks: usize,
    /// Backtrack: `differs` (resample the wrong step until it differs) or `accepted` (until
    /// the critic accepts it).
    #[arg(long, value_enum, default_value_t)]
    pub resample_until: ResampleUntil,
    /// Backtrack: `verified` keeps a revision only when --verifier (default: the critic) does
    /// not flag it; `always` keeps every revision. The default is `verified`: on 200 synthetic
    /// problems with the `arith` critic, `always` turned 4 right answers wrong and fixed 1,
    /// `verified` turned 1 wrong and fixed the same 1, at the same token cost (BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t)]
    pub accept: Accept,
    /// The verifier of backtrack's `--accept verified`, of self-consistency's `--select
    /// verified` and of the search (default: the critic; the search's without one:
    /// chain:arith,ground).
    #[arg(long)]
    pub verifier: Option<CriticSpec>,
    /// Every strategy: the exact calculator in the decode loop (a wrong `expr = n` is replaced
    /// by the exact value, and the model goes on from it).
    #[arg(long)]
    pub calculator: bool,
    /// Search: candidates sampled per step.
    #[arg(long = "search-k", default_value_t = defaults().search.k)]
    pub search_k: u32,
    /// Search: paths kept after each step.
    #[arg(long, default_value_t = defaults().search.beam)]
    pub beam: usize,
    /// Search: rank candidates by `logprob` (mean token log-probability) or `rollout`
    /// (agreement of greedy rollouts, then log-probability).
    #[arg(long, value_enum, default_value_t = defaults().search.rank)]
    pub rank: Rank,
    /// Search: most steps per solution.
    #[arg(long, default_value_t = defaults().search.max_steps)]
    pub max_steps: usize,
    /// Search: the greedy next line is one of the K candidates (the other K - 1 sampled).
    #[arg(long = "search-greedy")]
    pub search_greedy: bool,
    /// Backtrack: write the answer a line at a time, each line checked by the critic before
    /// the next (commit points; `--max-backtracks` caps the resample rounds of a solve).
    #[arg(long)]
    pub stepwise: bool,
    /// Step-wise backtracking: a line still flagged when the budget ends is kept and reported
    /// unverified (`send`), or ends the answer (`stop`).
    #[arg(long, value_enum, default_value_t)]
    pub unverified: amend::strategy::Unverified,
}

impl StrategyArgs {
    /// The library's strategy options (defaults are the library's: the flags only override).
    pub fn options(&self, critic: Option<CriticSpec>) -> anyhow::Result<amend::strategy::Options> {
        let deadline = match self.deadline {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                anyhow::bail!("--deadline must be a positive number of seconds, got {s}")
            }
            s => s.map(std::time::Duration::from_secs_f64),
        };
        Ok(amend::strategy::Options {
            samples: self.samples,
            temperature: self.temperature,
            turns: self.turns,
            window: self.window,
            rise_mode: self.rise_mode,
            critic,
            max_backtracks: self.max_backtracks,
            critic_votes: self.critic_votes.max(1),
            resample_until: self.resample_until,
            accept: self.accept,
            verifier: self.verifier.clone(),
            select: self.select,
            calculator: self.calculator,
            search: amend::strategy::SearchOptions {
                k: self.search_k,
                beam: self.beam,
                rank: self.rank,
                max_steps: self.max_steps,
                temperature: self.temperature,
                greedy: self.search_greedy || defaults().search.greedy,
            },
            stepwise: self.stepwise,
            unverified: self.unverified,
            budget: amend::run::Budget {
                max_tokens_total: self.max_tokens_total,
                max_calls: self.max_calls,
                deadline,
            },
        })
    }
}
