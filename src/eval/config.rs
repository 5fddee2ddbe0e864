//! What defines an evaluation run ([`Config`]), and the claim on its output directory: a
//! rerun with another configuration or another model is refused; a directory written before
//! model identities existed (its `config.json` names the model by its spec) is taken as the
//! same model when the spec is the same, and its `config.json` is rewritten with the identity.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EvalError;
use crate::critic::Spec as CriticSpec;
use crate::data::Task;
use crate::model::{ModelId, Spec};
use crate::prompt::{Format, Level};
use crate::strategy::{self, Kind};

/// Everything that defines an evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Task format.
    pub task: Task,
    /// Dataset file.
    pub data: PathBuf,
    /// Strategy.
    pub strategy: Kind,
    /// Critic (ProcessBench: the critic evaluated, `llm` unless set; correction strategies
    /// that use one).
    pub critic: Option<CriticSpec>,
    /// The model spec as given (for information: the run's identity uses the loaded model's
    /// [`ModelId`]).
    pub model: Spec,
    /// The critic's model spec, when the critics run on another model than the generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic_model: Option<Spec>,
    /// Output directory.
    pub out: PathBuf,
    /// Items in flight at once.
    pub concurrency: usize,
    /// Keep the first N selected items.
    pub limit: Option<usize>,
    /// Skip the first N items (after shuffling).
    pub offset: usize,
    /// Shuffle with this seed before offset/limit.
    pub shuffle: Option<u64>,
    /// Skip malformed records instead of stopping.
    pub skip_bad: bool,
    /// Worked examples before each question.
    pub shots: usize,
    /// Where worked examples come from (same format as the data).
    pub fewshot: Option<PathBuf>,
    /// Chat or plain-completion prompting.
    pub format: Format,
    /// Token limit of one attempt.
    pub max_tokens: u32,
    /// Strategy settings (samples, turns, window, mode, budget).
    #[serde(default)]
    pub options: strategy::Options,
    /// Principles file put into the prompt (LEAP).
    #[serde(default)]
    pub principles: Option<PathBuf>,
    /// Which of its principles.
    #[serde(default)]
    pub principles_level: Level,
    /// Show a progress bar on stderr.
    #[serde(skip)]
    pub progress: bool,
    /// Whether the model reuses the KV cache of a shared prompt prefix (`false`: every prompt
    /// is decoded from scratch, and an item's output does not depend on the items before it;
    /// see `Context::with_prefix_reuse`). Part of the run's identity: a resumed run keeps its
    /// setting.
    #[serde(default = "reuse_default")]
    pub prefix_reuse: bool,
    /// A pipeline file run on each item instead of the strategy (its name and content are
    /// part of the run's identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PathBuf>,
    /// A rectifier file installed on the model, and the λ it runs at (`None`: the file's);
    /// part of the run's identity (the file's content hash and λ). The caller installs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectifier: Option<(PathBuf, Option<f32>)>,
    /// How the model was loaded to continue prefills (`model::PrefillMode`); part of the run's
    /// identity when it is not the default `auto`. The caller loads the model with it.
    #[serde(default)]
    pub prefill: crate::model::PrefillMode,
}

fn reuse_default() -> bool {
    true
}

impl Config {
    /// A run of `strategy` on `task` data at `data` with `model`, into `out`, every other
    /// setting at its default (one item at a time, every item, zero-shot chat, 384 tokens per
    /// attempt, default strategy options, prefix reuse on).
    pub fn new(
        task: Task,
        data: impl Into<PathBuf>,
        strategy: Kind,
        model: Spec,
        out: impl Into<PathBuf>,
    ) -> Self {
        Self {
            task,
            data: data.into(),
            strategy,
            critic: None,
            model,
            critic_model: None,
            out: out.into(),
            concurrency: 1,
            limit: None,
            offset: 0,
            shuffle: None,
            skip_bad: false,
            shots: 0,
            fewshot: None,
            format: Format::Chat,
            max_tokens: crate::run::DEFAULT_MAX_TOKENS,
            options: strategy::Options::default(),
            principles: None,
            principles_level: Level::default(),
            progress: false,
            prefix_reuse: true,
            prefill: crate::model::PrefillMode::Auto,
            pipeline: None,
            rectifier: None,
        }
    }

    /// The strategy and options of a run whose caller named no strategy: on GSM8K-style
    /// problems the recommended strategy ([`strategy::recommended`]) with its settings filled
    /// into `options`; on the other tasks (whose items are judged, or are not arithmetic) one
    /// greedy pass with `options` as they are.
    pub fn default_strategy(task: Task, options: strategy::Options) -> (Kind, strategy::Options) {
        match task {
            Task::Gsm8k => strategy::recommended().apply(options),
            Task::Processbench | Task::Bbmistake => (Kind::Baseline, options),
        }
    }

    /// The critic a run uses: the one set, else `llm` for ProcessBench.
    pub fn effective_critic(&self) -> Option<CriticSpec> {
        match (self.task, &self.critic) {
            (Task::Processbench, None) => Some(CriticSpec::Llm),
            (_, c) => c.clone(),
        }
    }

    /// What a resumed run must share with the run it resumes: everything that changes an
    /// item's result, with the models named by identity.
    fn identity(&self, model: &ModelId, critic_model: Option<&ModelId>) -> serde_json::Value {
        let mut id = serde_json::json!({
            "task": self.task, "data": self.data, "strategy": self.strategy, "critic": self.critic,
            "model": model.key, "shots": self.shots, "fewshot": self.fewshot, "format": self.format,
            "max_tokens": self.max_tokens, "shuffle": self.shuffle,
            "options": self.options.relevant_to(self.strategy),
            "principles": self.principles, "principles_level": self.principles_level,
        });
        // Only recorded when they differ from the defaults, so directories written before the
        // settings existed still match.
        if let Some(o) = id.as_object_mut() {
            if !self.prefix_reuse {
                o.insert("prefix_reuse".into(), serde_json::Value::Bool(false));
            }
            if self.prefill != crate::model::PrefillMode::Auto {
                o.insert(
                    "prefill".into(),
                    serde_json::to_value(self.prefill).unwrap_or_default(),
                );
            }
            if let Some(p) = &self.pipeline {
                use sha2::Digest;
                let content = std::fs::read(p).unwrap_or_default();
                let hash = sha2::Sha256::digest(&content);
                let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
                o.insert(
                    "pipeline".into(),
                    serde_json::json!({"file": p, "sha256": hex}),
                );
            }
            if let Some((p, lambda)) = &self.rectifier {
                use sha2::Digest;
                let content = crate::model::shipped::rectifier_text(p).unwrap_or_default();
                let hash = sha2::Sha256::digest(&content);
                let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
                o.insert(
                    "rectifier".into(),
                    serde_json::json!({"file": p, "sha256": hex, "lambda": lambda}),
                );
            }
            if let Some(c) = critic_model.filter(|c| c.key != model.key) {
                o.insert(
                    "critic_model".into(),
                    serde_json::Value::String(c.key.clone()),
                );
            }
        }
        id
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The `config.json` of the run in `dir` as JSON, when it can be read (for looks at a
/// finished run that do without it: labels, the selection rule).
pub(super) fn stored_config(dir: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Claim the output directory for this run: refuse one that holds another run (see the module
/// docs for how older directories are read), then write `config.json`.
pub(super) fn check_config(
    cfg: &Config,
    model: &ModelId,
    critic_model: Option<&ModelId>,
) -> Result<(), EvalError> {
    let path = cfg.out.join("config.json");
    let new = cfg.identity(model, critic_model);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| io_err(&path, e))?;
        let was = stored_identity(&doc, cfg, model);
        if was.as_ref() != Some(&new) {
            return Err(EvalError::ConfigMismatch {
                out: cfg.out.clone(),
                was: doc.get("identity").cloned().unwrap_or_default().to_string(),
                now: new.to_string(),
            });
        }
    }
    let doc = serde_json::json!({
        "identity": new,
        "config": cfg,
        "model_id": model,
        "critic_model_id": critic_model,
    });
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&doc).map_err(|e| io_err(&path, e))?,
    )
    .map_err(|e| io_err(&path, e))
}

/// The identity of the run stored in `doc` (a `config.json`), recomputed by this version's
/// rules; `None` when it cannot be read. A model named by its spec (older directories) counts
/// as `model` when the spec is the one given now.
fn stored_identity(
    doc: &serde_json::Value,
    now: &Config,
    model: &ModelId,
) -> Option<serde_json::Value> {
    let old: Config = serde_json::from_value(doc.get("config")?.clone()).ok()?;
    let stored_key = doc.get("identity")?.get("model")?.as_str()?;
    let old_model = if ModelId::is_key(stored_key) {
        ModelId {
            key: stored_key.to_string(),
            source: String::new(),
        }
    } else if old.model == now.model {
        model.clone()
    } else {
        ModelId {
            key: stored_key.to_string(),
            source: String::new(),
        }
    };
    let old_critic = doc
        .get("identity")?
        .get("critic_model")
        .and_then(|v| v.as_str())
        .map(|k| ModelId {
            key: k.to_string(),
            source: String::new(),
        });
    Some(old.identity(&old_model, old_critic.as_ref()))
}
