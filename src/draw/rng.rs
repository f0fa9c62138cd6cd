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

/// Runs `f` on this thread's generator, seeding it first if needed.
fn with_rng<T>(f: impl FnOnce(&mut ChaCha20Rng) -> T) -> Result<T, SeedError> {
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
        Ok(f(rng))
    })
}

/// Next `R` of this thread's generator.
pub fn next_r() -> Result<u64, SeedError> {
    with_rng(|rng| rng.next_u64() >> (64 - R_BITS))
}

/// A new spin id: a UUID v7 (the time in ms, then 74 random bits) whose
/// random bits come from this thread's generator. `Uuid::now_v7` asks the
/// kernel for them (a `getrandom` system call per spin). Ids made in the same
/// millisecond are unique but not in the order they were made (the ledger
/// orders by draw time, ties by id).
pub fn spin_id() -> Result<uuid::Uuid, SeedError> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut random = [0u8; 10];
    with_rng(|rng| rng.fill_bytes(&mut random))?;
    Ok(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
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

    #[test]
    fn spin_ids_are_v7_uuids_of_now_and_unique() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let ids: Vec<uuid::Uuid> = (0..1000).map(|_| spin_id().unwrap()).collect();
        let after = before + 60_000;
        for id in &ids {
            assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            let ms = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!(
                (before..after).contains(&ms),
                "{ms} not in {before}..{after}"
            );
        }
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }
}
