//! The logit rectifier's data (Transformer Copilot, Zou et al. 2025): token-level records of
//! what the model predicted beside the right token, collected by teacher forcing gold
//! solutions ([`collect`]) and written to the mistake store's token tree.
//!
//! Built so far: collection. Not built yet: training the rectifier, the rectifier file,
//! applying it while decoding, and the records written from located mistakes (issue 16).

pub mod collect;

use crate::mistakes::StoreError;
use crate::model::ModelError;
use crate::run::RunError;

pub use collect::{collect, gold_turn, CollectOptions, CollectReport};

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
}
