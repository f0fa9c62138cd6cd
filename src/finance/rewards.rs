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
    "SELECT spin_id, campaign_id, user_id, prize_id, amount, currency::text AS currency, r,
        stream_id, config_version, idempotency_key, context, spun_at, settled_at
    FROM rewards
    WHERE campaign_id = $1
      AND ($2::text IS NULL OR prize_id = $2)
      AND ($3::text IS NULL OR user_id = $3)
      AND ($4::timestamptz IS NULL OR spun_at >= $4)
      AND ($5::timestamptz IS NULL OR spun_at < $5)
      AND ($6::timestamptz IS NULL OR (spun_at, spin_id) > ($6, $7))
    ORDER BY spun_at, spin_id
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
                .fetch_all(c)
                .await
        })
    })
    .await
}

/// The CSV header of an export.
pub const CSV_HEADER: [&str; 13] = [
    "spin_id",
    "campaign_id",
    "user_id",
    "prize_id",
    "amount",
    "currency",
    "r",
    "stream_id",
    "config_version",
    "idempotency_key",
    "context",
    "spun_at",
    "settled_at",
];

impl RewardRow {
    /// The row as CSV fields. Text a spreadsheet would run as a formula
    /// (starting with `=`, `+`, `-` or `@`) is prefixed with `'`.
    pub fn csv_fields(&self) -> [String; 13] {
        let safe = |s: &str| {
            if s.starts_with(['=', '+', '-', '@']) {
                format!("'{s}")
            } else {
                s.to_owned()
            }
        };
        [
            self.spin_id.to_string(),
            self.campaign_id.clone(),
            safe(&self.user_id),
            self.prize_id.clone(),
            self.amount.to_string(),
            self.currency.clone(),
            self.r.to_string(),
            self.stream_id.clone(),
            self.config_version.to_string(),
            safe(&self.idempotency_key),
            self.context
                .as_ref()
                .map(|c| {
                    let text = c.0.get();
                    let compact = crate::domain::context::canonical(text.as_bytes(), usize::MAX);
                    safe(compact.as_deref().unwrap_or(text))
                })
                .unwrap_or_default(),
            self.spun_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.settled_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
