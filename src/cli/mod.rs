//! Command-line definitions (clap derive) and dispatch to the library.

mod bench_args;
mod commands;
mod common;
mod data;
mod demo;
mod eval;
mod leap;
mod mistakes;
mod pipeline;
mod rectify;
mod serve;
mod strategy_args;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use amend::critic::Spec as CriticSpec;

use amend::model::Spec;
use amend::prompt::Level;
use amend::strategy::Kind;
pub use bench_args::BenchKind;
pub use strategy_args::StrategyArgs;

pub use commands::run;
pub use common::speak;

/// amend: LLM calls that correct themselves.
#[derive(Debug, Parser)]
#[command(name = "amend", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Which model to use and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model spec: `default`, a .gguf path, `hf:OWNER/REPO/FILE.gguf` or `openai:MODEL`.
    #[arg(long, short, default_value = "default", env = "AMEND_MODEL")]
    pub model: Spec,
    /// Base URL of an OpenAI-compatible API (for `openai:` models).
    #[arg(long, env = "AMEND_BASE_URL")]
    pub base_url: Option<String>,
    /// Environment variable holding the API key.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// API calls in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Per-attempt API timeout, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Infrastructure retries per API call (429/5xx/timeouts/connection errors).
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// Initial context size of a local model (grows on demand).
    #[arg(long, default_value_t = 2048)]
    pub ctx: u32,
    /// CPU threads for a local model (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// How a local model's parallel samples hold their KV cache: `split` (one stream each:
    /// faster batches, n× the memory), `unified` (one shared cache), or `auto` (split when
    /// it stays under 2 GiB).
    #[arg(long, value_enum, default_value_t)]
    pub kv: amend::model::KvLayout,
    /// How an API model continues an assistant prefill (backtracking, Wait): `auto` asks the
    /// server once whether it continues a message (`continue-final-message`), else falls back
    /// to `conversation` (the text given back with a request to continue it); `native` for a
    /// server that continues a trailing assistant message; `off` refuses prefills.
    #[arg(long, value_enum, default_value_t)]
    pub prefill: amend::model::PrefillMode,
    /// Decode every prompt from scratch instead of reusing the KV cache of a shared prefix.
    /// A local model's greedy output then depends only on the prompt, not on the calls before
    /// it (llama.cpp's logits depend on how a prompt is split into decode batches, so reuse can
    /// flip a near-tie); multi-turn strategies get slower.
    #[arg(long)]
    pub no_prefix_reuse: bool,
    /// A rectifier file (`amend rectify train`) to apply at every generated token of the
    /// model (not the critics' model); it must have been trained for this model. `default`:
    /// the one shipped with amend for the default model (it lowers held-out NLL but, measured,
    /// makes greedy answers worse: see BENCHMARKS.md).
    #[arg(long)]
    pub rectifier: Option<std::path::PathBuf>,
    /// The rectifier's fusion weight λ (default: the file's; 0 changes nothing).
    #[arg(long, requires = "rectifier")]
    pub lambda: Option<f32>,
}

/// The critics' own model, when it is not the generator's.
#[derive(Debug, Clone, Args)]
pub struct CriticModelArgs {
    /// Model the critics run on (default: the generator's, --model); same spec forms.
    #[arg(long)]
    pub critic_model: Option<Spec>,
    /// Base URL of the critic model's API (default: --base-url).
    #[arg(long)]
    pub critic_base_url: Option<String>,
}

/// Output and logging options shared by commands.
#[derive(Debug, Clone, Args)]
pub struct OutArgs {
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer one question.
    Solve {
        /// The question.
        question: String,
        /// Strategy. Default: the recommended one (the library's `strategy::recommended`,
        /// chosen by measurement: one greedy pass with the exact calculator; see the README).
        /// `--strategy baseline` is one greedy pass without it.
        #[arg(long, value_enum)]
        strategy: Option<Kind>,
        /// Critic used by the strategy (backtrack; rise critic/oracle modes): llm, llm-step,
        /// arith, ground, derive, gold, chain:A,B (e.g. chain:arith,ground).
        #[arg(long)]
        critic: Option<CriticSpec>,
        #[command(flatten)]
        strategy_args: Box<StrategyArgs>,
        #[command(flatten)]
        critic_model: CriticModelArgs,
        /// Token limit of one attempt.
        #[arg(long, default_value_t = amend::run::DEFAULT_MAX_TOKENS)]
        max_tokens: u32,
        /// Directory of prompt templates overriding the built-in ones.
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// Trace file (default: traces/RUN_ID.jsonl).
        #[arg(long)]
        trace: Option<PathBuf>,
        #[command(flatten)]
        principles: PrinciplesArgs,
        #[command(flatten)]
        mistakes: mistakes::MistakesArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Fetch the default model if needed and run the recommended strategy on word problems
    /// drawn by the generator with a fixed seed: each before and after, and the aggregate.
    Demo {
        /// Problems drawn from the generator.
        #[arg(long, default_value_t = 10)]
        problems: usize,
        /// The ladder level they are drawn from (1 to 5).
        #[arg(long, default_value_t = 1)]
        level: u8,
        /// The generator's seed (fixed, so every run shows the same problems).
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Directory of prompt templates overriding the built-in ones.
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// Trace file (default: traces/RUN_ID.jsonl).
        #[arg(long)]
        trace: Option<PathBuf>,
        #[command(flatten)]
        critic_model: CriticModelArgs,
        #[command(flatten)]
        mistakes: mistakes::MistakesArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Model cache and metadata.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Read traces.
    Trace {
        #[command(subcommand)]
        action: TraceAction,
    },
    /// Evaluate a strategy or critic on a dataset (resumable), or compare runs.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Eval {
        #[command(subcommand)]
        action: Option<eval::EvalAction>,
        #[command(flatten)]
        run: Box<eval::EvalRun>,
    },
    /// Make datasets.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// The mistakes store: list, show, stats, export, import, record (while `amend serve`
    /// holds the store, list, show, stats and export read it through the server).
    Mistakes {
        #[command(subcommand)]
        action: mistakes::MistakesAction,
    },
    /// LEAP: learn principles from mistakes, and gate them before use.
    Leap {
        #[command(subcommand)]
        action: leap::LeapAction,
    },
    /// Tool pipelines with critic steps (TOML files; see pipelines/README.md).
    Pipeline {
        #[command(subcommand)]
        action: pipeline::PipelineAction,
    },
    /// An OpenAI-compatible chat server that answers each call through a correction
    /// strategy (`POST /v1/chat/completions`; the README says how to point a client at it).
    Serve(Box<serve::ServeArgs>),
    /// The logit rectifier's data (teacher-forced token records).
    Rectify {
        #[command(subcommand)]
        action: rectify::RectifyAction,
    },
    /// Benchmarks (each against a baseline in the same run).
    Bench {
        #[command(subcommand)]
        which: BenchKind,
    },
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // Parsed once per process; boxing buys nothing.
pub enum ModelAction {
    /// Put the default model (SmolLM2-135M-Instruct) into amend's model cache.
    Fetch {
        #[command(flatten)]
        out: OutArgs,
    },
    /// Show what a model is and can do.
    Info {
        /// Model spec.
        spec: Spec,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        out: OutArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TraceAction {
    /// Summarise a trace file.
    Show {
        /// The trace file.
        file: PathBuf,
        #[command(flatten)]
        out: OutArgs,
    },
}

/// Principles (from `amend leap learn`) to put into the prompt.
#[derive(Debug, Clone, Args)]
pub struct PrinciplesArgs {
    /// Principles file (TOML, from `amend leap learn`), put before the worked examples.
    #[arg(long)]
    pub principles: Option<PathBuf>,
    /// Which of its principles: high (the condensed list) or low (one per mistake).
    #[arg(long, value_enum, default_value_t)]
    pub principles_level: Level,
}

impl PrinciplesArgs {
    /// The principle texts, if a file was given.
    pub fn texts(&self) -> anyhow::Result<Vec<String>> {
        Ok(match &self.principles {
            Some(p) => amend::prompt::PrincipleSet::load(p)?.texts(self.principles_level),
            None => Vec::new(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum DataAction {
    /// ProcessBench-format critic test items: one planted error in half of the correct GSM8K
    /// solutions (label = the planted step), the other half untouched (label -1).
    Inject {
        /// GSM8K-format JSONL with correct solutions.
        #[arg(long)]
        data: PathBuf,
        /// Output JSON file (ProcessBench format).
        #[arg(long)]
        out: PathBuf,
        /// Items to write.
        #[arg(long)]
        limit: Option<usize>,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Orders in prose with their fields as gold, one JSON object a line (`text`, `gold`): the
    /// data of pipelines/json-extract.toml.
    Orders {
        /// Number of orders.
        #[arg(long, default_value_t = 200)]
        n: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output JSONL file.
        #[arg(long)]
        out: PathBuf,
    },
    /// The chance floor of GSM8K-format data: the accuracy of answering each item with a
    /// number chosen uniformly among the numbers its question mentions.
    Floor {
        /// GSM8K-format JSONL.
        #[arg(long)]
        data: PathBuf,
        /// Keep the first N items.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Synthetic multi-step arithmetic word problems in GSM8K format.
    Synth {
        /// Step counts, e.g. `1..3` or `2` (the original generator; ignored with --level).
        #[arg(long, default_value = "1..3")]
        steps: String,
        /// A level of the difficulty ladder, 1 (one everyday operation, numbers below 20) to 5
        /// (up to seven operations, numbers below 10,000, irrelevant facts).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        level: Option<u8>,
        /// Number of problems.
        #[arg(long, default_value_t = 100)]
        n: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output JSONL file.
        #[arg(long)]
        out: PathBuf,
    },
}
