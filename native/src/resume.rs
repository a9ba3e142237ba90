//! Where a late event's visit resumes the status machine (`timeline._resume_point_by` and
//! `checkpoint_before`), read straight from the stored change records: a visit's bisection
//! and month arithmetic never build a Python datetime. Python (`streams/core/timeline.py`)
//! is the reference; `tests/unit/test_compiled_core.py` holds the two equal.

use super::*;

/// A stored change: `since` (big-endian int64 microseconds), then the status byte.
const CHANGE_SIZE: usize = 9;

/// The `since` of each stored change, read in place.
struct Changes<'a> {
    records: &'a [u8],
}

impl Changes<'_> {
    fn len(&self) -> usize {
        self.records.len() / CHANGE_SIZE
    }

    fn since(&self, index: usize) -> i64 {
        let start = index * CHANGE_SIZE;
        let mut bytes = [0_u8; 8];
        bytes.copy_from_slice(&self.records[start..start + 8]);
        i64::from_be_bytes(bytes)
    }

    /// How many changes began before `moment` (at or before it, `inclusive`): a bisection,
    /// as `Trajectory.count_before`.
    fn count_before(&self, moment: i64, inclusive: bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let since = self.since(mid);
            if since < moment || (inclusive && since == moment) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// 00:00 UTC on the first day of the month of `us` (`timeline.month_start`).
fn month_start(us: i64) -> Option<i64> {
    let (year, month) = year_month(us);
    instant(days_from_civil(year, month, 1) as i128 * US_PER_DAY as i128)
}

/// `checkpoint_before`: the latest review instant strictly before `moment` from which the
/// machine resumes, the later of the last change before it and the last month start.
/// `Err`: Python would raise.
fn checkpoint_before(
    changes: &Changes,
    first_event_at: i64,
    moment: i64,
) -> Result<Option<i64>, ()> {
    if moment <= first_event_at {
        return Ok(None);
    }
    let before = changes.count_before(moment, false);
    let mut best = (before > 0).then(|| changes.since(before - 1));
    let mut month = month_start(moment).ok_or(())?;
    if month == moment {
        let day_before = instant(month as i128 - US_PER_DAY as i128).ok_or(())?;
        month = month_start(day_before).ok_or(())?;
    }
    if month > first_event_at && best.is_none_or(|b| month > b) {
        best = Some(month);
    }
    Ok(best)
}

/// Where a visit whose earliest fresh event is at `moment` resumes a trajectory stored as
/// `records` (its last review instant known), the user's first event at `first`:
/// `(0, 0)` for the start, else (how many changes are kept, the review instant resumed
/// at). None: Python must answer (it would raise there).
#[pyfunction]
pub(crate) fn resume_point(
    records: &[u8],
    first: i64,
    moment: i64,
    horizon_us: i64,
) -> Option<(usize, i64)> {
    let changes = Changes { records };
    if !records.len().is_multiple_of(CHANGE_SIZE) {
        return None;
    }
    if changes.len() == 0 {
        return Some((0, 0));
    }
    let first_change = changes.since(0);
    let at = match checkpoint_before(&changes, first.min(first_change), moment).ok()? {
        Some(at) if at >= first_change => at,
        _ => return Some((0, 0)),
    };
    // The window's start is taken as Python takes it (a datetime): it must be one.
    instant(at as i128 - horizon_us as i128)?;
    Some((changes.count_before(at, true), at))
}
