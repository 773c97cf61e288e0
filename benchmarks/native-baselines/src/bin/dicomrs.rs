//! dicom-rs baseline: parse each file's header with `dicom-object` up to the
//! pixel data and read a handful of attributes, as a header scanner would.

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use native_baselines::{parse_args, run, Outcome};
use std::path::Path;

/// Opens and parses one file; a file that fails to parse counts as an error.
fn scan(path: &Path) -> Outcome {
    let Ok(obj) = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
    else {
        return Outcome { ok: false, value: 0 };
    };
    // The summed text lengths depend on every value, so none of the reads can
    // be skipped.
    let mut value = 0u64;
    for tag in [tags::PATIENT_ID, tags::MODALITY, tags::SOP_INSTANCE_UID] {
        if let Some(text) = obj.get(tag).and_then(|e| e.to_str().ok()) {
            value += text.len() as u64;
        }
    }
    if let Some(rows) = obj.get(tags::ROWS).and_then(|e| e.to_int::<u16>().ok()) {
        value += u64::from(rows);
    }
    Outcome { ok: true, value }
}

fn main() {
    let args = parse_args("dicomrs");
    run("dicomrs", &args, |path| scan(path));
}
