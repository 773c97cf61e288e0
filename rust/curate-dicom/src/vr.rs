//! Value Representations and the standard dictionary lookup that implicit-VR files need.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;

/// A two-letter VR code as it appears in explicit-VR files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vr(pub [u8; 2]);

impl Vr {
    pub const UN: Vr = Vr(*b"UN");
    pub const SQ: Vr = Vr(*b"SQ");
    pub const UL: Vr = Vr(*b"UL");

    /// Parse a VR code; `None` for anything that is not one of the standard VRs.
    pub fn parse(bytes: [u8; 2]) -> Option<Vr> {
        let known = matches!(
            &bytes,
            b"AE"
                | b"AS"
                | b"AT"
                | b"CS"
                | b"DA"
                | b"DS"
                | b"DT"
                | b"FD"
                | b"FL"
                | b"IS"
                | b"LO"
                | b"LT"
                | b"OB"
                | b"OD"
                | b"OF"
                | b"OL"
                | b"OV"
                | b"OW"
                | b"PN"
                | b"SH"
                | b"SL"
                | b"SQ"
                | b"SS"
                | b"ST"
                | b"SV"
                | b"TM"
                | b"UC"
                | b"UI"
                | b"UL"
                | b"UN"
                | b"UR"
                | b"US"
                | b"UT"
                | b"UV"
        );
        known.then_some(Vr(bytes))
    }

    /// VRs whose explicit header has two reserved bytes and a 32-bit length.
    pub fn has_long_length(self) -> bool {
        matches!(
            &self.0,
            b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV"
        )
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
    }
}
