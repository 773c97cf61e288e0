//! Turning an element's bytes into the typed value its column holds.
//!
//! The column's kind comes from the dictionary VR; the bytes are read by the VR the file
//! actually carries, so an IS column accepts a binary US (and the reverse) from writers
//! that disagree with the dictionary. Values that do not parse become null and are
//! reported as invalid, never guessed.

use crate::charset::{ascii_str, Charset};
use crate::selection::{ColumnSpec, Kind};
use crate::vr::Vr;
use std::borrow::Cow;

/// A decoded value: a scalar for single-valued columns, a list for multi-valued ones.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    Float(f64),
    /// Days since 1970-01-01.
    Date(i32),
    TextList(Vec<String>),
    IntList(Vec<i64>),
    FloatList(Vec<f64>),
    DateList(Vec<i32>),
}

/// A freshly decoded value. Single text values borrow the file's bytes where no
/// character conversion was needed, so a sink can copy them once, straight into place.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded<'a> {
    Text(Cow<'a, str>),
    /// A multi-valued text value, whole: [`Decoded::parts`] gives its values, so that a
    /// sink copies them straight into place.
    TextParts(Cow<'a, str>, Vr),
    /// Several numbers or dates, held in place: no allocation for the usual few.
    Ints(Few<i64>),
    Floats(Few<f64>),
    Dates(Few<i32>),
    Value(Value),
}

impl Decoded<'_> {
    pub fn into_value(self) -> Value {
        match self {
            Decoded::Text(t) => Value::Text(t.into_owned()),
            Decoded::TextParts(t, vr) => Value::TextList(split_values(vr, &t).map(str::to_owned).collect()),
            Decoded::Ints(n) => Value::IntList(n.as_slice().to_vec()),
            Decoded::Floats(n) => Value::FloatList(n.as_slice().to_vec()),
            Decoded::Dates(n) => Value::DateList(n.as_slice().to_vec()),
            Decoded::Value(v) => v,
        }
    }
}

impl<'a> Decoded<'a> {
    /// The trimmed values of a multi-valued text value (none for any other value).
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        let (text, vr) = match self {
            Decoded::TextParts(t, vr) => (Some(t.as_ref()), *vr),
            _ => (None, Vr::UN),
        };
        text.into_iter().flat_map(move |t| split_values(vr, t))
    }
}

/// Values held in place up to six (pixel spacing, window centres, orientation: most
/// multi-valued numbers are one to six), on the heap beyond. Small, as every decoded
/// value is moved from the parser to the sink.
#[derive(Clone, Debug, PartialEq)]
pub enum Few<T> {
    Inline(u8, [T; 6]),
    Heap(Vec<T>),
}

impl<T: Copy + Default> Few<T> {
    fn new() -> Self {
        Few::Inline(0, [T::default(); 6])
    }

    fn push(&mut self, x: T) {
        match self {
            Few::Inline(len, items) if (*len as usize) < items.len() => {
                items[*len as usize] = x;
                *len += 1;
            }
            Few::Inline(_, items) => {
                let mut heap = items.to_vec();
                heap.push(x);
                *self = Few::Heap(heap);
            }
            Few::Heap(heap) => heap.push(x),
        }
    }

    pub fn as_slice(&self) -> &[T] {
        match self {
            Few::Inline(len, items) => &items[..*len as usize],
            Few::Heap(heap) => heap,
        }
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

/// The bytes do not hold a valid value of the column's type.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

/// Decode `bytes` (an element whose VR in the file is `file_vr`) for `col`.
/// `Ok(None)` is an empty value.
pub fn decode<'b>(
    col: &ColumnSpec,
    file_vr: Vr,
    big_endian: bool,
    charset: &Charset,
    bytes: &'b [u8],
) -> Result<Option<Decoded<'b>>, Invalid> {
    // UN (and implicit VR) carries the value as implicit little endian would: read it by
    // the dictionary VR.
    let (vr, big_endian) = if file_vr == Vr::UN { (col.vr, false) } else { (file_vr, big_endian) };
    if vr == Vr::SQ {
        // A column on a sequence itself (not an attribute inside it) has no value to hold,
        // whether the file says SQ or leaves the VR implicit.
        return Ok(None);
    }
    if bytes.is_empty() || (!is_binary(vr) && bytes.iter().all(|&b| b == b' ' || b == 0)) {
        return Ok(None);
    }
    match col.kind {
        Kind::Text => Ok(text(vr, big_endian, charset, bytes, col.multi)),
        Kind::Int => numbers(vr, big_endian, bytes, col.multi, parse_int, float_to_int)
            .map(|v| v.map(|n| n.into_decoded(Value::Int, Decoded::Ints))),
        Kind::Float => numbers(vr, big_endian, bytes, col.multi, parse_float, Some)
            .map(|v| v.map(|n| n.into_decoded(Value::Float, Decoded::Floats))),
        Kind::Date => collect(ascii_parts(bytes), col.multi, parse_date)
            .map(|v| v.map(|n| n.into_decoded(Value::Date, Decoded::Dates))),
    }
}

/// One value or several, before choosing the variant.
enum Parsed<T> {
    One(T),
    Many(Few<T>),
}

impl<T> Parsed<T> {
    fn into_decoded<'a>(self, one: fn(T) -> Value, many: fn(Few<T>) -> Decoded<'a>) -> Decoded<'a> {
        match self {
            Parsed::One(x) => Decoded::Value(one(x)),
            Parsed::Many(v) => many(v),
        }
    }
}

/// Parse every part (or only the first for single-valued columns); any bad part is invalid.
fn collect<P, T: Copy + Default>(
    mut parts: impl Iterator<Item = P>,
    multi: bool,
    parse: impl Fn(P) -> Option<T>,
) -> Result<Option<Parsed<T>>, Invalid> {
    if !multi {
        return match parts.next() {
            Some(p) => parse(p).map(|x| Some(Parsed::One(x))).ok_or(Invalid),
            None => Ok(None),
        };
    }
    let mut values = Few::new();
    for part in parts {
        values.push(parse(part).ok_or(Invalid)?);
    }
    Ok((!values.is_empty()).then_some(Parsed::Many(values)))
}

fn numbers<T: Copy + Default>(
    vr: Vr,
    big_endian: bool,
    bytes: &[u8],
    multi: bool,
    parse_text: fn(&str) -> Option<T>,
    from_binary: fn(f64) -> Option<T>,
) -> Result<Option<Parsed<T>>, Invalid> {
    // (Numbers and dates are ASCII in every character set: no decoding needed.)
    if is_binary(vr) {
        return collect(binary_numbers(vr, big_endian, bytes), multi, from_binary);
    }
    collect(ascii_parts(bytes), multi, parse_text)
}

/// The `\`-separated parts of an ASCII value (numbers, dates), trimmed of padding. A part
/// that is not ASCII comes back as a string no number parser accepts.
fn ascii_parts(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes.split(|&b| b == b'\\').map(|part| ascii_str(trim_bytes(part, false)).unwrap_or("\u{fffd}"))
}

/// Trailing spaces and NULs are padding everywhere; leading spaces too, except in free text.
fn trim_bytes(bytes: &[u8], keep_leading: bool) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != b' ' && b != 0).map_or(0, |i| i + 1);
    let start = if keep_leading { 0 } else { bytes[..end].iter().position(|&b| b != b' ').unwrap_or(end) };
    &bytes[start..end]
}

fn is_binary(vr: Vr) -> bool {
    const BINARY: [u16; 13] = [
        code(b"US"),
        code(b"OW"),
        code(b"SS"),
        code(b"UL"),
        code(b"OL"),
        code(b"SL"),
        code(b"SV"),
        code(b"UV"),
        code(b"OV"),
        code(b"FL"),
        code(b"OF"),
        code(b"FD"),
        code(b"OD"),
    ];
    BINARY.contains(&code(&vr.0))
}

/// Numbers stored in a binary VR, in file order.
fn binary_numbers(vr: Vr, big_endian: bool, b: &[u8]) -> BinaryNumbers<'_> {
    let kind = match &vr.0 {
        b"US" | b"OW" => BinaryKind::U16,
        b"SS" => BinaryKind::I16,
        b"UL" | b"OL" => BinaryKind::U32,
        b"SL" => BinaryKind::I32,
        b"SV" => BinaryKind::I64,
        b"UV" | b"OV" => BinaryKind::U64,
        b"FL" | b"OF" => BinaryKind::F32,
        b"FD" | b"OD" => BinaryKind::F64,
        _ => BinaryKind::None,
    };
    BinaryNumbers { bytes: b, kind, big_endian }
}

#[derive(Clone, Copy)]
enum BinaryKind {
    U16,
    I16,
    U32,
    I32,
    I64,
    U64,
    F32,
    F64,
    None,
}

/// The numbers of a binary value, read in place (no boxed iterator a value).
struct BinaryNumbers<'b> {
    bytes: &'b [u8],
    kind: BinaryKind,
    big_endian: bool,
}

impl Iterator for BinaryNumbers<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        macro_rules! read {
            ($t:ty, $n:expr) => {{
                let (head, rest) = self.bytes.split_first_chunk::<$n>()?;
                self.bytes = rest;
                (if self.big_endian { <$t>::from_be_bytes(*head) } else { <$t>::from_le_bytes(*head) }) as f64
            }};
        }
        Some(match self.kind {
            BinaryKind::U16 => read!(u16, 2),
            BinaryKind::I16 => read!(i16, 2),
            BinaryKind::U32 => read!(u32, 4),
            BinaryKind::I32 => read!(i32, 4),
            BinaryKind::I64 => read!(i64, 8),
            BinaryKind::U64 => read!(u64, 8),
            BinaryKind::F32 => read!(f32, 4),
            BinaryKind::F64 => read!(f64, 8),
            BinaryKind::None => return None,
        })
    }
}

fn float_to_int(x: f64) -> Option<i64> {
    (x.fract() == 0.0 && x.abs() < 9.2e18).then_some(x as i64)
}

/// A VR code as one number, to match on: `code(b"PN")`.
const fn code(vr: &[u8; 2]) -> u16 {
    u16::from_be_bytes(*vr)
}

const PN: u16 = code(b"PN");

/// Text in its character set: the Specific Character Set for SH/LO/ST/LT/UC/UT/PN (and
/// unknown VRs, which are mostly vendor text), the default repertoire otherwise.
fn decode_str<'b>(vr: Vr, charset: &Charset, bytes: &'b [u8]) -> Cow<'b, str> {
    const SH: u16 = code(b"SH");
    const LO: u16 = code(b"LO");
    const ST: u16 = code(b"ST");
    const LT: u16 = code(b"LT");
    const UC: u16 = code(b"UC");
    const UT: u16 = code(b"UT");
    const UN: u16 = code(b"UN");
    const OB: u16 = code(b"OB");
    match code(&vr.0) {
        PN => charset.decode_person_name(bytes),
        SH | LO | ST | LT | UC | UT | UN | OB => charset.decode(bytes),
        _ => Charset::default().decode(bytes),
    }
}

/// Trim padding: trailing spaces and NULs everywhere, leading spaces except in the free
/// text VRs (LT, ST, UT, UR), empty trailing component groups of a person name.
fn trim(vr: Vr, s: &str) -> &str {
    // The padding is ASCII, so trimming bytes keeps `s` cut at character boundaries.
    let person_name = code(&vr.0) == PN;
    let bytes = s.as_bytes();
    let end = bytes.iter().rposition(|&b| !(b == b' ' || b == 0 || (person_name && b == b'='))).map_or(0, |i| i + 1);
    let start = if vr.single_valued_text() { 0 } else { bytes[..end].iter().position(|&b| b != b' ').unwrap_or(end) };
    &s[start..end]
}

/// The trimmed values of a multi-valued text element.
fn split_values(vr: Vr, text: &str) -> impl Iterator<Item = &str> {
    text.split('\\').map(move |s| trim(vr, s))
}

fn text<'b>(vr: Vr, big_endian: bool, charset: &Charset, bytes: &'b [u8], multi: bool) -> Option<Decoded<'b>> {
    if &vr.0 == b"AT" {
        let tags: Vec<String> = bytes
            .chunks_exact(4)
            .map(|c| {
                let (g, e) = if big_endian {
                    (u16::from_be_bytes([c[0], c[1]]), u16::from_be_bytes([c[2], c[3]]))
                } else {
                    (u16::from_le_bytes([c[0], c[1]]), u16::from_le_bytes([c[2], c[3]]))
                };
                format!("({g:04X},{e:04X})")
            })
            .collect();
        return text_list(tags, multi).map(Decoded::Value);
    }
    if is_binary(vr) {
        let numbers = binary_numbers(vr, big_endian, bytes).map(|n| n.to_string()).collect();
        return text_list(numbers, multi).map(Decoded::Value);
    }
    if multi {
        // Only separators and padding: no value. (No multi-byte character has all its
        // bytes among these, so the raw bytes tell.)
        if bytes.iter().all(|&b| matches!(b, b'\\' | b' ' | 0) || (b == b'=' && vr.0 == *b"PN")) {
            return None;
        }
        Some(Decoded::TextParts(decode_str(vr, charset, bytes), vr))
    } else {
        // A single-valued column keeps the whole value, backslashes included.
        let text = match decode_str(vr, charset, trim_bytes(bytes, vr.single_valued_text())) {
            // The bytes were trimmed already; only a person name has more padding ('=').
            Cow::Borrowed(t) if code(&vr.0) != PN => Cow::Borrowed(t),
            Cow::Borrowed(t) => Cow::Borrowed(trim(vr, t)),
            Cow::Owned(t) => Cow::Owned(trim(vr, &t).to_owned()),
        };
        (!text.is_empty()).then_some(Decoded::Text(text))
    }
}

fn text_list(values: Vec<String>, multi: bool) -> Option<Value> {
    if values.iter().all(String::is_empty) {
        return None;
    }
    if multi {
        Some(Value::TextList(values))
    } else {
        values.into_iter().next().map(Value::Text)
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<i64>().ok().or_else(|| parse_float(s).and_then(float_to_int))
}

fn parse_float(s: &str) -> Option<f64> {
    let s = s.trim();
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    if !ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// DA is YYYYMMDD; the ACR-NEMA form YYYY.MM.DD is still common in archives.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.trim().as_bytes();
    let (y, m, d) = match b.len() {
        8 => (&b[0..4], &b[4..6], &b[6..8]),
        10 if b[4] == b'.' && b[7] == b'.' => (&b[0..4], &b[5..7], &b[8..10]),
        _ => return None,
    };
    let num = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32))
    };
    let (y, m, d) = (num(y)? as i32, num(m)?, num(d)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i32 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(vr: &[u8; 2], multi: bool) -> ColumnSpec {
        ColumnSpec::top("x", 1, Vr(*vr), multi)
    }

    fn dec(vr: &[u8; 2], multi: bool, bytes: &[u8]) -> Result<Option<Value>, Invalid> {
        decode(&col(vr, multi), Vr(*vr), false, &Charset::default(), bytes).map(owned)
    }

    fn owned(d: Option<Decoded<'_>>) -> Option<Value> {
        d.map(Decoded::into_value)
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("19700101"), Some(0));
        assert_eq!(parse_date("20000229"), Some(11_016));
        assert_eq!(parse_date("1999.12.31"), Some(10_956));
        assert_eq!(parse_date("19000229"), None);
        assert_eq!(parse_date("2001130"), None);
        assert_eq!(dec(b"DA", false, b"20231301"), Err(Invalid));
        assert_eq!(dec(b"DA", false, b""), Ok(None));
    }

    #[test]
    fn decimal_strings_with_spaces_and_exponents() {
        assert_eq!(dec(b"DS", true, b" 0.5\\1e-3 "), Ok(Some(Value::FloatList(vec![0.5, 0.001]))));
        assert_eq!(dec(b"DS", false, b"abc "), Err(Invalid));
        assert_eq!(dec(b"IS", false, b"12 "), Ok(Some(Value::Int(12))));
        assert_eq!(dec(b"IS", false, b"1.0"), Ok(Some(Value::Int(1))));
        assert_eq!(dec(b"IS", false, b"1.5"), Err(Invalid));
    }

    #[test]
    fn many_values_spill_from_their_place() {
        let text: Vec<String> = (1..=11).map(|i| format!("{i}.5")).collect();
        let expected: Vec<f64> = (1..=11).map(|i| i as f64 + 0.5).collect();
        assert_eq!(dec(b"DS", true, text.join("\\").as_bytes()), Ok(Some(Value::FloatList(expected))));
        let bytes: Vec<u8> = (0..10u16).flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(dec(b"US", true, &bytes), Ok(Some(Value::IntList((0..10).collect()))));
        assert_eq!(dec(b"US", true, &[1, 0, 2]), Ok(Some(Value::IntList(vec![1]))), "a trailing odd byte is ignored");
        assert_eq!(dec(b"DS", true, b"1\\x\\3"), Err(Invalid), "one bad value makes the whole invalid");
    }

    #[test]
    fn binary_numbers_by_file_vr() {
        assert_eq!(dec(b"US", false, &512u16.to_le_bytes()), Ok(Some(Value::Int(512))));
        let c = col(b"US", false);
        assert_eq!(decode(&c, Vr(*b"US"), true, &Charset::default(), &[2, 0]).map(owned), Ok(Some(Value::Int(512))));
        // A US column whose file says IS.
        assert_eq!(decode(&c, Vr(*b"IS"), false, &Charset::default(), b"7 ").map(owned), Ok(Some(Value::Int(7))));
        // UN is read by the dictionary VR, zero included.
        assert_eq!(decode(&c, Vr::UN, false, &Charset::default(), &[3, 0]).map(owned), Ok(Some(Value::Int(3))));
        assert_eq!(decode(&c, Vr::UN, false, &Charset::default(), &[0, 0]).map(owned), Ok(Some(Value::Int(0))));
    }

    #[test]
    fn multi_valued_text_of_padding_only_is_empty() {
        assert_eq!(dec(b"CS", true, b"\\ \\\0"), Ok(None));
        assert_eq!(dec(b"PN", true, b"==\\ "), Ok(None));
        assert_eq!(dec(b"CS", true, b" \\B"), Ok(Some(Value::TextList(vec!["".into(), "B".into()]))));
    }

    #[test]
    fn text_trimming_and_splitting() {
        assert_eq!(
            dec(b"CS", true, b"ORIGINAL\\PRIMARY\\ "),
            Ok(Some(Value::TextList(vec!["ORIGINAL".into(), "PRIMARY".into(), "".into()])))
        );
        assert_eq!(dec(b"UI", false, b"1.2.3\0"), Ok(Some(Value::Text("1.2.3".into()))));
        assert_eq!(dec(b"LT", false, b"  a\\b  "), Ok(Some(Value::Text("  a\\b".into()))));
        assert_eq!(dec(b"LO", false, b"   "), Ok(None));
        assert_eq!(dec(b"PN", false, b"Wang^XiaoDong== "), Ok(Some(Value::Text("Wang^XiaoDong".into()))));
        assert_eq!(dec(b"AT", false, &[0x10, 0x00, 0x20, 0x00]), Ok(Some(Value::Text("(0010,0020)".into()))));
    }
}
