//! The whole status machine of one user, compiled: `timeline.advance` in one call. Each
//! event instant's events are folded (`state.fold_events`, `without_paid_loans`), then the
//! state is reviewed at that instant and at every time-driven review instant up to the next
//! event, policy change or window edge (`Rules::reviews`); an event leaving the window
//! refolds the window.
//!
//! Money is whole cents (i64) with the decimal exponent Python's value has (each spending
//! month the exponent its Python sum would have), so that the state answered as stored bytes
//! (`stored.rs`) is the one Python's own fold and codec give, byte for byte.

use pyo3::types::PyBytes;

use super::*;

/// Days-past-due levels whose latest occurrence is tracked (`state.DELINQUENCY_LEVELS`).
const LEVELS: [i64; 4] = [1, 30, 60, 90];
const MONTHS_KEPT: i64 = 24;
/// Spending per month beyond this many cents is left to Python (as `compiled._CENTS_LIMIT`).
const CENTS_LIMIT: i64 = 1 << 48;
/// Sums of money are converted to floats exactly only below this many cents.
const FLOAT_EXACT: i64 = 1 << 53;
pub(crate) const REPAYMENT: u8 = 0;
pub(crate) const SPENDING: u8 = 1;
const WEALTH: [&str; 3] = ["deposit", "investment", "property"];

/// One event as Python packs it: (occurred, kind: 0 repayment, 1 spending, 2 asset; event
/// id; loan id or asset type; cents of the balance, amount or value; its decimal exponent;
/// how a repayment counts: 0 none, 1 on time, 2 late, 3 missed; days past due;
/// verified).
pub(crate) type EventArgs = (i64, u8, String, String, i64, i32, u8, i64, bool);

/// A loan or asset snapshot: (key, occurred, event id, cents, verified).
type SnapshotArgs = (String, i64, String, i64, bool);

/// A folded state as Python packs it: (as_of, first_event_at, (repayments, spendings, asset
/// updates), (on_time, late, missed), latest instant per delinquency level, worst days past
/// due per month, spending per month as (month, cents, exponent), loans, assets).
pub(crate) type FoldArgs = (
    i64,
    i64,
    (i64, i64, i64),
    (f64, f64, f64),
    Vec<(i64, i64)>,
    Vec<(i64, i64)>,
    Vec<(i64, i64, i32)>,
    Vec<SnapshotArgs>,
    Vec<SnapshotArgs>,
);

/// (the last status change before the start, the last review instant, the folded state at
/// it as stored, or the window of events `[lo, hi)` to fold it from).
pub(crate) type StartArgs<'py> = (
    Option<LineArgs>,
    Option<i64>,
    Option<Bound<'py, PyBytes>>,
    Option<(usize, usize)>,
);

/// (the new status changes, the last review instant, the next review instant, the state as
/// stored, and when this run reviewed at the last review instant, the score there, the
/// feature values it rests on and what its status-change event states).
pub(crate) type Advanced<'py> = (
    Vec<LineArgs>,
    Option<i64>,
    Option<i64>,
    Option<Bound<'py, PyBytes>>,
    Option<(i64, Values, Stated)>,
);

/// Where a run starts: as `StartArgs`, with the fold itself.
type Start = (
    Option<LineArgs>,
    Option<i64>,
    Option<Fold>,
    Option<(usize, usize)>,
);

/// What a run leaves: as `Advanced`, with the fold itself.
type Ran = (
    Vec<LineArgs>,
    Option<i64>,
    Option<i64>,
    Option<Fold>,
    Option<(i64, Values)>,
);

pub(crate) struct Event {
    pub(crate) occurred: i64,
    pub(crate) kind: u8,
    pub(crate) event_id: String,
    pub(crate) key: String,
    pub(crate) cents: i64,
    pub(crate) exponent: i32,
    pub(crate) counted: u8,
    pub(crate) days: i64,
    pub(crate) verified: bool,
}

#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) key: String,
    pub(crate) occurred: i64,
    pub(crate) event_id: String,
    pub(crate) cents: i64,
    /// The decimal exponent of the value as given (None: packed by Python without it, never
    /// stored from here).
    pub(crate) exponent: Option<i32>,
    pub(crate) verified: bool,
}

#[derive(Clone)]
pub(crate) struct Fold {
    pub(crate) as_of: i64,
    pub(crate) first_event_at: i64,
    pub(crate) counts: [i64; 3],
    pub(crate) decayed: [f64; 3],
    pub(crate) last_delinquency: Vec<(i64, i64)>,
    pub(crate) worst_by_month: Vec<(i64, i64)>,
    /// (month, cents, exponent of the Python sum).
    pub(crate) spend_by_month: Vec<(i64, i64, i32)>,
    pub(crate) loans: Vec<Snapshot>,
    pub(crate) assets: Vec<Snapshot>,
}

fn snapshots(args: Vec<SnapshotArgs>) -> Vec<Snapshot> {
    args.into_iter()
        .map(|(key, occurred, event_id, cents, verified)| Snapshot {
            key,
            occurred,
            event_id,
            cents,
            exponent: None,
            verified,
        })
        .collect()
}

/// Insert or replace `key`'s snapshot when the event is newer (`state._newer`).
fn keep_newer(snapshots: &mut Vec<Snapshot>, event: &Event) {
    let fresh = Snapshot {
        key: event.key.clone(),
        occurred: event.occurred,
        event_id: event.event_id.clone(),
        cents: event.cents,
        exponent: Some(event.exponent),
        verified: event.verified,
    };
    match snapshots.iter_mut().find(|s| s.key == event.key) {
        None => snapshots.push(fresh),
        Some(current) => {
            if (event.occurred, event.event_id.as_str())
                > (current.occurred, current.event_id.as_str())
            {
                *current = fresh;
            }
        }
    }
}

impl Fold {
    pub(crate) fn new(args: FoldArgs) -> Self {
        let (as_of, first, counts, decayed, delinquency, worst, spend, loans, assets) = args;
        Fold {
            as_of,
            first_event_at: first,
            counts: [counts.0, counts.1, counts.2],
            decayed: [decayed.0, decayed.1, decayed.2],
            last_delinquency: delinquency,
            worst_by_month: worst,
            spend_by_month: spend,
            loans: snapshots(loans),
            assets: snapshots(assets),
        }
    }

    fn empty(at: i64) -> Self {
        Fold {
            as_of: at,
            first_event_at: at,
            counts: [0; 3],
            decayed: [0.0; 3],
            last_delinquency: Vec::new(),
            worst_by_month: Vec::new(),
            spend_by_month: Vec::new(),
            loans: Vec::new(),
            assets: Vec::new(),
        }
    }

    /// `state.fold_events` of `events`: the same float operations in the same order. None:
    /// Python must fold (a sum too large).
    pub(crate) fn fold(mut self, events: &[Event]) -> Option<Self> {
        let mut kept_from = month_index(self.as_of) - MONTHS_KEPT + 1;
        for event in events {
            let occurred = event.occurred;
            if occurred > self.as_of {
                let factor = decay_factor(occurred - self.as_of);
                self.as_of = occurred;
                kept_from = month_index(occurred) - MONTHS_KEPT + 1;
                for value in &mut self.decayed {
                    *value *= factor;
                }
                self.worst_by_month.retain(|(month, _)| *month >= kept_from);
                self.spend_by_month
                    .retain(|(month, _, _)| *month >= kept_from);
            }
            if occurred < self.first_event_at {
                self.first_event_at = occurred;
            }
            if event.kind == REPAYMENT {
                self.counts[0] += 1;
                let weight = decay_factor(self.as_of - occurred);
                if event.counted > 0 {
                    self.decayed[event.counted as usize - 1] += weight;
                }
                let month = month_index(occurred);
                if event.days > 0 && month >= kept_from {
                    match self.worst_by_month.iter_mut().find(|(m, _)| *m == month) {
                        Some(entry) => entry.1 = entry.1.max(event.days),
                        None => self.worst_by_month.push((month, event.days)),
                    }
                }
                for level in LEVELS {
                    if event.days < level {
                        continue;
                    }
                    match self.last_delinquency.iter_mut().find(|(l, _)| *l == level) {
                        Some(entry) => entry.1 = entry.1.max(occurred),
                        None if occurred > MIN_US => self.last_delinquency.push((level, occurred)),
                        None => {}
                    }
                }
                keep_newer(&mut self.loans, event);
            } else if event.kind == SPENDING {
                self.counts[1] += 1;
                let month = month_index(occurred);
                if month >= kept_from {
                    match self.spend_by_month.iter_mut().find(|(m, _, _)| *m == month) {
                        Some(entry) => {
                            entry.1 = entry.1.checked_add(event.cents)?;
                            entry.2 = entry.2.min(event.exponent);
                        }
                        // Decimal(0) + amount: the exponent is at most 0.
                        None => {
                            self.spend_by_month
                                .push((month, event.cents, event.exponent.min(0)))
                        }
                    }
                }
            } else {
                self.counts[2] += 1;
                keep_newer(&mut self.assets, event);
            }
        }
        Some(self)
    }

    /// `state.without_paid_loans`.
    fn settled(mut self) -> Self {
        self.loans.retain(|loan| loan.cents != 0);
        self
    }

    /// The state as the review loop reads it. None: not exactly computable here.
    pub(crate) fn view(&self) -> Option<State> {
        let mut spend = Vec::with_capacity(self.spend_by_month.len());
        for &(month, cents, _) in &self.spend_by_month {
            if cents.abs() >= CENTS_LIMIT {
                return None;
            }
            spend.push((month, cents));
        }
        Some(State {
            as_of: self.as_of,
            first_event_at: self.first_event_at,
            decayed: self.decayed,
            last_delinquency: self.last_delinquency.clone(),
            holdings: self.holdings()?,
            worst_by_month: self.worst_by_month.clone(),
            spend_by_month: spend,
        })
    }

    /// `features._holdings_values`: debt, income, verified income, its level, debt to
    /// income, verified and unverified wealth.
    fn holdings(&self) -> Option<[Option<f64>; 7]> {
        let exact = |cents: i64| (cents.abs() < FLOAT_EXACT).then_some(cents as f64 / 100.0);
        let mut debt = 0_i64;
        for loan in &self.loans {
            debt = debt.checked_add(loan.cents)?;
        }
        let income = self.assets.iter().find(|a| a.key == "income");
        let earns = income.is_some_and(|a| a.cents != 0);
        let verified = earns && income.is_some_and(|a| a.verified);
        let (mut verified_assets, mut unverified_assets) = (0_i64, 0_i64);
        for asset in &self.assets {
            if WEALTH.contains(&asset.key.as_str()) {
                let sum = if asset.verified {
                    &mut verified_assets
                } else {
                    &mut unverified_assets
                };
                *sum = sum.checked_add(asset.cents)?;
            }
        }
        let income_cents = income.map(|a| a.cents);
        Some([
            Some(exact(debt)?),
            match income_cents {
                Some(cents) => Some(exact(cents)?),
                None => None,
            },
            Some(if verified { exact(income_cents?)? } else { 0.0 }),
            Some(if earns {
                1.0 + verified as i64 as f64
            } else {
                0.0
            }),
            if earns {
                Some(decimal_quotient(debt, income_cents?.checked_mul(12)?))
            } else {
                None
            },
            Some(exact(verified_assets)?),
            Some(exact(unverified_assets)?),
        ])
    }
}

/// `float(Decimal(n) / Decimal(d))` in Decimal's default context: the quotient rounded to
/// 28 significant digits, half to even, then to the nearest double (`d` is not zero).
fn decimal_quotient(n: i64, d: i64) -> f64 {
    const DIGITS: u128 = 10_u128.pow(28);
    let negative = (n < 0) != (d < 0);
    let (n, d) = (n.unsigned_abs() as u128, d.unsigned_abs() as u128);
    let mut mantissa = n / d;
    let mut remainder = n % d;
    let mut exponent = 0_i32;
    // One digit more than kept (a guard digit), or until the quotient is exact.
    while mantissa < DIGITS && remainder != 0 {
        remainder *= 10;
        mantissa = mantissa * 10 + remainder / d;
        remainder %= d;
        exponent -= 1;
    }
    if mantissa >= DIGITS {
        let guard = mantissa % 10;
        mantissa /= 10;
        exponent += 1;
        if guard > 5 || (guard == 5 && (remainder != 0 || mantissa % 2 == 1)) {
            mantissa += 1;
            if mantissa == DIGITS {
                mantissa /= 10;
                exponent += 1;
            }
        }
    }
    let magnitude: f64 = format!("{mantissa}e{exponent}")
        .parse()
        .expect("a decimal literal");
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// The policy and card in effect at an instant: stage k holds from its instant (the first
/// from always) to the next stage's.
struct Stages<'a> {
    instants: Vec<i64>,
    rules: Vec<&'a Rules>,
}

impl Stages<'_> {
    fn at(&self, moment: i64) -> &Rules {
        let index = self.instants[1..].partition_point(|&i| i <= moment);
        self.rules[index]
    }

    fn next_change_after(&self, moment: i64) -> Option<i64> {
        let index = self.instants[1..].partition_point(|&i| i <= moment);
        self.instants.get(index + 1).copied()
    }
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `timeline.advance` without a trace: the status machine from the start through every
/// review instant not after `until`. `events` are the user's in canonical order, `index`
/// the first after the start's review instant; `stages` the (instant, rules) of the policy
/// timeline, ascending (the first's instant is ignored). None: Python must run it.
#[pyfunction]
pub(crate) fn advance<'py>(
    py: Python<'py>,
    stages: Vec<(i64, Bound<'py, Rules>)>,
    events: Vec<EventArgs>,
    index: usize,
    start: StartArgs<'py>,
    until: i64,
    horizon_us: i64,
) -> Option<Advanced<'py>> {
    if stages.is_empty() {
        return None;
    }
    let stages = Stages {
        instants: stages.iter().map(|s| s.0).collect(),
        rules: stages.iter().map(|s| s.1.get()).collect(),
    };
    let (line, at, stored, window) = start;
    let stored = stored.as_ref().map(|bytes| bytes.as_bytes());
    // A panic would reach Python as a BaseException no `except Exception` catches: none is
    // expected, and should one happen the machine declines and Python runs it.
    let (changes, at, upcoming, fold, last_review) = std::panic::catch_unwind(|| {
        let fold = match stored {
            Some(data) => Some(Fold::from_stored(data)?),
            None => None,
        };
        let ran = run(
            &stages,
            events,
            index,
            (line, at, fold, window),
            until,
            horizon_us,
        )?;
        let stored = match &ran.3 {
            Some(fold) => Some(fold.to_stored()?),
            None => None,
        };
        Some((ran, stored))
    })
    .ok()
    .flatten()
    .map(|((changes, at, upcoming, _, last), stored)| (changes, at, upcoming, stored, last))?;
    // Under the rules in effect there, as the event's standing is read (the run reviewed
    // at `at` under them: a review loop stops at the next policy change).
    let last_review = match (last_review, at) {
        (Some((score, values)), Some(at)) => {
            let stated = stages.at(at).stated(&values);
            Some((score, values, stated))
        }
        _ => None,
    };
    Some((
        changes,
        at,
        upcoming,
        fold.map(|bytes| PyBytes::new(py, &bytes)),
        last_review,
    ))
}

fn run(
    stages: &Stages,
    events: Vec<EventArgs>,
    index: usize,
    start: Start,
    until: i64,
    horizon_us: i64,
) -> Option<Ran> {
    let events: Vec<Event> = events
        .into_iter()
        .map(
            |(occurred, kind, event_id, key, cents, exponent, counted, days, verified)| Event {
                occurred,
                kind,
                event_id,
                key,
                cents,
                exponent,
                counted,
                days,
                verified,
            },
        )
        .collect();
    let (last_line, mut at, state, window) = start;
    let mut line = last_line.map(Line::from_args);
    let mut fold = match (state, window) {
        (Some(fold), _) => Some(fold),
        (None, Some((lo, hi))) => match events.get(lo..hi)? {
            [] => None,
            window => Some(Fold::empty(window[0].occurred).fold(window)?.settled()),
        },
        (None, None) => None,
    };
    let mut view = match &fold {
        Some(fold) => Some(fold.view()?),
        None => None,
    };
    let mut index = index;
    let mut lo = 0_usize;
    let mut pending: Option<i64> = None;
    let mut changes = Vec::new();
    let mut last_review = None;
    loop {
        let mut moment = events.get(index).map(|e| e.occurred);
        if let (Some(at), Some(state)) = (at, &view) {
            if pending.is_none() {
                pending = Some(
                    stages
                        .at(at)
                        .next_time_review(state, line, at, horizon_us)?,
                );
            }
            moment = earliest(earliest(moment, pending), stages.next_change_after(at));
        }
        let Some(moment) = moment else {
            return Some((changes, at, None, fold, last_review));
        };
        if moment > until {
            return Some((changes, at, Some(moment), fold, last_review));
        }
        let fresh = index;
        while index < events.len() && events[index].occurred <= moment {
            index += 1;
        }
        let limit = instant(moment as i128 - horizon_us as i128)?;
        while lo < events.len() && events[lo].occurred <= limit {
            lo += 1;
        }
        fold = match fold {
            Some(state) if state.first_event_at <= limit => match &events[lo..index] {
                // An event left the window: fold the window again, in canonical order.
                [] => None,
                window => Some(Fold::empty(window[0].occurred).fold(window)?.settled()),
            },
            Some(state) if fresh < index => Some(state.fold(&events[fresh..index])?.settled()),
            None if fresh < index => Some(
                Fold::empty(events[fresh].occurred)
                    .fold(&events[fresh..index])?
                    .settled(),
            ),
            unchanged => unchanged,
        };
        at = Some(moment);
        pending = None;
        last_review = None;
        let Some(state) = &fold else {
            view = None;
            continue; // nothing in the window: no status to review
        };
        let state_view = state.view()?;
        let window_edge = state.first_event_at.saturating_add(horizon_us);
        let stop = earliest(
            earliest(
                events.get(index).map(|e| e.occurred),
                stages.next_change_after(moment),
            ),
            Some(window_edge),
        )
        .unwrap_or(window_edge);
        let (reviewed, following, reviewed_score, values) = stages.at(moment).reviews(
            &state_view,
            &mut line,
            &mut changes,
            moment,
            stop,
            until,
            horizon_us,
        )?;
        at = Some(reviewed);
        pending = Some(following);
        last_review = Some((reviewed_score, values));
        view = Some(state_view);
    }
}
