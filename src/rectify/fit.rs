//! From the store to a rectifier file: read the token records of the named collections, split
//! by item, train, and measure on held-out collections.

use super::file::{data_hash, RectifierFile, FORMAT};
use super::train::{evaluate, is_dev, train, Example, TrainOptions};
use super::RectifyError;
use crate::mistakes::{Store, TokenRecord, TokenSource};

/// A training record's identity: record id, position, gold token (what the data hash covers).
pub type RecordKey = (String, u32, i32);

/// The examples of collection `set` (records under `tf:SET:`) for model `model`.
///
/// # Errors
/// [`RectifyError::Store`] when the store cannot be read.
pub fn examples(
    store: &dyn Store,
    set: &str,
    model: &str,
    k: usize,
) -> Result<(Vec<Example>, Vec<RecordKey>), RectifyError> {
    let prefix = format!("tf:{set}:");
    examples_where(store, model, k, |r| r.mistake.starts_with(&prefix))
}

/// The examples the mistake log wrote for `model` (records of source `located`).
///
/// # Errors
/// [`RectifyError::Store`] when the store cannot be read.
pub fn located_examples(
    store: &dyn Store,
    model: &str,
    k: usize,
) -> Result<(Vec<Example>, Vec<RecordKey>), RectifyError> {
    examples_where(store, model, k, |r| r.source == Some(TokenSource::Located))
}

fn examples_where(
    store: &dyn Store,
    model: &str,
    k: usize,
    wanted: impl Fn(&TokenRecord) -> bool,
) -> Result<(Vec<Example>, Vec<RecordKey>), RectifyError> {
    let mut out = Vec::new();
    let mut keys = Vec::new();
    store.each_token(&mut |r| {
        if r.model == model && wanted(&r) {
            if let Some(e) = Example::from_record(&r, k) {
                keys.push((r.mistake.clone(), r.position, r.gold.unwrap_or(-1)));
                out.push(e);
            }
        }
        true
    })?;
    Ok((out, keys))
}

/// Train a rectifier for `model` on collections `train_sets` (and the mistake log's records
/// with [`TrainOptions::located`]), measure it on `held_out`. `progress(epoch, train loss,
/// dev loss)`.
///
/// # Errors
/// [`RectifyError::NoData`] when the training collections hold no usable record for this
/// model; [`RectifyError::Store`].
pub fn fit(
    store: &dyn Store,
    model: &str,
    train_sets: &[String],
    held_out: &[String],
    opts: TrainOptions,
    progress: impl FnMut(usize, f64, f64),
) -> Result<RectifierFile, RectifyError> {
    let mut all = Vec::new();
    let mut keys = Vec::new();
    for s in train_sets {
        let (e, k) = examples(store, s, model, opts.k)?;
        all.extend(e);
        keys.extend(k);
    }
    if opts.located {
        let (e, k) = located_examples(store, model, opts.k)?;
        all.extend(e);
        keys.extend(k);
    }
    if all.is_empty() {
        return Err(RectifyError::NoData(format!(
            "collections {train_sets:?} hold no records for model {model} with {} candidates \
             (run `amend rectify collect` with this model first)",
            opts.k
        )));
    }
    let (mut dev, mut train_set): (Vec<Example>, Vec<Example>) = all
        .into_iter()
        .partition(|e| is_dev(&e.item, opts.dev_share, opts.seed));
    // Too few items for the hash to pick any: the last item is the development set.
    if dev.is_empty() {
        if let Some(last) = train_set.last().map(|e| e.item.clone()) {
            let (d, t): (Vec<Example>, Vec<Example>) =
                train_set.into_iter().partition(|e| e.item == last);
            dev = d;
            train_set = t;
        }
    }
    let trained = train(&train_set, &dev, opts, progress);
    let mut measured = Vec::new();
    for s in held_out {
        let (e, _) = examples(store, s, model, opts.k)?;
        measured.push((s.clone(), evaluate(&trained, trained.lambda, &e, opts.seed)));
    }
    Ok(RectifierFile {
        format: FORMAT,
        model: model.to_string(),
        k: opts.k,
        hidden_dim: if opts.use_hidden {
            trained.features.mean.len()
        } else {
            0
        },
        train_sets: train_sets.to_vec(),
        // The positions trained on: with a scope for results, only those.
        train_tokens: train_set
            .iter()
            .filter(|e| opts.scope.covers(e.result))
            .count() as u64,
        data_hash: data_hash(keys.iter().map(|(i, p, g)| (i.as_str(), *p, *g))),
        trained,
        held_out: measured,
    })
}
