//! Any bytes, read as a DICOM file: the parser must never panic, and reading the same bytes
//! by random access (files) and as a stream (deflated data) must give the same values and
//! the same kind of error.

#![no_main]

use curate_dicom::{parse, parse_bytes, ColumnSpec, Input, PathStep, Selection, Vr};
use libfuzzer_sys::fuzz_target;

fn selection() -> Selection {
    let top = |name: &str, tag: u32, vr: &[u8; 2], multi: bool| ColumnSpec::top(name, tag, Vr(*vr), multi);
    let nested = |name: &str, seq: u32, item: u32, tag: u32, vr: &[u8; 2]| {
        let path = vec![PathStep { tag: seq, item: Some(item) }, PathStep { tag, item: None }];
        ColumnSpec::new(name, path, Vr(*vr), false)
    };
    Selection::new(vec![
        top("SpecificCharacterSet", 0x0008_0005, b"CS", true),
        top("ImageType", 0x0008_0008, b"CS", true),
        top("StudyDate", 0x0008_0020, b"DA", false),
        top("Modality", 0x0008_0060, b"CS", false),
        top("PatientName", 0x0010_0010, b"PN", false),
        top("PatientID", 0x0010_0020, b"LO", false),
        top("PID", 0x0010_0020, b"LO", false),
        top("InstanceNumber", 0x0020_0013, b"IS", false),
        top("Rows", 0x0028_0010, b"US", false),
        top("PixelSpacing", 0x0028_0030, b"DS", true),
        top("WindowCenter", 0x0028_1050, b"DS", true),
        top("ExposureIndex", 0x0018_1411, b"DS", false),
        top("Private", 0x0009_1001, b"UN", false),
        nested("ViewCode", 0x0054_0220, 0, 0x0008_0100, b"SH"),
        nested("ViewMeaning1", 0x0054_0220, 1, 0x0008_0104, b"LO"),
        nested("RefSOP", 0x0008_1199, 0, 0x0008_1155, b"UI"),
    ])
    .expect("a valid selection")
}

fuzz_target!(|data: &[u8]| {
    let sel = selection();
    let random = parse_bytes(data, &sel);
    let stream = parse(Input::stream(data, 0), &sel);
    assert_eq!(random.error.as_ref().map(|e| e.kind), stream.error.as_ref().map(|e| e.kind));
    assert_eq!(random.values, stream.values);
});
