//! Turning an element's bytes into the typed value its column holds.
//!
//! The column's kind comes from the dictionary VR; the bytes are read by the VR the file
//! actually carries, so an IS column accepts a binary US (and the reverse) from writers
//! that disagree with the dictionary. Values that do not parse become null and are
//! reported as invalid, never guessed.

use crate::charset::Charset;
use crate::selection::{ColumnSpec, Kind};
use crate::vr::Vr;

/// A decoded value: one entry for single-valued columns, several for multi-valued ones.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(Vec<String>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    /// Days since 1970-01-01.
    Date(Vec<i32>),
}

/// The bytes do not hold a valid value of the column's type.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

/// Decode `bytes` (an element whose VR in the file is `file_vr`) for `col`.
/// `Ok(None)` is an empty value.
pub fn decode(
    col: &ColumnSpec,
    file_vr: Vr,
    big_endian: bool,
    charset: &Charset,
    bytes: &[u8],
) -> Result<Option<Value>, Invalid> {
    let is_binary = binary_numbers(file_vr, false, &[]).is_some();
    let blank_text = !is_binary && bytes.iter().all(|&b| b == b' ' || b == 0);
    if bytes.is_empty() || blank_text {
        return Ok(None);
    }
    // UN carries the value as implicit little endian would: read it by the dictionary VR.
    let (vr, big_endian) = if file_vr == Vr::UN { (col.vr, false) } else { (file_vr, big_endian) };
    let value = match col.kind {
        Kind::Text => decode_text(vr, big_endian, charset, bytes, col.multi).map(Value::Text),
        Kind::Int => match binary_numbers(vr, big_endian, bytes) {
            Some(nums) => nums.into_iter().map(float_to_int).collect::<Option<Vec<_>>>().map(Value::Int),
            None => text_values(vr, charset, bytes, true).iter().map(|s| parse_int(s)).collect::<Option<_>>().map(Value::Int),
        },
        Kind::Float => match binary_numbers(vr, big_endian, bytes) {
            Some(nums) => Some(Value::Float(nums)),
            None => text_values(vr, charset, bytes, true).iter().map(|s| parse_float(s)).collect::<Option<_>>().map(Value::Float),
        },
        Kind::Date => text_values(vr, charset, bytes, true).iter().map(|s| parse_date(s)).collect::<Option<_>>().map(Value::Date),
    }
    .ok_or(Invalid)?;
    Ok(keep_first_unless_multi(value, col.multi))
}

fn keep_first_unless_multi(value: Value, multi: bool) -> Option<Value> {
    fn first<T>(mut v: Vec<T>, multi: bool) -> Option<Vec<T>> {
        if v.is_empty() {
            return None;
        }
        if !multi {
            v.truncate(1);
        }
        Some(v)
    }
    match value {
        Value::Text(v) => {
            if v.iter().all(|s| s.is_empty()) {
                None
            } else {
                first(v, multi).map(Value::Text)
            }
        }
        Value::Int(v) => first(v, multi).map(Value::Int),
        Value::Float(v) => first(v, multi).map(Value::Float),
        Value::Date(v) => first(v, multi).map(Value::Date),
    }
}

/// Numbers stored in binary VRs; `None` when the VR is text.
fn binary_numbers(vr: Vr, big_endian: bool, b: &[u8]) -> Option<Vec<f64>> {
    macro_rules! read {
        ($t:ty, $n:expr) => {
            b.chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                    (if big_endian { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }) as f64
                })
                .collect()
        };
    }
    Some(match &vr.0 {
        b"US" | b"OW" => read!(u16, 2),
        b"SS" => read!(i16, 2),
        b"UL" | b"OL" => read!(u32, 4),
        b"SL" => read!(i32, 4),
        b"SV" => read!(i64, 8),
        b"UV" | b"OV" => read!(u64, 8),
        b"FL" | b"OF" => read!(f32, 4),
        b"FD" | b"OD" => read!(f64, 8),
        _ => return None,
    })
}

fn float_to_int(x: f64) -> Option<i64> {
    (x.fract() == 0.0 && x.abs() < 9.2e18).then_some(x as i64)
}

/// Split and trim text values. Trailing spaces and NULs are padding everywhere; leading
/// spaces are insignificant except in the free-text VRs (LT, ST, UT).
fn decode_text(vr: Vr, big_endian: bool, charset: &Charset, bytes: &[u8], multi: bool) -> Option<Vec<String>> {
    if &vr.0 == b"AT" {
        let tags = bytes.chunks_exact(4).map(|c| {
            let (g, e) = if big_endian {
                (u16::from_be_bytes([c[0], c[1]]), u16::from_be_bytes([c[2], c[3]]))
            } else {
                (u16::from_le_bytes([c[0], c[1]]), u16::from_le_bytes([c[2], c[3]]))
            };
            format!("({g:04X},{e:04X})")
        });
        return Some(tags.collect());
    }
    if let Some(nums) = binary_numbers(vr, big_endian, bytes) {
        return Some(nums.iter().map(|n| n.to_string()).collect());
    }
    Some(text_values(vr, charset, bytes, multi))
}

fn text_values(vr: Vr, charset: &Charset, bytes: &[u8], split: bool) -> Vec<String> {
    let text = if &vr.0 == b"PN" {
        charset.decode_person_name(bytes)
    } else if vr.uses_charset() || vr == Vr::UN || vr.0 == *b"OB" {
        charset.decode(bytes)
    } else {
        Charset::default().decode(bytes)
    };
    let keep_leading = vr.single_valued_text();
    // Empty trailing component groups of a person name carry nothing ("A^B==" is "A^B").
    let pad: &[char] = if &vr.0 == b"PN" { &[' ', '\0', '='] } else { &[' ', '\0'] };
    let trim = |s: &str| -> String {
        let s = s.trim_end_matches(pad);
        if keep_leading { s.to_string() } else { s.trim_start_matches(' ').to_string() }
    };
    if split && !vr.single_valued_text() {
        text.split('\\').map(trim).collect()
    } else {
        vec![trim(&text)]
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
    let s = s.trim();
    let digits: String = match s.len() {
        8 => s.to_string(),
        10 if s.as_bytes()[4] == b'.' && s.as_bytes()[7] == b'.' => s.replace('.', ""),
        _ => return None,
    };
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = digits[0..4].parse().ok()?;
    let m: u32 = digits[4..6].parse().ok()?;
    let d: u32 = digits[6..8].parse().ok()?;
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
        decode(&col(vr, multi), Vr(*vr), false, &Charset::default(), bytes)
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
        assert_eq!(dec(b"DS", true, b" 0.5\\1e-3 "), Ok(Some(Value::Float(vec![0.5, 0.001]))));
        assert_eq!(dec(b"DS", false, b"abc "), Err(Invalid));
        assert_eq!(dec(b"IS", false, b"12 "), Ok(Some(Value::Int(vec![12]))));
        assert_eq!(dec(b"IS", false, b"1.0"), Ok(Some(Value::Int(vec![1]))));
        assert_eq!(dec(b"IS", false, b"1.5"), Err(Invalid));
    }

    #[test]
    fn binary_numbers_by_file_vr() {
        assert_eq!(dec(b"US", false, &512u16.to_le_bytes()), Ok(Some(Value::Int(vec![512]))));
        let c = col(b"US", false);
        assert_eq!(decode(&c, Vr(*b"US"), true, &Charset::default(), &[2, 0]), Ok(Some(Value::Int(vec![512]))));
        // A US column whose file says IS.
        assert_eq!(decode(&c, Vr(*b"IS"), false, &Charset::default(), b"7 "), Ok(Some(Value::Int(vec![7]))));
        // UN is read by the dictionary VR.
        assert_eq!(decode(&c, Vr::UN, false, &Charset::default(), &[3, 0]), Ok(Some(Value::Int(vec![3]))));
    }

    #[test]
    fn text_trimming_and_splitting() {
        assert_eq!(
            dec(b"CS", true, b"ORIGINAL\\PRIMARY\\ "),
            Ok(Some(Value::Text(vec!["ORIGINAL".into(), "PRIMARY".into(), "".into()])))
        );
        assert_eq!(dec(b"UI", false, b"1.2.3\0"), Ok(Some(Value::Text(vec!["1.2.3".into()]))));
        assert_eq!(dec(b"LT", false, b"  a\\b  "), Ok(Some(Value::Text(vec!["  a\\b".into()]))));
        assert_eq!(dec(b"LO", false, b"   "), Ok(None));
        assert_eq!(dec(b"PN", false, b"Wang^XiaoDong== "), Ok(Some(Value::Text(vec!["Wang^XiaoDong".into()]))));
        assert_eq!(dec(b"AT", false, &[0x10, 0x00, 0x20, 0x00]), Ok(Some(Value::Text(vec!["(0010,0020)".into()]))));
    }
}
