//! Money: an integer amount of minor units with an ISO 4217 currency code.
//! Never a float.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of money in minor units (cents, fen, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    /// Amount in minor units.
    pub minor: i64,
    /// ISO 4217 alphabetic code, upper case, e.g. `CNY`.
    pub currency: Currency,
}

/// A three-letter upper-case currency code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

crate::string_schema!(Currency, "ISO 4217 code, e.g. CNY");

/// Why a money amount or currency could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum MoneyError {
    /// Not three ASCII letters.
    #[error("currency must be a three-letter ISO 4217 code such as CNY, got {0:?}")]
    BadCurrency(String),
    /// Not a decimal number.
    #[error("amount must be a decimal number such as 1234.56, got {0:?}")]
    BadAmount(String),
    /// More decimals than the currency has.
    #[error("{currency} has {digits} decimal places, got {input:?}")]
    TooManyDecimals {
        /// The input text.
        input: String,
        /// The currency.
        currency: Currency,
        /// Its number of minor-unit digits.
        digits: u32,
    },
    /// Does not fit in 64 bits of minor units.
    #[error("amount {0:?} is too large")]
    Overflow(String),
}

impl Currency {
    /// Parse a code, accepting lower case input.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let b = code.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(MoneyError::BadCurrency(code.to_owned()));
        }
        Ok(Self([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ]))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Number of minor-unit digits (ISO 4217 exponent) for common codes.
    pub fn minor_digits(&self) -> u32 {
        match self.as_str() {
            "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Money {
    /// Parse a decimal amount such as `1234.56` in `currency`.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let digits = currency.minor_digits();
        let text = amount.trim();
        let (neg, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        let ok_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !ok_digits(whole)
            || !ok_digits(frac)
            || (body.contains('.') && frac.is_empty())
        {
            return Err(MoneyError::BadAmount(amount.to_owned()));
        }
        if frac.len() as u32 > digits {
            return Err(MoneyError::TooManyDecimals {
                input: amount.to_owned(),
                currency,
                digits,
            });
        }
        let overflow = || MoneyError::Overflow(amount.to_owned());
        let scale = 10i64.pow(digits);
        let w: i64 = whole.parse().map_err(|_| overflow())?;
        let mut f: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| overflow())?
        };
        f *= 10i64.pow(digits - frac.len() as u32);
        let minor = w
            .checked_mul(scale)
            .and_then(|v| v.checked_add(f))
            .ok_or_else(overflow)?;
        Ok(Self {
            minor: if neg { -minor } else { minor },
            currency,
        })
    }
}

impl fmt::Display for Money {
    /// `1234.56 CNY`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_digits();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if digits == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let scale = 10u64.pow(digits);
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency,
            width = digits as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny() -> Currency {
        Currency::parse("cny").unwrap()
    }

    #[test]
    fn parses_and_formats_decimal_amounts() {
        let m = Money::parse("1234.56", cny()).unwrap();
        assert_eq!(m.minor, 123_456);
        assert_eq!(m.to_string(), "1234.56 CNY");
        assert_eq!(Money::parse("7", cny()).unwrap().minor, 700);
        assert_eq!(Money::parse("0.5", cny()).unwrap().minor, 50);
        assert_eq!(
            Money::parse("-3.05", cny()).unwrap().to_string(),
            "-3.05 CNY"
        );
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::parse("1500", jpy).unwrap().to_string(), "1500 JPY");
    }

    #[test]
    fn rejects_bad_amounts() {
        for bad in ["", "abc", "1.2.3", "1.", ".5", "1e5", "12,50"] {
            assert!(
                matches!(Money::parse(bad, cny()), Err(MoneyError::BadAmount(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Money::parse("1.234", cny()),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            Money::parse("99999999999999999999", cny()),
            Err(MoneyError::Overflow(_))
        ));
        assert!(Currency::parse("EURO").is_err());
    }
}
