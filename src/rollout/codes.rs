//! Loading and withdrawing a code prize's codes from a file or an upload,
//! streamed: chunks of bytes in, batches of [`BATCH`] codes to lua/codes.lua
//! out, so memory stays bounded whatever the size. Serves `prizewheel campaign
//! codes` and `POST|DELETE /v1/admin/campaigns/{id}/prizes/{prize}/codes`.
//!
//! A file holds one code per line, or is a CSV whose first column is the code.
//! The first line is a header, and skipped, when its first column is one of
//! [`HEADERS`] (any case), or when it has a comma and its first column is not
//! a code. Blank lines are skipped; spaces around a code and a `\r` before the
//! newline are ignored; a CSV field may be quoted (`"CODE"`).

use crate::domain::{CampaignId, PrizeId};
use crate::store::redis::codes::CodesRejection;
use crate::store::redis::{RedisStore, StoreError};

/// Codes per script call: ~64 KiB of arguments at most, a few ms of Redis.
pub const BATCH: usize = 1000;
/// The longest code.
pub const MAX_CODE: usize = 64;
/// A line longer than this is reported invalid without being kept.
const MAX_LINE: usize = 1024;
/// First columns that name a header line.
pub const HEADERS: &[&str] = &[
    "code",
    "codes",
    "coupon",
    "coupon_code",
    "voucher",
    "promo_code",
];

/// Whether `s` is a code: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn is_code(s: &str) -> bool {
    (1..=MAX_CODE).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Adding codes to a prize's pool, or withdrawing them from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Withdraw,
}

/// A line that is not a code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Invalid {
    /// 1-based.
    pub line: u64,
    pub message: String,
}

/// What an upload did, over all its batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub added: u64,
    pub duplicates: u64,
    pub withdrawn: u64,
    pub already_awarded: u64,
    pub unknown: u64,
    /// The first invalid lines (at most the upload's cap), in file order.
    pub invalid: Vec<Invalid>,
    /// Every invalid line, also those past the cap.
    pub invalid_count: u64,
    /// The prize's pool after the last batch.
    pub available: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0:?}")]
    Rejected(CodesRejection),
}

/// One streamed upload: [`Upload::feed`] each chunk, then [`Upload::finish`].
pub struct Upload<'a> {
    store: &'a RedisStore,
    campaign: &'a CampaignId,
    prize: &'a PrizeId,
    op: Op,
    max_invalid: usize,
    /// The line being read, until its newline.
    partial: Vec<u8>,
    /// The line being read is over [`MAX_LINE`]: the rest of it is dropped.
    overlong: bool,
    line: u64,
    batch: Vec<String>,
    report: Report,
}

impl<'a> Upload<'a> {
    /// An upload keeping at most `max_invalid` invalid lines in its report.
    pub fn new(
        store: &'a RedisStore,
        campaign: &'a CampaignId,
        prize: &'a PrizeId,
        op: Op,
        max_invalid: usize,
    ) -> Self {
        Upload {
            store,
            campaign,
            prize,
            op,
            max_invalid,
            partial: Vec::new(),
            overlong: false,
            line: 0,
            batch: Vec::with_capacity(BATCH),
            report: Report::default(),
        }
    }

    /// Reads the lines `chunk` completes, sending each full batch.
    pub async fn feed(&mut self, mut chunk: &[u8]) -> Result<(), UploadError> {
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            self.take(&chunk[..nl]);
            self.end_line();
            chunk = &chunk[nl + 1..];
            if self.batch.len() >= BATCH {
                self.send().await?;
            }
        }
        self.take(chunk);
        Ok(())
    }

    /// Reads the last line (without its newline) and sends what is left.
    pub async fn finish(mut self) -> Result<Report, UploadError> {
        if !self.partial.is_empty() || self.overlong {
            self.end_line();
        }
        self.send().await?;
        if self.op == Op::Add && self.report.added + self.report.duplicates == 0 {
            // Nothing was sent: ask for the pool (and whether the prize takes codes).
            self.refresh().await?;
        }
        Ok(self.report)
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.overlong = true;
            self.partial.clear();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) {
        self.line += 1;
        let parsed = if std::mem::take(&mut self.overlong) {
            Err(format!("the line is longer than {MAX_LINE} bytes"))
        } else {
            parse_line(&self.partial, self.line == 1)
        };
        self.partial.clear();
        match parsed {
            Ok(Some(code)) => self.batch.push(code),
            Ok(None) => {}
            Err(message) => {
                self.report.invalid_count += 1;
                if self.report.invalid.len() < self.max_invalid {
                    self.report.invalid.push(Invalid {
                        line: self.line,
                        message,
                    });
                }
            }
        }
    }

    async fn send(&mut self) -> Result<(), UploadError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let r = &mut self.report;
        match self.op {
            Op::Add => {
                let a = self
                    .store
                    .add_codes(self.campaign, self.prize, &self.batch)
                    .await?
                    .map_err(UploadError::Rejected)?;
                r.added += a.added;
                r.duplicates += a.duplicates;
                r.available = a.available;
            }
            Op::Withdraw => {
                let w = self
                    .store
                    .withdraw_codes(self.campaign, self.prize, &self.batch)
                    .await?
                    .map_err(UploadError::Rejected)?;
                r.withdrawn += w.withdrawn;
                r.already_awarded += w.already_awarded;
                r.unknown += w.unknown;
                r.available = w.available;
            }
        }
        self.batch.clear();
        Ok(())
    }

    async fn refresh(&mut self) -> Result<(), UploadError> {
        let counts = self
            .store
            .count_codes(self.campaign, self.prize)
            .await?
            .map_err(UploadError::Rejected)?;
        self.report.available = counts.available;
        Ok(())
    }
}

/// The code on one line (`Ok(None)`: blank, or the header when `first`).
pub fn parse_line(line: &[u8], first: bool) -> Result<Option<String>, String> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err("the line is not UTF-8".into());
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let csv = text.contains(',');
    let column = text.split(',').next().unwrap_or_default().trim();
    let column = column
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(column);
    if first
        && (HEADERS.iter().any(|h| h.eq_ignore_ascii_case(column)) || (csv && !is_code(column)))
    {
        return Ok(None);
    }
    if is_code(column) {
        return Ok(Some(column.to_owned()));
    }
    let shown: String = column.chars().take(70).collect();
    Err(if column.len() > MAX_CODE {
        format!(
            "a code is at most {MAX_CODE} characters; this one has {}",
            column.chars().count()
        )
    } else if column.is_empty() {
        "the first column is empty: it must hold the code".into()
    } else {
        format!("`{shown}` is not a code: codes are 1 to {MAX_CODE} of A-Z, a-z, 0-9, `_` and `-`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_codes_headers_and_errors() {
        assert_eq!(parse_line(b"ABC-123", true), Ok(Some("ABC-123".into())));
        assert_eq!(parse_line(b"  x_1 \r", false), Ok(Some("x_1".into())));
        assert_eq!(parse_line(b"code,issued_at", true), Ok(None));
        assert_eq!(parse_line(b"Coupon", true), Ok(None));
        assert_eq!(parse_line(b"Coupon Code,batch", true), Ok(None));
        assert_eq!(
            parse_line(b"\"Q1\",2026-12-01", false),
            Ok(Some("Q1".into()))
        );
        assert_eq!(parse_line(b"   ", false), Ok(None));
        // A header is only the first line; a code named `code` later is a code.
        assert_eq!(parse_line(b"code", false), Ok(Some("code".into())));
        assert!(
            parse_line(b"AB CD", false)
                .unwrap_err()
                .contains("`AB CD` is not a code")
        );
        assert!(
            parse_line(b"AB CD", true).is_err(),
            "no comma: not a header"
        );
        assert!(
            parse_line(&[b'A'; 65], false)
                .unwrap_err()
                .contains("at most 64")
        );
        assert!(
            parse_line(b",x", false)
                .unwrap_err()
                .contains("first column is empty")
        );
        assert!(
            parse_line(b"\xff\xfe", false)
                .unwrap_err()
                .contains("UTF-8")
        );
        assert!(is_code(&"a".repeat(64)) && !is_code("") && !is_code("é"));
    }
}
