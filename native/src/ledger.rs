//! A stored ledger read straight into the status machine's packed events.
//!
//! `streams/core/ledger.py` is the reference for the bytes (big-endian entries: kind,
//! occurred microseconds, content digest, event id, then the kind's fields; money as a
//! varint of `coefficient * 2 + sign` and a signed exponent byte) and
//! `streams/core/compiled.py`'s `pack_event` for the packing. Reading a late event's whole
//! history this way skips building a Python event per entry and packing it again. Wherever
//! the Python side would raise or pack differently (a truncated or unknown entry, non-ASCII
//! text, money not in whole cents or too large), the answer is None and Python reads it.

use pyo3::prelude::*;

use crate::advance::EventArgs;

const CENTS_LIMIT: i128 = 1 << 48;
const ASSET_TYPES: [&str; 4] = ["deposit", "investment", "property", "income"];

/// A decimal exactly as stored: sign, coefficient, exponent.
#[derive(Clone, Copy)]
pub(crate) struct Money {
    negative: bool,
    coefficient: u64,
    pub(crate) exponent: i32,
}

impl Money {
    /// `-0`: kept apart from `0` in a decimal, not in cents (Python folds it).
    pub(crate) fn negative_zero(self) -> bool {
        self.negative && self.coefficient == 0
    }

    fn positive(self) -> bool {
        !self.negative && self.coefficient != 0
    }

    /// `compiled._cents`: whole cents below 2**48 in magnitude, else None.
    pub(crate) fn cents(self) -> Option<i64> {
        if self.coefficient == 0 {
            return Some(0);
        }
        let shift = self.exponent + 2;
        let magnitude: i128 = if shift >= 0 {
            // 10**15 cents already exceed the limit: no larger power is needed.
            if shift > 15 {
                return None;
            }
            self.coefficient as i128 * 10_i128.pow(shift as u32)
        } else {
            let divisor = 10_u128.checked_pow((-shift) as u32)?;
            if !(self.coefficient as u128).is_multiple_of(divisor) {
                return None;
            }
            (self.coefficient as u128 / divisor) as i128
        };
        if magnitude >= CENTS_LIMIT {
            return None;
        }
        Some(if self.negative { -magnitude } else { magnitude } as i64)
    }

    /// `self < other` as decimals (None: not comparable exactly in 128 bits).
    fn less_than(self, other: Money) -> Option<bool> {
        let signed = |m: Money, scaled: u128| -> i128 {
            if m.negative {
                -(scaled as i128)
            } else {
                scaled as i128
            }
        };
        let low = self.exponent.min(other.exponent);
        let scale = |m: Money| -> Option<u128> {
            if m.coefficient == 0 {
                return Some(0);
            }
            let power = 10_u128.checked_pow((m.exponent - low) as u32)?;
            let scaled = (m.coefficient as u128).checked_mul(power)?;
            (scaled <= i128::MAX as u128).then_some(scaled)
        };
        Some(signed(self, scale(self)?) < signed(other, scale(other)?))
    }
}

pub(crate) struct Reader<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) at: usize,
}

impl Reader<'_> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let value = *self.data.get(self.at)?;
        self.at += 1;
        Some(value)
    }

    pub(crate) fn int64(&mut self) -> Option<i64> {
        let bytes = self.data.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(i64::from_be_bytes(bytes.try_into().ok()?))
    }

    pub(crate) fn float64(&mut self) -> Option<f64> {
        let bytes = self.data.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(f64::from_be_bytes(bytes.try_into().ok()?))
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            let bits = (byte & 0x7F) as u64;
            if shift >= 64 || (shift > 0 && bits >> (64 - shift) != 0) {
                return None; // beyond 64 bits: Python reads it, and declines to pack it
            }
            value |= bits << shift;
            if byte < 0x80 {
                return Some(value);
            }
            shift += 7;
        }
    }

    pub(crate) fn text(&mut self) -> Option<String> {
        let size = self.byte()? as usize;
        let raw = self.data.get(self.at..self.at + size)?;
        self.at += size;
        raw.is_ascii()
            .then(|| String::from_utf8(raw.to_vec()).ok())
            .flatten()
    }

    pub(crate) fn money(&mut self) -> Option<Money> {
        let packed = self.varint()?;
        let exponent = self.byte()? as i8;
        Some(Money {
            negative: packed & 1 == 1,
            coefficient: packed >> 1,
            exponent: exponent as i32,
        })
    }

    fn entry(&mut self) -> Option<(EventArgs, i64)> {
        let kind = self.byte()?;
        let occurred = self.int64()?;
        let digest = self.int64()?;
        let event_id = self.text()?;
        let args = match kind {
            b'r' => {
                let loan_id = self.text()?;
                let due = self.money()?;
                let paid = self.money()?;
                let days = i64::try_from(self.varint()?).ok()?;
                let balance = self.money()?;
                if balance.negative_zero() {
                    return None;
                }
                let counted = if due.positive() || paid.positive() {
                    if paid.less_than(due)? {
                        3
                    } else if days == 0 {
                        1
                    } else {
                        2
                    }
                } else {
                    0
                };
                (
                    occurred,
                    0,
                    event_id,
                    loan_id,
                    balance.cents()?,
                    balance.exponent,
                    counted,
                    days,
                    false,
                )
            }
            b's' => {
                let amount = self.money()?;
                if !(-6..=2).contains(&amount.exponent) {
                    return None;
                }
                let cents = amount.cents()?;
                (
                    occurred,
                    1,
                    event_id,
                    String::new(),
                    cents,
                    amount.exponent,
                    0,
                    0,
                    false,
                )
            }
            b'a' => {
                let asset_type = self.text()?;
                if !ASSET_TYPES.contains(&asset_type.as_str()) {
                    return None;
                }
                let value = self.money()?;
                if value.negative_zero() {
                    return None;
                }
                let verified = self.byte()? != 0;
                (
                    occurred,
                    2,
                    event_id,
                    asset_type,
                    value.cents()?,
                    value.exponent,
                    0,
                    0,
                    verified,
                )
            }
            _ => return None,
        };
        Some((args, digest))
    }
}

/// (the packed events, their content digests, where each entry ends in the blob).
type PackedLedger = (Vec<EventArgs>, Vec<i64>, Vec<usize>);

/// A stored ledger's entries as `compiled.pack_event` packs the events they hold, in stored
/// order, with each entry's digest and end offset. None: Python must read it.
#[pyfunction]
pub(crate) fn pack_ledger(blob: &[u8]) -> Option<PackedLedger> {
    std::panic::catch_unwind(|| read(blob)).ok().flatten()
}

fn read(blob: &[u8]) -> Option<PackedLedger> {
    let mut reader = Reader { data: blob, at: 0 };
    let (mut events, mut digests, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    while reader.at < blob.len() {
        let (args, digest) = reader.entry()?;
        events.push(args);
        digests.push(digest);
        ends.push(reader.at);
    }
    Some((events, digests, ends))
}
