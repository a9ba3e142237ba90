//! The fold as Redis stores it, read and written here so that the worker hands the machine
//! the bytes Redis gave and stores the bytes it answers, without a Python state between.
//!
//! `streams/core/codec.py` (format 2) is the reference for the bytes: the format byte;
//! `as_of` and `first_event_at` (big-endian int64 microseconds); the three event counts
//! (varint); the three decayed counters (big-endian float64, bit for bit); then five maps,
//! each its size (varint) and its entries in key order. Wherever Python would read, fold or
//! write differently (another format, keys out of order, money not in whole cents or a
//! negative zero, a negative month, text beyond 255 bytes or not ASCII), the answer is None
//! and Python runs it.

use pyo3::prelude::*;

use crate::advance::{Fold, Snapshot};
use crate::ledger::{Money, Reader};

const STATE_FORMAT: u8 = 2;
/// The exponents a spending month's sum is packed with (`compiled._EXPONENTS`).
const SPEND_EXPONENTS: std::ops::RangeInclusive<i32> = -6..=2;

/// Whether keys come in strictly ascending order (Python writes them sorted, once each).
fn ascending<K: PartialOrd>(keys: impl Iterator<Item = K>) -> bool {
    let mut last: Option<K> = None;
    for key in keys {
        if last.as_ref().is_some_and(|before| *before >= key) {
            return false;
        }
        last = Some(key);
    }
    true
}

impl Reader<'_> {
    fn count(&mut self) -> Option<i64> {
        i64::try_from(self.varint()?).ok()
    }

    /// Money as a snapshot keeps it: whole cents and the exponent as given.
    fn amount(&mut self) -> Option<(i64, i32)> {
        let money: Money = self.money()?;
        if money.negative_zero() {
            return None;
        }
        Some((money.cents()?, money.exponent))
    }

    fn snapshot(&mut self, asset: bool) -> Option<Snapshot> {
        let key = self.text()?;
        let occurred = self.int64()?;
        let event_id = self.text()?;
        let (cents, exponent) = self.amount()?;
        let verified = match (asset, self.data.get(self.at)) {
            (false, _) => false,
            (true, Some(&flag)) if flag <= 1 => {
                self.at += 1;
                flag == 1
            }
            (true, _) => return None,
        };
        Some(Snapshot {
            key,
            occurred,
            event_id,
            cents,
            exponent: Some(exponent),
            verified,
        })
    }
}

impl Fold {
    /// The fold `codec.encode_state` stored. None: Python must read it.
    pub(crate) fn from_stored(data: &[u8]) -> Option<Fold> {
        let mut r = Reader { data, at: 0 };
        if r.byte()? != STATE_FORMAT {
            return None;
        }
        let (as_of, first_event_at) = (r.int64()?, r.int64()?);
        let counts = [r.count()?, r.count()?, r.count()?];
        let decayed = [r.float64()?, r.float64()?, r.float64()?];
        let last_delinquency = (0..r.varint()?)
            .map(|_| Some((r.count()?, r.int64()?)))
            .collect::<Option<Vec<_>>>()?;
        let worst_by_month = (0..r.varint()?)
            .map(|_| Some((r.count()?, r.count()?)))
            .collect::<Option<Vec<_>>>()?;
        let spend_by_month = (0..r.varint()?)
            .map(|_| {
                let month = r.count()?;
                let (cents, exponent) = r.amount()?;
                SPEND_EXPONENTS
                    .contains(&exponent)
                    .then_some((month, cents, exponent))
            })
            .collect::<Option<Vec<_>>>()?;
        let loans = (0..r.varint()?)
            .map(|_| r.snapshot(false))
            .collect::<Option<Vec<_>>>()?;
        let assets = (0..r.varint()?)
            .map(|_| r.snapshot(true))
            .collect::<Option<Vec<_>>>()?;
        let canonical = r.at == data.len()
            && ascending(last_delinquency.iter().map(|e| e.0))
            && ascending(worst_by_month.iter().map(|e| e.0))
            && ascending(spend_by_month.iter().map(|e| e.0))
            && ascending(loans.iter().map(|s| s.key.as_str()))
            && ascending(assets.iter().map(|s| s.key.as_str()));
        canonical.then_some(Fold {
            as_of,
            first_event_at,
            counts,
            decayed,
            last_delinquency,
            worst_by_month,
            spend_by_month,
            loans,
            assets,
        })
    }

    /// The bytes `codec.encode_state` writes for this fold. None: Python must write them.
    pub(crate) fn to_stored(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        out.push(STATE_FORMAT);
        out.extend(self.as_of.to_be_bytes());
        out.extend(self.first_event_at.to_be_bytes());
        for count in self.counts {
            unsigned(&mut out, count)?;
        }
        for value in self.decayed {
            out.extend(value.to_be_bytes());
        }
        let mut levels = self.last_delinquency.clone();
        levels.sort_unstable();
        varint(&mut out, levels.len() as u128);
        for (level, at) in levels {
            unsigned(&mut out, level)?;
            out.extend(at.to_be_bytes());
        }
        let mut worst = self.worst_by_month.clone();
        worst.sort_unstable();
        varint(&mut out, worst.len() as u128);
        for (month, days) in worst {
            unsigned(&mut out, month)?;
            unsigned(&mut out, days)?;
        }
        let mut spend = self.spend_by_month.clone();
        spend.sort_unstable();
        varint(&mut out, spend.len() as u128);
        for (month, cents, exponent) in spend {
            unsigned(&mut out, month)?;
            money(&mut out, cents, exponent)?;
        }
        for (snapshots, asset) in [(&self.loans, false), (&self.assets, true)] {
            let mut sorted: Vec<&Snapshot> = snapshots.iter().collect();
            sorted.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            varint(&mut out, sorted.len() as u128);
            for snapshot in sorted {
                text(&mut out, &snapshot.key)?;
                out.extend(snapshot.occurred.to_be_bytes());
                text(&mut out, &snapshot.event_id)?;
                money(&mut out, snapshot.cents, snapshot.exponent?)?;
                if asset {
                    out.push(snapshot.verified as u8);
                }
            }
        }
        Some(out)
    }
}

/// `binary.varint`.
fn varint(out: &mut Vec<u8>, mut value: u128) {
    while value > 0x7F {
        out.push((value & 0x7F) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `binary.varint` of a count, month or level (None: negative, as Python refuses it).
fn unsigned(out: &mut Vec<u8>, value: i64) -> Option<()> {
    varint(out, u64::try_from(value).ok()?.into());
    Some(())
}

/// `binary.text`: a length byte, then ASCII.
fn text(out: &mut Vec<u8>, value: &str) -> Option<()> {
    if !value.is_ascii() || value.len() > 255 {
        return None;
    }
    out.push(value.len() as u8);
    out.extend(value.as_bytes());
    Some(())
}

/// `binary.money` of the decimal worth `cents` / 100 written with `exponent`: a varint of
/// `coefficient * 2 + sign`, then the exponent as a signed byte.
fn money(out: &mut Vec<u8>, cents: i64, exponent: i32) -> Option<()> {
    let exponent_byte = i8::try_from(exponent).ok()?;
    let magnitude = cents.unsigned_abs() as u128;
    let shift = -2 - exponent;
    let coefficient = if shift >= 0 {
        magnitude.checked_mul(10_u128.checked_pow(shift as u32)?)?
    } else {
        let divisor = 10_u128.checked_pow((-shift) as u32)?;
        if !magnitude.is_multiple_of(divisor) {
            return None; // not a decimal of that exponent: never packed so
        }
        magnitude / divisor
    };
    varint(out, coefficient.checked_mul(2)? | (cents < 0) as u128);
    out.push(exponent_byte as u8);
    Some(())
}

/// The loan ids of a stored fold (None: Python must read it).
#[pyfunction]
pub(crate) fn stored_loan_ids(data: &[u8]) -> Option<Vec<String>> {
    std::panic::catch_unwind(|| Fold::from_stored(data))
        .ok()
        .flatten()
        .map(|fold| fold.loans.into_iter().map(|loan| loan.key).collect())
}
