//! A small seeded random stream (SplitMix64) for everything in amend that must be the same on
//! every platform and in every version given the same seed: synthetic problems, planted
//! errors, dataset shuffles, benchmark data. Not for anything secret.

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// A random element; `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        let i = self.range(0, xs.len().saturating_sub(1) as u64) as usize;
        xs.get(i)
    }

    /// A random element, or `T::default()` for an empty slice.
    pub fn choose<T: Copy + Default>(&mut self, xs: &[T]) -> T {
        self.pick(xs).copied().unwrap_or_default()
    }

    /// Shuffle `xs` in place (Fisher-Yates over this stream).
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            xs.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_stream_is_fixed_by_its_seed() {
        // SplitMix64's published first output for seed 0.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut a = Rng::new(5);
        let mut xs: Vec<u32> = (0..10).collect();
        a.shuffle(&mut xs);
        let mut b = Rng::new(5);
        let mut ys: Vec<u32> = (0..10).collect();
        b.shuffle(&mut ys);
        assert_eq!(xs, ys);
        assert!(Rng::new(1).range(3, 3) == 3 && Rng::new(1).pick::<u8>(&[]).is_none());
    }
}
