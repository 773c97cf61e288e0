//! Specific Character Set (0008,0005): turning text bytes into Unicode.
//!
//! Single-byte and Unicode sets map onto one decoder. ISO 2022 code extensions
//! (Japanese, Korean, Chinese) switch sets inside a value with escape sequences; each run
//! between escapes is decoded with the set its escape designates, and a value starts over
//! in the default set (PS3.5 6.1.2.5.3). Decoders come from `encoding_rs`.

use std::borrow::Cow;

use encoding_rs::{Encoding, EUC_JP, EUC_KR, GB18030, GBK, ISO_2022_JP, SHIFT_JIS, UTF_8};

const ESC: u8 = 0x1b;

/// One character set a Specific Character Set value can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    /// ISO-IR 6 (ASCII); also the fallback for unknown names, decoded as Latin-1 so no
    /// byte is lost.
    Latin1,
    Single(&'static Encoding),
    Utf8,
    /// JIS X 0201: katakana in G1, romaji in G0 (Shift_JIS decodes both).
    JisX0201,
    /// JIS X 0208 in G0 (ISO 2022 IR 87).
    JisX0208,
    /// JIS X 0212 in G0 (ISO 2022 IR 159).
    JisX0212,
    /// KS X 1001 in G1 (ISO 2022 IR 149).
    KsX1001,
    /// GB 2312 in G1 (ISO 2022 IR 58).
    Gb2312,
    Gb18030,
    Gbk,
}

/// The character sets of one data set, as named by its Specific Character Set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charset {
    default: Set,
    /// Code extensions in use: escapes switch sets inside a value.
    iso2022: bool,
}

impl Default for Charset {
    fn default() -> Self {
        Charset { default: Set::Latin1, iso2022: false }
    }
}

fn set_by_term(term: &str) -> Option<Set> {
    use encoding_rs::*;
    let term = term.trim();
    // "ISO_IR 100", "ISO 2022 IR 100" (and the common misspelling "ISO_IR_100"): the
    // registration number after "IR" names the set.
    let Some(at) = term.find("IR") else {
        return match term {
            "" => Some(Set::Latin1),
            "GB18030" => Some(Set::Gb18030),
            "GBK" => Some(Set::Gbk),
            _ => None,
        };
    };
    let number: u32 = term[at + 2..].trim_start_matches([' ', '_']).parse().ok()?;
    Some(match number {
        6 | 100 => Set::Latin1,
        101 => Set::Single(ISO_8859_2),
        109 => Set::Single(ISO_8859_3),
        110 => Set::Single(ISO_8859_4),
        144 => Set::Single(ISO_8859_5),
        127 => Set::Single(ISO_8859_6),
        126 => Set::Single(ISO_8859_7),
        138 => Set::Single(ISO_8859_8),
        148 => Set::Single(WINDOWS_1254),
        203 => Set::Single(ISO_8859_15),
        166 => Set::Single(WINDOWS_874),
        13 => Set::JisX0201,
        87 => Set::JisX0208,
        159 => Set::JisX0212,
        149 => Set::KsX1001,
        58 => Set::Gb2312,
        192 => Set::Utf8,
        _ => return None,
    })
}

impl Charset {
    /// Build from the raw Specific Character Set value. Unknown terms fall back to
    /// Latin-1 (nothing is lost; the bytes stay readable) rather than failing the file.
    pub fn from_value(raw: &[u8]) -> Charset {
        let text = String::from_utf8_lossy(raw);
        let mut terms = text.split('\\').map(|t| t.trim_matches([' ', '\0']));
        let first = terms.next().unwrap_or("");
        let default = set_by_term(first).unwrap_or(Set::Latin1);
        // A lone ISO 2022 IR 87/159 term on its own still means Japanese code extensions.
        let iso2022 = first.starts_with("ISO 2022")
            || terms.any(|t| t.starts_with("ISO 2022"))
            || matches!(default, Set::JisX0208 | Set::JisX0212);
        Charset { default, iso2022 }
    }

    /// Decode a text value (all of it: values are split on `\` after decoding, so that a
    /// multi-byte character whose second byte is 0x5C is not cut in two).
    pub fn decode<'b>(&self, bytes: &'b [u8]) -> Cow<'b, str> {
        if !self.iso2022 || !bytes.contains(&ESC) {
            return decode_run(self.default, bytes);
        }
        let mut out = String::with_capacity(bytes.len());
        let mut set = self.default;
        let mut rest = bytes;
        loop {
            let end = rest.iter().position(|&b| b == ESC).unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            out.push_str(&decode_run(set, run));
            if tail.is_empty() {
                break;
            }
            match escape_sequence(tail) {
                Some((next, len)) => {
                    set = next;
                    rest = &tail[len..];
                }
                None => {
                    // Unknown escape: keep the byte visible rather than guess.
                    out.push('\u{1b}');
                    rest = &tail[1..];
                }
            }
        }
        Cow::Owned(out)
    }

    /// Decode a Person Name: each component group (`=`-separated: alphabetic,
    /// ideographic, phonetic) starts over in the default set.
    pub fn decode_person_name<'b>(&self, bytes: &'b [u8]) -> Cow<'b, str> {
        if !self.iso2022 {
            return self.decode(bytes);
        }
        let groups: Vec<Cow<str>> =
            split_single_byte_delimiter(bytes, b'=').into_iter().map(|group| self.decode(group)).collect();
        Cow::Owned(groups.join("="))
    }
}

/// Split on a delimiter byte only where it stands in a single-byte G0 set: inside a JIS
/// X 0208/0212 run (ESC $ B, ESC $ ( D) 0x3D and 0x5C are halves of a character.
fn split_single_byte_delimiter(bytes: &[u8], delim: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut two_byte = false;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == ESC {
            if let Some((set, len)) = escape_sequence(&bytes[i..]) {
                two_byte = matches!(set, Set::JisX0208 | Set::JisX0212);
                i += len;
                continue;
            }
        } else if bytes[i] == delim && !two_byte {
            parts.push(&bytes[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    parts.push(&bytes[start..]);
    parts
}

/// The set an escape sequence designates, and the escape's length.
fn escape_sequence(bytes: &[u8]) -> Option<(Set, usize)> {
    use encoding_rs::*;
    let seq = |s: &[u8]| bytes.starts_with(s);
    let table: &[(&[u8], Set)] = &[
        (b"\x1b(B", Set::Latin1),
        (b"\x1b(J", Set::JisX0201),
        (b"\x1b)I", Set::JisX0201),
        (b"\x1b$B", Set::JisX0208),
        (b"\x1b$@", Set::JisX0208),
        (b"\x1b$(D", Set::JisX0212),
        (b"\x1b$)C", Set::KsX1001),
        (b"\x1b$)A", Set::Gb2312),
        (b"\x1b-A", Set::Latin1),
        (b"\x1b-B", Set::Single(ISO_8859_2)),
        (b"\x1b-C", Set::Single(ISO_8859_3)),
        (b"\x1b-D", Set::Single(ISO_8859_4)),
        (b"\x1b-L", Set::Single(ISO_8859_5)),
        (b"\x1b-G", Set::Single(ISO_8859_6)),
        (b"\x1b-F", Set::Single(ISO_8859_7)),
        (b"\x1b-H", Set::Single(ISO_8859_8)),
        (b"\x1b-M", Set::Single(WINDOWS_1254)),
        (b"\x1b-b", Set::Single(ISO_8859_15)),
        (b"\x1b-T", Set::Single(WINDOWS_874)),
        (b"\x1b%G", Set::Utf8),
    ];
    table.iter().find(|(s, _)| seq(s)).map(|(s, set)| (*set, s.len()))
}

fn decode_with<'b>(enc: &'static Encoding, bytes: &'b [u8]) -> Cow<'b, str> {
    enc.decode_without_bom_handling(bytes).0
}

/// `bytes` as text when they are all ASCII. Most header values are: one pass over them,
/// not the two (an ASCII check, then UTF-8 validation) the safe conversion would make.
pub(crate) fn ascii_str(bytes: &[u8]) -> Option<&str> {
    if !bytes.is_ascii() {
        return None;
    }
    // SAFETY: every ASCII byte sequence is valid UTF-8, and `bytes` was just checked to be
    // ASCII.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

fn decode_run(set: Set, bytes: &[u8]) -> Cow<'_, str> {
    if !matches!(set, Set::JisX0208 | Set::JisX0212) {
        // Every set here agrees with ASCII below 0x80 (JIS X 0201 romaji differs only in
        // two glyphs that decoders map to ASCII too): ASCII text needs no decoder.
        if let Some(text) = ascii_str(bytes) {
            return Cow::Borrowed(text);
        }
    }
    match set {
        Set::Latin1 => Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
        Set::Single(enc) => decode_with(enc, bytes),
        Set::Utf8 => decode_with(UTF_8, bytes),
        Set::JisX0201 => decode_with(SHIFT_JIS, bytes),
        Set::JisX0208 => {
            let mut v = b"\x1b$B".to_vec();
            v.extend_from_slice(bytes);
            Cow::Owned(decode_with(ISO_2022_JP, &v).into_owned())
        }
        Set::JisX0212 => {
            // EUC-JP carries JIS X 0212 as 0x8F followed by the two bytes with the high bit set.
            let mut v = Vec::with_capacity(bytes.len() * 3 / 2);
            let mut pairs = bytes.chunks_exact(2);
            for p in &mut pairs {
                if p[0] >= 0x21 && p[0] <= 0x7e {
                    v.extend_from_slice(&[0x8f, p[0] | 0x80, p[1] | 0x80]);
                } else {
                    v.extend_from_slice(p);
                }
            }
            v.extend_from_slice(pairs.remainder());
            Cow::Owned(decode_with(EUC_JP, &v).into_owned())
        }
        Set::KsX1001 => decode_with(EUC_KR, bytes),
        Set::Gb2312 | Set::Gbk => decode_with(GBK, bytes),
        Set::Gb18030 => decode_with(GB18030, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_byte_for_byte() {
        let cs = Charset::from_value(b"ISO_IR 100");
        assert_eq!(cs.decode(b"Buc^J\xe9r\xf4me"), "Buc^Jérôme");
    }

    #[test]
    fn utf8_and_cyrillic() {
        assert_eq!(Charset::from_value(b"ISO_IR 192").decode("Łukasz".as_bytes()), "Łukasz");
        let cs = Charset::from_value(b"ISO_IR 144");
        let (raw, _, _) = encoding_rs::ISO_8859_5.encode("Привет");
        assert_eq!(raw.as_ref(), b"\xbf\xe0\xd8\xd2\xd5\xe2");
        assert_eq!(cs.decode(&raw), "Привет");
    }

    #[test]
    fn japanese_person_name_per_component_group() {
        // PS3.5 H.3.1 example: Yamada^Tarou=山田^太郎=やまだ^たろう
        let cs = Charset::from_value(b"\\ISO 2022 IR 87");
        let raw = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        assert_eq!(cs.decode_person_name(raw), "Yamada^Tarou=山田^太郎=やまだ^たろう");
    }

    #[test]
    fn korean_g1() {
        // PS3.5 I.2: Hong^Gildong=洪^吉洞=홍^길동
        let cs = Charset::from_value(b"\\ISO 2022 IR 149");
        let raw = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf";
        assert_eq!(cs.decode_person_name(raw), "Hong^Gildong=洪^吉洞=홍^길동");
    }

    #[test]
    fn delimiter_inside_two_byte_run_is_not_split() {
        // 0x3D ('=') as the second byte of a JIS X 0208 character.
        let parts = split_single_byte_delimiter(b"a=\x1b$B0=\x1b(B=b", b'=');
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn unknown_charset_falls_back_to_latin1() {
        let cs = Charset::from_value(b"ISO_IR 999");
        assert_eq!(cs.decode(b"\xe9"), "é");
    }
}
