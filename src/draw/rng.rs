//! The random input `R` of a draw.
//!
//! Each worker thread owns a `ChaCha20Rng` seeded from the operating system on
//! first use. `R` is 53 bits, so it survives Redis Lua's doubles exactly and can be
//! stored with the draw and replayed.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::cell::RefCell;

/// `R` is in `[0, 2^53)`.
pub const R_BITS: u32 = 53;

thread_local! {
    static RNG: RefCell<Option<ChaCha20Rng>> = const { RefCell::new(None) };
}

/// The OS would not give entropy to seed a generator.
#[derive(Debug, thiserror::Error)]
#[error("cannot seed the draw generator from the operating system: {0}")]
pub struct SeedError(String);

/// Next `R` of this thread's generator.
pub fn next_r() -> Result<u64, SeedError> {
    RNG.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let rng = ChaCha20Rng::try_from_rng(&mut rand::rngs::SysRng)
                .map_err(|e| SeedError(e.to_string()))?;
            *slot = Some(rng);
        }
        let rng = slot
            .as_mut()
            .ok_or_else(|| SeedError("generator missing".into()))?;
        Ok(rng.next_u64() >> (64 - R_BITS))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_is_below_2_pow_53_and_varies() {
        let draws: Vec<u64> = (0..1000).map(|_| next_r().unwrap()).collect();
        assert!(draws.iter().all(|&r| r < 1 << R_BITS));
        let mut unique = draws.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), draws.len());
        // With 1000 draws, the top bit is set in about half of them.
        let high = draws.iter().filter(|&&r| r >= 1 << (R_BITS - 1)).count();
        assert!((350..650).contains(&high), "{high}");
    }
}
