//! `amend rectify`: the logit rectifier's data.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;

use super::mistakes::StoreArgs;
use super::ModelArgs;
use amend::rectify::objective::Objective;
use amend::rectify::train::{Scope, TrainOptions};
use amend::rectify::{self, CollectOptions};

/// `amend rectify` subcommands.
#[derive(Debug, Subcommand)]
pub enum RectifyAction {
    /// Push the gold solutions of GSM8K-format data (or the right samples of an evaluation
    /// run) through teacher forcing (the local model) as finished assistant turns and
    /// record, at every token, the model's top-K, normaliser and hidden state beside the
    /// gold token, in the mistakes store's token tree. Resumes: turns already collected
    /// under the same `--set` are skipped.
    Collect {
        /// GSM8K-format JSON Lines (`question`, `answer` with `####`).
        #[arg(
            long,
            required_unless_present = "from_run",
            conflicts_with = "from_run"
        )]
        data: Option<PathBuf>,
        /// An `amend eval` run directory: its samples whose answer was right (every sample
        /// of self-consistency, each text once) are the turns, the model's own text. Never
        /// give a run on data you will evaluate on.
        #[arg(long)]
        from_run: Option<PathBuf>,
        /// Name of this collection in the record ids (`tf:SET:ITEM`; default: the data
        /// file's or run directory's name).
        #[arg(long)]
        set: Option<String>,
        /// Skip the first N items.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Use at most N items (after --offset).
        #[arg(long)]
        limit: Option<usize>,
        /// Candidates kept per position.
        #[arg(long, default_value_t = CollectOptions::default().top_k)]
        top_k: u32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Train a rectifier for the model on collected token records (`--set`, repeatable),
    /// choosing λ on a development split of items, and measure it on held-out collections
    /// (`--held-out`, repeatable); writes the rectifier file.
    Train {
        /// Training collections (the `--set` names given to `collect`).
        #[arg(long = "set", required = true)]
        sets: Vec<String>,
        /// Held-out collections to measure on (never trained on).
        #[arg(long = "held-out")]
        held_out: Vec<String>,
        /// The rectifier file to write.
        #[arg(long)]
        out: PathBuf,
        /// Candidates per position (at most what was collected).
        #[arg(long, default_value_t = TrainOptions::default().k)]
        k: usize,
        /// Hidden width of the network.
        #[arg(long, default_value_t = TrainOptions::default().width)]
        width: usize,
        /// Passes over the training records.
        #[arg(long, default_value_t = TrainOptions::default().epochs)]
        epochs: usize,
        /// Seed (initialisation, shuffling, the development split, the bootstrap).
        #[arg(long, default_value_t = TrainOptions::default().seed)]
        seed: u64,
        /// The bias-only ablation: the pilot's top-K probabilities without the hidden state.
        #[arg(long)]
        no_hidden: bool,
        /// Adam step size.
        #[arg(long, default_value_t = TrainOptions::default().lr)]
        lr: f32,
        /// Decoupled weight decay on the network's weights (0: none).
        #[arg(long, default_value_t = TrainOptions::default().weight_decay)]
        weight_decay: f32,
        /// Also train on the token records the mistake log wrote (`--log-tokens` on `solve`,
        /// `eval`, `demo`) for this model.
        #[arg(long)]
        located: bool,
        /// What training minimises: `rmse` (the paper's, on onehot(gold) − p̂, fused in
        /// probability space), `cross-entropy` (that fused distribution's NLL; an ablation) or
        /// `logit` (corrections to the top K's logits, trained on their NLL; an ablation).
        #[arg(long, default_value = "rmse")]
        objective: Objective,
        /// Also learn a bias per candidate token, added to the network's corrections.
        #[arg(long)]
        token_bias: bool,
        /// Where the rectifier corrects: `all` positions, or `results` (trained on the digits
        /// of computed results, the number after `a op b =`, and applied only while one is
        /// being written).
        #[arg(long, default_value = "all")]
        scope: Scope,
        /// Print the file's summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Run an `amend rectify` subcommand.
pub async fn run(action: RectifyAction) -> Result<()> {
    match action {
        RectifyAction::Collect {
            data,
            from_run,
            set,
            offset,
            limit,
            top_k,
            json,
            store,
            model,
        } => {
            let (turns, without_gold, source) = match (&data, &from_run) {
                (Some(data), _) => {
                    let loaded = amend::data::load(amend::data::Task::Gsm8k, data, false)?;
                    let items = amend::data::select(loaded.items, None, offset, limit);
                    let (t, w) = rectify::gold_turns(&items);
                    (t, w, data.clone())
                }
                (None, Some(run)) => {
                    let results = amend::eval::runner::read_results(&run.join("results.jsonl"))?;
                    let turns = results
                        .iter()
                        .skip(offset)
                        .take(limit.unwrap_or(usize::MAX))
                        .filter_map(|r| {
                            let q = r.question.as_deref()?;
                            Some(rectify::right_sample_turns(
                                &r.id,
                                q,
                                &r.attempts,
                                &r.correct_by_turn,
                            ))
                        })
                        .flatten()
                        .collect();
                    (turns, 0, run.clone())
                }
                (None, None) => anyhow::bail!("give --data or --from-run"),
            };
            let set = match set {
                Some(s) => s,
                None => source
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .context("the source has no file name: give --set")?,
            };
            let store = store.open()?;
            let cx = super::common::context(&model, None, None, None, true).await?;
            let bar = indicatif::ProgressBar::new(turns.len() as u64);
            if json {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let mut r =
                rectify::collect(&cx, &store, &set, &turns, CollectOptions { top_k }, |r| {
                    bar.set_position(r.items + r.already);
                    bar.set_message(format!("{} tokens", r.tokens));
                })
                .await?;
            r.without_gold = without_gold;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else if r.tokens == 0 {
                println!(
                    "{set}: nothing new ({} items already collected, {} without a gold solution)",
                    r.already, r.without_gold
                );
            } else {
                let n = r.tokens.max(1) as f64;
                println!(
                    "{set}: {} items collected ({} already, {} without a gold solution), {} \
                     tokens at {:.0} tokens/s; gold token top-1 {:.1}%, in the top {top_k} \
                     {:.1}%, NLL {:.3} nats/token",
                    r.items,
                    r.already,
                    r.without_gold,
                    r.tokens,
                    r.tokens_per_s(),
                    100.0 * r.top1 as f64 / n,
                    100.0 * r.in_top_k as f64 / n,
                    r.nll_sum / n
                );
            }
            Ok(())
        }
        RectifyAction::Train {
            sets,
            held_out,
            out,
            k,
            width,
            epochs,
            seed,
            no_hidden,
            lr,
            weight_decay,
            located,
            objective,
            token_bias,
            scope,
            json,
            store,
            model,
        } => {
            let path = amend::model::spec::resolve_path(&model.model, true).await?;
            let key = amend::model::fingerprint(&path)?.key;
            let store = store.open()?;
            let opts = TrainOptions {
                k,
                width,
                epochs,
                seed,
                use_hidden: !no_hidden,
                lr,
                weight_decay,
                located,
                objective,
                token_bias,
                scope,
                ..TrainOptions::default()
            };
            let f = rectify::fit::fit(&store, &key, &sets, &held_out, opts, |e, t, d| {
                if !json {
                    eprintln!("epoch {e}/{epochs}: train loss {t:.5}, dev loss {d:.5}");
                }
            })?;
            f.save(&out)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": out, "model": f.model, "k": f.k,
                        "lambda": f.trained.lambda, "objective": f.trained.objective, "scope": f.trained.scope, "train_tokens": f.train_tokens,
                        "data_hash": f.data_hash, "dev": f.trained.dev, "held_out": f.held_out})
                );
                return Ok(());
            }
            println!(
                "wrote {} (model {}, K = {}, λ = {}, {} training positions, data {})",
                out.display(),
                f.model,
                f.k,
                f.trained.lambda,
                f.train_tokens,
                f.data_hash
            );
            // Each set, then its result digits (the number after `a op b =`) when known.
            let rows = std::iter::once(("dev".to_string(), &f.trained.dev))
                .chain(f.held_out.iter().map(|(n, m)| (n.clone(), m)))
                .flat_map(|(n, m)| {
                    let digits = m
                        .result_digits
                        .as_deref()
                        .map(|d| (format!("  {n}: results"), d));
                    std::iter::once((n, m)).chain(digits)
                });
            println!("set             tokens  NLL before -> after (change [95% CI])          top-1 before -> after  gold in top-K");
            for (name, m) in rows {
                println!(
                    "{name:<15} {:>6}  {:.3} -> {:.3} ({:+.1}% [{:+.1}, {:+.1}])   {} -> {}   {}",
                    m.tokens,
                    m.nll_before,
                    m.nll_after,
                    100.0 * m.nll_change,
                    100.0 * m.nll_change_lo,
                    100.0 * m.nll_change_hi,
                    pct(m.top1_before),
                    pct(m.top1_after),
                    pct(m.in_top_k)
                );
            }
            Ok(())
        }
    }
}
