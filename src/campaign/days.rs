//! Day boundaries of a campaign in its time zone.
//!
//! The per-day limit counts spins per calendar day *in the campaign's time zone*.
//! Lua in Redis has no time zone database, so applying a campaign stores the
//! start of each of its days as a Unix time in milliseconds (a sorted set); the
//! draw script finds today's index with one `ZCOUNT` and the next reset with one
//! `ZRANGEBYSCORE`. Daylight-saving changes are handled here, once.

use super::model::Campaign;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// Start of each day of the campaign, in Unix milliseconds: the campaign's start,
/// then every local midnight after it and before its end.
pub fn day_starts(c: &Campaign) -> Vec<i64> {
    let mut starts = vec![c.starts_at.timestamp_millis()];
    let mut date = c.starts_at.with_timezone(&c.timezone).date_naive();
    loop {
        date = match date.succ_opt() {
            Some(d) => d,
            None => break,
        };
        let midnight = local_midnight(c.timezone, date);
        if midnight >= c.ends_at {
            break;
        }
        starts.push(midnight.timestamp_millis());
    }
    starts
}

/// The campaign day of `now_ms` given the sorted day starts: how many starts lie
/// at or before it, minus one (as lua/counters.lua's day_index).
pub fn day_index(day_starts: &[i64], now_ms: i64) -> i64 {
    day_starts.partition_point(|&d| d <= now_ms) as i64 - 1
}

/// The first instant of `date` in `tz`. Where a zone skips midnight (a DST change
/// at 00:00), the day starts at the first local time that exists.
fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut local = date.and_time(chrono::NaiveTime::MIN);
    for _ in 0..48 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(30);
    }
    // No zone has a gap of a whole day; fall back to UTC midnight.
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::load::parse_campaign;

    fn campaign(tz: &str, start: &str, end: &str) -> Campaign {
        let yaml = format!(
            "id: t\nname: T\ntimezone: {tz}\nstarts_at: {start}\nends_at: {end}\nlimits: {{spins_per_user: 3}}\nfallback: x\nprizes:\n  - {{id: x, name: X, weight: 1, stock: unlimited, value: {{amount: \"0\", currency: INR}}}}\n"
        );
        parse_campaign(&yaml).unwrap()
    }

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn kolkata_days_start_at_1830_utc() {
        let c = campaign(
            "Asia/Kolkata",
            "2026-11-01T00:00:00+05:30",
            "2026-11-03T23:59:59+05:30",
        );
        assert_eq!(
            day_starts(&c),
            vec![
                utc("2026-10-31T18:30:00Z"),
                utc("2026-11-01T18:30:00Z"),
                utc("2026-11-02T18:30:00Z"),
            ]
        );
    }

    #[test]
    fn a_start_mid_day_counts_as_day_zero() {
        let c = campaign("UTC", "2026-11-01T12:00:00Z", "2026-11-02T12:00:00Z");
        assert_eq!(
            day_starts(&c),
            vec![utc("2026-11-01T12:00:00Z"), utc("2026-11-02T00:00:00Z")]
        );
    }

    #[test]
    fn a_day_that_leaves_daylight_saving_lasts_25_hours() {
        // New York leaves DST on 2026-11-01: that day lasts 25 hours.
        let c = campaign(
            "America/New_York",
            "2026-10-31T00:00:00-04:00",
            "2026-11-03T12:00:00-05:00",
        );
        let d = day_starts(&c);
        assert_eq!(d[1] - d[0], 24 * 3_600_000);
        assert_eq!(d[2] - d[1], 25 * 3_600_000);
        assert_eq!(d[3] - d[2], 24 * 3_600_000);
    }
}
