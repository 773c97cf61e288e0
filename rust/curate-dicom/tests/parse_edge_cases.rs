//! Edge cases of the header parser on byte streams built by hand: nested and
//! undefined-length sequences, UN sequences, mislabelled and big endian data, deflated data,
//! character sets inside items, hostile lengths, and truncation at every offset.

use curate_dicom::{parse, parse_bytes, ColumnSpec, ErrorKind, Input, Parsed, PathStep, Selection, Value, Vr};
use std::io::Write;

// ---------------------------------------------------------------------------------------
// A tiny DICOM writer.
// ---------------------------------------------------------------------------------------

const UNDEFINED: u32 = 0xffff_ffff;
const EXPLICIT_LE_TS: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE_TS: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE_TS: &str = "1.2.840.10008.1.2.2";
const DEFLATED_TS: &str = "1.2.840.10008.1.2.1.99";

const PATIENT_ID: u32 = 0x0010_0020;
const PATIENT_NAME: u32 = 0x0010_0010;
const INSTANCE_NUMBER: u32 = 0x0020_0013;
const ROWS: u32 = 0x0028_0010;
const COLUMNS: u32 = 0x0028_0011;
const PIXEL_SPACING: u32 = 0x0028_0030;
const CONTENT_SEQUENCE: u32 = 0x0040_a730;
const TEXT_VALUE: u32 = 0x0040_a160;
const VIEW_CODE_SEQUENCE: u32 = 0x0054_0220;
const CODE_VALUE: u32 = 0x0008_0100;
const CODE_MEANING: u32 = 0x0008_0104;
const IMAGE_ID: u32 = 0x0054_0400;
const REFERENCED_SOP_SEQUENCE: u32 = 0x0008_1199;
const PIXEL_DATA: u32 = 0x7fe0_0010;

#[derive(Clone, Copy, Debug)]
struct Enc {
    explicit: bool,
    big: bool,
}

const ELE: Enc = Enc { explicit: true, big: false };
const ILE: Enc = Enc { explicit: false, big: false };
const EBE: Enc = Enc { explicit: true, big: true };

fn ts_of(enc: Enc) -> &'static str {
    match (enc.explicit, enc.big) {
        (true, false) => EXPLICIT_LE_TS,
        (false, false) => IMPLICIT_LE_TS,
        (true, true) => EXPLICIT_BE_TS,
        (false, true) => unreachable!("implicit big endian is not a DICOM transfer syntax"),
    }
}

fn u16b(enc: Enc, n: u16) -> [u8; 2] {
    if enc.big {
        n.to_be_bytes()
    } else {
        n.to_le_bytes()
    }
}

fn u32b(enc: Enc, n: u32) -> [u8; 4] {
    if enc.big {
        n.to_be_bytes()
    } else {
        n.to_le_bytes()
    }
}

fn tag_bytes(enc: Enc, tag: u32) -> Vec<u8> {
    let mut v = u16b(enc, (tag >> 16) as u16).to_vec();
    v.extend_from_slice(&u16b(enc, tag as u16));
    v
}

fn long_vr(vr: &[u8; 2]) -> bool {
    matches!(vr, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV")
}

/// An element with a declared length that may differ from the bytes that follow.
fn el_len(enc: Enc, tag: u32, vr: &[u8; 2], len: u32, value: &[u8]) -> Vec<u8> {
    let mut v = tag_bytes(enc, tag);
    if !enc.explicit {
        v.extend_from_slice(&u32b(enc, len));
    } else if long_vr(vr) {
        v.extend_from_slice(vr);
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&u32b(enc, len));
    } else {
        v.extend_from_slice(vr);
        v.extend_from_slice(&u16b(enc, u16::try_from(len).expect("short VR length")));
    }
    v.extend_from_slice(value);
    v
}

/// An element; odd values are padded (NUL for UI and binary VRs, space for text).
fn el(enc: Enc, tag: u32, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if matches!(vr, b"UI" | b"OB" | b"UN") { 0 } else { b' ' });
    }
    el_len(enc, tag, vr, value.len() as u32, &value)
}

fn item_end(enc: Enc) -> Vec<u8> {
    let mut v = tag_bytes(enc, 0xfffe_e00d);
    v.extend_from_slice(&[0; 4]);
    v
}

fn seq_end(enc: Enc) -> Vec<u8> {
    let mut v = tag_bytes(enc, 0xfffe_e0dd);
    v.extend_from_slice(&[0; 4]);
    v
}

fn item(enc: Enc, body: &[u8], undefined: bool) -> Vec<u8> {
    let mut v = tag_bytes(enc, 0xfffe_e000);
    if undefined {
        v.extend_from_slice(&u32b(enc, UNDEFINED));
        v.extend_from_slice(body);
        v.extend(item_end(enc));
    } else {
        v.extend_from_slice(&u32b(enc, body.len() as u32));
        v.extend_from_slice(body);
    }
    v
}

fn seq(enc: Enc, tag: u32, vr: &[u8; 2], items: &[Vec<u8>], undefined: bool) -> Vec<u8> {
    let mut body: Vec<u8> = items.concat();
    if undefined {
        body.extend(seq_end(enc));
        el_len(enc, tag, vr, UNDEFINED, &body)
    } else {
        el_len(enc, tag, vr, body.len() as u32, &body)
    }
}

fn meta(ts: &str) -> Vec<u8> {
    let body = [
        el(ELE, 0x0002_0001, b"OB", &[0, 1]),
        el(ELE, 0x0002_0002, b"UI", b"1.2.840.10008.5.1.4.1.1.2"),
        el(ELE, 0x0002_0003, b"UI", b"1.2.3.4"),
        el(ELE, 0x0002_0010, b"UI", ts.as_bytes()),
    ]
    .concat();
    let mut v = el(ELE, 0x0002_0000, b"UL", &(body.len() as u32).to_le_bytes());
    v.extend(body);
    v
}

fn preamble() -> Vec<u8> {
    let mut v = vec![0u8; 128];
    v.extend_from_slice(b"DICM");
    v
}

/// Preamble, DICM, meta group with `ts`, then `body` as given.
fn file(ts: &str, body: &[u8]) -> Vec<u8> {
    let mut v = preamble();
    v.extend(meta(ts));
    v.extend_from_slice(body);
    v
}

/// A column on `path`: (tag, item index for sequence steps).
fn col(name: &str, path: &[(u32, Option<u32>)], vr: &[u8; 2], multi: bool) -> ColumnSpec {
    ColumnSpec::new(name, path.iter().map(|&(tag, item)| PathStep { tag, item }).collect(), Vr(*vr), multi)
}

fn top(name: &str, tag: u32, vr: &[u8; 2]) -> ColumnSpec {
    col(name, &[(tag, None)], vr, false)
}

fn selection(cols: Vec<ColumnSpec>) -> Selection {
    Selection::new(cols).expect("valid selection")
}

fn text(s: &str) -> Option<Value> {
    Some(Value::Text(s.to_string()))
}

fn int(n: i64) -> Option<Value> {
    Some(Value::Int(n))
}

fn float(x: f64) -> Option<Value> {
    Some(Value::Float(x))
}

fn ints(v: &[i64]) -> Option<Value> {
    Some(Value::IntList(v.to_vec()))
}

fn floats(v: &[f64]) -> Option<Value> {
    Some(Value::FloatList(v.to_vec()))
}

fn assert_ok(p: &Parsed) {
    assert!(p.error.is_none(), "unexpected error: {}", p.error.as_ref().unwrap());
}

fn kind(p: &Parsed) -> Option<ErrorKind> {
    p.error.as_ref().map(|e| e.kind)
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

// ---------------------------------------------------------------------------------------
// Sequences
// ---------------------------------------------------------------------------------------

/// Three levels of Content Sequence, each with a decoy item 0, the path's item 1 and a
/// trailing item 2; `layout` picks defined or undefined length per sequence and per item.
fn nested_dataset(enc: Enc, layout: u32) -> Vec<u8> {
    let seq_undef = |level: u32| layout & (1 << level) != 0;
    let item_undef = |level: u32| layout & (1 << (level + 3)) != 0;
    let mut inner = el(enc, TEXT_VALUE, b"UT", b"target");
    for level in (0..3).rev() {
        let decoy = item(enc, &el(enc, TEXT_VALUE, b"UT", format!("decoy {level}").as_bytes()), item_undef(level));
        let chosen = item(enc, &inner, item_undef(level));
        let after = item(enc, &el(enc, TEXT_VALUE, b"UT", b"after"), !item_undef(level));
        inner = seq(enc, CONTENT_SEQUENCE, b"SQ", &[decoy, chosen, after], seq_undef(level));
    }
    [
        el(enc, PATIENT_ID, b"LO", b"P-nested"),
        el(enc, INSTANCE_NUMBER, b"IS", b"7"),
        inner,
        el(enc, IMAGE_ID, b"SH", b"after-seq"),
    ]
    .concat()
}

#[test]
fn nested_sequences_three_deep_select_item_one_at_every_level() {
    let sel = selection(vec![
        col(
            "deep",
            &[
                (CONTENT_SEQUENCE, Some(1)),
                (CONTENT_SEQUENCE, Some(1)),
                (CONTENT_SEQUENCE, Some(1)),
                (TEXT_VALUE, None),
            ],
            b"UT",
            false,
        ),
        col("first", &[(CONTENT_SEQUENCE, Some(0)), (TEXT_VALUE, None)], b"UT", false),
        top("PatientID", PATIENT_ID, b"LO"),
        top("ImageID", IMAGE_ID, b"SH"),
        top("InstanceNumber", INSTANCE_NUMBER, b"IS"),
    ]);
    for enc in [ELE, ILE, EBE] {
        for layout in 0..64 {
            let data = file(ts_of(enc), &nested_dataset(enc, layout));
            let p = parse_bytes(&data, &sel);
            let ctx = format!("{enc:?} layout {layout:06b}");
            assert!(p.error.is_none(), "{ctx}: {}", p.error.as_ref().unwrap());
            assert_eq!(p.values[0], text("target"), "{ctx}");
            assert_eq!(p.values[1], text("decoy 0"), "{ctx}");
            assert_eq!(p.values[2], text("P-nested"), "{ctx}");
            assert_eq!(p.values[3], text("after-seq"), "{ctx}: the element after the sequence");
            assert_eq!(p.values[4], int(7), "{ctx}");
            assert!(p.header.invalid.is_empty(), "{ctx}");
        }
    }
}

/// A 5 MB defined-length sequence nobody selected, then attributes and Pixel Data.
fn file_with_big_sequence(seq_undefined: bool) -> (Vec<u8>, u64) {
    let big_item = item(ELE, &el(ELE, 0x0009_1010, b"OB", &vec![0xab; 5 << 20]), false);
    let mut body = [
        el(ELE, PATIENT_ID, b"LO", b"P-big"),
        seq(ELE, REFERENCED_SOP_SEQUENCE, b"SQ", &[big_item], seq_undefined),
        el(ELE, INSTANCE_NUMBER, b"IS", b"3"),
    ]
    .concat();
    let mut data = file(EXPLICIT_LE_TS, &[]);
    let pixel_offset = (data.len() + body.len()) as u64;
    body.extend(el(ELE, PIXEL_DATA, b"OW", &vec![0u8; 1 << 20]));
    data.extend(body);
    (data, pixel_offset)
}

#[test]
fn skipping_a_large_unselected_sequence_reads_few_bytes() {
    let sel = selection(vec![top("PatientID", PATIENT_ID, b"LO"), top("InstanceNumber", INSTANCE_NUMBER, b"IS")]);
    for undefined in [false, true] {
        let (data, pixel_offset) = file_with_big_sequence(undefined);
        let p = parse(Input::random(&data[..], data.len() as u64), &sel);
        assert_ok(&p);
        assert_eq!(p.values[0], text("P-big"));
        assert_eq!(p.values[1], int(3), "the element after the skipped sequence");
        assert_eq!(p.header.pixel_data_offset, Some(pixel_offset));
        assert!(
            p.header.bytes_read < 64 * 1024,
            "undefined={undefined}: read {} bytes of a {} byte file",
            p.header.bytes_read,
            data.len()
        );
    }
}

#[test]
fn skipping_a_large_unselected_item_of_a_selected_sequence_reads_few_bytes() {
    let big = item(ELE, &el(ELE, 0x0009_1010, b"OB", &vec![0xcd; 5 << 20]), false);
    let wanted = item(ELE, &el(ELE, CODE_MEANING, b"LO", b"wanted"), false);
    for undefined in [false, true] {
        let body = [
            seq(ELE, VIEW_CODE_SEQUENCE, b"SQ", &[big.clone(), wanted.clone()], undefined),
            el(ELE, IMAGE_ID, b"SH", b"next"),
        ]
        .concat();
        let data = file(EXPLICIT_LE_TS, &body);
        let sel = selection(vec![
            col("view", &[(VIEW_CODE_SEQUENCE, Some(1)), (CODE_MEANING, None)], b"LO", false),
            top("ImageID", IMAGE_ID, b"SH"),
        ]);
        let p = parse(Input::random(&data[..], data.len() as u64), &sel);
        assert_ok(&p);
        assert_eq!(p.values, vec![text("wanted"), text("next")]);
        assert!(p.header.bytes_read < 64 * 1024, "undefined={undefined}: read {} bytes", p.header.bytes_read);
    }
}

#[test]
fn undefined_length_un_holds_implicit_vr_items() {
    let implicit_inner_seq =
        seq(ILE, CONTENT_SEQUENCE, b"SQ", &[item(ILE, &el(ILE, TEXT_VALUE, b"UT", b"in nested SQ"), true)], true);
    let item0 =
        [el(ILE, CODE_VALUE, b"SH", b"C0"), el(ILE, 0x0009_1002, b"UN", b"private in item 0"), implicit_inner_seq]
            .concat();
    let item1 = [el(ILE, CODE_VALUE, b"SH", b"C1"), el(ILE, ROWS, b"US", &9u16.to_le_bytes())].concat();
    let body = [
        el(ELE, 0x0009_0010, b"LO", b"ACME"),
        seq(ELE, 0x0009_1001, b"UN", &[item(ILE, &item0, true), item(ILE, &item1, false)], true),
        el(ELE, PATIENT_ID, b"LO", b"P-un"),
        el(ELE, ROWS, b"US", &5u16.to_le_bytes()),
    ]
    .concat();
    let data = file(EXPLICIT_LE_TS, &body);
    let sel = selection(vec![
        col("private", &[(0x0009_1001, Some(0)), (0x0009_1002, None)], b"UN", false),
        col("code1", &[(0x0009_1001, Some(1)), (CODE_VALUE, None)], b"SH", false),
        col("rows1", &[(0x0009_1001, Some(1)), (ROWS, None)], b"US", false),
        col("nested", &[(0x0009_1001, Some(0)), (CONTENT_SEQUENCE, Some(0)), (TEXT_VALUE, None)], b"UT", false),
        top("PatientID", PATIENT_ID, b"LO"),
        top("Rows", ROWS, b"US"),
    ]);
    let p = parse_bytes(&data, &sel);
    assert_ok(&p);
    assert_eq!(
        p.values,
        vec![text("private in item 0"), text("C1"), int(9), text("in nested SQ"), text("P-un"), int(5)]
    );

    // Not selected: walked item by item all the same, and explicit VR resumes after it.
    let sel = selection(vec![top("PatientID", PATIENT_ID, b"LO"), top("Rows", ROWS, b"US")]);
    let p = parse_bytes(&data, &sel);
    assert_ok(&p);
    assert_eq!(p.values, vec![text("P-un"), int(5)]);
}

#[test]
fn defined_length_un_holding_a_sequence_is_followed_when_selected() {
    let inner = item(ILE, &el(ILE, CODE_MEANING, b"LO", b"from UN"), false);
    let body = [
        el(ELE, PATIENT_ID, b"LO", b"P"),
        seq(ELE, VIEW_CODE_SEQUENCE, b"UN", &[inner], false),
        el(ELE, IMAGE_ID, b"SH", b"next"),
    ]
    .concat();
    let data = file(EXPLICIT_LE_TS, &body);
    let sel = selection(vec![
        col("view", &[(VIEW_CODE_SEQUENCE, Some(0)), (CODE_MEANING, None)], b"LO", false),
        top("ImageID", IMAGE_ID, b"SH"),
    ]);
    let p = parse_bytes(&data, &sel);
    assert_ok(&p);
    assert_eq!(p.values, vec![text("from UN"), text("next")]);
}

#[test]
fn elements_out_of_tag_order_are_still_found() {
    let view = item(ELE, &[el(ELE, CODE_MEANING, b"LO", b"m"), el(ELE, CODE_VALUE, b"SH", b"v")].concat(), false);
    let body = [
        el(ELE, ROWS, b"US", &3u16.to_le_bytes()),
        el(ELE, PATIENT_ID, b"LO", b"P-order"),
        el(ELE, 0x0008_0060, b"CS", b"US"),
        seq(ELE, VIEW_CODE_SEQUENCE, b"SQ", &[view], false),
        el(ELE, INSTANCE_NUMBER, b"IS", b"9"),
        el(ELE, 0x0008_0016, b"UI", b"1.2.3"),
    ]
    .concat();
    let data = file(EXPLICIT_LE_TS, &body);
    let sel = selection(vec![
        top("SOPClassUID", 0x0008_0016, b"UI"),
        top("Modality", 0x0008_0060, b"CS"),
        top("PatientID", PATIENT_ID, b"LO"),
        top("InstanceNumber", INSTANCE_NUMBER, b"IS"),
        top("Rows", ROWS, b"US"),
        col("meaning", &[(VIEW_CODE_SEQUENCE, Some(0)), (CODE_MEANING, None)], b"LO", false),
        col("code", &[(VIEW_CODE_SEQUENCE, Some(0)), (CODE_VALUE, None)], b"SH", false),
    ]);
    let p = parse_bytes(&data, &sel);
    assert_ok(&p);
    assert_eq!(p.values, vec![text("1.2.3"), text("US"), text("P-order"), int(9), int(3), text("m"), text("v")]);
}

// ---------------------------------------------------------------------------------------
// Transfer syntaxes
// ---------------------------------------------------------------------------------------

fn plain_dataset(enc: Enc) -> Vec<u8> {
    [
        el(enc, 0x0008_0060, b"CS", b"MR"),
        el(enc, PATIENT_ID, b"LO", b"P-ts"),
        el(enc, ROWS, b"US", &u16b(enc, 512)),
        el(enc, COLUMNS, b"US", &u16b(enc, 258)),
        el(enc, PIXEL_SPACING, b"DS", b"0.5\\0.25"),
    ]
    .concat()
}

fn plain_selection() -> Selection {
    selection(vec![
        top("Modality", 0x0008_0060, b"CS"),
        top("PatientID", PATIENT_ID, b"LO"),
        top("Rows", ROWS, b"US"),
        top("Columns", COLUMNS, b"US"),
        col("PixelSpacing", &[(PIXEL_SPACING, None)], b"DS", true),
    ])
}

fn plain_values() -> Vec<Option<Value>> {
    vec![text("MR"), text("P-ts"), int(512), int(258), floats(&[0.5, 0.25])]
}

#[test]
fn explicit_label_on_an_implicit_dataset_is_still_read() {
    let data = file(EXPLICIT_LE_TS, &plain_dataset(ILE));
    let p = parse_bytes(&data, &plain_selection());
    assert_ok(&p);
    assert_eq!(p.header.transfer_syntax.as_deref(), Some(EXPLICIT_LE_TS));
    assert_eq!(p.values, plain_values());
}

#[test]
fn implicit_label_on_an_explicit_dataset_is_still_read() {
    let data = file(IMPLICIT_LE_TS, &plain_dataset(ELE));
    let p = parse_bytes(&data, &plain_selection());
    assert_ok(&p);
    assert_eq!(p.values, plain_values());
}

#[test]
fn big_endian_binary_values() {
    let mut body = plain_dataset(EBE);
    body.extend(el(EBE, 0x0018_1310, b"US", &[u16b(EBE, 0), u16b(EBE, 256), u16b(EBE, 300), u16b(EBE, 1)].concat()));
    body.extend(el(EBE, 0x0018_9087, b"FD", &1000.5f64.to_be_bytes()));
    body.extend(el(EBE, 0x0028_0106, b"SS", &(-2i16).to_be_bytes()));
    let mut data = file(EXPLICIT_BE_TS, &body);
    let offset = data.len() as u64;
    data.extend(el(EBE, PIXEL_DATA, b"OW", &[0u8; 64]));
    let mut cols = plain_selection().columns;
    cols.push(col("AcquisitionMatrix", &[(0x0018_1310, None)], b"US", true));
    cols.push(top("DiffusionBValue", 0x0018_9087, b"FD"));
    cols.push(top("SmallestImagePixelValue", 0x0028_0106, b"US"));
    let p = parse_bytes(&data, &selection(cols));
    assert_ok(&p);
    let mut expected = plain_values();
    expected.push(ints(&[0, 256, 300, 1]));
    expected.push(float(1000.5));
    expected.push(int(-2));
    assert_eq!(p.values, expected);
    assert_eq!(p.header.pixel_data_offset, Some(offset));
    assert_eq!(&data[offset as usize..offset as usize + 4], &[0x7f, 0xe0, 0x00, 0x10]);
}

fn deflated_file() -> Vec<u8> {
    let dataset = [
        plain_dataset(ELE),
        seq(ELE, VIEW_CODE_SEQUENCE, b"SQ", &[item(ELE, &el(ELE, CODE_MEANING, b"LO", b"deflated view"), true)], true),
        el(ELE, PIXEL_DATA, b"OW", &[7u8; 4096]),
    ]
    .concat();
    file(DEFLATED_TS, &deflate(&dataset))
}

#[test]
fn deflated_explicit_little_endian() {
    let data = deflated_file();
    let mut cols = plain_selection().columns;
    cols.push(col("view", &[(VIEW_CODE_SEQUENCE, Some(0)), (CODE_MEANING, None)], b"LO", false));
    let sel = selection(cols);
    let p = parse(Input::random(&data[..], data.len() as u64), &sel);
    assert_ok(&p);
    assert_eq!(p.header.transfer_syntax.as_deref(), Some(DEFLATED_TS));
    let mut expected = plain_values();
    expected.push(text("deflated view"));
    assert_eq!(p.values, expected);
    assert_eq!(p.header.pixel_data_offset, None, "offsets in the inflated stream do not address the file");
}

#[test]
fn truncated_deflated_files_never_panic() {
    let data = deflated_file();
    let meta_end = file(DEFLATED_TS, &[]).len();
    let sel = plain_selection();
    for cut in meta_end..data.len() {
        let p = parse_bytes(&data[..cut], &sel);
        if let Some(e) = &p.error {
            assert_ne!(e.kind, ErrorKind::NotDicom, "cut {cut}: {e}");
            assert_eq!(p.header.transfer_syntax.as_deref(), Some(DEFLATED_TS), "cut {cut}");
        }
    }
}

#[test]
fn truncated_deflated_file_is_truncated() {
    let data = deflated_file();
    let meta_end = file(DEFLATED_TS, &[]).len();
    let cut = meta_end + (data.len() - meta_end) / 4;
    let p = parse_bytes(&data[..cut], &plain_selection());
    assert_eq!(kind(&p), Some(ErrorKind::Truncated), "{:?}", p.error);
}

#[test]
fn deflated_file_cut_after_its_header_loses_nothing() {
    // The stream ends early, but only inside the Pixel Data value: every attribute was
    // inflated before the cut and the parse stops at Pixel Data, as for an uncompressed file.
    let data = deflated_file();
    let full = parse_bytes(&data, &plain_selection());
    assert_ok(&full);
    let p = parse_bytes(&data[..data.len() - 2], &plain_selection());
    assert_ok(&p);
    assert_eq!(p.values, full.values);
}

#[test]
fn sequence_columns_hold_nothing_in_any_syntax() {
    let sel = selection(vec![top("ViewCodeSequence", VIEW_CODE_SEQUENCE, b"SQ"), top("PatientID", PATIENT_ID, b"LO")]);
    for (ts, enc) in [(IMPLICIT_LE_TS, ILE), (EXPLICIT_LE_TS, ELE)] {
        let body = [
            seq(enc, VIEW_CODE_SEQUENCE, b"SQ", &[item(enc, &el(enc, CODE_MEANING, b"LO", b"view"), false)], false),
            el(enc, PATIENT_ID, b"LO", b"P1"),
        ]
        .concat();
        let p = parse_bytes(&file(ts, &body), &sel);
        assert_ok(&p);
        assert_eq!(p.values, vec![None, text("P1")], "{ts}");
        assert!(p.header.invalid.is_empty(), "{ts}");
    }
}

#[test]
fn corrupt_deflate_stream_is_corrupt() {
    let mut data = file(DEFLATED_TS, &[]);
    data.extend_from_slice(&[0xff; 64]); // block type 3: invalid in every deflate stream
    let p = parse_bytes(&data, &plain_selection());
    assert_eq!(kind(&p), Some(ErrorKind::Corrupt), "{:?}", p.error);
}

// ---------------------------------------------------------------------------------------
// Character sets
// ---------------------------------------------------------------------------------------

#[test]
fn specific_character_set_in_an_item_applies_to_that_item_only() {
    let utf8_item =
        [el(ELE, 0x0008_0005, b"CS", b"ISO_IR 192"), el(ELE, CODE_MEANING, b"LO", "Łódź".as_bytes())].concat();
    let plain_item = el(ELE, CODE_MEANING, b"LO", b"J\xe9r\xf4me");
    let body = [
        el(ELE, 0x0008_0005, b"CS", b"ISO_IR 100"),
        el(ELE, 0x0008_0080, b"LO", b"Caf\xe9"),
        seq(ELE, REFERENCED_SOP_SEQUENCE, b"SQ", &[item(ELE, &utf8_item, true), item(ELE, &plain_item, false)], true),
        el(ELE, PATIENT_NAME, b"PN", b"M\xfcller^J\xfcrgen"),
    ]
    .concat();
    let data = file(EXPLICIT_LE_TS, &body);
    let sel = selection(vec![
        top("InstitutionName", 0x0008_0080, b"LO"),
        col("item0", &[(REFERENCED_SOP_SEQUENCE, Some(0)), (CODE_MEANING, None)], b"LO", false),
        col("item1", &[(REFERENCED_SOP_SEQUENCE, Some(1)), (CODE_MEANING, None)], b"LO", false),
        top("PatientName", PATIENT_NAME, b"PN"),
    ]);
    let p = parse_bytes(&data, &sel);
    assert_ok(&p);
    assert_eq!(p.values, vec![text("Café"), text("Łódź"), text("Jérôme"), text("Müller^Jürgen")]);
}

// ---------------------------------------------------------------------------------------
// Hostile lengths and structure
// ---------------------------------------------------------------------------------------

#[test]
fn huge_declared_length_on_a_selected_element() {
    let sel = selection(vec![top("Modality", 0x0008_0060, b"CS"), top("PatientID", PATIENT_ID, b"LO")]);
    for (enc, vr) in [(ELE, b"UN"), (ILE, b"LO")] {
        let body = [el(enc, 0x0008_0060, b"CS", b"CT"), el_len(enc, PATIENT_ID, vr, 0xffff_fff0, b"P1")].concat();
        let data = file(ts_of(enc), &body);
        let p = parse(Input::random(&data[..], data.len() as u64), &sel);
        let e = p.error.as_ref().expect("an error");
        assert_eq!(e.kind, ErrorKind::Truncated, "{e}");
        assert!(e.message.contains("(0010,0020)"), "{e}");
        assert_eq!(p.values, vec![text("CT"), None]);
        assert_eq!(p.header.invalid, vec![1], "the oversized value is reported invalid");
        assert!(p.header.bytes_read <= data.len() as u64);
    }
}

#[test]
fn huge_declared_length_on_an_unselected_element() {
    let sel = selection(vec![top("PatientID", PATIENT_ID, b"LO"), top("InstanceNumber", INSTANCE_NUMBER, b"IS")]);
    let body = [
        el(ELE, PATIENT_ID, b"LO", b"P1"),
        el_len(ELE, 0x0009_1001, b"UN", 0xffff_fff0, b"xx"),
        el(ELE, INSTANCE_NUMBER, b"IS", b"4"),
    ]
    .concat();
    let data = file(EXPLICIT_LE_TS, &body);
    for p in [parse_bytes(&data, &sel), parse(Input::stream(std::io::Cursor::new(data.clone()), 0), &sel)] {
        let e = p.error.as_ref().expect("an error");
        assert_eq!(e.kind, ErrorKind::Truncated, "{e}");
        assert!(e.message.contains("(0009,1001)"), "{e}");
        assert_eq!(p.values, vec![text("P1"), None]);
        assert!(p.header.invalid.is_empty());
    }
}

#[test]
fn sequences_nested_ten_thousand_deep_are_corrupt_not_a_stack_overflow() {
    let depth = 10_000;
    let mut body = el(ELE, PATIENT_ID, b"LO", b"P-deep");
    let mut open = tag_bytes(ELE, CONTENT_SEQUENCE);
    open.extend_from_slice(b"SQ\0\0");
    open.extend_from_slice(&UNDEFINED.to_le_bytes());
    open.extend(tag_bytes(ELE, 0xfffe_e000));
    open.extend_from_slice(&UNDEFINED.to_le_bytes());
    let close = [item_end(ELE), seq_end(ELE)].concat();
    body.extend(open.repeat(depth));
    body.extend(close.repeat(depth));
    let data = file(EXPLICIT_LE_TS, &body);
    let sel = selection(vec![
        top("PatientID", PATIENT_ID, b"LO"),
        col("first", &[(CONTENT_SEQUENCE, Some(0)), (TEXT_VALUE, None)], b"UT", false),
    ]);
    // Run on a small stack: the depth limit, not the stack size, must stop the descent.
    let p = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || parse_bytes(&data, &sel))
        .unwrap()
        .join()
        .expect("the parser must not overflow its stack");
    let e = p.error.as_ref().expect("an error");
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.message.contains("nested"), "{e}");
    assert_eq!(p.values[0], text("P-deep"));
}

#[test]
fn selected_item_running_past_its_sequence_is_corrupt() {
    let inner = el(ELE, CODE_MEANING, b"LO", b"view");
    let mut bad_item = tag_bytes(ELE, 0xfffe_e000);
    bad_item.extend_from_slice(&((inner.len() + 40) as u32).to_le_bytes());
    bad_item.extend(inner);
    let body = [
        el(ELE, PATIENT_ID, b"LO", b"P1"),
        seq(ELE, VIEW_CODE_SEQUENCE, b"SQ", &[bad_item], false),
        el(ELE, IMAGE_ID, b"SH", b"next"),
        el(ELE, 0x0054_0410, b"SH", b"more bytes so the item does not run past the file"),
    ]
    .concat();
    let data = file(EXPLICIT_LE_TS, &body);
    let sel = selection(vec![
        top("PatientID", PATIENT_ID, b"LO"),
        col("view", &[(VIEW_CODE_SEQUENCE, Some(0)), (CODE_MEANING, None)], b"LO", false),
    ]);
    let p = parse_bytes(&data, &sel);
    let e = p.error.as_ref().expect("an error");
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.message.contains("(0054,0220)"), "{e}");
}

#[test]
fn skipped_item_running_past_its_sequence_is_corrupt() {
    let inner = el(ELE, CODE_MEANING, b"LO", b"view");
    let instance = el(ELE, INSTANCE_NUMBER, b"IS", b"5");
    let good = item(ELE, &inner, false);
    // Item 1 claims the next element (InstanceNumber) as its own.
    let mut bad = tag_bytes(ELE, 0xfffe_e000);
    bad.extend_from_slice(&((inner.len() + instance.len()) as u32).to_le_bytes());
    bad.extend(inner.clone());
    let seq_len = (good.len() + 8 + inner.len()) as u32;
    let body = [
        el(ELE, PATIENT_ID, b"LO", b"P1"),
        el_len(ELE, VIEW_CODE_SEQUENCE, b"SQ", seq_len, &[good, bad].concat()),
        instance,
        el(ELE, ROWS, b"US", &4u16.to_le_bytes()),
    ]
    .concat();
    let data = file(EXPLICIT_LE_TS, &body);
    let sel = selection(vec![
        col("view", &[(VIEW_CODE_SEQUENCE, Some(0)), (CODE_MEANING, None)], b"LO", false),
        top("InstanceNumber", INSTANCE_NUMBER, b"IS"),
    ]);
    let p = parse_bytes(&data, &sel);
    let e = p.error.as_ref().unwrap_or_else(|| panic!("no error; values {:?}", p.values));
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
}

#[test]
fn two_columns_on_the_same_attribute_are_both_filled() {
    let data = file(EXPLICIT_LE_TS, &el(ELE, PATIENT_ID, b"LO", b"P1"));
    let sel = selection(vec![top("PatientID", PATIENT_ID, b"LO"), top("pid", PATIENT_ID, b"LO")]);
    let p = parse_bytes(&data, &sel);
    assert_ok(&p);
    assert_eq!(p.values, vec![text("P1"), text("P1")]);
}

// ---------------------------------------------------------------------------------------
// Truncation at every offset
// ---------------------------------------------------------------------------------------

/// A small file with a bit of everything, its top-level element boundaries, the end of
/// its meta group, the end of PatientID's element, and where Pixel Data starts.
struct Sample {
    data: Vec<u8>,
    meta_end: usize,
    boundaries: Vec<usize>,
    patient_id_end: usize,
    pixel_offset: usize,
    /// Where the Pixel Data value starts.
    pixel_value: usize,
}

fn sample(enc: Enc) -> Sample {
    let un_items = [item(ILE, &el(ILE, CODE_VALUE, b"SH", b"UNC"), true)];
    let mut elements = vec![
        el(enc, 0x0008_0005, b"CS", b"ISO_IR 100"),
        el(enc, 0x0008_0060, b"CS", b"OT"),
        el(enc, PATIENT_NAME, b"PN", b"Doe^J\xe9r\xf4me"),
        el(enc, PATIENT_ID, b"LO", b"P-cut"),
        seq(enc, REFERENCED_SOP_SEQUENCE, b"SQ", &[item(enc, &el(enc, 0x0008_1150, b"UI", b"1.2.3"), false)], false),
        seq(
            enc,
            VIEW_CODE_SEQUENCE,
            b"SQ",
            &[
                item(enc, &[el(enc, CODE_VALUE, b"SH", b"V0"), el(enc, CODE_MEANING, b"LO", b"zero")].concat(), true),
                item(enc, &el(enc, CODE_MEANING, b"LO", b"one"), false),
            ],
            true,
        ),
        el(enc, INSTANCE_NUMBER, b"IS", b"12"),
        el(enc, ROWS, b"US", &u16b(enc, 16)),
        el(enc, PIXEL_SPACING, b"DS", b"0.5\\0.5"),
    ];
    if enc.explicit && !enc.big {
        elements.push(seq(enc, 0x0009_1001, b"UN", &un_items, true));
    }
    let mut data = file(ts_of(enc), &[]);
    let meta_end = data.len();
    let mut boundaries = vec![meta_end];
    let mut patient_id_end = 0;
    for (i, e) in elements.iter().enumerate() {
        data.extend_from_slice(e);
        boundaries.push(data.len());
        if i == 3 {
            patient_id_end = data.len();
        }
    }
    let pixel_offset = data.len();
    let pixel_value = pixel_offset + if enc.explicit { 12 } else { 8 };
    data.extend(el(enc, PIXEL_DATA, b"OW", &[1u8; 256]));
    Sample { data, meta_end, boundaries, patient_id_end, pixel_offset, pixel_value }
}

fn sample_selection() -> Selection {
    selection(vec![
        top("PatientName", PATIENT_NAME, b"PN"),
        top("PatientID", PATIENT_ID, b"LO"),
        col("view1", &[(VIEW_CODE_SEQUENCE, Some(1)), (CODE_MEANING, None)], b"LO", false),
        top("InstanceNumber", INSTANCE_NUMBER, b"IS"),
        top("Rows", ROWS, b"US"),
        col("PixelSpacing", &[(PIXEL_SPACING, None)], b"DS", true),
        col("un", &[(0x0009_1001, Some(0)), (CODE_VALUE, None)], b"SH", false),
    ])
}

#[test]
fn truncation_at_every_offset_never_panics_and_is_reported() {
    let sel = sample_selection();
    for enc in [ELE, ILE, EBE] {
        let s = sample(enc);
        let full = parse_bytes(&s.data, &sel);
        assert_ok(&full);
        assert_eq!(full.values[1], text("P-cut"));
        assert_eq!(full.values[2], text("one"));
        assert_eq!(full.header.pixel_data_offset, Some(s.pixel_offset as u64));
        for cut in 0..=s.data.len() {
            let bytes = &s.data[..cut];
            let ctx = format!("{enc:?} cut at {cut} of {}", s.data.len());
            let random = std::panic::catch_unwind(|| parse_bytes(bytes, &sel))
                .unwrap_or_else(|_| panic!("{ctx}: parse_bytes panicked"));
            let stream = std::panic::catch_unwind(|| parse(Input::stream(bytes, 0), &sel))
                .unwrap_or_else(|_| panic!("{ctx}: stream parse panicked"));
            assert_eq!(kind(&random), kind(&stream), "{ctx}: random access and stream disagree");
            assert_eq!(random.values, stream.values, "{ctx}: random access and stream disagree");
            let p = random;
            if cut == 0 {
                let e = p.error.as_ref().expect("an error");
                assert_eq!(e.kind, ErrorKind::NotDicom, "{ctx}");
                assert!(e.message.contains("empty"), "{ctx}: {e}");
            } else if cut < 132 {
                assert_eq!(kind(&p), Some(ErrorKind::NotDicom), "{ctx}");
            } else if cut < s.meta_end {
                assert_eq!(kind(&p), Some(ErrorKind::Truncated), "{ctx}: {:?}", p.error);
            } else if cut <= s.pixel_offset {
                // The last boundary is the Pixel Data tag: a file may end cleanly there.
                if s.boundaries.contains(&cut) {
                    assert_ok(&p);
                } else {
                    assert_eq!(kind(&p), Some(ErrorKind::Truncated), "{ctx}: {:?}", p.error);
                }
                let expected_id = if cut >= s.patient_id_end { text("P-cut") } else { None };
                assert_eq!(p.values[1], expected_id, "{ctx}: values read before the cut are kept");
                assert_eq!(p.header.pixel_data_offset, None, "{ctx}");
            } else if cut < s.pixel_value {
                // Inside Pixel Data's own element header: every attribute is already read;
                // the file may be called truncated or not.
                assert!(matches!(kind(&p), None | Some(ErrorKind::Truncated)), "{ctx}: {:?}", p.error);
                assert_eq!(p.values, full.values, "{ctx}");
            } else {
                // The header is complete: a cut inside the Pixel Data value loses nothing.
                assert_ok(&p);
                assert_eq!(p.values, full.values, "{ctx}");
                assert_eq!(p.header.pixel_data_offset, Some(s.pixel_offset as u64), "{ctx}");
            }
        }
    }
}

#[test]
fn file_ending_inside_its_meta_group_is_truncated() {
    let sel = sample_selection();
    let s = sample(ELE);
    let mut failures = Vec::new();
    for cut in 132..s.meta_end {
        let p = parse_bytes(&s.data[..cut], &sel);
        if kind(&p) != Some(ErrorKind::Truncated) {
            failures.push((cut, p.error.map(|e| e.to_string())));
        }
    }
    assert!(failures.is_empty(), "cuts not reported as truncated: {failures:?}");
}

/// A small deterministic generator (xorshift), so the mutation test needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the fuzz target checks, run here on random mutations of the sample files so that
/// every `cargo test` does a little fuzzing: no panic, and random-access and streamed
/// input agree on every value and on the kind of error.
#[test]
fn mutated_files_never_panic_and_both_inputs_agree() {
    let sel = sample_selection();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut outcomes = std::collections::HashMap::new();
    for enc in [ELE, ILE, EBE] {
        let s = sample(enc);
        for round in 0..3000 {
            let mut data = s.data.clone();
            for _ in 0..1 + rng.below(4) {
                let at = 128 + rng.below(data.len() - 128);
                match rng.below(3) {
                    0 => data[at] = rng.next() as u8,
                    1 => data[at] ^= 1 << rng.below(8),
                    _ => data[at] = [0x00, 0xff, 0xfe, 0xe0][rng.below(4)],
                }
            }
            let ctx = format!("{enc:?} round {round}");
            let random = std::panic::catch_unwind(|| parse_bytes(&data, &sel))
                .unwrap_or_else(|_| panic!("{ctx}: parse_bytes panicked on {data:?}"));
            let stream = std::panic::catch_unwind(|| parse(Input::stream(&data[..], 0), &sel))
                .unwrap_or_else(|_| panic!("{ctx}: stream parse panicked on {data:?}"));
            assert_eq!(kind(&random), kind(&stream), "{ctx}: random access and stream disagree");
            assert_eq!(random.values, stream.values, "{ctx}: random access and stream disagree");
            *outcomes.entry(kind(&random)).or_insert(0) += 1;
        }
    }
    // The mutations reach both clean parses and every structural error.
    for expected in [None, Some(ErrorKind::Corrupt), Some(ErrorKind::Truncated)] {
        assert!(outcomes.contains_key(&expected), "{expected:?} never happened: {outcomes:?}");
    }
}

#[test]
fn a_stray_item_of_defined_length_is_stepped_over_and_reported() {
    // A writer left an item outside any sequence between two attributes: other readers
    // step over it, and so does the parser; the row is still an error.
    let stray = item(ELE, &el(ELE, PATIENT_NAME, b"PN", b"HIDDEN"), false);
    let body = [
        el(ELE, PATIENT_ID, b"LO", b"P1"),
        stray,
        el(ELE, INSTANCE_NUMBER, b"IS", b"7"),
        el(ELE, ROWS, b"US", &4u16.to_le_bytes()),
    ]
    .concat();
    let data = file(EXPLICIT_LE_TS, &body);
    let sel = selection(vec![
        top("PatientID", PATIENT_ID, b"LO"),
        top("PatientName", PATIENT_NAME, b"PN"),
        top("InstanceNumber", INSTANCE_NUMBER, b"IS"),
        top("Rows", ROWS, b"US"),
    ]);
    let p = parse_bytes(&data, &sel);
    let e = p.error.as_ref().unwrap_or_else(|| panic!("no error; values {:?}", p.values));
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.message.contains("outside a sequence"), "{e}");
    assert_eq!(p.values[0], text("P1"), "before the defect");
    assert_eq!(p.values[1], None, "nothing is read from inside the stray item");
    assert_eq!(p.values[2], int(7), "after the defect");
    assert_eq!(p.values[3], int(4), "after the defect");
}

#[test]
fn a_stray_item_of_undefined_length_or_past_the_end_still_stops_the_parse() {
    let sel = selection(vec![top("PatientID", PATIENT_ID, b"LO"), top("InstanceNumber", INSTANCE_NUMBER, b"IS")]);
    let undefined = item(ELE, &el(ELE, PATIENT_NAME, b"PN", b"X"), true);
    let mut too_long = item(ELE, &el(ELE, PATIENT_NAME, b"PN", b"X"), false);
    too_long[4..8].copy_from_slice(&1_000_000u32.to_le_bytes());
    for stray in [undefined, too_long] {
        let body = [el(ELE, PATIENT_ID, b"LO", b"P1"), stray, el(ELE, INSTANCE_NUMBER, b"IS", b"7")].concat();
        let p = parse_bytes(&file(EXPLICIT_LE_TS, &body), &sel);
        let e = p.error.as_ref().unwrap_or_else(|| panic!("no error; values {:?}", p.values));
        assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
        assert_eq!(p.values[0], text("P1"));
        assert_eq!(p.values[1], None, "the parse stopped at the stray item");
    }
}
