//! The logit rectifier's data (Transformer Copilot, Zou et al. 2025): token-level records of
//! what the model predicted beside the right token, collected by teacher forcing gold
//! solutions ([`collect`]) and written to the mistake store's token tree.
//!
//! Built: collection ([`collect`]), the network and its training ([`net`], [`train`]), the
//! rectifier file ([`file`]), applying it while decoding ([`apply`]). The other source of
//! records, the mistake log itself, is written by the strategies as they run
//! ([`crate::strategy::log_slip_tokens`], on with `Context::with_token_log`).

pub mod apply;
pub mod bias;
pub mod collect;
pub mod file;
pub mod fit;
pub mod measure;
pub mod net;
pub mod objective;
pub mod train;

use crate::mistakes::StoreError;
use crate::model::ModelError;
use crate::run::RunError;

pub use collect::{
    collect, gold_turn, gold_turns, right_sample_turns, CollectOptions, CollectReport, Turn,
};

/// Collecting or using rectifier data failed.
#[derive(Debug, thiserror::Error)]
pub enum RectifyError {
    /// The model failed (an API backend refuses teacher forcing here).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The mistake store could not be written or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The prompt could not be built.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A rectifier file could not be written or read.
    #[error("rectifier file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A rectifier file was trained for another model.
    #[error(
        "rectifier file {path} was trained for model {file}, not for the model in use ({model}); \
         train one for this model with `amend rectify collect` and `amend rectify train`"
    )]
    ModelMismatch {
        /// The file.
        path: String,
        /// The identity it was trained for.
        file: String,
        /// The identity of the model in use.
        model: String,
    },
    /// There is nothing to train on.
    #[error("no token records to train on: {0}")]
    NoData(String),
}
