//! Prize values: an exact decimal amount and an ISO 4217-shaped currency code.

use rust_decimal::Decimal;
use std::fmt;

/// Three uppercase ASCII letters (`INR`, `USD`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "INR")]
pub struct Currency(String);

impl Currency {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "currency `{}` must be a three-letter uppercase code such as INR",
                super::truncate_for_message(s)
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An exact amount of money. Amounts are never floats: they are parsed from
/// decimal strings and serialised back as strings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "100.00")]
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    /// Largest amount a prize or a budget may be worth: in [`Self::units`] it
    /// stays below 2^53, exact in the draw script's Lua numbers.
    pub const MAX_AMOUNT: i64 = 900_000_000_000;
    /// [`Self::units`] per unit of currency: every amount has at most four decimals.
    pub const UNITS_PER_ONE: i64 = 10_000;
    /// At most four decimal places (paise, cents and their fractions).
    pub const MAX_SCALE: u32 = 4;

    /// Parses a decimal string such as `"79900.00"`: non-negative, at most
    /// four decimals, below [`Self::MAX_AMOUNT`]. Exponents and signs are refused.
    pub fn parse_amount(s: &str) -> Result<Decimal, String> {
        let plain = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && s.bytes().filter(|&b| b == b'.').count() <= 1
            && !s.starts_with('.')
            && !s.ends_with('.');
        if !plain {
            return Err(format!(
                "amount `{}` must be a plain non-negative decimal such as \"100.00\"",
                super::truncate_for_message(s)
            ));
        }
        let amount: Decimal = s.parse().map_err(|_| {
            format!(
                "amount `{}` is not a decimal number",
                super::truncate_for_message(s)
            )
        })?;
        if amount.scale() > Self::MAX_SCALE {
            return Err(format!(
                "amount `{}` has more than {} decimal places",
                super::truncate_for_message(s),
                Self::MAX_SCALE
            ));
        }
        if amount >= Decimal::from(Self::MAX_AMOUNT) {
            return Err(format!(
                "amount `{}` must be below {}",
                super::truncate_for_message(s),
                Self::MAX_AMOUNT
            ));
        }
        Ok(amount)
    }

    /// The amount in ten-thousandths of the currency (exact: at most four
    /// decimals), the integer the draw script counts budgets in.
    pub fn units(&self) -> u64 {
        use rust_decimal::prelude::ToPrimitive;
        (self.amount * Decimal::from(Self::UNITS_PER_ONE))
            .trunc()
            .to_u64()
            .unwrap_or(0)
    }

    /// The decimal amount of `units` ten-thousandths (the inverse of
    /// [`Self::units`]), exact, with four decimals as the ledger keeps them.
    pub fn amount_of_units(units: u64) -> Decimal {
        // Units stay below 2^53 (budget counts saturate there): exact in i64.
        Decimal::new(i64::try_from(units).unwrap_or(i64::MAX), Self::MAX_SCALE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(
            Money::parse_amount("79900.00").unwrap().to_string(),
            "79900.00"
        );
        assert_eq!(Money::parse_amount("0").unwrap(), Decimal::ZERO);
        for bad in [
            "",
            "-1",
            "1e3",
            "1.2.3",
            ".5",
            "5.",
            "1.23456",
            "abc",
            "900000000000",
        ] {
            assert!(Money::parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn units_are_ten_thousandths() {
        let m = |a: &str| Money {
            amount: Money::parse_amount(a).unwrap(),
            currency: Currency::parse("INR").unwrap(),
        };
        assert_eq!(m("100.00").units(), 1_000_000);
        assert_eq!(m("0.0001").units(), 1);
        assert_eq!(m("0").units(), 0);
        assert_eq!(m("899999999999.9999").units(), 8_999_999_999_999_999);
        assert!(m("899999999999.9999").units() < 1 << 53);
        for a in ["100.00", "0.0001", "0", "899999999999.9999"] {
            assert_eq!(Money::amount_of_units(m(a).units()), m(a).amount, "{a}");
        }
        assert_eq!(Money::amount_of_units(15_000).to_string(), "1.5000");
    }

    #[test]
    fn currencies() {
        assert!(Currency::parse("INR").is_ok());
        for bad in ["inr", "IN", "INRR", "I1R"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }
}
