//! Load-balancing policies over a worker's endpoint list. Each takes an
//! `ok(index)` filter (healthy and not ejected, or everything in panic
//! mode) and returns the index chosen. All state is per worker.

use rand::Rng;
use std::cell::Cell;

/// What a policy needs to know of an endpoint.
pub(crate) trait LbEndpoint {
    fn weight(&self) -> u32;
    /// Requests this worker has in flight on it.
    fn active(&self) -> u32;
    /// Smooth weighted round robin's running weight.
    fn current_weight(&self) -> &Cell<i64>;
}

impl<T: LbEndpoint> LbEndpoint for std::rc::Rc<T> {
    fn weight(&self) -> u32 {
        (**self).weight()
    }
    fn active(&self) -> u32 {
        (**self).active()
    }
    fn current_weight(&self) -> &Cell<i64> {
        (**self).current_weight()
    }
}

/// Smooth weighted round robin (nginx): every eligible endpoint's current
/// weight grows by its weight, the largest wins and drops by the total.
/// Weights 5,1,1 give a a b a c a a.
pub(crate) fn round_robin<T: LbEndpoint>(eps: &[T], ok: impl Fn(usize) -> bool) -> Option<usize> {
    let mut total = 0i64;
    let mut best: Option<(usize, i64)> = None;
    for (i, e) in eps.iter().enumerate() {
        if !ok(i) {
            continue;
        }
        let w = i64::from(e.weight().max(1));
        let c = e.current_weight().get().saturating_add(w);
        e.current_weight().set(c);
        total += w;
        if best.is_none_or(|(_, b)| c > b) {
            best = Some((i, c));
        }
    }
    let (i, c) = best?;
    eps[i].current_weight().set(c - total);
    Some(i)
}

/// Weighted random among the eligible endpoints.
pub(crate) fn random<T: LbEndpoint>(
    eps: &[T],
    ok: impl Fn(usize) -> bool,
    rng: &mut impl Rng,
) -> Option<usize> {
    let total: u64 = eps
        .iter()
        .enumerate()
        .filter(|(i, _)| ok(*i))
        .map(|(_, e)| u64::from(e.weight().max(1)))
        .sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.random_range(0..total);
    for (i, e) in eps.iter().enumerate() {
        if !ok(i) {
            continue;
        }
        let w = u64::from(e.weight().max(1));
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    None
}

/// Power of two choices: two distinct endpoints drawn by weight, the one
/// with fewer active requests (on this worker) wins, a tie goes to the
/// first drawn, so idle endpoints share by weight.
pub(crate) fn least_request<T: LbEndpoint>(
    eps: &[T],
    ok: impl Fn(usize) -> bool,
    rng: &mut impl Rng,
) -> Option<usize> {
    let a = random(eps, &ok, rng)?;
    let Some(b) = random(eps, |i| i != a && ok(i), rng) else {
        return Some(a);
    };
    if eps[b].active() < eps[a].active() {
        Some(b)
    } else {
        Some(a)
    }
}

/// Virtual nodes per unit of weight.
pub(crate) const VNODES_PER_WEIGHT: u64 = 100;
/// Ring size cap (per worker and cluster); weights are scaled down past it.
const MAX_POINTS: u64 = 1 << 16;

/// A consistent-hash ring: each endpoint owns 100 × weight points hashed
/// from its identity (its address), so a key stays on its endpoint while
/// that endpoint is eligible, and only its keys move when it is not.
pub(crate) struct Ring {
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// `endpoints`: identity and weight, by index.
    pub fn new<'a>(endpoints: impl Iterator<Item = (&'a str, u32)> + Clone) -> Ring {
        let total: u64 = endpoints
            .clone()
            .map(|(_, w)| VNODES_PER_WEIGHT * u64::from(w.max(1)))
            .sum();
        let mut points = Vec::with_capacity(total.min(MAX_POINTS) as usize);
        for (index, (id, w)) in endpoints.enumerate() {
            let mut n = VNODES_PER_WEIGHT * u64::from(w.max(1));
            if total > MAX_POINTS {
                n = (n * MAX_POINTS / total).max(1);
            }
            for v in 0..n {
                points.push((hash(format!("{id}_{v}").as_bytes()), index as u32));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The first eligible endpoint clockwise from `key_hash`.
    pub fn pick(&self, key_hash: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.points.len();
        let start = self.points.partition_point(|p| p.0 < key_hash);
        (0..n)
            .map(|k| self.points[(start + k) % n].1 as usize)
            .find(|i| ok(*i))
    }
}

/// A stable 64-bit hash (FNV-1a with the murmur3 finalizer for spread):
/// the same in every worker, process and build.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        w: u32,
        active: u32,
        cw: Cell<i64>,
    }

    fn fakes(weights: &[u32]) -> Vec<Fake> {
        weights
            .iter()
            .map(|w| Fake {
                w: *w,
                active: 0,
                cw: Cell::new(0),
            })
            .collect()
    }

    impl LbEndpoint for Fake {
        fn weight(&self) -> u32 {
            self.w
        }
        fn active(&self) -> u32 {
            self.active
        }
        fn current_weight(&self) -> &Cell<i64> {
            &self.cw
        }
    }

    #[test]
    fn smooth_weighted_round_robin_sequence() {
        let eps = fakes(&[5, 1, 1]);
        let seq: String = (0..14)
            .map(|_| ["a", "b", "c"][round_robin(&eps, |_| true).expect("pick")])
            .collect();
        assert_eq!(seq, "aabacaaaabacaa");
        let eps = fakes(&[1, 1, 1]);
        let seq: Vec<usize> = (0..6)
            .map(|_| round_robin(&eps, |_| true).expect("pick"))
            .collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        // Ineligible endpoints are skipped; none eligible gives none.
        let eps = fakes(&[2, 1, 1]);
        let seq: Vec<usize> = (0..4)
            .map(|_| round_robin(&eps, |i| i != 0).expect("pick"))
            .collect();
        assert_eq!(seq, [1, 2, 1, 2]);
        assert_eq!(round_robin(&eps, |_| false), None);
    }

    #[test]
    fn weighted_random_shares() {
        let eps = fakes(&[1, 2, 1]);
        let mut rng = rand::rng();
        let mut n = [0u32; 3];
        for _ in 0..4000 {
            n[random(&eps, |_| true, &mut rng).expect("pick")] += 1;
        }
        // Expected 1000/2000/1000, standard deviation ≈ 27-32: ±200 is > 6σ.
        assert!(
            (800..1200).contains(&n[0])
                && (1800..2200).contains(&n[1])
                && (800..1200).contains(&n[2]),
            "{n:?}"
        );
        assert_eq!(random(&eps, |i| i == 2, &mut rng), Some(2));
    }

    #[test]
    fn least_request_prefers_fewer_active_and_weights_idle() {
        let mut eps = fakes(&[1, 1, 1]);
        eps[0].active = 5;
        eps[1].active = 1;
        eps[2].active = 1;
        let mut rng = rand::rng();
        for _ in 0..200 {
            // Endpoint 0 can only win against itself, which two distinct
            // draws never are.
            assert_ne!(least_request(&eps, |_| true, &mut rng), Some(0));
        }
        let eps = fakes(&[3, 1]);
        let mut first = 0;
        for _ in 0..2000 {
            if least_request(&eps, |_| true, &mut rng) == Some(0) {
                first += 1;
            }
        }
        // Expected 1500 (σ ≈ 19).
        assert!((1300..1700).contains(&first), "{first}");
        assert_eq!(least_request(&eps, |i| i == 1, &mut rng), Some(1));
    }

    #[test]
    fn ring_is_sticky_and_consistent() {
        let ids = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
        let ring = Ring::new(ids.iter().map(|i| (*i, 1)));
        assert_eq!(ring.points.len(), 400);
        let keys: Vec<String> = (0..1000).map(|k| format!("user-{k}")).collect();
        let owner: Vec<usize> = keys
            .iter()
            .map(|k| ring.pick(hash(k.as_bytes()), |_| true).expect("pick"))
            .collect();
        let again: Vec<usize> = keys
            .iter()
            .map(|k| ring.pick(hash(k.as_bytes()), |_| true).expect("pick"))
            .collect();
        assert_eq!(owner, again);
        let mut per = [0; 4];
        for o in &owner {
            per[*o] += 1;
        }
        assert!(per.iter().all(|n| (100..450).contains(n)), "{per:?}");
        // Endpoint 2 out: only its keys move.
        for (k, o) in keys.iter().zip(&owner) {
            let now = ring.pick(hash(k.as_bytes()), |i| i != 2).expect("pick");
            if *o == 2 {
                assert_ne!(now, 2);
            } else {
                assert_eq!(now, *o);
            }
        }
        assert_eq!(ring.pick(1, |_| false), None);
    }

    #[test]
    fn ring_honours_weights_and_caps_its_size() {
        let ring = Ring::new([("a", 3), ("b", 1)].into_iter());
        let mut per = [0; 2];
        for k in 0..4000 {
            per[ring
                .pick(hash(format!("k{k}").as_bytes()), |_| true)
                .expect("pick")] += 1;
        }
        assert!(per[0] > 2 * per[1], "{per:?}");
        let big = Ring::new([("a", 100_000), ("b", 1)].into_iter());
        assert!(big.points.len() as u64 <= MAX_POINTS + 1);
        assert!(
            big.points.iter().any(|p| p.1 == 1),
            "every endpoint keeps a point"
        );
    }

    #[test]
    fn hash_is_stable() {
        // Pinned: the ring must not move between builds.
        assert_eq!(hash(b""), hash(b""));
        assert_ne!(hash(b"a"), hash(b"b"));
        assert_eq!(hash(b"weft"), 5_978_003_980_070_879_461);
    }
}
