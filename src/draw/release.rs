//! Paced stock: how many units of a prize are released at an instant, and when
//! the next one is. lua/spin.lua applies the same rule in the draw (a prize is
//! drawn only while its awarded count is below `released(now)`); the model, the
//! client view, the audit and the simulation call these functions.
//!
//! Every curve is computed from the prize's configured stock *now*: a live top-up
//! or cut redraws the whole curve as if the new stock had been configured from
//! the start. Units already awarded stay awarded; when more were awarded than
//! the new curve has released, the prize waits until the curve catches up.

use crate::campaign::days::day_index;
use crate::campaign::model::Release;

/// The window and the day starts a campaign's curves are drawn over.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Start of each campaign day in its time zone (`campaign::days`).
    pub day_starts: &'a [i64],
}

/// Units of a prize with `stock` configured units released by `now_ms`:
/// cumulative, never above `stock`.
pub fn released(release: &Release, stock: u64, w: Window, now_ms: i64) -> u64 {
    if now_ms < w.start_ms {
        return match release {
            Release::AllAtStart => stock,
            _ => 0,
        };
    }
    let n = match release {
        Release::AllAtStart => stock,
        Release::Even => {
            // Unit k is out once floor((k-1)·W/S) <= d, i.e. (k-1)·W < (d+1)·S:
            // ceil((d+1)·S / W) units. u128: S·W reaches 2^75.
            let window = (w.end_ms - w.start_ms).max(1) as u128;
            let d1 = (now_ms - w.start_ms) as u128 + 1;
            (d1 * u128::from(stock))
                .div_ceil(window)
                .min(u128::from(stock)) as u64
        }
        Release::PerDay(per_day) => {
            let days = (day_index(w.day_starts, now_ms) + 1).max(0) as u64;
            per_day.saturating_mul(days)
        }
        Release::Schedule(steps) => steps
            .iter()
            .take_while(|s| s.at <= now_ms)
            .map(|s| s.units)
            .sum(),
    };
    n.min(stock)
}

/// Whether unit `awarded + 1` may be drawn at `now_ms`: awarded < released(now).
pub fn unit_released(release: &Release, stock: u64, awarded: u64, w: Window, now_ms: i64) -> bool {
    awarded < released(release, stock, w, now_ms)
}

/// When unit `awarded + 1` is released (Unix ms), or `None` when it never is
/// within the window (the stock is all awarded, or the curve ends first).
pub fn next_release(release: &Release, stock: u64, awarded: u64, w: Window) -> Option<i64> {
    if awarded >= stock {
        return None;
    }
    match release {
        Release::AllAtStart => Some(w.start_ms),
        Release::Even => {
            let window = (w.end_ms - w.start_ms).max(1) as u128;
            let offset = u128::from(awarded) * window / u128::from(stock);
            Some(w.start_ms + offset as i64)
        }
        Release::PerDay(per_day) => {
            let day = awarded / (*per_day).max(1);
            usize::try_from(day)
                .ok()
                .and_then(|d| w.day_starts.get(d))
                .copied()
        }
        Release::Schedule(steps) => {
            let mut cumulative = 0u64;
            steps.iter().find_map(|s| {
                cumulative += s.units;
                (cumulative > awarded).then_some(s.at)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::model::ReleaseStep;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    fn window(days: &[i64]) -> Window<'_> {
        Window {
            start_ms: 0,
            end_ms: 10_000,
            day_starts: days,
        }
    }

    #[test]
    fn even_releases_the_first_unit_at_the_start_and_the_last_before_the_end() {
        let w = window(&[0]);
        // 4 units over 10 s: at 0, 2.5 s → 2500, 5000, 7500.
        assert_eq!(released(&Release::Even, 4, w, 0), 1);
        assert_eq!(released(&Release::Even, 4, w, 2499), 1);
        assert_eq!(released(&Release::Even, 4, w, 2500), 2);
        assert_eq!(released(&Release::Even, 4, w, 7499), 3);
        assert_eq!(released(&Release::Even, 4, w, 7500), 4);
        assert_eq!(released(&Release::Even, 4, w, 9_999), 4);
        assert_eq!(released(&Release::Even, 4, w, -1), 0);
        assert_eq!(next_release(&Release::Even, 4, 0, w), Some(0));
        assert_eq!(next_release(&Release::Even, 4, 3, w), Some(7500));
        assert_eq!(next_release(&Release::Even, 4, 4, w), None);
        // 3 units over 10 s: floor(10000/3) = 3333, floor(20000/3) = 6666.
        assert_eq!(next_release(&Release::Even, 3, 1, w), Some(3333));
        assert_eq!(released(&Release::Even, 3, w, 3332), 1);
        assert_eq!(released(&Release::Even, 3, w, 3333), 2);
        assert_eq!(released(&Release::Even, 3, w, 6666), 3);
    }

    #[test]
    fn even_is_exact_at_the_largest_stock_and_window() {
        let year = 365 * DAY;
        let w = Window {
            start_ms: 1_000,
            end_ms: 1_000 + year,
            day_starts: &[1_000],
        };
        let s = 1_000_000_000_000u64;
        // More units than milliseconds: ceil(S / W) of them at the start.
        assert_eq!(
            released(&Release::Even, s, w, 1_000),
            s.div_ceil(year as u64)
        );
        assert_eq!(released(&Release::Even, s, w, 1_000 + year - 1), s);
        let k = 123_456_789_012u64;
        let at = next_release(&Release::Even, s, k, w).unwrap();
        assert!(released(&Release::Even, s, w, at) > k);
        assert!(released(&Release::Even, s, w, at - 1) <= k);
    }

    #[test]
    fn per_day_adds_units_each_day_and_carries_over() {
        let days = [0, DAY, 2 * DAY];
        let w = Window {
            start_ms: 0,
            end_ms: 3 * DAY,
            day_starts: &days,
        };
        let r = Release::PerDay(20);
        assert_eq!(released(&r, 50, w, 0), 20);
        assert_eq!(released(&r, 50, w, DAY - 1), 20);
        assert_eq!(released(&r, 50, w, DAY), 40);
        assert_eq!(released(&r, 50, w, 2 * DAY), 50);
        assert_eq!(next_release(&r, 50, 19, w), Some(0));
        assert_eq!(next_release(&r, 50, 20, w), Some(DAY));
        assert_eq!(next_release(&r, 50, 45, w), Some(2 * DAY));
        // 100 units at 20 a day over 3 days: 60 are ever released.
        assert_eq!(next_release(&r, 100, 60, w), None);
    }

    #[test]
    fn a_schedule_releases_its_steps() {
        let r = Release::Schedule(vec![
            ReleaseStep { at: 100, units: 1 },
            ReleaseStep { at: 200, units: 2 },
        ]);
        let w = window(&[0]);
        assert_eq!(released(&r, 3, w, 99), 0);
        assert_eq!(released(&r, 3, w, 100), 1);
        assert_eq!(released(&r, 3, w, 200), 3);
        // A live cut below the schedule caps it.
        assert_eq!(released(&r, 2, w, 200), 2);
        assert_eq!(next_release(&r, 3, 0, w), Some(100));
        assert_eq!(next_release(&r, 3, 1, w), Some(200));
        assert_eq!(next_release(&r, 3, 2, w), Some(200));
    }

    proptest! {
        /// released() is cumulative, never above the stock, and next_release()
        /// is the first instant it passes the awarded count.
        #[test]
        fn even_is_monotone_and_next_release_is_its_inverse(
            stock in 1u64..5000, len in 1i64..100_000, a in 0u64..5000, t in 0i64..100_000,
        ) {
            let w = Window { start_ms: 7, end_ms: 7 + len, day_starts: &[7] };
            let t = 7 + t % len;
            prop_assert!(released(&Release::Even, stock, w, t) <= stock);
            prop_assert!(released(&Release::Even, stock, w, t) <= released(&Release::Even, stock, w, t + 1));
            if a < stock {
                let at = next_release(&Release::Even, stock, a, w).unwrap();
                prop_assert!(at < 7 + len);
                prop_assert!(unit_released(&Release::Even, stock, a, w, at));
                prop_assert!(at == 7 || !unit_released(&Release::Even, stock, a, w, at - 1));
            }
        }
    }
}
