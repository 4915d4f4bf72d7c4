//! Weighted random choice: a SplitMix64 generator (tiny, no dependencies,
//! good enough for traffic splitting; not for secrets) seeded once per VM.

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Picks an index with probability proportional to its weight; `None`
/// when every weight is 0 (or there are none). A single candidate with a
/// non-zero weight is chosen without drawing.
pub fn pick(weights: &[u32], rng: &mut Rng) -> Option<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return None;
    }
    let nonzero = weights.iter().filter(|&&w| w > 0).count();
    if nonzero == 1 {
        return weights.iter().position(|&w| w > 0);
    }
    let mut r = rng.below(total);
    for (i, &w) in weights.iter().enumerate() {
        let w = u64::from(w);
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(weights: &[u32], draws: u32, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mut counts = vec![0u32; weights.len()];
        for _ in 0..draws {
            counts[pick(weights, &mut rng).unwrap()] += 1;
        }
        counts
            .iter()
            .map(|&c| f64::from(c) / f64::from(draws))
            .collect()
    }

    /// 20,000 draws with a fixed seed: every share within 1.5 percentage
    /// points of its weight's share (about 5 standard deviations at worst).
    #[test]
    fn weighted_choice_follows_the_weights() {
        const TOLERANCE: f64 = 0.015;
        for (weights, seed) in [
            (&[90u32, 10][..], 42u64),
            (&[1, 1][..], 7),
            (&[1, 2, 1][..], 1234),
            (&[999_999, 1][..], 99),
            (&[3, 0, 1][..], 5),
        ] {
            let total: u32 = weights.iter().sum();
            let got = shares(weights, 20_000, seed);
            for (i, &w) in weights.iter().enumerate() {
                let want = f64::from(w) / f64::from(total);
                assert!(
                    (got[i] - want).abs() <= TOLERANCE,
                    "weights {weights:?}: backend {i} got {:.4}, want {want:.4}",
                    got[i]
                );
            }
        }
    }

    #[test]
    fn zero_weights_are_never_chosen() {
        let mut rng = Rng::new(3);
        for _ in 0..10_000 {
            assert_ne!(pick(&[5, 0, 5], &mut rng), Some(1));
        }
        assert_eq!(pick(&[0, 0], &mut rng), None);
        assert_eq!(pick(&[], &mut rng), None);
        assert_eq!(pick(&[0, 7, 0], &mut rng), Some(1));
    }

    #[test]
    fn a_fixed_seed_is_reproducible() {
        let a: Vec<u64> = {
            let mut r = Rng::new(1);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(1);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert!(a.windows(2).all(|w| w[0] != w[1]));
        let mut r = Rng::new(9);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
