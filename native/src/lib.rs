//! The status machine, compiled: a user's events folded and reviewed at every review
//! instant, from a checkpoint to a moment, in one call (`advance`, in `advance.rs`); this
//! file holds the policy and scorecard (`Rules`) and the reviews of one folded state.
//!
//! The Python core (`streams/core/timeline.py`, `state.py`, `scoring.py`, `features.py`)
//! is the reference; this is the same arithmetic in the same order, so every answer is equal
//! bit for bit (`tests/unit/test_compiled_core.py` holds the two equal). Instants are
//! integer microseconds since the Unix epoch, UTC. Wherever Python would raise (an instant
//! outside the datetime range, a non-finite crossing) or this cannot be exact, the answer is
//! None and Python runs the machine.

use pyo3::prelude::*;

mod advance;
mod decode;
mod good;
mod ledger;
mod resume;
mod stored;

const HALF_LIFE_SECONDS: f64 = 180.0 * 86400.0;
const MONTH_DAYS: f64 = 30.4375;
const US_PER_SECOND: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SECOND;
/// How far before an estimated crossing the daily review may fall (timeline._MARGIN).
const MARGIN_US: i64 = 1_000;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z: Python's datetime range.
const MIN_US: i64 = -62_135_596_800 * US_PER_SECOND;
const MAX_US: i64 = 253_402_300_800 * US_PER_SECOND - 1;

/// The features in the order of `features._as_values` (the Python side passes indices).
const FEATURES: usize = 14;
const ON_TIME: usize = 0;
const LATE: usize = 1;
const MISSED: usize = 2;
const WORST_DPD: usize = 3;
const HOLDINGS: usize = 4; // seven state-only values from here
const AVERAGE_SPEND: usize = 11;
const ACTIVE_MONTHS: usize = 12;
const HISTORY: usize = 13;

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FROZEN: u8 = 2;

type Values = [Option<f64>; FEATURES];
/// A review as its status-change event states it: each characteristic's points, the
/// segment's index and the exception's, if one applies.
type Stated = (Vec<i64>, usize, Option<usize>);
type ConditionArgs = (usize, Option<f64>, Option<f64>);
type RuleArgs = (Vec<ConditionArgs>, Vec<ConditionArgs>);

/// An instant Python's datetime can hold, else None (Python would raise OverflowError).
fn instant(us: i128) -> Option<i64> {
    if us < MIN_US as i128 || us > MAX_US as i128 {
        None
    } else {
        Some(us as i64)
    }
}

/// `timedelta(**{unit: value})` in microseconds, as CPython's `delta_new` computes it: the
/// integral part exactly, the fraction scaled in floating point, the leftover rounded half
/// to even. None where Python would raise (not finite, out of range).
fn timedelta_us(value: f64, unit_us: i64) -> Option<i128> {
    if !value.is_finite() || value.abs() > 1e15 {
        return None;
    }
    let whole = value.trunc();
    let fraction = value - whole;
    let mut sum = whole as i128 * unit_us as i128;
    let mut leftover = 0.0_f64;
    if fraction != 0.0 {
        let scaled = unit_us as f64 * fraction;
        let scaled_whole = scaled.trunc();
        sum += scaled_whole as i128;
        leftover = scaled - scaled_whole;
    }
    if leftover != 0.0 {
        let mut rounded = leftover.round();
        if (rounded - leftover).abs() == 0.5 {
            let odd = (sum & 1) as f64;
            rounded = 2.0 * ((leftover + odd) * 0.5).round() - odd;
        }
        sum += rounded as i128;
    }
    Some(sum)
}

/// `timedelta.total_seconds()`: exact microseconds, one correctly rounded division.
fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

extern "C" {
    /// The C library's `pow`, which CPython's `float ** float` calls.
    fn pow(base: f64, exponent: f64) -> f64;
}

/// `0.5 ** x` exactly as CPython computes it. Through an opaque pointer: LLVM would turn
/// `powf(0.5, x)` (or a call to `pow` it can see) into `exp2(-x)`, which rounds otherwise
/// in the last bit now and then.
fn python_pow(base: f64, exponent: f64) -> f64 {
    let libm_pow: unsafe extern "C" fn(f64, f64) -> f64 = std::hint::black_box(pow);
    // SAFETY: `pow` is the C library's, pure and defined for every pair of doubles.
    unsafe { libm_pow(base, exponent) }
}

fn decay_factor(elapsed_us: i64) -> f64 {
    let elapsed = seconds(elapsed_us);
    if elapsed <= 0.0 {
        1.0
    } else {
        python_pow(0.5, elapsed / HALF_LIFE_SECONDS)
    }
}

// ---- calendar (UTC, proleptic Gregorian) ------------------------------------------------
fn civil_from_days(days: i64) -> (i64, i64) {
    let (year, month, _) = civil_date(days);
    (year, month)
}

/// Howard Hinnant's algorithm: days since 1970-01-01 -> (year, month, day).
fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn year_month(us: i64) -> (i64, i64) {
    civil_from_days(us.div_euclid(US_PER_DAY))
}

fn month_index(us: i64) -> i64 {
    let (year, month) = year_month(us);
    year * 12 + month - 1
}

fn day_start(us: i64) -> i64 {
    us.div_euclid(US_PER_DAY) * US_PER_DAY
}

fn next_day_start(us: i64) -> Option<i64> {
    instant(day_start(us) as i128 + US_PER_DAY as i128)
}

fn daily_review_at_or_after(us: i64) -> Option<i64> {
    let start = day_start(us);
    if start == us {
        Some(start)
    } else {
        instant(start as i128 + US_PER_DAY as i128)
    }
}

fn next_month_start(us: i64) -> Option<i64> {
    let (year, month) = year_month(us);
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    if year > 9999 {
        return None;
    }
    instant(days_from_civil(year, month, 1) as i128 * US_PER_DAY as i128)
}

// ---- policy and scorecard ---------------------------------------------------------------
struct Condition {
    feature: usize,
    at_least: Option<f64>,
    below: Option<f64>,
}

impl Condition {
    fn holds(&self, value: Option<f64>) -> bool {
        let Some(value) = value else { return false };
        if let Some(at_least) = self.at_least {
            if value < at_least {
                return false;
            }
        }
        !matches!(self.below, Some(below) if value >= below)
    }
}

struct Rule {
    all: Vec<Condition>,
    any: Vec<Condition>,
}

impl Rule {
    fn new((all, any): RuleArgs) -> PyResult<Self> {
        let convert = |conditions: Vec<ConditionArgs>| -> PyResult<Vec<Condition>> {
            conditions
                .into_iter()
                .map(|(feature, at_least, below)| {
                    if feature >= FEATURES {
                        return Err(pyo3::exceptions::PyValueError::new_err("unknown feature"));
                    }
                    Ok(Condition {
                        feature,
                        at_least,
                        below,
                    })
                })
                .collect()
        };
        Ok(Rule {
            all: convert(all)?,
            any: convert(any)?,
        })
    }

    fn matches(&self, values: &Values) -> bool {
        if !self.all.iter().all(|c| c.holds(values[c.feature])) {
            return false;
        }
        self.any.is_empty() || self.any.iter().any(|c| c.holds(values[c.feature]))
    }
}

enum Lookup {
    /// Numeric bins: the ascending `below` edges (bisect_right).
    Edges(Vec<f64>),
    /// Categories: value -> bin index (exact float equality, as a dict lookup).
    Categories(Vec<(f64, usize)>),
}

struct Characteristic {
    feature: usize,
    lookup: Lookup,
    points: Vec<i64>,
    missing: i64,
}

impl Characteristic {
    /// The bin of `value` (None: the missing bin), as `document._bin_index` finds it.
    fn bin_of(&self, value: Option<f64>) -> Option<usize> {
        match value {
            None => None,
            Some(v) if v.is_nan() => None,
            Some(v) => match &self.lookup {
                Lookup::Categories(pairs) => pairs.iter().find(|(c, _)| *c == v).map(|p| p.1),
                Lookup::Edges(edges) => Some(bisect_right(edges, v)),
            },
        }
    }

    fn points_of(&self, value: Option<f64>) -> i64 {
        match self.bin_of(value) {
            Some(i) => self.points[i],
            None => self.missing,
        }
    }
}

fn bisect_right(edges: &[f64], value: f64) -> usize {
    let (mut lo, mut hi) = (0, edges.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if value < edges[mid] {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[derive(Clone, Copy)]
struct Thresholds {
    close_below: i64,
    reopen_at: i64,
}

struct Exception {
    segments: Vec<usize>,
    rule: Rule,
    thresholds: Thresholds,
}

#[derive(Clone, Copy, PartialEq)]
struct Line {
    status: u8,
    since: i64,
    settled: bool,
}

impl Line {
    fn from_args((status, since, settled): LineArgs) -> Self {
        Line {
            status,
            since,
            settled,
        }
    }

    fn args(self) -> LineArgs {
        (self.status, self.since, self.settled)
    }
}

/// A policy and a scorecard, compiled for the review loop.
#[pyclass(frozen, module = "creditline_native")]
struct Rules {
    base_points: i64,
    characteristics: Vec<Characteristic>,
    /// Segment rules in order, each with its thresholds; index `segments.len()` is standard.
    segments: Vec<(Rule, Thresholds)>,
    standard: Thresholds,
    exceptions: Vec<Exception>,
    min_dwell_us: i64,
    freeze_level: i64,
    freeze_window_us: i64,
    /// Time-driven edges: the three decayed counters' and the history length's.
    decay_edges: [Vec<f64>; 3],
    history_edges: Vec<f64>,
}

/// A status change as Python gets it: (status code, since, settled).
type LineArgs = (u8, i64, bool);

type CharacteristicArgs = (
    usize,
    Option<Vec<f64>>,
    Option<Vec<(f64, usize)>>,
    Vec<i64>,
    i64,
);

#[pymethods]
impl Rules {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        base_points: i64,
        characteristics: Vec<CharacteristicArgs>,
        segments: Vec<(RuleArgs, i64, i64)>,
        standard: (i64, i64),
        exceptions: Vec<(Vec<usize>, RuleArgs, i64, i64)>,
        min_dwell_us: i64,
        freeze: (i64, i64),
        decay_edges: (Vec<f64>, Vec<f64>, Vec<f64>),
        history_edges: Vec<f64>,
    ) -> PyResult<Self> {
        let mut cards = Vec::with_capacity(characteristics.len());
        for (feature, edges, categories, points, missing) in characteristics {
            let lookup = match (edges, categories) {
                (Some(edges), None) => {
                    if points.len() < edges.len() + 1 {
                        return Err(pyo3::exceptions::PyValueError::new_err("too few bins"));
                    }
                    Lookup::Edges(edges)
                }
                (None, Some(pairs)) => {
                    if pairs.iter().any(|p| p.1 >= points.len()) {
                        return Err(pyo3::exceptions::PyValueError::new_err("bad category"));
                    }
                    Lookup::Categories(pairs)
                }
                _ => {
                    return Err(pyo3::exceptions::PyValueError::new_err(
                        "edges or categories",
                    ))
                }
            };
            if feature >= FEATURES {
                return Err(pyo3::exceptions::PyValueError::new_err("unknown feature"));
            }
            cards.push(Characteristic {
                feature,
                lookup,
                points,
                missing,
            });
        }
        let thresholds = |close_below, reopen_at| Thresholds {
            close_below,
            reopen_at,
        };
        let mut rules = Vec::with_capacity(segments.len());
        for (rule, close_below, reopen_at) in segments {
            rules.push((Rule::new(rule)?, thresholds(close_below, reopen_at)));
        }
        let mut excepted = Vec::with_capacity(exceptions.len());
        for (segments, rule, close_below, reopen_at) in exceptions {
            excepted.push(Exception {
                segments,
                rule: Rule::new(rule)?,
                thresholds: thresholds(close_below, reopen_at),
            });
        }
        Ok(Rules {
            base_points,
            characteristics: cards,
            segments: rules,
            standard: thresholds(standard.0, standard.1),
            exceptions: excepted,
            min_dwell_us,
            freeze_level: freeze.0,
            freeze_window_us: freeze.1,
            decay_edges: [decay_edges.0, decay_edges.1, decay_edges.2],
            history_edges,
        })
    }
}

/// A folded state as the review loop reads it (spending in cents).
struct State {
    as_of: i64,
    first_event_at: i64,
    decayed: [f64; 3],
    last_delinquency: Vec<(i64, i64)>,
    holdings: [Option<f64>; 7],
    worst_by_month: Vec<(i64, i64)>,
    spend_by_month: Vec<(i64, i64)>,
}

impl State {
    fn last_delinquency_at(&self, level: i64) -> Option<i64> {
        self.last_delinquency
            .iter()
            .find(|(l, _)| *l == level)
            .map(|p| p.1)
    }
}

/// `round(n / 6)` half to even, symmetric in sign (Decimal's quantize of the division).
fn sixth_half_even(n: i64) -> i64 {
    let magnitude = n.unsigned_abs() as i128;
    let (quotient, remainder) = (magnitude / 6, magnitude % 6);
    let rounded = if remainder * 2 > 6 || (remainder * 2 == 6 && quotient % 2 == 1) {
        quotient + 1
    } else {
        quotient
    };
    if n < 0 {
        -(rounded as i64)
    } else {
        rounded as i64
    }
}

impl Rules {
    /// Review `state` at `moment` and at every time-driven review instant after it before
    /// `stop` and not after `until`, appending status changes; returns the last instant
    /// reviewed, the next time-driven review instant, and the score and feature values at the
    /// last review (None: Python must step).
    #[allow(clippy::too_many_arguments)]
    fn reviews(
        &self,
        state: &State,
        line: &mut Option<Line>,
        changes: &mut Vec<LineArgs>,
        moment: i64,
        stop: i64,
        until: i64,
        horizon_us: i64,
    ) -> Option<(i64, i64, i64, Values)> {
        let mut at = moment;
        loop {
            let (next, score, values) = self.review(state, at, *line);
            if *line != Some(next) {
                changes.push(next.args());
                *line = Some(next);
            }
            let following = self.next_time_review(state, *line, at, horizon_us)?;
            if following >= stop || following > until {
                return Some((at, following, score, values));
            }
            at = following;
        }
    }

    fn values(&self, state: &State, at: i64) -> Values {
        let factor = decay_factor(at - state.as_of);
        let now_month = month_index(at);
        let worst = state
            .worst_by_month
            .iter()
            .filter(|(month, _)| *month > now_month - 12)
            .map(|p| p.1)
            .max()
            .unwrap_or(0);
        let recent = state
            .spend_by_month
            .iter()
            .filter(|(month, _)| *month > now_month - 6);
        let (mut total, mut active) = (0_i64, 0_i64);
        for (_, cents) in recent {
            total += cents;
            active += (*cents > 0) as i64;
        }
        let mut values: Values = [None; FEATURES];
        values[ON_TIME] = Some(state.decayed[0] * factor);
        values[LATE] = Some(state.decayed[1] * factor);
        values[MISSED] = Some(state.decayed[2] * factor);
        values[WORST_DPD] = Some(worst as f64);
        values[HOLDINGS..HOLDINGS + 7].copy_from_slice(&state.holdings);
        values[AVERAGE_SPEND] = Some(sixth_half_even(total) as f64 / 100.0);
        values[ACTIVE_MONTHS] = Some(active as f64);
        values[HISTORY] = Some(seconds(at - state.first_event_at) / 86400.0 / MONTH_DAYS);
        values
    }

    fn score(&self, values: &Values) -> i64 {
        let raw = self.base_points
            + self
                .characteristics
                .iter()
                .map(|c| c.points_of(values[c.feature]))
                .sum::<i64>();
        raw.clamp(350, 950)
    }

    /// The segment whose rule these values match first (`scoring.segment_named`), as its
    /// index; the standard segment is the one after the policy's own.
    fn segment_of(&self, values: &Values) -> usize {
        self.segments
            .iter()
            .position(|(rule, _)| rule.matches(values))
            .unwrap_or(self.segments.len())
    }

    /// The index of the exception that applies in `segment` to these values, if any
    /// (`scoring.rules_for`).
    fn exception_of(&self, segment: usize, values: &Values) -> Option<usize> {
        self.exceptions
            .iter()
            .position(|e| e.segments.contains(&segment) && e.rule.matches(values))
    }

    /// What a status-change event states of a review resting on `values`: each
    /// characteristic's points (`ScorecardDocument.score`), the segment and the exception.
    pub(crate) fn stated(&self, values: &Values) -> Stated {
        let points = self
            .characteristics
            .iter()
            .map(|c| c.points_of(values[c.feature]))
            .collect();
        let segment = self.segment_of(values);
        (points, segment, self.exception_of(segment, values))
    }

    /// `scoring.review_step`: the status after the review at `at`, the score there and the
    /// feature values it rests on.
    fn review(&self, state: &State, at: i64, previous: Option<Line>) -> (Line, i64, Values) {
        let at = at.max(state.as_of);
        let values = self.values(state, at);
        let score = self.score(&values);
        let segment = self.segment_of(&values);
        let mut thresholds = self.segments.get(segment).map_or(self.standard, |s| s.1);
        if let Some(exception) = self.exception_of(segment, &values) {
            thresholds = self.exceptions[exception].thresholds;
        }
        let frozen = state
            .last_delinquency_at(self.freeze_level)
            .is_some_and(|latest| at - latest <= self.freeze_window_us);
        (
            self.next_line(previous, frozen, score, thresholds, at),
            score,
            values,
        )
    }

    /// `scoring.next_line_status`.
    fn next_line(
        &self,
        previous: Option<Line>,
        frozen: bool,
        score: i64,
        thresholds: Thresholds,
        at: i64,
    ) -> Line {
        let line = |status, settled| Line {
            status,
            since: at,
            settled,
        };
        if frozen {
            return match previous {
                Some(p) if p.status == FROZEN => p,
                _ => line(FROZEN, previous.is_some()),
            };
        }
        let qualifies = score >= thresholds.reopen_at;
        let status = if qualifies { OPEN } else { CLOSED };
        let Some(previous) = previous else {
            return line(status, false);
        };
        if previous.status == FROZEN {
            return line(status, true);
        }
        let dwelt = !previous.settled || at - previous.since >= self.min_dwell_us;
        if previous.status == OPEN && score < thresholds.close_below && dwelt {
            return line(CLOSED, true);
        }
        if previous.status == CLOSED && qualifies && dwelt {
            return line(OPEN, true);
        }
        previous
    }

    /// `timeline.next_time_review`.
    fn next_time_review(
        &self,
        state: &State,
        line: Option<Line>,
        at: i64,
        horizon_us: i64,
    ) -> Option<i64> {
        let mut earliest = instant(state.first_event_at as i128 + horizon_us as i128)?;
        if let Some(crossing) = self.decay_crossing(state, at)? {
            earliest = earliest.min(crossing);
        }
        if let Some(crossing) = self.history_crossing(state, at)? {
            earliest = earliest.min(crossing);
        }
        let daily = next_day_start(at)?.max(daily_review_at_or_after(instant(
            earliest as i128 - MARGIN_US as i128,
        )?)?);
        let mut next = next_month_start(at)?.min(daily);
        if let Some(line) = line.filter(|l| l.settled) {
            let dwell_over = instant(line.since as i128 + self.min_dwell_us as i128)?;
            if dwell_over > at {
                next = next.min(daily_review_at_or_after(dwell_over)?);
            }
        }
        if let Some(latest) = state.last_delinquency_at(self.freeze_level) {
            let thaw = instant(latest as i128 + self.freeze_window_us as i128 + 1)?;
            if thaw > at {
                next = next.min(thaw);
            }
        }
        Some(next)
    }

    /// `timeline._decay_crossings`; the outer None: Python would raise.
    fn decay_crossing(&self, state: &State, at: i64) -> Option<Option<i64>> {
        let factor = decay_factor(at - state.as_of);
        let mut earliest: Option<i64> = None;
        for (stored, edges) in state.decayed.iter().zip(&self.decay_edges) {
            let value = stored * factor;
            for &edge in edges.iter().rev() {
                if edge <= 0.0 {
                    break;
                }
                if value < edge {
                    continue;
                }
                let span = timedelta_us(HALF_LIFE_SECONDS * (stored / edge).log2(), US_PER_SECOND)?;
                let crossing = instant(state.as_of as i128 + span)?;
                earliest = Some(earliest.map_or(crossing, |e| e.min(crossing)));
                break;
            }
        }
        Some(earliest)
    }

    /// `timeline._history_crossings`; the outer None: Python would raise.
    fn history_crossing(&self, state: &State, at: i64) -> Option<Option<i64>> {
        let months = seconds(at - state.first_event_at) / 86400.0 / MONTH_DAYS;
        for &edge in &self.history_edges {
            if edge > months {
                let span = timedelta_us(edge * MONTH_DAYS, US_PER_DAY)?;
                return Some(Some(instant(state.first_event_at as i128 + span)?));
            }
        }
        Some(None)
    }
}

/// `timedelta(seconds=value)` (unit 10**6) or `timedelta(days=value)` (unit 86,400 * 10**6)
/// in microseconds, or None where Python raises: exposed for the equality tests.
#[pyfunction]
fn timedelta_micros(value: f64, unit_us: i64) -> Option<i128> {
    timedelta_us(value, unit_us)
}

/// The weight left after `elapsed_us` of event time (`state.decay_factor`): exposed for the
/// equality tests.
#[pyfunction]
fn decay_weight(elapsed_us: i64) -> f64 {
    decay_factor(elapsed_us)
}

#[pymodule]
fn creditline_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Rules>()?;
    module.add_function(wrap_pyfunction!(timedelta_micros, module)?)?;
    module.add_function(wrap_pyfunction!(decay_weight, module)?)?;
    module.add_function(wrap_pyfunction!(advance::advance, module)?)?;
    module.add_function(wrap_pyfunction!(ledger::pack_ledger, module)?)?;
    module.add_function(wrap_pyfunction!(good::good_months, module)?)?;
    module.add_function(wrap_pyfunction!(stored::stored_loan_ids, module)?)?;
    module.add_function(wrap_pyfunction!(resume::resume_point, module)?)?;
    module.add_function(wrap_pyfunction!(decode::decode_plain, module)?)?;
    Ok(())
}
