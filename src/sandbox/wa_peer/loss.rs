//! Random packet loss on the sandbox peer's own path, so tests can make a lossy network
//! without root, netem or a network namespace (docs/real-peers.md: the kernel here may lack
//! netem). Seeded, so a failing run can be repeated packet for packet.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug)]
pub(crate) struct Loss {
    probability: f64,
    rng: StdRng,
    dropped: u64,
}

impl Loss {
    /// `probability` is clamped to 0..=1; NaN counts as 0.
    pub(crate) fn new(probability: f64, seed: u64) -> Loss {
        Loss {
            probability: clamp(probability),
            rng: StdRng::seed_from_u64(seed),
            dropped: 0,
        }
    }

    pub(crate) fn set_probability(&mut self, probability: f64) {
        self.probability = clamp(probability);
    }

    /// Whether the next packet is lost. One draw per packet whatever the probability, so
    /// changing it mid-run does not shift which later packets a seed drops.
    pub(crate) fn drop_next(&mut self) -> bool {
        let lost = self.rng.gen::<f64>() < self.probability;
        if lost {
            self.dropped += 1;
        }
        lost
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

fn clamp(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_all() {
        let mut never = Loss::new(0.0, 1);
        let mut always = Loss::new(1.0, 1);
        let mut nan = Loss::new(f64::NAN, 1);
        for _ in 0..1000 {
            assert!(!never.drop_next());
            assert!(always.drop_next());
            assert!(!nan.drop_next());
        }
        assert_eq!((never.dropped(), always.dropped()), (0, 1000));
        assert!(!Loss::new(-3.0, 1).drop_next());
        assert!(Loss::new(7.0, 1).drop_next());
    }

    #[test]
    fn rate_is_close_to_the_probability() {
        let mut loss = Loss::new(0.1, 42);
        let n = 20_000;
        let dropped = (0..n).filter(|_| loss.drop_next()).count();
        assert_eq!(loss.dropped(), dropped as u64);
        // Binomial(20000, 0.1): sd ≈ 42; ±300 is over 7 sd.
        assert!((1700..=2300).contains(&dropped), "{dropped} of {n}");
    }

    #[test]
    fn a_seed_repeats_its_pattern() {
        let pattern = |seed| {
            let mut l = Loss::new(0.3, seed);
            (0..200).map(|_| l.drop_next()).collect::<Vec<_>>()
        };
        assert_eq!(pattern(7), pattern(7));
        assert_ne!(pattern(7), pattern(8));
    }

    #[test]
    fn changing_the_probability_keeps_the_draws_aligned() {
        let mut a = Loss::new(0.5, 3);
        let mut b = Loss::new(0.0, 3);
        for _ in 0..50 {
            a.drop_next();
            b.drop_next();
        }
        b.set_probability(0.5);
        let rest_a: Vec<bool> = (0..100).map(|_| a.drop_next()).collect();
        let rest_b: Vec<bool> = (0..100).map(|_| b.drop_next()).collect();
        assert_eq!(rest_a, rest_b);
    }
}
