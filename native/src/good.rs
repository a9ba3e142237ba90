//! Months of good behaviour, simulated (`good_behaviour.future_values`): each month an
//! on-time instalment on every open loan and one purchase, folded into the user's state,
//! then every characteristic's bin at the month's end. A declined request's path back
//! looks at up to 24 such months; Python (`streams/core/good_behaviour.py`) is the
//! reference and `tests/unit/test_compiled_core.py` holds the two equal.

use super::advance::{Event, Fold, FoldArgs, REPAYMENT, SPENDING};
use super::*;

/// A month's events fall a day before it ends.
const BEFORE_END_US: i64 = US_PER_DAY;
/// One purchase of 1.00 (cents, and the amount's decimal exponent).
const PURCHASE_CENTS: i64 = 100;
const PURCHASE_EXPONENT: i32 = -2;
/// `RepaymentEvent` counted as on time (amount paid = amount due, no day past due).
const ON_TIME_COUNT: u8 = 1;
/// Event ids are at most this many characters (`schemas.models`).
const MAX_ID_CHARS: usize = 64;

fn event_id(month: usize, name: &str) -> String {
    format!("path-back:{month}:{name}")
        .chars()
        .take(MAX_ID_CHARS)
        .collect()
}

/// The good-behaviour events of month `month` (from 1), at `occurred`: the open loans'
/// instalments in loan-id order, then the purchase.
fn month_events(loans: &[(String, i64)], month: usize, occurred: i64) -> Vec<Event> {
    let instalments = loans.iter().map(|(loan_id, cents)| Event {
        occurred,
        kind: REPAYMENT,
        event_id: event_id(month, loan_id),
        key: loan_id.clone(),
        cents: *cents,
        exponent: 0,
        counted: ON_TIME_COUNT,
        days: 0,
        verified: false,
    });
    let purchase = Event {
        occurred,
        kind: SPENDING,
        event_id: event_id(month, "spend"),
        key: String::new(),
        cents: PURCHASE_CENTS,
        exponent: PURCHASE_EXPONENT,
        counted: 0,
        days: 0,
        verified: false,
    };
    instalments.chain(std::iter::once(purchase)).collect()
}

/// Each characteristic's bin (None: the missing bin) after k = 1, 2, … good months, the
/// k-th ending at `ends[k - 1]` (microseconds). None: Python must simulate.
#[pyfunction]
pub(crate) fn good_months(
    rules: &Bound<'_, Rules>,
    state: FoldArgs,
    ends: Vec<i64>,
) -> Option<Vec<Vec<Option<usize>>>> {
    let rules = rules.get();
    std::panic::catch_unwind(|| simulate(rules, state, &ends))
        .ok()
        .flatten()
}

fn simulate(rules: &Rules, state: FoldArgs, ends: &[i64]) -> Option<Vec<Vec<Option<usize>>>> {
    let mut fold = Fold::new(state);
    let mut loans: Vec<(String, i64)> = fold
        .loans
        .iter()
        .filter(|loan| loan.cents > 0)
        .map(|loan| (loan.key.clone(), loan.cents))
        .collect();
    loans.sort();
    let mut months = Vec::with_capacity(ends.len());
    for (k, &end) in ends.iter().enumerate() {
        let occurred = end.checked_sub(BEFORE_END_US)?;
        instant(occurred as i128)?;
        fold = fold.fold(&month_events(&loans, k + 1, occurred))?;
        let view = fold.view()?;
        let values = rules.values(&view, end.max(view.as_of));
        months.push(
            rules
                .characteristics
                .iter()
                .map(|c| c.bin_of(values[c.feature]))
                .collect(),
        );
    }
    Some(months)
}
