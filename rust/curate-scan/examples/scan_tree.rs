//! Scan folders from the command line and print counts: for profiling the scanner
//! without Python. `cargo run --release --example scan_tree -- [--threads N] [--keywords A,B] PATH...`

use curate_dicom::{ColumnSpec, Selection, Vr};
use curate_scan::Scan;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::StandardDataDictionary;
use std::time::Instant;

const KEYWORDS: &str = "PatientID,PatientName,PatientBirthDate,PatientSex,PatientAge,StudyInstanceUID,\
StudyDate,SeriesInstanceUID,SOPInstanceUID,SOPClassUID,Modality,BodyPartExamined,ViewPosition,\
StudyDescription,SeriesDescription,Manufacturer,ManufacturerModelName,Rows,Columns,PixelSpacing,\
PhotometricInterpretation,KVP,ExposureIndex,DeviationIndex,InstanceNumber,ImageType";

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut threads, mut keywords, mut roots) = (0usize, KEYWORDS.to_string(), Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(0),
            "--keywords" => keywords = args.next().unwrap_or_default(),
            _ => roots.push(std::path::PathBuf::from(a)),
        }
    }
    let columns = keywords
        .split(',')
        .filter_map(|k| {
            let entry = StandardDataDictionary.by_name(k)?;
            let tag = entry.tag_range().inner();
            let tag = ((tag.group() as u32) << 16) | tag.element() as u32;
            Some(ColumnSpec::top(k, tag, Vr::of_tag(tag), matches!(k, "PixelSpacing" | "ImageType")))
        })
        .collect();
    let selection = Selection::new(columns).expect("valid selection");
    let start = Instant::now();
    let scan = Scan::new(roots, selection, threads, curate_scan::DEFAULT_BATCH_SIZE).expect("thread pool");
    let progress = scan.progress();
    let rows: usize = scan.run().expect("scan starts").map(|b| b.expect("batch").num_rows()).sum();
    let secs = start.elapsed().as_secs_f64();
    println!("{rows} of {} rows in {secs:.3} s ({:.0} files/s)", progress.found(), rows as f64 / secs);
}
