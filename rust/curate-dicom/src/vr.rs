//! Value Representations and the standard dictionary lookup that implicit-VR files need.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;

/// Every standard VR code.
const VR_CODES: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF", b"OL",
    b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US",
    b"UT", b"UV",
];

/// The VRs whose explicit header has two reserved bytes and a 32-bit length (PS3.5 7.1.2).
const LONG_LENGTH_CODES: [&[u8; 2]; 13] =
    [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];

const KNOWN: u8 = 1;
const LONG: u8 = 2;

/// `HEADER_KINDS[(first - 'A') * 26 + (second - 'A')]`: whether two capitals name a VR
/// (KNOWN), and whether its header has a 32-bit length (LONG). The parser asks both for
/// every element header it reads: one lookup answers.
const HEADER_KINDS: [u8; 26 * 26] = {
    let mut table = [0u8; 26 * 26];
    let mut i = 0;
    while i < VR_CODES.len() {
        let code = VR_CODES[i];
        table[(code[0] - b'A') as usize * 26 + (code[1] - b'A') as usize] = KNOWN;
        i += 1;
    }
    let mut i = 0;
    while i < LONG_LENGTH_CODES.len() {
        let code = LONG_LENGTH_CODES[i];
        table[(code[0] - b'A') as usize * 26 + (code[1] - b'A') as usize] |= LONG;
        i += 1;
    }
    table
};

/// A two-letter VR code as it appears in explicit-VR files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vr(pub [u8; 2]);

impl Vr {
    pub const UN: Vr = Vr(*b"UN");
    pub const SQ: Vr = Vr(*b"SQ");
    pub const UL: Vr = Vr(*b"UL");

    #[inline]
    fn header_kind(bytes: [u8; 2]) -> u8 {
        let (a, b) = (bytes[0].wrapping_sub(b'A') as usize, bytes[1].wrapping_sub(b'A') as usize);
        if a < 26 && b < 26 {
            HEADER_KINDS[a * 26 + b]
        } else {
            0
        }
    }

    /// Parse a VR code; `None` for anything that is not one of the standard VRs.
    #[inline]
    pub fn parse(bytes: [u8; 2]) -> Option<Vr> {
        (Self::header_kind(bytes) & KNOWN != 0).then_some(Vr(bytes))
    }

    /// An explicit element header's VR and whether its length takes 32 bits: `None` when
    /// the bytes name no VR (an implicit element). One lookup, for every header read.
    #[inline]
    pub fn parse_header(bytes: [u8; 2]) -> Option<(Vr, bool)> {
        let kind = Self::header_kind(bytes);
        (kind & KNOWN != 0).then_some((Vr(bytes), kind & LONG != 0))
    }

    /// VRs whose explicit header has two reserved bytes and a 32-bit length.
    #[inline]
    pub fn has_long_length(self) -> bool {
        Self::header_kind(self.0) & LONG != 0
    }

    /// Text whose bytes follow the Specific Character Set (others are ASCII only).
    pub fn uses_charset(self) -> bool {
        matches!(&self.0, b"SH" | b"LO" | b"ST" | b"LT" | b"UC" | b"UT" | b"PN")
    }

    /// Text VRs that never hold more than one value, so `\` is an ordinary character.
    pub fn single_valued_text(self) -> bool {
        matches!(&self.0, b"LT" | b"ST" | b"UT" | b"UR")
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The VR the standard dictionary gives a tag; UN for private and unknown tags.
    pub fn of_tag(tag: u32) -> Vr {
        let (group, element) = ((tag >> 16) as u16, tag as u16);
        if element == 0 {
            return Vr::UL; // group length
        }
        if group & 1 == 1 {
            // Private creators are LO; private data is unknown without the vendor dictionary.
            return if (0x0010..=0x00ff).contains(&element) { Vr(*b"LO") } else { Vr::UN };
        }
        match StandardDataDictionary.by_tag(Tag(group, element)).map(|e| e.vr()) {
            Some(VirtualVr::Exact(vr)) => Vr::parse(vr.to_bytes()).unwrap_or(Vr::UN),
            Some(VirtualVr::Xs) => Vr(*b"US"),
            Some(VirtualVr::Ox) | Some(VirtualVr::Px) | Some(VirtualVr::Lt) => Vr(*b"OW"),
            _ => Vr::UN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_lookup() {
        assert_eq!(Vr::of_tag(0x0010_0010), Vr(*b"PN"));
        assert_eq!(Vr::of_tag(0x0008_1115), Vr::SQ);
        assert_eq!(Vr::of_tag(0x0028_0010), Vr(*b"US"));
        assert_eq!(Vr::of_tag(0x0009_0010), Vr(*b"LO"));
        assert_eq!(Vr::of_tag(0x0009_1001), Vr::UN);
        assert_eq!(Vr::of_tag(0x0010_0000), Vr::UL);
    }

    #[test]
    fn parse_rejects_non_vr() {
        assert!(Vr::parse(*b"PN").is_some());
        assert!(Vr::parse(*b"\x00\x10").is_none());
        assert!(Vr::parse(*b"ZZ").is_none());
        assert!(Vr::parse(*b"pn").is_none());
        assert!(Vr::parse(*b"A@").is_none());
    }

    #[test]
    fn header_kinds() {
        // PS3.5 Table 7.1-1 and 7.1-2: the VRs whose explicit headers carry a 32-bit length.
        let long: Vec<&[u8]> = "OB OD OF OL OV OW SQ SV UC UN UR UT UV".split(' ').map(str::as_bytes).collect();
        for code in VR_CODES {
            let expected = long.contains(&&code[..]);
            assert_eq!(Vr::parse_header(*code), Some((Vr(*code), expected)), "{code:?}");
            assert_eq!(Vr(*code).has_long_length(), expected);
        }
        assert_eq!(Vr::parse_header(*b"\x10\x00"), None, "an implicit element's length bytes");
    }

    #[test]
    fn parse_accepts_exactly_the_standard_codes() {
        let mut accepted = 0;
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                if let Some(vr) = Vr::parse([a, b]) {
                    assert!(VR_CODES.contains(&&vr.0), "{:?}", vr);
                    accepted += 1;
                }
            }
        }
        assert_eq!(accepted, VR_CODES.len());
    }
}
