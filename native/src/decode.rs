//! Event records of the plain shape decoded here: the fold's way in without a Python parse,
//! validation, canonical dump and ledger entry per record.
//!
//! `streams/core/decoding.py` (JSON read with exact decimals, repeated keys refused) and
//! `schemas/models.py` (the event models) are the reference. Only a strict subset is read
//! here: a flat JSON object of ASCII text, each key once, the kind's fields with the types
//! and ranges the models accept, plain decimals (no sign or exponent), timestamps as
//! `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM)`, unknown keys only with a short scalar
//! value. Anything else (an escape in a string, a nested value, a lower-case `t`, seven
//! digits of a second, a value out of range, a record Python would refuse) answers None and
//! Python decodes the record: a refusal always comes from Python, with its code and message.
//! `tests/unit/test_plain_records.py` holds every answer equal to Python's.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{civil_date, days_from_civil, US_PER_DAY, US_PER_SECOND};

const REPAYMENT: u8 = 0;
const SPENDING: u8 = 1;
const ASSET: u8 = 2;
const ASSET_TYPES: [&str; 4] = ["deposit", "investment", "property", "income"];
/// `MONEY_MAX` in cents.
const MONEY_MAX_CENTS: u64 = 10_000_000_000 * 100;
/// Longest number read here (an amount's digits, or an unknown field's value).
const NUMBER_LIMIT: usize = 24;
/// Years read here: far inside Python's datetime range, so UTC never leaves it.
const YEARS: std::ops::RangeInclusive<i64> = 1900..=9000;

/// One JSON value of the subset, borrowed from the record.
#[derive(Clone, Copy)]
enum Value<'a> {
    Text(&'a str),
    /// A number's integer and fraction digits (no sign, no exponent).
    Number(&'a str, Option<&'a str>),
    Bool(bool),
    Null,
}

struct Parser<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.data.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.data.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    fn digits(&mut self) -> &'a str {
        let start = self.at;
        while self.data.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        // ASCII digits: always UTF-8.
        std::str::from_utf8(&self.data[start..self.at]).unwrap_or_default()
    }

    /// A string of printable ASCII without escapes (Python's json reads those the same).
    fn text(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match *self.data.get(self.at)? {
                b'"' => break,
                0x20..=0x7e if self.data[self.at] != b'\\' => self.at += 1,
                _ => return None,
            }
        }
        let text = std::str::from_utf8(&self.data[start..self.at]).ok()?;
        self.at += 1;
        Some(text)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.data.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn value(&mut self) -> Option<Value<'a>> {
        match *self.data.get(self.at)? {
            b'"' => Some(Value::Text(self.text()?)),
            b't' => self.literal(b"true").map(|()| Value::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Value::Bool(false)),
            b'n' => self.literal(b"null").map(|()| Value::Null),
            b'0'..=b'9' => {
                let whole = self.digits();
                if whole.len() > 1 && whole.starts_with('0') {
                    return None; // not JSON
                }
                let fraction = match self.eat(b'.') {
                    Some(()) => Some(self.digits()).filter(|digits| !digits.is_empty()),
                    None => None,
                };
                if self.data.get(self.at - 1) == Some(&b'.')
                    || matches!(self.data.get(self.at), Some(b'e' | b'E'))
                    || whole.len() + fraction.map_or(0, str::len) > NUMBER_LIMIT
                {
                    return None;
                }
                Some(Value::Number(whole, fraction))
            }
            _ => None,
        }
    }

    /// A flat object's members in order; None when not of the subset or a key repeats.
    fn object(mut self) -> Option<Vec<(&'a str, Value<'a>)>> {
        let mut members: Vec<(&'a str, Value<'a>)> = Vec::with_capacity(8);
        self.ws();
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_none() {
            loop {
                self.ws();
                let key = self.text()?;
                if members.iter().any(|(known, _)| *known == key) {
                    return None;
                }
                self.ws();
                self.eat(b':')?;
                self.ws();
                members.push((key, self.value()?));
                self.ws();
                if self.eat(b'}').is_some() {
                    break;
                }
                self.eat(b',')?;
            }
        }
        self.ws();
        (self.at == self.data.len()).then_some(members)
    }
}

fn id_of<'a>(value: Value<'a>, extra: &[u8], max: usize) -> Option<&'a str> {
    let Value::Text(text) = value else {
        return None;
    };
    let fits = |b: &u8| b.is_ascii_alphanumeric() || extra.contains(b);
    (!text.is_empty() && text.len() <= max && text.bytes().all(|b| fits(&b))).then_some(text)
}

fn event_id<'a>(value: Value<'a>) -> Option<&'a str> {
    id_of(value, b"._:-", 64)
}

/// `schemas.models._parse_money` on the subset: whole cents (places past two only zeros).
fn cents(value: Value<'_>) -> Option<u64> {
    let (whole, fraction) = match value {
        Value::Number(whole, fraction) => (whole, fraction),
        Value::Text(text) => {
            let (whole, fraction) = match text.split_once('.') {
                Some((whole, fraction)) => (whole, Some(fraction)),
                None => (text, None),
            };
            let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !all_digits(whole)
                || fraction.is_some_and(|f| !all_digits(f))
                || text.len() > NUMBER_LIMIT
            {
                return None;
            }
            (whole, fraction)
        }
        _ => return None,
    };
    let fraction = fraction.unwrap_or("");
    if fraction.bytes().skip(2).any(|b| b != b'0') {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut places = fraction.bytes().take(2).map(|b| u64::from(b - b'0'));
    let tenths = places.next().unwrap_or(0);
    let hundredths = places.next().unwrap_or(0);
    let total = whole.checked_mul(100)? + tenths * 10 + hundredths;
    (total <= MONEY_MAX_CENTS).then_some(total)
}

fn two(text: &[u8], at: usize) -> Option<i64> {
    let pair = text.get(at..at + 2)?;
    pair.iter()
        .all(u8::is_ascii_digit)
        .then(|| i64::from(pair[0] - b'0') * 10 + i64::from(pair[1] - b'0'))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// An RFC 3339 timestamp of the subset, as UTC microseconds.
fn instant(value: Value<'_>) -> Option<i64> {
    let Value::Text(text) = value else {
        return None;
    };
    let t = text.as_bytes();
    let year = two(t, 0)? * 100 + two(t, 2)?;
    let (month, day) = (two(t, 5)?, two(t, 8)?);
    let (hour, minute, second) = (two(t, 11)?, two(t, 14)?, two(t, 17)?);
    if [t.get(4), t.get(7), t.get(10), t.get(13), t.get(16)]
        != [
            Some(&b'-'),
            Some(&b'-'),
            Some(&b'T'),
            Some(&b':'),
            Some(&b':'),
        ]
        || !YEARS.contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0;
    if t.get(at) == Some(&b'.') {
        let digits = t[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=6).contains(&digits) {
            return None;
        }
        for place in 0..6 {
            let digit = if place < digits {
                i64::from(t[at + 1 + place] - b'0')
            } else {
                0
            };
            micros = micros * 10 + digit;
        }
        at += 1 + digits;
    }
    let offset = match t.get(at..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (two(t, at + 1)?, two(t, at + 4)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    let seconds = hour * 3600 + minute * 60 + second - offset;
    Some(days_from_civil(year, month, day) * US_PER_DAY + seconds * US_PER_SECOND + micros)
}

/// pydantic's JSON of a UTC datetime: microseconds only when there are some.
fn write_instant(out: &mut String, us: i64) {
    let days = us.div_euclid(US_PER_DAY);
    let within = us.rem_euclid(US_PER_DAY);
    let (year, month, day) = civil_date(days);
    let seconds = within / US_PER_SECOND;
    let micros = within % US_PER_SECOND;
    out.push_str(&format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    ));
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push('Z');
}

fn money_text(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value > 0x7f {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `binary.text`.
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

/// `binary.money` of an amount the models return: cents, exponent -2, never negative.
fn push_money(out: &mut Vec<u8>, cents: u64) {
    push_varint(out, cents << 1);
    out.push((-2_i8) as u8);
}

/// A record's members; those its kind does not name are ignored, as the models ignore
/// unknown fields (the parser took only values Python reads without fail).
struct Fields<'a> {
    members: Vec<(&'a str, Value<'a>)>,
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<Value<'a>> {
        self.members
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, v)| *v)
    }
}

/// What a plain record decodes to (see `streams/core/plain_records.py`).
type Decoded<'py> = (
    String,
    String,
    i64,
    Vec<Bound<'py, PyAny>>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
);

fn decode_members<'py>(
    py: Python<'py>,
    kind: u8,
    fields: Fields<'_>,
) -> PyResult<Option<Decoded<'py>>> {
    let (Some(id), Some(user), Some(occurred)) = (
        fields.get("event_id").and_then(event_id),
        fields.get("user_id").and_then(|v| id_of(v, b"_-", 64)),
        fields.get("occurred_at").and_then(instant),
    ) else {
        return Ok(None);
    };
    let mut json = String::with_capacity(256);
    json.push_str(&format!(
        r#"{{"event_id":"{id}","user_id":"{user}","occurred_at":""#
    ));
    write_instant(&mut json, occurred);
    json.push('"');
    let mut tail: Vec<u8> = Vec::with_capacity(96);
    push_text(&mut tail, id);
    let values: Vec<Bound<'py, PyAny>> = match kind {
        REPAYMENT => {
            let (Some(loan), Some(due), Some(paid), Some(Value::Number(days, None)), Some(balance)) = (
                fields.get("loan_id").and_then(event_id),
                fields.get("amount_due").and_then(cents),
                fields.get("amount_paid").and_then(cents),
                fields.get("days_past_due"),
                fields.get("outstanding_balance").and_then(cents),
            ) else {
                return Ok(None);
            };
            let Some(days) = days.parse::<u32>().ok().filter(|d| *d <= 36_500) else {
                return Ok(None);
            };
            json.push_str(&format!(
                r#","loan_id":"{loan}","amount_due":"{}","amount_paid":"{}","days_past_due":{days},"outstanding_balance":"{}"}}"#,
                money_text(due),
                money_text(paid),
                money_text(balance)
            ));
            push_text(&mut tail, loan);
            push_money(&mut tail, due);
            push_money(&mut tail, paid);
            push_varint(&mut tail, u64::from(days));
            push_money(&mut tail, balance);
            vec![
                loan.into_pyobject(py)?.into_any(),
                money_text(due).into_pyobject(py)?.into_any(),
                money_text(paid).into_pyobject(py)?.into_any(),
                days.into_pyobject(py)?.into_any(),
                money_text(balance).into_pyobject(py)?.into_any(),
            ]
        }
        SPENDING => {
            let merchant = match fields.get("merchant_id") {
                None | Some(Value::Null) => None,
                Some(value) => match event_id(value) {
                    Some(merchant) => Some(merchant),
                    None => return Ok(None),
                },
            };
            let (Some(amount), Some(category)) = (
                fields.get("amount").and_then(cents).filter(|c| *c > 0),
                fields.get("category").and_then(|v| id_of(v, b"_", 32)),
            ) else {
                return Ok(None);
            };
            if !category
                .bytes()
                .all(|b| b == b'_' || b.is_ascii_lowercase())
            {
                return Ok(None);
            }
            let merchant_json = merchant.map_or("null".to_owned(), |m| format!("\"{m}\""));
            json.push_str(&format!(
                r#","amount":"{}","category":"{category}","merchant_id":{merchant_json}}}"#,
                money_text(amount)
            ));
            push_money(&mut tail, amount);
            vec![
                money_text(amount).into_pyobject(py)?.into_any(),
                category.into_pyobject(py)?.into_any(),
                merchant.into_pyobject(py)?.into_any(),
            ]
        }
        ASSET => {
            let verified = match fields.get("verified") {
                None => false,
                Some(Value::Bool(flag)) => flag,
                Some(_) => return Ok(None),
            };
            let (Some(Value::Text(asset)), Some(value)) = (
                fields.get("asset_type"),
                fields.get("value").and_then(cents),
            ) else {
                return Ok(None);
            };
            if !ASSET_TYPES.contains(&asset) {
                return Ok(None);
            }
            json.push_str(&format!(
                r#","asset_type":"{asset}","value":"{}","verified":{verified}}}"#,
                money_text(value)
            ));
            push_text(&mut tail, asset);
            push_money(&mut tail, value);
            tail.push(u8::from(verified));
            vec![
                asset.into_pyobject(py)?.into_any(),
                money_text(value).into_pyobject(py)?.into_any(),
                verified.into_pyobject(py)?.to_owned().into_any(),
            ]
        }
        _ => return Ok(None),
    };
    Ok(Some((
        id.to_owned(),
        user.to_owned(),
        occurred,
        values,
        PyBytes::new(py, json.as_bytes()),
        PyBytes::new(py, &tail),
    )))
}

/// A plain record of `kind` (0 repayment, 1 spending, 2 asset): its event id, user id,
/// occurred instant (UTC microseconds), the kind's other fields (money as two-place decimal
/// text), the event's JSON as `model_dump_json` writes it, and its ledger entry after the
/// head (`ledger.encode_entry` without kind, instant and digest). None: Python decodes it.
#[pyfunction]
pub fn decode_plain<'py>(
    py: Python<'py>,
    kind: u8,
    value: &[u8],
) -> PyResult<Option<Decoded<'py>>> {
    let parser = Parser { data: value, at: 0 };
    let Some(members) = parser.object() else {
        return Ok(None);
    };
    decode_members(py, kind, Fields { members })
}
