//! How a local model's parallel sequences hold their KV cache: one stream each, or one cache
//! shared by all, chosen by the memory the split layout would take.

use serde::{Deserialize, Serialize};

/// How a local model's parallel sequences (`n_seq > 1`) hold their KV cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum KvLayout {
    /// [`Split`](Self::Split) when its largest cache (`n_seq × max_ctx` cells) fits in
    /// [`KV_SPLIT_BUDGET`] bytes, else [`Unified`](Self::Unified).
    #[default]
    Auto,
    /// One stream of `n_ctx` cells per sequence: a batch step attends only to each sample's
    /// own cells (cheaper), at the price of `n_seq ×` the memory and a buffer copy of the
    /// prompt per extra sample.
    Split,
    /// One cache of `n_ctx` cells shared by all sequences: the prompt is shared, not copied,
    /// but every sample's attention spans all samples' cells.
    Unified,
}

/// The most KV memory [`KvLayout::Auto`] lets split streams grow to (2 GiB): the default
/// model's 8 × 8192 cells (1.5 GB) fit; a 3B or larger model's do not.
pub const KV_SPLIT_BUDGET: u64 = 2 << 30;

impl KvLayout {
    /// Split or not, for `n_seq` sequences of up to `max_ctx` cells of `bytes_per_cell` each.
    pub fn split(self, n_seq: u32, max_ctx: u32, bytes_per_cell: u64) -> bool {
        match self {
            _ if n_seq <= 1 => false,
            Self::Split => true,
            Self::Unified => false,
            Self::Auto => u64::from(n_seq) * u64::from(max_ctx) * bytes_per_cell <= KV_SPLIT_BUDGET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_splits_only_what_fits_the_budget() {
        // SmolLM2-135M: 30 layers × 2 × 192 values × 2 bytes = 23,040 bytes a cell.
        assert!(KvLayout::Auto.split(8, 8192, 23_040));
        // An 8B model with 128 KiB a cell does not fit 8 × 8192 cells (8 GiB) in 2 GiB.
        assert!(!KvLayout::Auto.split(8, 8192, 131_072));
        assert!(KvLayout::Split.split(8, 8192, 131_072));
        assert!(!KvLayout::Unified.split(8, 16, 1));
        assert!(!KvLayout::Split.split(1, 16, 1));
        use clap::ValueEnum;
        assert_eq!(KvLayout::from_str("unified", false), Ok(KvLayout::Unified));
        assert!(KvLayout::from_str("shared", false).is_err());
    }
}
