//! The fuzzer's random numbers: SplitMix64, seeded, so that `--seed` replays a run.
//!
//! Not cryptographic and not meant to be: it only has to be fast, well mixed and the same on
//! every machine. Each connection gets its own generator derived from the run's seed, so what
//! one connection sends does not depend on how the others were scheduled.

/// A seeded generator (SplitMix64, Steele, Lea and Flood 2014).
#[derive(Debug, Clone)]
pub struct Rng {
    /// The whole state: a counter advanced by an odd constant, hashed on output.
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent generator for stream `index` of the run seeded with `seed`.
    pub fn derive(seed: u64, index: u64) -> Rng {
        let mut mixer = Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Rng::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high.saturating_sub(low) + 1)
    }

    /// True with probability `percent` in 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index chosen with the given weights (not all zero).
    pub fn weighted(&mut self, weights: &[usize]) -> usize {
        let total: usize = weights.iter().sum();
        let mut ticket = self.below(total);
        for (index, &weight) in weights.iter().enumerate() {
            if ticket < weight {
                return index;
            }
            ticket -= weight;
        }
        weights.len() - 1
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed gives the same numbers; different streams of one seed differ.
    #[test]
    fn seeded_and_independent() {
        let draw = |mut rng: Rng| (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>();
        assert_eq!(draw(Rng::derive(7, 1)), draw(Rng::derive(7, 1)));
        assert_ne!(draw(Rng::derive(7, 1)), draw(Rng::derive(7, 2)));
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| rng.range(3, 5) >= 3 && rng.range(3, 5) <= 5));
        assert_eq!(rng.weighted(&[0, 0, 5]), 2);
    }
}
