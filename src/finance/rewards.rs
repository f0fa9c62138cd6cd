//! Listing settled rewards: filters, keyset pagination and rows for CSV export.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// Filters of a rewards listing; every field optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub prize: Option<String>,
    pub user: Option<String>,
    /// Only the reward that handed out this prize code.
    pub code: Option<String>,
    /// Spun at or after.
    pub from: Option<DateTime<Utc>>,
    /// Spun before.
    pub to: Option<DateTime<Utc>>,
    /// Rows after this position (exclusive).
    pub after: Option<Cursor>,
}

/// A position in the listing order `(spun_at, spin_id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub spun_at: DateTime<Utc>,
    pub spin_id: Uuid,
}

impl Cursor {
    /// Opaque text form: `<unix micros>_<spin id>`.
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.spun_at.timestamp_micros(),
            self.spin_id.simple()
        )
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (micros, id) = s.split_once('_')?;
        Some(Cursor {
            spun_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            spin_id: Uuid::parse_str(id).ok()?,
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RewardRow {
    pub spin_id: Uuid,
    pub campaign_id: String,
    pub user_id: String,
    pub prize_id: String,
    /// The prize's name as last applied.
    pub prize_name: Option<String>,
    #[schema(value_type = String)]
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: String,
    /// The draw's random input.
    pub r: i64,
    /// Draw order: the results stream id.
    pub stream_id: String,
    pub config_version: i64,
    pub idempotency_key: String,
    /// The client context exactly as the ledger holds it (numbers unrounded).
    #[schema(value_type = Option<Object>)]
    pub context: Option<sqlx::types::Json<Box<serde_json::value::RawValue>>>,
    /// The prize code the win handed out (a prize with `stock: codes`); null
    /// for any other prize.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "RS100-7QX2")]
    pub code: Option<String>,
    pub spun_at: DateTime<Utc>,
    pub settled_at: DateTime<Utc>,
}

impl RewardRow {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            spun_at: self.spun_at,
            spin_id: self.spin_id,
        }
    }
}

const SELECT: &str =
    "SELECT r.spin_id, r.campaign_id, r.user_id, r.prize_id, p.name AS prize_name, r.amount,
        r.currency::text AS currency, r.r, r.stream_id, r.config_version, r.idempotency_key,
        r.context, r.code, r.spun_at, r.settled_at
    FROM rewards r
    LEFT JOIN prizes p ON p.campaign_id = r.campaign_id AND p.prize_id = r.prize_id
    WHERE r.campaign_id = $1
      AND ($2::text IS NULL OR r.prize_id = $2)
      AND ($3::text IS NULL OR r.user_id = $3)
      AND ($4::timestamptz IS NULL OR r.spun_at >= $4)
      AND ($5::timestamptz IS NULL OR r.spun_at < $5)
      AND ($6::timestamptz IS NULL OR (r.spun_at, r.spin_id) > ($6, $7))
      AND ($9::text IS NULL OR r.code = $9)
    ORDER BY r.spun_at, r.spin_id
    LIMIT $8";

/// One page of at most `limit` rows in `(spun_at, spin_id)` order, within
/// `within` (`store::pg::within`). Rows settled later with an earlier `spun_at`
/// than the cursor are not returned by later pages (they appear when the listing
/// is restarted); a page never repeats or skips a row that existed when the
/// previous page was read.
pub async fn page(
    pg: &PgPool,
    within: Duration,
    campaign: &str,
    f: &Filter,
    limit: i64,
) -> Result<Vec<RewardRow>, sqlx::Error> {
    let (campaign, f) = (campaign.to_owned(), f.clone());
    crate::store::pg::within(pg, within, move |c| {
        Box::pin(async move {
            sqlx::query_as::<_, RewardRow>(SELECT)
                .bind(&campaign)
                .bind(&f.prize)
                .bind(&f.user)
                .bind(f.from)
                .bind(f.to)
                .bind(f.after.map(|c| c.spun_at))
                .bind(f.after.map(|c| c.spin_id))
                .bind(limit)
                .bind(&f.code)
                .fetch_all(c)
                .await
        })
    })
    .await
}

/// The CSV header of an export: what finance reads first (the prize code, empty
/// for a prize without codes, after the context), then the columns that place
/// the row in the draw (audit, replay).
pub const CSV_HEADER: [&str; 15] = [
    "spin_id",
    "spun_at",
    "user_id",
    "prize_id",
    "prize_name",
    "amount",
    "currency",
    "context",
    "code",
    "campaign_id",
    "idempotency_key",
    "settled_at",
    "config_version",
    "stream_id",
    "r",
];

impl RewardRow {
    /// The row as CSV fields. Text a spreadsheet would run as a formula
    /// (starting with `=`, `+`, `-` or `@`) is prefixed with `'`.
    pub fn csv_fields(&self) -> [String; 15] {
        let safe = |s: &str| {
            if s.starts_with(['=', '+', '-', '@']) {
                format!("'{s}")
            } else {
                s.to_owned()
            }
        };
        let context = self
            .context
            .as_ref()
            .map(|c| {
                let text = c.0.get();
                let compact = crate::domain::context::canonical(text.as_bytes(), usize::MAX);
                safe(compact.as_deref().unwrap_or(text))
            })
            .unwrap_or_default();
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        [
            self.spin_id.to_string(),
            time(&self.spun_at),
            safe(&self.user_id),
            self.prize_id.clone(),
            safe(self.prize_name.as_deref().unwrap_or_default()),
            self.amount.to_string(),
            self.currency.clone(),
            context,
            // A code may start with `-`: quoted as any other text would be.
            safe(self.code.as_deref().unwrap_or_default()),
            self.campaign_id.clone(),
            safe(&self.idempotency_key),
            time(&self.settled_at),
            self.config_version.to_string(),
            self.stream_id.clone(),
            self.r.to_string(),
        ]
    }
}

impl Filter {
    /// The file name of an export of `campaign` under this filter, e.g.
    /// `rewards-diwali-2026-phone-from-20261101T000000Z.csv`: only
    /// `[A-Za-z0-9._-]`, so it needs no quoting in `Content-Disposition`.
    pub fn csv_file_name(&self, campaign: &str) -> String {
        let stamp = |t: &DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
        let mut name = format!("rewards-{campaign}");
        if let Some(p) = &self.prize {
            name += &format!("-{p}");
        }
        if let Some(u) = &self.user {
            let safe: String = u
                .chars()
                .take(64)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            name += &format!("-user-{safe}");
        }
        if let Some(c) = &self.code {
            // Codes are `[A-Za-z0-9_-]` (the listing refuses any other).
            name += &format!("-code-{c}");
        }
        if let Some(f) = &self.from {
            name += &format!("-from-{}", stamp(f));
        }
        if let Some(t) = &self.to {
            name += &format!("-to-{}", stamp(t));
        }
        name + ".csv"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_file_names_say_what_they_hold() {
        let mut f = Filter::default();
        assert_eq!(f.csv_file_name("diwali-2026"), "rewards-diwali-2026.csv");
        f.prize = Some("phone".into());
        f.user = Some("a/b\"c@x".into());
        f.from = DateTime::parse_from_rfc3339("2026-11-01T05:30:00+05:30")
            .ok()
            .map(|t| t.to_utc());
        assert_eq!(
            f.csv_file_name("diwali-2026"),
            "rewards-diwali-2026-phone-user-a_b_c_x-from-20261101T000000Z.csv"
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            spun_at: DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
            spin_id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "x",
            "1_2",
            "abc_0190a6",
            "99999999999999999999_00000000000000000000000000000000",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
