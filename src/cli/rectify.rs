//! `amend rectify`: the logit rectifier's data.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Subcommand;

use super::mistakes::StoreArgs;
use super::ModelArgs;
use amend::rectify::{self, CollectOptions};

/// `amend rectify` subcommands.
#[derive(Debug, Subcommand)]
pub enum RectifyAction {
    /// Push the gold solutions of GSM8K-format data through teacher forcing (the local
    /// model) and record, at every token, the model's top-K, normaliser and hidden state
    /// beside the gold token, in the mistakes store's token tree. Resumes: items already
    /// collected under the same `--set` are skipped.
    Collect {
        /// GSM8K-format JSON Lines (`question`, `answer` with `####`).
        #[arg(long)]
        data: PathBuf,
        /// Name of this collection in the record ids (`tf:SET:ITEM`; default: the data
        /// file's name without extension).
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
}

/// Run an `amend rectify` subcommand.
pub async fn run(action: RectifyAction) -> Result<()> {
    match action {
        RectifyAction::Collect {
            data,
            set,
            offset,
            limit,
            top_k,
            json,
            store,
            model,
        } => {
            let loaded = amend::data::load(amend::data::Task::Gsm8k, &data, false)?;
            let items = amend::data::select(loaded.items, None, offset, limit);
            let set = match set {
                Some(s) => s,
                None => data
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .context("--data has no file name: give --set")?,
            };
            let store = store.open()?;
            let cx = super::common::context(&model, None, None, None, true).await?;
            let bar = indicatif::ProgressBar::new(items.len() as u64);
            if json {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let r = rectify::collect(&cx, &store, &set, &items, CollectOptions { top_k }, |r| {
                bar.set_position(r.items + r.already + r.without_gold);
                bar.set_message(format!("{} tokens", r.tokens));
            })
            .await?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&r)?);
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
    }
}
